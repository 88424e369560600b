"""Process, CPU and sipp-output helpers of bench/sip_bench.py (kept apart to keep it readable)."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from ctiserver.accounts import AccountStore  # noqa: E402
from ctiserver.db import Database  # noqa: E402

SIPP = shutil.which("sipp")


def progress(msg: str) -> None:
    print(f"[sip_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ==== processes ======================================================================================

def pin(core: int | None):  # type: ignore[no-untyped-def]
    """preexec_fn for Popen: pin the child (and whatever it forks) to one core."""
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def spawn(argv: list[str], *, cwd: Path, core: int | None, out: Path | None = None,
          err: Path | None = None) -> subprocess.Popen:
    fo = open(out, "ab") if out else None
    fe = (fo if err == out else open(err, "ab")) if err else None
    try:
        return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=fo or subprocess.DEVNULL,
                                stderr=fe or subprocess.DEVNULL, preexec_fn=pin(core), start_new_session=True)
    finally:
        for f in (fo, fe):
            if f is not None:
                f.close()


def stop(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def wait_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for a child (killing it after ``timeout``); returns (exit code, its CPU seconds)."""
    end = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime
        if time.monotonic() > end:
            proc.kill()
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime
        time.sleep(0.02)


def cpu_of(pids: list[int]) -> float:
    """User + system CPU seconds so far of these processes (all their threads), from /proc."""
    total = 0.0
    tck = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / tck
    return total


def core_busy() -> dict[int, float]:
    """Busy CPU seconds of each core so far (/proc/stat: all but idle and iowait)."""
    tck = os.sysconf("SC_CLK_TCK")
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        m = re.match(r"cpu(\d+)\s+(.*)", line)
        if m:
            f = [int(x) for x in m.group(2).split()]
            out[int(m.group(1))] = (sum(f[:8]) - f[3] - f[4]) / tck
    return out


def runqueue_wait(pids: list[int]) -> float:
    """Seconds these processes' threads spent runnable but waiting for a CPU (/proc/PID/task/*/schedstat)."""
    total = 0
    for pid in pids:
        for f in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(f.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return total / 1e9


def free_udp_port() -> int:
    """A UDP (and TCP) port on 127.0.0.1 that the OS calls free right now."""
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


def udp_bound(port: int) -> bool:
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in lines):
            return True
    return False


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped for the UDP sockets bound to this port (full receive buffer)."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port:
                total += int(f[-1])
    return total


