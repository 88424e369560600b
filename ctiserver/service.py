"""The core's SimProt operations: login, status, accounts, workplaces, messages, topics.

This is the application behind :class:`simprot.server.SimProtServer` (its ``Backend``).  Each
operation names the permission it needs; the server checks that the account holds it in some scope,
and operations on a target in a scope (an account) check the scope here.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from simprot.errors import ErrorCode, RequestError
from simprot.server import Connection, Operation, SimProtServer
from simprot.throttle import LoginThrottle

from . import __version__
from .accounts import Account, AccountError, AccountStore, WorkplaceStore
from .settings import Settings

log = logging.getLogger("ctiserver.service")

TOPICS: dict[str, str] = {          # topic -> permission needed to subscribe
    "system": "status.read",        # node state changes
    "sessions": "sessions.read",    # logins and logouts
    "messages": "events.watch",     # supervisor messages to agents (ACD-6)
    "admin": "accounts.read",       # account and workplace changes (an audit stream)
}
MAX_MESSAGE = 2000
_ACCOUNT_ERRORS = {"not_found": ErrorCode.NOT_FOUND, "conflict": ErrorCode.CONFLICT,
                   "invalid": ErrorCode.INVALID_ARGUMENT}


def plain(row: dict) -> dict:
    """A database row as wire data: timestamps become ISO 8601 strings."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def account_view(a: Account) -> dict:
    return {"id": a.id, "username": a.username, "display_name": a.display_name, "kind": a.kind,
            "scope": a.scope, "enabled": a.enabled, "roles": [list(r) for r in a.roles]}


def _str_arg(args: dict, name: str, *, required: bool = True, max_len: int = 256) -> str:
    value = args.get(name)
    if value is None and not required:
        return ""
    if type(value) is not str or (required and not value) or len(value) > max_len:
        what = f"a string of 1..{max_len} characters" if required else f"a string of at most {max_len} characters"
        raise RequestError(ErrorCode.INVALID_ARGUMENT, f"{name}: {what}", {"field": name})
    return value


def _account_call(exc: AccountError) -> RequestError:
    field = str(exc).split(":", 1)[0] if ":" in str(exc) else ""
    return RequestError(_ACCOUNT_ERRORS.get(exc.code, ErrorCode.INVALID_ARGUMENT), str(exc),
                        {"field": field} if field else {})


