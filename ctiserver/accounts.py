"""Accounts, roles, scopes and permissions (SPEC INT-1), workplaces (SPEC ARCH-3), resume tokens.

The model: an account holds roles, each role within a scope (an organisational unit; '*' is the
whole centre). A role grants permissions, so an account holds (permission, scope) pairs, and
`Account.allows(p, s)` is true when it holds p in '*' or in exactly s. Roles, permissions and
scopes are configuration rows seeded by migration 0001.

Usernames are ASCII and canonicalised to lower case at every entry point (create, get,
authenticate, ...), so "Alice" and "alice" are the same account.

`Account` is an immutable snapshot read in ONE query (account + roles + permissions, aggregated
with array_agg); a store method that changes an account returns a fresh snapshot.

Passwords are scrypt hashes (`ctiserver.passwords`). Hashing runs in a worker thread so the event
loop keeps serving, and at most `max_concurrent_hashes` at a time, so a burst of logins queues
instead of taking every thread and 16 MiB each. `authenticate` does the same hashing work for an
unknown user, a disabled account and a wrong password, and gives the same answer (None).

Resume tokens (for SimProt session resume) are random 256-bit strings; only their SHA-256 is
stored. Changing a password or disabling an account revokes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from ctiserver.passwords import (
    DEFAULT_N,
    DUMMY_HASH,
    check_password_policy,
    hash_password,
    verify_password,
)

__all__ = ["KINDS", "Account", "AccountError", "AccountStore", "WorkplaceError", "WorkplaceStore"]

KINDS = ("admin", "agent", "service", "supervisor")

_USERNAME = re.compile(r"[a-z0-9._@-]{1,64}")
_EXTENSION = re.compile(r"[0-9A-Za-z.+*#_-]{1,32}")
_MAX_TEXT = 128  # display names, workplace names and locations
_MAX_SIP_URI = 256
_MAX_TOKEN = 128  # token_urlsafe(32) is 43 characters


class AccountError(Exception):
    """A refused account or workplace operation. `code` is the wire hint: 'not_found', 'conflict'
    or 'invalid'; the message starts with the field it is about ("username: ...")."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WorkplaceError(AccountError):
    """A refused workplace operation (same codes, so one `except AccountError` maps both)."""


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    display_name: str
    kind: str
    scope: str
    enabled: bool
    roles: tuple[tuple[str, str], ...]  # (role, scope)
    permissions: frozenset[tuple[str, str]]  # (permission, scope), derived from roles

    def allows(self, permission: str, scope: str = "*") -> bool:
        """True if the account holds `permission` in '*' or in exactly `scope`.

        A disabled account is allowed nothing, whatever roles it still holds.
        """
        if not self.enabled:
            return False
        return (permission, "*") in self.permissions or (permission, scope) in self.permissions


# One query per lookup: the account, its roles and the permissions they grant. The two LATERAL
# subqueries aggregate to exactly one row each, so every account appears once.
_SELECT = """
SELECT a.id, a.username, a.display_name, a.kind, a.scope, a.enabled{extra},
       r.roles, r.role_scopes, p.permissions, p.permission_scopes
FROM cc.accounts a
CROSS JOIN LATERAL (
    SELECT array_agg(ar.role ORDER BY ar.role, ar.scope) AS roles,
           array_agg(ar.scope ORDER BY ar.role, ar.scope) AS role_scopes
    FROM cc.account_roles ar WHERE ar.account_id = a.id
) r
CROSS JOIN LATERAL (
    SELECT array_agg(rp.permission) AS permissions, array_agg(ar.scope) AS permission_scopes
    FROM cc.account_roles ar JOIN cc.role_permissions rp ON rp.role = ar.role
    WHERE ar.account_id = a.id
) p
"""
_BY_USERNAME = _SELECT.format(extra="") + "WHERE a.username = $1"
_BY_ID = _SELECT.format(extra="") + "WHERE a.id = $1"
_ALL = _SELECT.format(extra="") + "ORDER BY a.username"
_FOR_LOGIN = _SELECT.format(extra=", a.password_hash") + "WHERE a.username = $1"
# Expired tokens are deleted on the way (the CTE runs whether or not it is referenced); the
# lookup itself ignores them too, since both parts see the same snapshot.
_BY_TOKEN = (
    "WITH expired AS (DELETE FROM cc.resume_tokens WHERE expires_at <= now())"
    + _SELECT.format(extra="")
    + "WHERE a.enabled AND a.id = (SELECT t.account_id FROM cc.resume_tokens t"
    " WHERE t.token_hash = $1 AND t.expires_at > now())"
)

_FK_DETAIL = re.compile(r"\)=\((.*)\) is not present")