def wait_bound(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not udp_bound(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on UDP {port}")
        if time.monotonic() > end:
            raise RuntimeError(f"{what} does not listen on UDP {port} after {timeout} s")
        time.sleep(0.05)


# ==== the systems under test =========================================================================


def read_stat(path: Path) -> dict:
    """The last line of a sipp -trace_stat CSV as {column: value}."""
    try:
        rows = list(csv.reader(path.open(errors="replace"), delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _epoch(v: str) -> float:
    try:
        return float(v.split("\t")[-1])
    except (ValueError, IndexError):
        return 0.0


def _int(stat: dict, key: str) -> int:
    try:
        return int(stat.get(key, "0") or 0)
    except ValueError:
        return 0


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def percentiles(values: list[float], nd: int = 3) -> dict:
    return {"n": len(values), **{f"p{p}": (None if pct(values, p) is None else round(pct(values, p), nd))  # type: ignore[arg-type]
                                 for p in (50, 90, 99)},
            "max": round(max(values), nd) if values else None}


def parse_messages(path: Path) -> dict:
    """INVITE -> first 180 and INVITE -> first 200 of each call, in ms (microsecond timestamps of
    sipp -trace_msg: taken by sipp when it sent or read the message)."""
    first_invite: dict[str, float] = {}
    ring: dict[str, float] = {}
    ok: dict[str, float] = {}
    text = path.read_text(errors="replace")
    for block in re.split(r"^-{20,} ", text, flags=re.M)[1:]:
        head, _, rest = block.partition("\n")
        try:   # "2026-11-26 08:33:15.843117"
            stamp = datetime.strptime(" ".join(head.split()[:2]), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            continue
        direction, _, msg = rest.partition("\n\n")
        msg = msg.lstrip()
        first = msg.split("\n", 1)[0].strip()
        mcid = re.search(r"^(?:Call-ID|i)\s*:\s*(\S+)", msg, re.M | re.I)
        mcseq = re.search(r"^CSeq\s*:\s*\d+\s+(\w+)", msg, re.M | re.I)
        if not mcid or not mcseq or mcseq.group(1).upper() != "INVITE":
            continue
        cid = mcid.group(1)
        if "sent" in direction and first.startswith("INVITE "):
            first_invite.setdefault(cid, stamp)
        elif "received" in direction and first.startswith("SIP/2.0 180"):
            ring.setdefault(cid, stamp)
        elif "received" in direction and first.startswith("SIP/2.0 200"):
            ok.setdefault(cid, stamp)
    to180 = [(ring[c] - t) * 1000 for c, t in first_invite.items() if c in ring]
    to200 = [(ok[c] - t) * 1000 for c, t in first_invite.items() if c in ok]
    late180 = sum(1 for c in ring if c in ok and ring[c] > ok[c])
    return {"calls_traced": len(first_invite), "invite_to_180_ms": percentiles(to180),
            "invite_to_200_ms": percentiles(to200), "calls_with_180_after_200": late180}


def sipp_errors(d: Path) -> str:
    """sipp's error log without the expected per-call notes of the scenario's 2 ms wait for a late 180."""
    text = "".join(f.read_text(errors="replace") for f in d.glob("*_errors.log"))
    events = re.split(r"(?=\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t)", text)
    return "".join(e for e in events if "jumping to label" not in e and "The following events occurred" not in e)


async def prepare(dsn: str, agents: int, phone_port: int) -> None:
    """Project ``general`` (ring timeout 10 s, no wrap-up) reached by pilot 200; ``agents`` agents at
    workplaces whose phone is the one sipp uas; each agent's session stored as logged in and ready at
    his workplace, which the server restores at start (as after a restart: no SimProt client needed)."""
    db = await Database.open(dsn, pool_max=2)
    try:
        store = AccountStore(db.pool, scrypt_n=2**10)
        pool = db.pool
        await pool.execute("INSERT INTO cc.skills (skill) VALUES ('general')")
        await pool.execute("INSERT INTO cc.projects (project, ring_timeout, wrap_up) VALUES ('general', 10, 0)")
        await pool.execute("INSERT INTO cc.project_skills (project, skill) VALUES ('general', 'general')")
        await pool.execute("INSERT INTO cc.entry_rules (position, pilot, project) VALUES (1, '200', 'general')")
        for i in range(1, agents + 1):
            account = await store.create(f"agent{i}", "agent-pass-1", kind="agent")
            await pool.execute("INSERT INTO cc.agents (account_id) VALUES ($1)", account.id)
            await pool.execute("INSERT INTO cc.agent_skills (account_id, skill, level) VALUES ($1, 'general', 5)",
                               account.id)
            await pool.execute("INSERT INTO cc.workplaces (name, extension, sip_uri) VALUES ($1, $2, $3)",
                               f"ws-{i}", f"{1000 + i}", f"sip:phone{i}@127.0.0.1:{phone_port}")
    finally:
        await db.close()
    await reset_sessions(dsn)


async def reset_sessions(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("DELETE FROM cc.contacts_live")
            await conn.execute("DELETE FROM cc.agent_sessions")
            await conn.execute("""INSERT INTO cc.agent_sessions (account_id, workplace, state)
                                  SELECT acc.id, w.id, 'ready' FROM cc.agents a
                                  JOIN cc.accounts acc ON acc.id = a.account_id
                                  JOIN cc.workplaces w ON w.name = 'ws-' || substr(acc.username, 6)""")
    finally:
        await conn.close()


def postgres_pids(pgdata: Path) -> list[int]:
    import psutil

    try:
        root = int((pgdata / "postmaster.pid").read_text().split()[0])
        return [root] + [c.pid for c in psutil.Process(root).children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
        return []


def pin_postgres(pgdata: Path, cores: set[int]) -> None:
    """Pin the postmaster and its backends (new backends inherit it)."""
    for pid in postgres_pids(pgdata):
        try:
            os.sched_setaffinity(pid, cores)
        except OSError:
            pass


# ==== sipp ===========================================================================================

def sipp_version() -> str:
    try:
        out = subprocess.run([SIPP or "sipp", "-v"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(r"SIPp\s+(v\S+)", out)
    return m.group(1) if m else out.strip()[:60]
