"""Wiring and lifecycle of the ctiserver daemon: the one place where components meet.

start: database (embedded unless a DSN is configured) and migrations -> bootstrap admin (demo) ->
SimProt server -> HTTP -> READY.  stop: STOPPING -> tell clients (SERVER_SHUTTING_DOWN) -> close
listeners -> close the pool.  A first SIGTERM/SIGINT stops gracefully; a second one exits at once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import signal
import ssl
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from aiohttp import web

from simprot.server import Limits, SimProtServer

from .accounts import AccountStore, WorkplaceStore
from .acd import Action, Engine
from .calls.telephony import Telephony
from .db import Database
from .distribution import TOPICS as DIST_TOPICS
from .distribution import Distribution
from .history import HistoryWriter
from .http import make_app
from .ivr_config import IvrConfig
from .sdnotify import Notifier
from .service import CoreService
from .settings import Settings

log = logging.getLogger("ctiserver")


def limits_from(settings: Settings) -> Limits:
    sp = settings.simprot
    return Limits(max_frame=sp.max_frame, max_send_buffer=sp.max_send_buffer, max_connections=sp.max_connections,
                  max_inflight=sp.max_inflight, event_buffer=sp.event_buffer,
                  heartbeat_interval=sp.heartbeat_interval, heartbeat_timeout=sp.heartbeat_timeout,
                  handshake_timeout=sp.handshake_timeout)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    sp = settings.simprot
    if not sp.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(sp.tls_cert, sp.tls_key)
    return ctx


@dataclass
class App:
    settings: Settings
    scrypt_n: int | None = None          # tests lower the KDF cost; production keeps the default
    db: Database | None = None
    service: CoreService | None = None
    server: SimProtServer | None = None
    simprot_address: tuple[str, int] = ("", 0)
    http_address: tuple[str, int] = ("", 0)
    bootstrap_password: str | None = None
    history: HistoryWriter | None = None
    distribution: Distribution | None = None
    telephony: Telephony | None = None
    sip_address: tuple[str, int] = ("", 0)
    _runner: web.AppRunner | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _db_ok: bool = True

    async def start(self) -> None:
        s = self.settings
        self.db = await Database.open(s.database.dsn, embedded_dir=s.database.embedded_dir,
                                      pool_min=s.database.pool_min, pool_max=s.database.pool_max,
                                      command_timeout=s.database.command_timeout)
        kw = {"scrypt_n": self.scrypt_n} if self.scrypt_n else {}
        accounts = AccountStore(self.db.pool, **kw)
        await self._bootstrap(accounts)
        self.service = CoreService(s, accounts, WorkplaceStore(self.db.pool), db_ok=lambda: self._db_ok)
        self.server = SimProtServer(self.service, limits_from(s))
        self.service.server = self.server
        self.history = HistoryWriter(self.db.pool)
        self.history.start()
        self.distribution = dist = Distribution(self.db.pool, self.history, node=s.node.name)
        dist.server = self.server
        self.service.extend(dist.operations(), DIST_TOPICS, {
            "acd": lambda principal: dist.snapshot(),
            "agent": lambda principal: dist.agent_snapshot(principal.username),
            "contacts": lambda principal: dist.owner_snapshot(principal.username),
        })
        ivr = IvrConfig(self.db.pool, s.node.name)
        self.service.extend(ivr.operations(), {}, {})
        if s.bootstrap.demo_acd:
            await self._demo_acd(accounts)
            await ivr.demo()
            await self._demo_ivr_account(accounts)
        if s.sip.enabled and s.sip.demo_phones:
            await self._demo_phones()
        await dist.load()
        if s.sip.enabled:
            self.telephony = Telephony(s.sip, dist)
            self.sip_address = (s.sip.host, await self.telephony.start())
            dist.telephony = self.telephony
            self.service.workplaces_changed = self.telephony.load_workplaces   # phones' credentials, URIs
            tel = self.telephony
            self.service.extend(tel.operations(), {"calls": "acd.supervise"},
                                {"calls": lambda principal: tel.snapshot()})
            if s.sip.demo_phones:
                self._demo_phones_ready()
        self.simprot_address = await self.server.listen(s.simprot.host, s.simprot.port, ssl=tls_context(s))
        self._runner = web.AppRunner(make_app(self.service), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.http.host, s.http.port, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.http_address = (sock[0], sock[1])
        self._tasks.append(asyncio.get_running_loop().create_task(self._db_watch()))
        self.service.publish("system", "node.started", {"node": s.node.name})
        # everything built so far lives as long as the process: move it out of the collector's
        # sight, so the garbage collections that request traffic triggers stay short
        gc.collect()
        gc.freeze()
        # (default collector thresholds kept: raising the young generation's to 50,000 saved CPU on
        # the SIP path but made each young collection long enough to raise the p99 offer latency
        # of bench/acd_e2e.py at 2,000 contacts/s from 17 ms to 222 ms)
        log.info("ctiserver.ready", extra={"simprot": "{}:{}".format(*self.simprot_address),
                                           "http": "{}:{}".format(*self.http_address), "embedded_db": self.db.embedded})

    async def _bootstrap(self, accounts: AccountStore) -> None:
        b = self.settings.bootstrap
        if not b.admin_user or await accounts.count_admins() > 0:
            return
        password = b.admin_password or secrets.token_urlsafe(12)
        await accounts.create(b.admin_user, password, kind="admin", display_name="Bootstrap admin")
        self.bootstrap_password = password
        log.warning("bootstrap.admin_created", extra={"user": b.admin_user})

    async def _demo_acd(self, accounts: AccountStore) -> None:
        """Demo data for distribution: skills, three projects, four agents (only on an empty configuration)."""
        assert self.db is not None
        pool = self.db.pool
        if await pool.fetchval("SELECT count(*) FROM cc.projects"):
            return
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("""INSERT INTO cc.skills (skill, description) VALUES ('general', 'general enquiries'),
                                  ('payments', 'payments and debts'), ('ehic', 'EHIC cards'), ('slovak', 'Slovak')""")
            await conn.execute("""INSERT INTO cc.projects (project, name, priority, ring_timeout, wrap_up,
                                                           announce_interval, callback_offer_after) VALUES
                                  ('general', 'General enquiries', 0, 15, 10, 30, 120),
                                  ('payments', 'Payments', 1, 15, 20, 30, NULL),
                                  ('ehic', 'EHIC cards', 0, 15, 10, NULL, NULL)""")
            await conn.execute("""INSERT INTO cc.project_skills (project, skill, min_level) VALUES
                                  ('general', 'general', 1), ('payments', 'payments', 3), ('ehic', 'ehic', 1)""")
        skills = [{"general": 5, "payments": 5}, {"general": 3, "ehic": 4}, {"general": 4, "payments": 3, "ehic": 2},
                  {"general": 2, "slovak": 5}]
        for n, sk in enumerate(skills, 1):
            name = f"agent{n}"
            account = await accounts.get(name) or await accounts.create(name, f"agent-pass-{n}", kind="agent",
                                                                        display_name=f"Demo agent {n}")
            await pool.execute("INSERT INTO cc.agents (account_id) VALUES ($1) ON CONFLICT DO NOTHING", account.id)
            await pool.executemany("INSERT INTO cc.agent_skills (account_id, skill, level) VALUES ($1, $2, $3)",
                                   [(account.id, k, v) for k, v in sk.items()])
        log.warning("bootstrap.demo_acd", extra={"projects": 3, "agents": len(skills)})

    async def _demo_ivr_account(self, accounts: AccountStore) -> None:
        """Demo: the IVR's service account, its password in ``ivr.password_file`` (0600) for ivr-engine."""
        path = Path(self.settings.ivr.password_file)
        if await accounts.get(self.settings.ivr.user) is not None and path.exists():
            return
        password = secrets.token_urlsafe(16)
        if await accounts.get(self.settings.ivr.user) is None:
            await accounts.create(self.settings.ivr.user, password, kind="service", display_name="IVR engine")
        else:
            await accounts.set_password(self.settings.ivr.user, password)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(password + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
        log.warning("bootstrap.ivr_account", extra={"user": self.settings.ivr.user, "password_file": str(path)})

    async def _demo_phones(self) -> None:
        """Demo: workplaces demo-1..4 with static phones sip:agentN@127.0.0.1:509N (README)."""
        assert self.db is not None
        await self.db.pool.executemany(
            """INSERT INTO cc.workplaces (name, extension, sip_uri, location) VALUES ($1, $2, $3, 'demo')
               ON CONFLICT (name) DO UPDATE SET sip_uri = EXCLUDED.sip_uri""",
            [(f"demo-{n}", f"50{90 + n}", f"sip:agent{n}@127.0.0.1:{5090 + n}") for n in range(1, 5)])
        await self.db.pool.execute(  # pilot 200 goes straight to the general project
            """INSERT INTO cc.entry_rules (position, pilot, project)
               SELECT 10, '200', 'general' WHERE EXISTS (SELECT 1 FROM cc.projects WHERE project = 'general')
                 AND NOT EXISTS (SELECT 1 FROM cc.entry_rules WHERE pilot = '200')""")

    def _demo_phones_ready(self) -> None:
        """Demo: agent1..4 logged in at their demo workplaces and ready, unless already logged in."""
        assert self.distribution is not None and self.telephony is not None
        dist = self.distribution
        for n in range(1, 5):
            agent = f"agent{n}"
            wp = self.telephony.workplaces.get(f"demo-{n}")
            if agent not in dist.account_ids or wp is None or dist.engine.brief(agent)[0].value != "logged_out":
                continue
            now = dist.clock()
            dist.engine_input(partial(_login_ready, agent, str(wp["id"]), now), "system:demo")
        log.warning("demo.phones_ready", extra={"agents": 4})

    async def _db_watch(self) -> None:
        """Probe the database every few seconds; /health and status report the result."""
        assert self.db is not None
        while True:
            await asyncio.sleep(5.0)
            try:
                async with self.db.pool.acquire(timeout=5.0) as conn:
                    await conn.fetchval("SELECT 1", timeout=5.0)
                ok = True
            except (TimeoutError, OSError, Exception) as exc:  # noqa: B014 - any failure means down
                ok = False
                log.warning("db.unreachable", extra={"reason": str(exc)[:200]})
            if ok != self._db_ok:
                self._db_ok = ok
                if self.service:
                    self.service.publish("system", "database", {"status": "ok" if ok else "down"})

    async def stop(self, grace: float = 2.0) -> None:
        for task in self._tasks:
            task.cancel()
        if self.telephony is not None:
            await self.telephony.close()
        if self.server is not None:
            await self.server.close(grace)
        if self.distribution is not None:
            self.distribution.close()
        if self.history is not None:
            await self.history.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.db is not None:
            await self.db.close()
        log.info("ctiserver.stopped")


def _login_ready(agent: str, workplace: str, now: float, engine: Engine, _t: float) -> list[Action]:
    return engine.login(agent, now, workplace) + engine.ready(agent, now)


def write_ctictl_config(path: Path, server: tuple[str, int], user: str, password: str) -> None:
    """Demo convenience: credentials for ``./dev ctl`` (mode 0600, written atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f'servers = ["{server[0]}:{server[1]}"]\nuser = "{user}"\npassword = "{password}"\n')
    os.replace(tmp, path)


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit status."""
    notifier = Notifier()
    app = App(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("ctiserver.forced_exit", extra={"signal": signal.Signals(signum).name})
            os._exit(1)
        log.info("ctiserver.stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await app.start()
    except Exception:
        log.exception("ctiserver.start_failed")
        await app.stop(0)
        return 1
    _print_banner(app)
    notifier.ready(f"serving SimProt on {app.simprot_address[0]}:{app.simprot_address[1]}")
    watchdog = notifier.pet_watchdog()
    await stop.wait()
    notifier.stopping()
    if watchdog:
        watchdog.cancel()
    await app.stop()
    return 0


def _print_banner(app: App) -> None:
    s = app.settings
    out = sys.stdout
    print(f"ctiserver {s.node.name} ({s.node.environment}) is up", file=out)
    print(f"  SimProt  {app.simprot_address[0]}:{app.simprot_address[1]}"
          f"{' (TLS)' if s.simprot.tls_cert else ''}", file=out)
    print(f"  HTTP     http://{app.http_address[0]}:{app.http_address[1]}/health  /metrics  /status", file=out)
    if app.telephony is not None:
        print(f"  SIP      {app.sip_address[0]}:{app.sip_address[1]} (UDP and TCP)"
              f"{'; demo phones sip:agent1..4@127.0.0.1:5091..5094' if s.sip.demo_phones else ''}", file=out)
    assert app.db is not None
    where = f"embedded PostgreSQL in {Path(s.database.embedded_dir).resolve()}" if app.db.embedded else "configured DSN"
    print(f"  Database {where}", file=out)
    if app.bootstrap_password is not None:
        path = Path("var/ctictl.toml")
        write_ctictl_config(path, app.simprot_address, s.bootstrap.admin_user, app.bootstrap_password)
        print(f"  Admin    created '{s.bootstrap.admin_user}' with password {app.bootstrap_password!r}"
              f" (saved for ctictl in {path})", file=out)
    print("  Stop with Ctrl-C.", file=out, flush=True)