def _account(row: asyncpg.Record) -> Account:
    return Account(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        kind=row["kind"],
        scope=row["scope"],
        enabled=row["enabled"],
        roles=tuple(zip(row["roles"] or (), row["role_scopes"] or (), strict=True)),
        permissions=frozenset(zip(row["permissions"] or (), row["permission_scopes"] or (), strict=True)),
    )


def _fk_error(exc: asyncpg.ForeignKeyViolationError, fields: dict[str, str]) -> AccountError:
    """Turn a foreign-key violation into an 'invalid' error naming the field and the value."""
    constraint = exc.constraint_name or ""
    field = fields.get(constraint, "reference")
    what = "role" if constraint.endswith("_role_fkey") else "scope"
    match = _FK_DETAIL.search(getattr(exc, "detail", None) or "")
    value = f" {match.group(1)!r}" if match else ""
    return AccountError("invalid", f"{field}: unknown {what}{value}")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def _username(username: object) -> str | None:
    """The canonical (lower-case) form of a username, or None when it cannot be one."""
    if not isinstance(username, str) or not username.isascii():
        return None
    name = username.lower()
    return name if _USERNAME.fullmatch(name) else None


def _check_username(username: object) -> str:
    name = _username(username)
    if name is None:
        raise AccountError("invalid", "username: must be 1 to 64 characters of a-z 0-9 . _ @ -")
    return name


def _check_text(
    field: str, value: object, limit: int, *, required: bool = False, error: type[AccountError] = AccountError
) -> str:
    if not isinstance(value, str):
        raise error("invalid", f"{field}: must be text")
    if required and not value.strip():
        raise error("invalid", f"{field}: must not be empty")
    if len(value) > limit:
        raise error("invalid", f"{field}: must be at most {limit} characters")
    if _has_control(value):
        raise error("invalid", f"{field}: must not contain control characters")
    return value


def _check_name(field: str, value: object) -> str:
    """A role or scope name: existence is the database's to check (foreign keys)."""
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise AccountError("invalid", f"{field}: must be 1 to 64 characters")
    return value


