"""End-to-end distribution over SimProt: 1,000 agent clients, a stream of contacts.

A real ctiserver process (embedded PostgreSQL in a temporary folder) serves; this process holds the
agent clients and the service that enqueues. Each agent subscribes to its ``agent`` topic and, on
an offer, pipelines accept + end + end_wrap_up in one write (a desktop answering at once). The
service enqueues contacts in windows. Measured: contacts routed per second (enqueue to offer) and
the offer latency (from sending the enqueue to the agent decoding the offer). Prints one JSON object;
progress on stderr; bounded in count and time.

    .venv/bin/python bench/acd_e2e.py [--agents 1000] [--contacts 20000] [--window 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(ROOT))

from ctiserver.accounts import AccountStore  # noqa: E402
from ctiserver.db import Database, remove_abandoned_clusters  # noqa: E402
from simprot.client import SimProtClient  # noqa: E402

PREFIX = "cc-pge2e-"
GOALS = {"contacts_per_s_min": 5000, "offer_latency_p99_ms_max": 10.0}


def progress(msg: str) -> None:
    print(f"[acd_e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def prepare(dsn: str, agents: int) -> None:
    db = await Database.open(dsn, pool_max=4)
    try:
        store = AccountStore(db.pool, scrypt_n=2**10)
        await store.create("svc", "service-pass-1", kind="service")
        pool = db.pool
        await pool.execute("INSERT INTO cc.skills (skill) VALUES ('general')")
        await pool.execute("INSERT INTO cc.projects (project, ring_timeout, wrap_up) VALUES ('general', 10, 30)")
        await pool.execute("INSERT INTO cc.project_skills (project, skill) VALUES ('general', 'general')")
        for i in range(agents):
            account = await store.create(f"a{i:04d}", "agent-pass-1", kind="agent")
            await pool.execute("INSERT INTO cc.agents (account_id) VALUES ($1)", account.id)
            await pool.execute("INSERT INTO cc.agent_skills (account_id, skill, level) VALUES ($1, 'general', 3)",
                               account.id)
    finally:
        await db.close()


def start_server(dsn: str, cwd: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ctiserver"), "--set", "simprot.port=0",
                             "--set", "http.port=0", "--set", f"database.dsn={dsn}", "--set", "log.level=WARNING"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    end = time.monotonic() + 60
    while time.monotonic() < end:
        m = re.search(r"SimProt\s+[\d.]+:(\d+)", proc.stdout.readline())
        if m:
            return proc, int(m.group(1))
    raise RuntimeError("ctiserver did not start")


async def run(args: argparse.Namespace, port: int) -> dict:
    address = f"127.0.0.1:{port}"
    sent_at: dict[str, float] = {}
    offered_at: dict[str, float] = {}
    done = asyncio.Event()
    agents: list[SimProtClient] = []

    def make_handler(client: SimProtClient):  # type: ignore[no-untyped-def]
        def on_event(topic: str, seq: int, name: str, data: dict) -> None:
            if name != "offer":
                return
            cid = data["contact"]
            offered_at[cid] = time.monotonic()
            asyncio.get_running_loop().create_task(finish(client, cid))
            if len(offered_at) >= args.contacts:
                done.set()
        return on_event

    async def finish(client: SimProtClient, cid: str) -> None:
        await client.request_many("agent.accept", [{"contact": cid}])
        await client.request_many("agent.end", [{"contact": cid}])
        await client.request_many("agent.end_wrap_up", [{}])

    progress(f"connecting {args.agents} agents")
    t0 = time.monotonic()
    for i in range(args.agents):
        c = SimProtClient([address], user=f"a{i:04d}", password="agent-pass-1", reconnect=False)
        await c.connect()
        await c.subscribe("agent", make_handler(c))
        await c.request("agent.login", {})
        await c.request("agent.ready")
        agents.append(c)
    progress(f"  ready in {time.monotonic() - t0:.1f} s")
    svc = SimProtClient([address], user="svc", password="service-pass-1", reconnect=False)
    await svc.connect()
    progress(f"enqueueing {args.contacts} contacts in windows of {args.window}")
    start = time.monotonic()
    n = 0
    while n < args.contacts and time.monotonic() - start < args.time_limit:
        ids = [f"k{i:06d}" for i in range(n, min(n + args.window, args.contacts))]
        now = time.monotonic()
        for cid in ids:
            sent_at[cid] = now
        await svc.request_many("contact.enqueue", [{"project": "general", "contact": cid} for cid in ids],
                               timeout=30)
        n += len(ids)
        # keep the queue short, as in a real centre: wait while more than a window waits for an agent
        while n - len(offered_at) > args.window and time.monotonic() - start < args.time_limit:
            await asyncio.sleep(0.001)
    try:
        await asyncio.wait_for(done.wait(), max(1.0, args.time_limit - (time.monotonic() - start)))
    except TimeoutError:
        pass
    elapsed = max(offered_at.values(), default=start) - start
    lat = sorted((offered_at[c] - sent_at[c]) * 1000 for c in offered_at if c in sent_at)
    for c in agents + [svc]:
        await c.close()

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 3) if lat else float("nan")

    rate = round(len(offered_at) / elapsed, 1) if elapsed > 0 else 0.0
    return {"bench": "acd_e2e", "agents": args.agents, "contacts": args.contacts, "offered": len(offered_at),
            "window": args.window, "elapsed_s": round(elapsed, 2), "contacts_per_s": rate,
            "offer_latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100),
                                 "mean": round(statistics.fmean(lat), 3) if lat else None},
            "goals": GOALS, "goals_met": {"contacts_per_s": rate >= GOALS["contacts_per_s_min"],
                                          "offer_latency_p99": bool(lat) and pct(99) <= GOALS[
                                              "offer_latency_p99_ms_max"]},
            "machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0]},
            "note": "server: one ctiserver process (one core); clients: this process"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--contacts", type=int, default=20000)
    p.add_argument("--window", type=int, default=200)
    p.add_argument("--time-limit", type=float, default=120.0)
    p.add_argument("--quick", action="store_true", help="200 agents, 2,000 contacts")
    args = p.parse_args()
    if args.quick:
        args.agents, args.contacts = 200, 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
    remove_abandoned_clusters(PREFIX)
    tmp = Path(tempfile.mkdtemp(prefix=PREFIX))
    pg = proc = None
    try:
        progress(f"starting embedded PostgreSQL in {tmp}")
        pg = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
        dsn = pg.get_uri()
        progress(f"creating {args.agents} agents")
        asyncio.run(prepare(dsn, args.agents))
        proc, port = start_server(dsn, tmp)
        import uvloop

        result = uvloop.run(asyncio.wait_for(run(args, port), args.time_limit + 120))
        print(json.dumps(result, indent=2))
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if pg is not None:
            pg.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
