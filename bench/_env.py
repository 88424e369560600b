"""Bench environment helpers: load from other processes, the bench database, machine facts."""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import time
from pathlib import Path

import msgpack
import uvloop

ROOT = Path(__file__).resolve().parent.parent

# ==== load from other processes (the machine may be shared) =======================================

class LoadMonitor:
    """CPU used by processes outside this benchmark while a phase ran: system busy time (/proc/stat)
    minus the CPU time of the bench's own processes (this one, its children, our PostgreSQL)."""

    def __init__(self, pg_dir: Path) -> None:
        import psutil

        self.psutil = psutil
        self.pg_dir = str(pg_dir)
        self.tick = os.sysconf("SC_CLK_TCK")

    def _system_busy(self) -> float:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return (sum(fields[:8]) - idle) / self.tick

    def _ours(self) -> float:
        ps = self.psutil
        procs = {os.getpid(): ps.Process()}
        for p in ps.Process().children(recursive=True):
            procs[p.pid] = p
        for p in ps.process_iter(["cmdline"]):
            if self.pg_dir in " ".join(p.info["cmdline"] or ()):
                procs[p.pid] = p
                for c in p.children(recursive=True):
                    procs[c.pid] = c
        total = 0.0
        for p in procs.values():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except (ps.NoSuchProcess, ps.AccessDenied):
                pass
        return total

    def start(self) -> tuple[float, float, float]:
        return time.monotonic(), self._system_busy(), self._ours()

    def stop(self, t0: tuple[float, float, float]) -> dict:
        wall = time.monotonic() - t0[0]
        busy = self._system_busy() - t0[1]
        ours = self._ours() - t0[2]
        foreign = max(0.0, busy - ours)
        cap = wall * (os.cpu_count() or 1)
        return {"wall_s": round(wall, 1), "bench_cpu_s": round(ours, 1), "other_cpu_s": round(foreign, 1),
                "other_cpu_pct_of_machine": round(100 * foreign / cap, 1) if cap else 0.0}


# ==== embedded PostgreSQL ========================================================================

async def prepare_database(admin_uri: str) -> str:
    """fsync off (throwaway data, as the tests' server), then a fresh database; returns its DSN."""
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    conn = await asyncpg.connect(admin_uri)
    try:
        for key, value in {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}.items():
            await conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.execute('CREATE DATABASE "simprot_bench"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(admin_uri)._replace(path="/simprot_bench"))



def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvloop": uvloop.__version__,
        "msgpack": ".".join(map(str, msgpack.version)),
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def code_fingerprint() -> dict:
    """Which code was measured (the sources change; the repository is not asked, only read)."""
    files = sorted([*ROOT.glob("simprot/*.py"), *ROOT.glob("ctiserver/*.py")])
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    newest = max(f.stat().st_mtime for f in files)
    return {"sha256_of_simprot_and_ctiserver": h.hexdigest()[:16],
            "newest_source_change": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(newest))}


