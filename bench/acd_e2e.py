"""End-to-end distribution over SimProt: 1,000 agent clients, a stream of contacts.

A real ctiserver process (embedded PostgreSQL in a temporary folder) serves; this process holds the
agent clients and the service that enqueues. Each agent subscribes to its ``agent`` topic and, on
an offer, sends accept, end and end_wrap_up (three round trips: a desktop answering at once). The
service sends an open-loop stream of enqueues at each rate asked (a 1 ms tick, not waiting for the
answers, as independent IVR legs would). Measured per rate: contacts routed per second (offers
received), the offer latency (from sending the enqueue to the agent decoding the offer), and the
server's CPU per contact (from /proc), whose inverse is the one-core ceiling. Prints one JSON
object; progress on stderr; bounded in count and time.

    .venv/bin/python bench/acd_e2e.py [--agents 1000] [--contacts 10000] [--rates 1000,2000,3000,4000,5000]
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, port: int, server_pid: int) -> dict:
    """Connect the agents, then one open-loop stream of contacts per rate: enqueues are sent on a
    1 ms tick at the rate asked, whatever the answers (as independent IVR legs would), up to
    ``--inflight`` unanswered. A rate is sustained when every contact is offered and the offers keep
    up with the sends."""
    address = f"127.0.0.1:{port}"
    sent_at: dict[str, float] = {}
    offered_at: dict[str, float] = {}
    agents: list[SimProtClient] = []
    loop = asyncio.get_running_loop()

    def make_handler(client: SimProtClient):  # type: ignore[no-untyped-def]
        def on_event(topic: str, seq: int, name: str, data: dict) -> None:
            if name == "offer":
                cid = data["contact"]
                offered_at[cid] = time.monotonic()
                loop.create_task(finish(client, cid))
        return on_event

    async def finish(client: SimProtClient, cid: str) -> None:
        # a desktop that answers at once; accept, end and end of wrap-up are three round trips
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
    inflight = 0
    errors = 0

    async def enqueue(batch: list[str]) -> None:
        nonlocal inflight, errors
        inflight += len(batch)
        try:
            await svc.request_many("contact.enqueue", [{"project": "general", "contact": cid} for cid in batch],
                                   timeout=60)
        except Exception:  # noqa: BLE001 - counted; the run reports it
            errors += len(batch)
        finally:
            inflight -= len(batch)

    runs = []
    serial = 0
    for rate in args.rates:
        ids = [f"k{serial + i:07d}" for i in range(args.contacts)]
        serial += args.contacts
        progress(f"rate {rate}/s: {args.contacts} contacts")
        cpu0, start = cpu_seconds(server_pid), time.monotonic()
        sent = 0
        throttled = 0
        tasks = []
        while sent < len(ids) and time.monotonic() - start < args.time_limit:
            due = min(len(ids), int((time.monotonic() - start) * rate) + 1)
            if due > sent:
                if inflight >= args.inflight:
                    throttled += 1
                else:
                    batch = ids[sent:due]
                    now = time.monotonic()
                    for cid in batch:
                        sent_at[cid] = now
                    tasks.append(loop.create_task(enqueue(batch)))
                    sent = due
            await asyncio.sleep(0.001)
        send_s = time.monotonic() - start
        deadline = time.monotonic() + 30
        while (any(c not in offered_at for c in ids[-50:]) or inflight) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        cpu = cpu_seconds(server_pid) - cpu0
        got = [c for c in ids if c in offered_at]
        last = max((offered_at[c] for c in got), default=start)
        lat = sorted((offered_at[c] - sent_at[c]) * 1000 for c in got)
        routed = len(got) / (last - start) if last > start else 0.0

        def pct(p: float, lat: list[float] = lat) -> float:
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 2) if lat else float("nan")

        runs.append({"rate_asked": rate, "sent": sent, "offered": len(got), "errors": errors,
                     "send_s": round(send_s, 2), "contacts_per_s": round(routed, 1),
                     "sustained": len(got) == len(ids) and routed >= 0.97 * rate and throttled == 0,
                     "offer_latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100)},
                     "server_cpu_pct": round(100 * cpu / max(last - start, 1e-9), 1),
                     "server_cpu_us_per_contact": round(1e6 * cpu / max(len(got), 1), 1)})
        progress(f"  {runs[-1]['contacts_per_s']}/s, p99 {runs[-1]['offer_latency_ms']['p99']} ms, "
                 f"server CPU {runs[-1]['server_cpu_pct']} % ({runs[-1]['server_cpu_us_per_contact']} us/contact)")
        await asyncio.sleep(0.5)
    for c in agents + [svc]:
        await c.close()
    best = max((r for r in runs if r["sustained"]), key=lambda r: r["contacts_per_s"], default=None)
    us = statistics.median(r["server_cpu_us_per_contact"] for r in runs)
    return {"bench": "acd_e2e", "agents": args.agents, "contacts_per_rate": args.contacts, "runs": runs,
            "best_sustained": None if best is None else {k: best[k] for k in ("rate_asked", "contacts_per_s",
                                                                               "offer_latency_ms")},
            "server_cpu_us_per_contact_median": us,
            "one_core_ceiling_contacts_per_s": round(1e6 / us) if us else None,
            "goals": GOALS,
            "goals_met": {"contacts_per_s": best is not None and best["contacts_per_s"] >= GOALS["contacts_per_s_min"],
                          "offer_latency_p99_at_goal_rate": any(
                              r["sustained"] and r["rate_asked"] >= GOALS["contacts_per_s_min"]
                              and r["offer_latency_ms"]["p99"] <= GOALS["offer_latency_p99_ms_max"] for r in runs)},
            "machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0]},
            "note": "server: one ctiserver process (one core, plus its PostgreSQL); clients: this process"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--contacts", type=int, default=10000, help="contacts per rate")
    p.add_argument("--rates", type=lambda v: [int(x) for x in v.split(",")], default=[1000, 2000, 3000, 4000, 5000],
                   help="contacts per second, comma-separated (one run each)")
    p.add_argument("--inflight", type=int, default=5000, help="most enqueues unanswered at once")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds of sending per rate, at most")
    p.add_argument("--quick", action="store_true", help="200 agents, 2,000 contacts")
    args = p.parse_args()
    if args.quick:
        args.agents, args.contacts, args.rates = 200, 2000, [500, 1000]
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

        result = uvloop.run(asyncio.wait_for(run(args, port, proc.pid), len(args.rates) * (args.time_limit + 60) + 120))
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