def _check_roles(roles: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = []
    for pair in roles:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise AccountError("invalid", "roles: must be (role, scope) pairs")
        pairs.append((_check_name("roles", pair[0]), _check_name("roles", pair[1])))
    return pairs


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class AccountStore:
    """Accounts in `cc.accounts` and friends. Every method is one transaction."""

    def __init__(self, pool: asyncpg.Pool, *, scrypt_n: int = DEFAULT_N, max_concurrent_hashes: int = 4):
        self._pool = pool
        self._scrypt_n = scrypt_n
        self._hash_slots = asyncio.Semaphore(max_concurrent_hashes)
        # The dummy must cost what a real hash of this store costs, or timing tells users apart.
        self._dummy_hash = DUMMY_HASH if scrypt_n == DEFAULT_N else hash_password(
            secrets.token_urlsafe(16), n=scrypt_n
        )

    async def _hash(self, password: str) -> str:
        async with self._hash_slots:
            return await asyncio.to_thread(hash_password, password, n=self._scrypt_n)

    async def _verify(self, password: str, stored: str) -> bool:
        async with self._hash_slots:
            return await asyncio.to_thread(verify_password, password, stored)

    @staticmethod
    def _check_password(password: object) -> str:
        try:
            check_password_policy(password)  # type: ignore[arg-type]
        except ValueError as exc:
            raise AccountError("invalid", str(exc)) from None
        assert isinstance(password, str)
        return password

    async def create(
        self,
        username: str,
        password: str,
        *,
        kind: str = "agent",
        display_name: str = "",
        scope: str = "*",
        roles: Iterable[tuple[str, str]] | None = None,
    ) -> Account:
        """Create an account. Roles default to [(kind, scope)]: an agent is an agent in its scope."""
        name = _check_username(username)
        if kind not in KINDS:
            raise AccountError("invalid", f"kind: must be one of {', '.join(KINDS)}")
        display_name = _check_text("display_name", display_name, _MAX_TEXT)
        scope = _check_name("scope", scope)
        pairs = [(kind, scope)] if roles is None else _check_roles(roles)
        password_hash = await self._hash(self._check_password(password))
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                account_id = await conn.fetchval(
                    "INSERT INTO cc.accounts (username, display_name, kind, scope, password_hash)"
                    " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    name, display_name, kind, scope, password_hash,
                )
                await conn.execute(
                    "INSERT INTO cc.account_roles (account_id, role, scope)"
                    " SELECT $1, r, s FROM unnest($2::text[], $3::text[]) AS x(r, s)"
                    " ON CONFLICT DO NOTHING",
                    account_id, [r for r, _ in pairs], [s for _, s in pairs],
                )
            except asyncpg.UniqueViolationError:
                raise AccountError("conflict", f"username: {name!r} already exists") from None
            except asyncpg.ForeignKeyViolationError as exc:
                raise _fk_error(exc, {
                    "accounts_scope_fkey": "scope",
                    "account_roles_role_fkey": "roles",
                    "account_roles_scope_fkey": "roles",
                }) from None
            return _account(await conn.fetchrow(_BY_ID, account_id))

    async def get(self, username: str) -> Account | None:
        name = _username(username)
        if name is None:
            return None
        row = await self._pool.fetchrow(_BY_USERNAME, name)
        return None if row is None else _account(row)

    async def get_by_id(self, account_id: int) -> Account | None:
        row = await self._pool.fetchrow(_BY_ID, account_id)
        return None if row is None else _account(row)

    async def list(self) -> list[Account]:
        return [_account(row) for row in await self._pool.fetch(_ALL)]

    async def _touch(self, conn: asyncpg.Connection, name: str, sets: str = "", *args: Any) -> int:
        """Update `updated_at` (and `sets`) of account `name`, locking its row; return its id."""
        account_id = await conn.fetchval(
            f"UPDATE cc.accounts SET updated_at = now(){sets} WHERE username = $1 RETURNING id", name, *args
        )
        if account_id is None:
            raise AccountError("not_found", f"username: no account {name!r}")
        return account_id

    async def set_password(self, username: str, password: str) -> None:
        """Set a new password (policy checked) and revoke the account's resume tokens."""
        name = _check_username(username)
        password_hash = await self._hash(self._check_password(password))
        async with self._pool.acquire() as conn, conn.transaction():
            account_id = await self._touch(conn, name, ", password_hash = $2", password_hash)
            await conn.execute("DELETE FROM cc.resume_tokens WHERE account_id = $1", account_id)

    async def set_enabled(self, username: str, enabled: bool) -> None:
        """Enable or disable an account; disabling also revokes its resume tokens."""
        name = _check_username(username)
        async with self._pool.acquire() as conn, conn.transaction():
            account_id = await self._touch(conn, name, ", enabled = $2", bool(enabled))
            if not enabled:
                await conn.execute("DELETE FROM cc.resume_tokens WHERE account_id = $1", account_id)

    async def grant(self, username: str, role: str, scope: str = "*") -> Account:
        """Give the account `role` within `scope` (no change if it already holds it)."""
        name = _check_username(username)
        role, scope = _check_name("role", role), _check_name("scope", scope)
        async with self._pool.acquire() as conn, conn.transaction():
            account_id = await self._touch(conn, name)
            try:
                await conn.execute(
                    "INSERT INTO cc.account_roles (account_id, role, scope) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING",
                    account_id, role, scope,
                )
            except asyncpg.ForeignKeyViolationError as exc:
                raise _fk_error(exc, {
                    "account_roles_role_fkey": "role",
                    "account_roles_scope_fkey": "scope",
                }) from None
            return _account(await conn.fetchrow(_BY_ID, account_id))

    async def revoke(self, username: str, role: str, scope: str = "*") -> Account:
        """Take `role` within `scope` away from the account (no change if it does not hold it)."""
        name = _check_username(username)
        role, scope = _check_name("role", role), _check_name("scope", scope)
        async with self._pool.acquire() as conn, conn.transaction():
            account_id = await self._touch(conn, name)
            await conn.execute(
                "DELETE FROM cc.account_roles WHERE account_id = $1 AND role = $2 AND scope = $3",
                account_id, role, scope,
            )
            return _account(await conn.fetchrow(_BY_ID, account_id))

    async def authenticate(self, username: str, password: str) -> Account | None:
        """The account if `password` is right and the account enabled, else None.

        Unknown users and disabled accounts cost the same scrypt work as a wrong password.
        """
        name = _username(username)
        row = None if name is None else await self._pool.fetchrow(_FOR_LOGIN, name)
        if row is None or not row["enabled"]:
            await self._verify(password, self._dummy_hash)
            return None
        if not await self._verify(password, row["password_hash"]):
            return None
        return _account(row)

    async def count_admins(self) -> int:
        """Enabled accounts holding role admin (in any scope): guard against locking everyone out."""
        return await self._pool.fetchval(
            "SELECT count(DISTINCT a.id) FROM cc.accounts a"
            " JOIN cc.account_roles ar ON ar.account_id = a.id"
            " WHERE ar.role = 'admin' AND a.enabled"
        )

    async def issue_token(self, account_id: int, ttl: float) -> str:
        """A new resume token for the account, valid for `ttl` seconds. Only its SHA-256 is stored."""
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
            raise AccountError("invalid", "ttl: must be a positive number of seconds")
        token = secrets.token_urlsafe(32)
        try:
            await self._pool.execute(
                "INSERT INTO cc.resume_tokens (token_hash, account_id, expires_at)"
                " VALUES ($1, $2, now() + make_interval(secs => $3))",
                _token_hash(token), account_id, float(ttl),
            )
        except asyncpg.ForeignKeyViolationError:
            raise AccountError("not_found", f"account_id: no account {account_id}") from None
        return token

    async def authenticate_token(self, token: str) -> Account | None:
        """The enabled account a valid, unexpired token belongs to, else None."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN:
            return None
        row = await self._pool.fetchrow(_BY_TOKEN, _token_hash(token))
        return None if row is None else _account(row)

    async def revoke_tokens(self, account_id: int) -> None:
        await self._pool.execute("DELETE FROM cc.resume_tokens WHERE account_id = $1", account_id)


class WorkplaceStore:
    """Workplaces (seats): a name, the phone extension there, its SIP URI and a location, and the
    digest credentials its phone registers with (migration 0004).

    Only the HA1s of a phone's SIP password are stored, H(extension:realm:password) in MD5 and
    SHA-256 (RFC 7616 §3.4.2), never the password. The realm is the core's ``sip.realm``, passed by
    the caller: changing the realm (or the extension) makes the stored HA1s useless, so the phones'
    passwords must be set again. Views never carry the HA1s, only ``sip_auth`` (whether a phone
    may register there).
    """

    _VIEW = ("id, name, extension, sip_uri, location, created_at,"
             " (sip_ha1_md5 IS NOT NULL OR sip_ha1_sha256 IS NOT NULL) AS sip_auth")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @staticmethod
    def sip_ha1s(extension: str, realm: str, password: str) -> tuple[str, str]:
        """(MD5, SHA-256) HA1 of ``extension:realm:password`` (UTF-8, as a phone hashes it)."""
        a1 = f"{extension}:{realm}:{password}".encode()
        return hashlib.md5(a1, usedforsecurity=False).hexdigest(), hashlib.sha256(a1).hexdigest()

    @staticmethod
    def _check_sip_password(password: object) -> str:
        try:
            check_password_policy(password)  # type: ignore[arg-type]
        except ValueError as exc:
            raise WorkplaceError("invalid", "sip_" + str(exc)) from None
        assert isinstance(password, str)
        return password

    async def add(self, name: str, extension: str, sip_uri: str = "", location: str = "", *,
                  sip_password: str | None = None, realm: str | None = None) -> dict[str, Any]:
        """Add a workplace; with ``sip_password`` (and the core's ``realm``) its phone may register."""
        name = _check_text("name", name, _MAX_TEXT, required=True, error=WorkplaceError)
        if not isinstance(extension, str) or not _EXTENSION.fullmatch(extension):
            raise WorkplaceError("invalid", "extension: must be 1 to 32 characters of 0-9 A-Z a-z . + * # _ -")
        sip_uri = _check_text("sip_uri", sip_uri, _MAX_SIP_URI, error=WorkplaceError)
        location = _check_text("location", location, _MAX_TEXT, error=WorkplaceError)
        md5 = sha256 = None
        if sip_password is not None:
            if not realm:
                raise ValueError("a SIP password needs the realm the core runs with")
            md5, sha256 = self.sip_ha1s(extension, realm, self._check_sip_password(sip_password))
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO cc.workplaces (name, extension, sip_uri, location, sip_ha1_md5, sip_ha1_sha256)"
                f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {self._VIEW}",
                name, extension, sip_uri, location, md5, sha256,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "workplaces_extension_key":
                raise WorkplaceError("conflict", f"extension: {extension!r} is already in use") from None
            raise WorkplaceError("conflict", f"name: {name!r} already exists") from None
        return dict(row)

    async def set_sip_password(self, name: str, password: str | None, *, realm: str) -> dict[str, Any]:
        """Set (or, with None, clear) the SIP password of the phone at workplace ``name``.

        The HA1s are computed from the workplace's extension read under the row lock, in the
        transaction that stores them, so they always belong to the extension the row has."""
        name = _check_text("name", name, _MAX_TEXT, required=True, error=WorkplaceError)
        if password is not None:
            password = self._check_sip_password(password)
        if not realm:
            raise ValueError("the realm the core runs with is required")
        async with self._pool.acquire() as conn, conn.transaction():
            extension = await conn.fetchval("SELECT extension FROM cc.workplaces WHERE name = $1 FOR UPDATE", name)
            if extension is None:
                raise WorkplaceError("not_found", f"name: no workplace {name!r}")
            md5, sha256 = (None, None) if password is None else self.sip_ha1s(extension, realm, password)
            row = await conn.fetchrow(
                "UPDATE cc.workplaces SET sip_ha1_md5 = $2, sip_ha1_sha256 = $3 WHERE name = $1"
                f" RETURNING {self._VIEW}",
                name, md5, sha256,
            )
        return dict(row)

    async def list(self) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(f"SELECT {self._VIEW} FROM cc.workplaces ORDER BY name")
        return [dict(row) for row in rows]
