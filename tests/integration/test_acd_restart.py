"""200 agents and 2,000 contacts over SimProt against a real ctiserver process that is killed
(SIGKILL) and restarted mid-run: no contact acknowledged by contact.enqueue is lost, every one ends
answered (or, when it was being talked when the process died, recorded as interrupted), and the
agents' clients reconnect and resume work by themselves."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from ctiserver.accounts import AccountStore
from ctiserver.db import Database
from simprot.client import SimProtClient
from simprot.errors import ConnectionClosed, ErrorCode, RequestError
from tests.conftest import drop_dsn, fresh_dsn

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AGENTS, CONTACTS = 200, 2000


def start_daemon(dsn: str, port: int, cwd: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [str(BIN / "ctiserver"), "--set", f"simprot.port={port}", "--set", "http.port=0",
         "--set", f"database.dsn={dsn}", "--set", "log.level=WARNING", "--set", "simprot.heartbeat_interval=2",
         "--set", "simprot.heartbeat_timeout=6"],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"SimProt\s+[\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    raise AssertionError("the daemon did not start")


async def prepare(dsn: str) -> None:
    db = await Database.open(dsn, pool_max=4)
    try:
        store = AccountStore(db.pool, scrypt_n=2**10)
        await store.create("svc", "service-pass-1", kind="service")
        pool = db.pool
        await pool.execute("INSERT INTO cc.skills (skill) VALUES ('general')")
        await pool.execute("INSERT INTO cc.projects (project, ring_timeout, wrap_up) VALUES ('general', 5, 30)")
        await pool.execute("INSERT INTO cc.project_skills (project, skill) VALUES ('general', 'general')")
        for i in range(AGENTS):
            account = await store.create(f"a{i:03d}", "agent-pass-1", kind="agent")
            await pool.execute("INSERT INTO cc.agents (account_id) VALUES ($1)", account.id)
            await pool.execute("INSERT INTO cc.agent_skills (account_id, skill, level) VALUES ($1, 'general', 3)",
                               account.id)
    finally:
        await db.close()


async def agent_loop(client: SimProtClient, stop: asyncio.Event, handled: list[int]) -> None:
    """A tireless agent: log in, be ready, take every offer, finish it; pick up again after a restart."""
    while not stop.is_set():
        try:
            v = await client.request("agent.status", timeout=5)
            state, contact = v["state"], v["contact"]
            if state == "logged_out":
                await client.request("agent.login", {})
            elif state == "not_ready":
                await client.request("agent.ready")
            elif state in ("reserved", "offered"):
                await client.request("agent.accept", {"contact": contact})
            elif state == "busy":
                await client.request("agent.end", {"contact": contact})
                handled[0] += 1
            elif state == "wrap_up":
                await client.request("agent.end_wrap_up")
            else:
                await asyncio.sleep(0.05)
        except (RequestError, ConnectionClosed, TimeoutError):
            await asyncio.sleep(0.1)  # a race with the engine, or the server is restarting


async def enqueue_all(svc: SimProtClient, ids: list[str]) -> None:
    """Each contact until it is acknowledged; CONFLICT after a reconnect means the first try made it."""
    todo = list(ids)
    while todo:
        batch, todo = todo[:50], todo[50:]
        while batch:
            try:
                answers = await svc.request_many("contact.enqueue", [{"project": "general", "contact": c}
                                                                     for c in batch], timeout=10)
            except (ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            batch = [c for c, a in zip(batch, answers, strict=True) if isinstance(a, BaseException)
                     and not (isinstance(a, RequestError) and a.code is ErrorCode.CONFLICT)]
            if batch:
                await asyncio.sleep(0.2)


async def test_kill_and_restart_mid_run_loses_nothing(pg_dsn: str, tmp_path: Path) -> None:
    dsn = await fresh_dsn(pg_dsn)
    await prepare(dsn)
    proc, port = start_daemon(dsn, 0, tmp_path)
    address = f"127.0.0.1:{port}"
    clients: list[SimProtClient] = []
    stop = asyncio.Event()
    handled = [0]
    try:
        for i in range(AGENTS):
            c = SimProtClient([address], user=f"a{i:03d}", password="agent-pass-1", backoff_initial=0.1,
                              backoff_max=0.5, request_timeout=10)
            await c.connect()
            clients.append(c)
        workers = [asyncio.create_task(agent_loop(c, stop, handled)) for c in clients]
        svc = SimProtClient([address], user="svc", password="service-pass-1", backoff_initial=0.1, backoff_max=0.5)
        await svc.connect()
        ids = [f"c{i:05d}" for i in range(CONTACTS)]
        feeder = asyncio.create_task(enqueue_all(svc, ids))
        # kill the server hard once a good part of the work is done
        deadline = time.monotonic() + 60
        while handled[0] < CONTACTS // 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert handled[0] >= CONTACTS // 3, f"only {handled[0]} handled before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        await asyncio.sleep(0.5)
        proc, _ = start_daemon(dsn, port, tmp_path)  # same port: the clients find it again
        await asyncio.wait_for(feeder, 60)
        # every contact leaves the system, answered (or interrupted by the kill)
        conn = await asyncpg.connect(dsn)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                done = await conn.fetchval("SELECT count(*) FROM cc.contact_history WHERE outcome IS NOT NULL")
                live = await conn.fetchval("SELECT count(*) FROM cc.contacts_live")
                if done == CONTACTS and live == 0:
                    break
                await asyncio.sleep(0.25)
            rows = await conn.fetch("SELECT contact, outcome FROM cc.contact_history")
            assert sorted(r["contact"] for r in rows) == ids  # none lost, none twice
            outcomes = {r["outcome"] for r in rows}
            assert outcomes <= {"answered", "interrupted"}, outcomes
            assert sum(r["outcome"] == "answered" for r in rows) >= CONTACTS * 0.9
            assert await conn.fetchval("SELECT count(*) FROM cc.contacts_live") == 0
            # the agents came back: all logged in again on the new process
            assert await conn.fetchval("SELECT count(*) FROM cc.agent_sessions") == AGENTS
        finally:
            await conn.close()
        assert all(c.reconnects >= 1 for c in clients)
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        await svc.close()
    finally:
        stop.set()
        for c in clients:
            c.reconnect = False
            await c.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        await drop_dsn(pg_dsn, dsn)
        os.environ.pop("_UNUSED", None)