class CoreService:
    """Implements the SimProt Backend protocol for ctiserver."""

    def __init__(self, settings: Settings, accounts: AccountStore, workplaces: WorkplaceStore,
                 *, clock: Callable[[], float] = time.monotonic, db_ok: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.accounts = accounts
        self.workplaces = workplaces
        self.clock = clock
        self.db_ok = db_ok
        sp = settings.simprot
        self.throttle = LoginThrottle(sp.login_max_failures, sp.login_window, sp.login_lockout)
        self.server: SimProtServer | None = None
        self.master = True
        self.started = time.time()
        self.sessions: dict[str, dict] = {}             # conn id -> session info
        self.recent_messages: deque[tuple[dict, frozenset[str] | None]] = deque(maxlen=50)
        self.ops: dict[str, Operation] = {op.name: op for op in self._operations()}
        self.topics: dict[str, str] = dict(TOPICS)
        self.snapshots: dict[str, Callable[[Account], Any]] = {}

    # ---- Backend protocol ---------------------------------------------------------------------
    def serving(self) -> tuple[bool, list[str]]:
        return (True, []) if self.master else (False, list(self.settings.simprot.peers))

    def server_info(self) -> dict:
        return {"server": f"ctiserver/{__version__}", "node": self.settings.node.name,
                "environment": self.settings.node.environment, "auth": ["password", "token"]}

    async def login(self, conn: Connection, args: dict) -> tuple[Account, dict]:
        host = conn.peer.rpartition(":")[0] or conn.peer
        token = args.get("token")
        if token is not None:
            if type(token) is not str or len(token) > 128:
                raise RequestError(ErrorCode.INVALID_ARGUMENT, "token: a string", {"field": "token"})
            keys = [f"addr:{host}"]
            self._check_throttle(keys)
            account = await self.accounts.authenticate_token(token)
            user = account.username if account else "?"
        else:
            user = _str_arg(args, "user", max_len=64).lower()
            password = _str_arg(args, "password", max_len=1024)
            keys = [f"user:{user}", f"addr:{host}"]
            self._check_throttle(keys)
            account = await self.accounts.authenticate(user, password)
        if account is None:
            self.throttle.failure(keys, self.clock())
            log.info("login.failed", extra={"conn": conn.id, "peer": conn.peer, "user": user})
            raise RequestError(ErrorCode.LOGIN_FAILED, "login failed")
        self.throttle.success(f"user:{account.username}")
        ttl = self.settings.simprot.token_ttl
        new_token = await self.accounts.issue_token(account.id, ttl)
        info = {"conn": conn.id, "account": account.username, "account_id": account.id,
                "kind": account.kind, "peer": conn.peer, "since": time.time()}
        self.sessions[conn.id] = info
        log.info("login.ok", extra={"conn": conn.id, "account": account.id, "user": account.username})
        self.publish("sessions", "session.opened", info)
        return account, {"account": account_view(account),
                         "permissions": sorted([list(p) for p in account.permissions]),
                         "token": new_token, "token_ttl": float(ttl)}

    def _check_throttle(self, keys: list[str]) -> None:
        wait = self.throttle.retry_after(keys, self.clock())
        if wait > 0:
            raise RequestError(ErrorCode.RATE_LIMITED, "too many failed logins; try again later",
                               {"retry_after": round(wait, 1)})

    def permitted(self, principal: Account, permission: str) -> bool:
        return any(p == permission for p, _scope in principal.permissions)

    def audience(self, principal: Account) -> str:
        return principal.username

    def extend(self, ops: list[Operation], topics: dict[str, str],
               snapshots: dict[str, Callable[[Account], Any]]) -> None:
        """Add another component's operations and topics (distribution, later telephony)."""
        for op in ops:
            if op.name in self.ops:
                raise ValueError(f"operation {op.name} defined twice")
            self.ops[op.name] = op
        self.topics.update(topics)
        self.snapshots.update(snapshots)

    def topic_permission(self, topic: str) -> str | None:
        try:
            return self.topics[topic]
        except KeyError:
            raise RequestError(ErrorCode.NOT_FOUND, f"topic: no topic {topic[:64]!r}; known: {sorted(self.topics)}",
                               {"field": "topic"}) from None

    def snapshot(self, topic: str, principal: Account) -> Any:
        if topic == "system":
            return self.status_view()
        if topic == "sessions":
            return {"sessions": list(self.sessions.values())}
        if topic == "messages":
            me = principal.username
            return {"recent": [m for m, aud in self.recent_messages if aud is None or me in aud]}
        extra = self.snapshots.get(topic)
        if extra is not None:
            return extra(principal)
        return {}  # "admin" is an audit stream: re-read lists with accounts.list / workplaces.list

    def closed(self, conn: Connection, reason: str) -> None:
        info = self.sessions.pop(conn.id, None)
        if info is not None:
            self.publish("sessions", "session.closed", {"conn": conn.id, "account": info["account"],
                                                       "reason": reason})

    # ---- helpers ------------------------------------------------------------------------------
    def publish(self, topic: str, event: str, data: Any) -> None:
        if self.server is not None:
            self.server.publish(topic, event, data)

    def set_master(self, master: bool) -> None:
        if master != self.master:
            self.master = master
            self.publish("system", "node.role", {"node": self.settings.node.name,
                                                 "role": "master" if master else "standby"})

    def status_view(self) -> dict:
        srv = self.server
        return {
            "node": self.settings.node.name, "environment": self.settings.node.environment,
            "version": __version__, "role": "master" if self.master else "standby",
            "uptime": round(time.time() - self.started, 1), "database": "ok" if self.db_ok() else "down",
            "connections": len(srv.connections) if srv else 0, "sessions": len(self.sessions),
            "epoch": srv.epoch if srv else "",
            "topics": {name: t.seq for name, t in srv.topics.items()} if srv else {},
        }

    @staticmethod
    def _require_scope(conn: Connection, permission: str, scope: str) -> None:
        principal: Account = conn.principal
        if not principal.allows(permission, scope):
            raise RequestError(ErrorCode.PERMISSION_DENIED, f"needs {permission} in scope {scope!r}")

    # ---- operations ---------------------------------------------------------------------------
    def _operations(self) -> list[Operation]:
        return [
            Operation("status", lambda conn, args: self.status_view(), "status.read"),
            Operation("echo", lambda conn, args: args, None),
            Operation("whoami", lambda conn, args: account_view(conn.principal), None),
            Operation("sessions.list", lambda conn, args: {"sessions": list(self.sessions.values())},
                      "sessions.read"),
            Operation("accounts.list", self.op_accounts_list, "accounts.read"),
            Operation("accounts.add", self.op_accounts_add, "accounts.manage"),
            Operation("accounts.password", self.op_accounts_password, None),
            Operation("accounts.grant", self.op_accounts_grant, "accounts.manage"),
            Operation("accounts.revoke", self.op_accounts_revoke, "accounts.manage"),
            Operation("accounts.enable", self.op_accounts_enable, "accounts.manage"),
            Operation("workplaces.list", self.op_workplaces_list, "workplaces.read"),
            Operation("workplaces.add", self.op_workplaces_add, "workplaces.manage"),
            Operation("workplaces.set_sip_password", self.op_workplaces_set_sip_password, "workplaces.manage"),
            Operation("messages.send", self.op_messages_send, "messages.send"),
        ]

    async def op_accounts_list(self, conn: Connection, args: dict) -> dict:
        principal: Account = conn.principal
        visible = [a for a in await self.accounts.list() if principal.allows("accounts.read", a.scope)]
        return {"accounts": [account_view(a) for a in visible]}

    async def _target(self, conn: Connection, args: dict) -> Account:
        username = _str_arg(args, "username", max_len=64).lower()
        target = await self.accounts.get(username)
        if target is None or not conn.principal.allows("accounts.read", target.scope):
            raise RequestError(ErrorCode.NOT_FOUND, f"username: no account {username!r}", {"field": "username"})
        # a manager reaches an account only if he could manage every role it holds: a scoped admin
        # cannot reset the password of, or disable, a centre-wide admin who happens to sit in his scope
        for scope in {target.scope, *(s for _r, s in target.roles)}:
            self._require_scope(conn, "accounts.manage", scope)
        if any(r == "admin" for r, _s in target.roles) and not conn.principal.allows("accounts.manage", "*"):
            raise RequestError(ErrorCode.PERMISSION_DENIED, "username: only a centre-wide admin manages admins",
                               {"field": "username"})
        return target

    async def op_accounts_add(self, conn: Connection, args: dict) -> dict:
        username = _str_arg(args, "username", max_len=64)
        password = _str_arg(args, "password", max_len=1024)
        kind = _str_arg(args, "kind", required=False) or "agent"
        scope = _str_arg(args, "scope", required=False) or "*"
        display = _str_arg(args, "display_name", required=False, max_len=128)
        roles = args.get("roles")
        if roles is not None and (type(roles) is not list or not all(
                type(r) is list and len(r) == 2 and all(type(x) is str for x in r) for r in roles)):
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "roles: a list of [role, scope] pairs", {"field": "roles"})
        self._require_scope(conn, "accounts.manage", scope)
        if roles and any(not conn.principal.allows("accounts.manage", s) for _r, s in roles):
            raise RequestError(ErrorCode.PERMISSION_DENIED, "roles: cannot grant outside your scopes")
        if roles and any(r == "admin" for r, _s in roles) and not conn.principal.allows("accounts.manage", "*"):
            raise RequestError(ErrorCode.PERMISSION_DENIED, "roles: only a centre-wide admin grants admin")
        if kind == "admin" and not conn.principal.allows("accounts.manage", "*"):
            raise RequestError(ErrorCode.PERMISSION_DENIED, "kind: only a centre-wide admin creates admins")
        try:
            account = await self.accounts.create(username, password, kind=kind, display_name=display,
                                                 scope=scope,
                                                 roles=None if roles is None else [(r[0], r[1]) for r in roles])
        except AccountError as exc:
            raise _account_call(exc) from None
        log.info("account.created", extra={"conn": conn.id, "account": account.id, "by": conn.principal.id})
        self.publish("admin", "account.created", {**account_view(account), "by": conn.principal.username})
        return account_view(account)

    async def op_accounts_password(self, conn: Connection, args: dict) -> dict:
        username = _str_arg(args, "username", required=False).lower() or conn.principal.username
        password = _str_arg(args, "password", max_len=1024)
        if username == conn.principal.username:
            # changing one's own password needs the old one, so a stolen session cannot lock the owner out
            old = _str_arg(args, "old_password", max_len=1024)
            keys = [f"user:{username}"]
            self._check_throttle(keys)  # guesses here count like failed logins
            if await self.accounts.authenticate(username, old) is None:
                self.throttle.failure(keys, self.clock())
                raise RequestError(ErrorCode.PERMISSION_DENIED, "old_password: does not match",
                                   {"field": "old_password"})
        else:
            if not self.permitted(conn.principal, "accounts.manage"):
                raise RequestError(ErrorCode.PERMISSION_DENIED, "accounts.password: needs accounts.manage")
            await self._target(conn, args)
        try:
            await self.accounts.set_password(username, password)
        except AccountError as exc:
            raise _account_call(exc) from None
        self.publish("admin", "account.password_changed", {"username": username, "by": conn.principal.username})
        return {}

    async def _role_change(self, conn: Connection, args: dict, grant: bool) -> dict:
        target = await self._target(conn, args)
        role = _str_arg(args, "role", max_len=64)
        scope = _str_arg(args, "scope", required=False) or "*"
        self._require_scope(conn, "accounts.manage", scope)
        if role == "admin" and not conn.principal.allows("accounts.manage", "*"):
            raise RequestError(ErrorCode.PERMISSION_DENIED, "role: only a centre-wide admin grants or revokes admin",
                               {"field": "role"})
        try:
            fn = self.accounts.grant if grant else self.accounts.revoke
            account = await fn(target.username, role, scope)
        except AccountError as exc:
            raise _account_call(exc) from None
        self.publish("admin", "account.granted" if grant else "account.revoked",
                     {"username": account.username, "role": role, "scope": scope, "by": conn.principal.username})
        return account_view(account)

    async def op_accounts_grant(self, conn: Connection, args: dict) -> dict:
        return await self._role_change(conn, args, True)

    async def op_accounts_revoke(self, conn: Connection, args: dict) -> dict:
        return await self._role_change(conn, args, False)

    async def op_accounts_enable(self, conn: Connection, args: dict) -> dict:
        target = await self._target(conn, args)
        enabled = args.get("enabled")
        if type(enabled) is not bool:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "enabled: true or false", {"field": "enabled"})
        await self.accounts.set_enabled(target.username, enabled)
        if not enabled:
            await self.accounts.revoke_tokens(target.id)
            if self.server is not None:  # a disabled account's sessions end now
                for cid, info in list(self.sessions.items()):
                    c = self.server.connections.get(cid)
                    if info["account_id"] == target.id and c is not None:
                        c.close(ErrorCode.SESSION_REVOKED, "account disabled")
        self.publish("admin", "account.enabled", {"username": target.username, "enabled": enabled,
                                                  "by": conn.principal.username})
        return {"username": target.username, "enabled": enabled}

    # Set by whoever wires the core (the app) to reload what telephony knows of the workplaces
    # (extensions and phone credentials) after workplaces.add / workplaces.set_sip_password.
    workplaces_changed: Callable[[], Awaitable[None]] | None = None

    async def _workplaces_changed(self) -> None:
        if self.workplaces_changed is not None:
            await self.workplaces_changed()

    @staticmethod
    def _sip_password_arg(args: dict) -> str | None:
        value = args.get("sip_password")
        if value is not None and (type(value) is not str or not value or len(value) > 1024):
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "sip_password: a string of 1..1024 characters",
                               {"field": "sip_password"})
        return value

    async def op_workplaces_list(self, conn: Connection, args: dict) -> dict:
        return {"workplaces": [plain(w) for w in await self.workplaces.list()]}

    async def op_workplaces_add(self, conn: Connection, args: dict) -> dict:
        name = _str_arg(args, "name", max_len=64)
        extension = _str_arg(args, "extension", max_len=32)
        sip_uri = _str_arg(args, "sip_uri", required=False)
        location = _str_arg(args, "location", required=False, max_len=64)
        sip_password = self._sip_password_arg(args)
        try:
            wp = plain(await self.workplaces.add(name, extension, sip_uri, location, sip_password=sip_password,
                                                 realm=self.settings.sip.realm))
        except AccountError as exc:
            raise _account_call(exc) from None
        await self._workplaces_changed()
        self.publish("admin", "workplace.created", {**wp, "by": conn.principal.username})
        return wp

    async def op_workplaces_set_sip_password(self, conn: Connection, args: dict) -> dict:
        name = _str_arg(args, "name", max_len=64)
        sip_password = self._sip_password_arg(args)   # nil or absent: the phone may no longer register
        try:
            wp = plain(await self.workplaces.set_sip_password(name, sip_password, realm=self.settings.sip.realm))
        except AccountError as exc:
            raise _account_call(exc) from None
        await self._workplaces_changed()
        log.info("workplace.sip_password", extra={"conn": conn.id, "workplace": wp["id"], "by": conn.principal.id,
                                                  "sip_auth": wp["sip_auth"]})
        self.publish("admin", "workplace.sip_password_changed", {"name": wp["name"], "sip_auth": wp["sip_auth"],
                                                                 "by": conn.principal.username})
        return wp

    def op_messages_send(self, conn: Connection, args: dict) -> dict:
        text = _str_arg(args, "text", max_len=MAX_MESSAGE)
        to = args.get("to", "all")
        if not (to == "all" or (type(to) is list and 0 < len(to) <= 1000
                                and all(type(x) is str and 0 < len(x) <= 64 for x in to))):
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "to: \"all\" or a list of user names", {"field": "to"})
        msg = {"from": conn.principal.username, "to": to, "text": text, "at": round(time.time(), 3)}
        # a directed message reaches only its addressees and its sender, now and on replay
        audience = None if to == "all" else frozenset([*(u.lower() for u in to), conn.principal.username])
        self.recent_messages.append((msg, audience))
        assert self.server is not None
        return {"seq": self.server.publish("messages", "message", msg, audience)}

