"""End to end against real SIP peers: a ctiserver with its SIP trunk on free ports, agents whose
phones are sipp (Debian sip-tester) or baresip processes, and helpers to run them.

Each test gets a fresh database, the core on free ports, a project ``general`` reached by pilot
``200``, and agents ``agent1``.. at workplaces whose phones are ``sip:agentN@127.0.0.1:<port>``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ctiserver.app import App
from tests.conftest import drop_dsn, fresh_dsn
from tests.integration.conftest import ADMIN, ADMIN_PW, core_settings

SIPP = shutil.which("sipp")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP right now (the OS picks; the race is small)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


@dataclass
class SipCore:
    app: App
    port: int
    phones: dict[str, int] = field(default_factory=dict)   # agent -> phone port

    @property
    def telephony(self):  # type: ignore[no-untyped-def]
        assert self.app.telephony is not None
        return self.app.telephony

    @property
    def pool(self):  # type: ignore[no-untyped-def]
        assert self.app.db is not None
        return self.app.db.pool

    async def add_agents(self, n: int, *, transport: str = "udp", ring_timeout: float = 5.0) -> list[str]:
        """Agents agent1..agentN, each at a workplace whose phone is at a free port; logged in, ready."""
        app = self.app
        assert app.service is not None and app.distribution is not None
        pool = self.pool
        await pool.execute("INSERT INTO cc.skills (skill) VALUES ('general') ON CONFLICT DO NOTHING")
        await pool.execute("INSERT INTO cc.projects (project, ring_timeout, wrap_up) VALUES ('general', $1, 0) "
                           "ON CONFLICT (project) DO UPDATE SET ring_timeout = $1", ring_timeout)
        await pool.execute("INSERT INTO cc.project_skills (project, skill) VALUES ('general', 'general') "
                           "ON CONFLICT DO NOTHING")
        await pool.execute("INSERT INTO cc.entry_rules (position, pilot, project) VALUES (1, '200', 'general')")
        names = []
        for i in range(1, n + 1):
            name, port = f"agent{i}", free_port()
            account = await app.service.accounts.get(name) or await app.service.accounts.create(
                name, f"agent-pass-{i}", kind="agent")
            await pool.execute("INSERT INTO cc.agents (account_id) VALUES ($1) ON CONFLICT DO NOTHING", account.id)
            await pool.execute("INSERT INTO cc.agent_skills (account_id, skill, level) VALUES ($1, 'general', 5) "
                               "ON CONFLICT DO NOTHING", account.id)
            uri = f"sip:{name}@127.0.0.1:{port}" + (";transport=tcp" if transport == "tcp" else "")
            await pool.execute("INSERT INTO cc.workplaces (name, extension, sip_uri) VALUES ($1, $2, $3)",
                               f"ws-{i}", f"10{i:02d}", uri)
            self.phones[name] = port
            names.append(name)
        await app.distribution.load_config()
        await self.telephony.load_workplaces()
        for name in names:
            wp = str(self.telephony.workplaces[f"ws-{name[5:]}"]["id"])
            app.distribution.engine_input(lambda e, t, a=name, w=wp: e.login(a, t, w) + e.ready(a, t), "test")
        return names


@pytest.fixture
async def sip_core(pg_dsn: str) -> AsyncIterator[SipCore]:
    if SIPP is None:
        pytest.fail("sipp is not installed: ./dev test installs the Debian package sip-tester")
    dsn = await fresh_dsn(pg_dsn)
    port = free_port()
    base = core_settings(dsn)
    settings = dataclasses.replace(base, sip=dataclasses.replace(base.sip, enabled=True, port=port))
    app = App(settings, scrypt_n=2**10)
    await app.start()
    assert app.service is not None
    await app.service.accounts.create(ADMIN, ADMIN_PW, kind="admin")
    yield SipCore(app, app.sip_address[1])
    await app.stop(grace=0.5)
    await drop_dsn(pg_dsn, dsn)


@dataclass
class Proc:
    proc: asyncio.subprocess.Process
    args: list[str]
    out: bytes = b""
    err: bytes = b""

    async def wait(self, timeout: float) -> int:
        try:
            self.out, self.err = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            self.proc.kill()
            self.out, self.err = await self.proc.communicate()
            raise AssertionError(f"{self.args[:3]} did not finish in {timeout} s: {self.err[-2000:]!r}") from None
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.out, self.err = await self.proc.communicate()


_RUNNING: list[Proc] = []


@pytest.fixture(autouse=True)
async def _no_stray_peers() -> AsyncIterator[None]:
    """Every sipp a test started is gone when it ends, passed or failed (none outlives its test)."""
    yield
    while _RUNNING:
        await _RUNNING.pop().stop()


async def sipp(*args: str, cwd: Path) -> Proc:
    """Start sipp with ``args`` (no stdin, errors and messages traced into ``cwd``); it stops by
    itself after 60 s at most (``-timeout``, unless ``args`` set one) and is killed at the end of
    the test anyway."""
    assert SIPP is not None
    argv = [SIPP, *args, "-nostdin", "-trace_err", "-trace_msg"]
    if "-timeout" not in args:
        argv += ["-timeout", "60s"]
    proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    running = Proc(proc, argv)
    _RUNNING.append(running)
    return running


def sipp_errors(cwd: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in cwd.glob("*_errors.log"))
