"""SIP benchmark: the highest call rate at which every call of sipp's uac succeeds, in three set-ups.

(a) ctiserver as a plain UAS: calls to ``sip.test_pilot`` are answered by the core itself (no 180);
(b) the full path: pilot 200 -> entry rule -> project ``general`` -> an agent's phone (one sipp uas
    that every workplace points at) -> answered -> the caller's BYE is passed on to the phone;
(c) the same topology through sippy's ``b2bua`` (static route to the same sipp uas), the Python
    reference.

The system under test (ctiserver, or sippy's b2bua for c) is pinned to core 0; sipp (caller and
phone) and this process to core 1; the embedded PostgreSQL (needed by ctiserver) to core 0 with the
server unless ``--pg-core`` says otherwise. Each rate step is one sipp uac run of ``-m N`` calls at
``-r R`` with ``-d 0`` and 4 MB socket buffers over UDP on 127.0.0.1 (ports chosen by the OS); the
rate is searched by doubling, then bisection. A step *passes* when sipp exits 0, every call succeeded
(``SuccessfulCall(C)`` = N, ``FailedCall(C)`` = 0 in its ``-trace_stat`` CSV) and the run kept pace
(the last call ended within 10 % + 0.1 s of the sending window N/R: a server that queues calls in its
socket buffer and catches up later does not pass). Per step: the server's CPU (/proc) per call, sipp's
counters (failures by kind, retransmissions), the datagrams the kernel dropped at the server's socket
(/proc/net/udp), INVITE->180 / INVITE->200 percentiles from sipp's RTDs (whole milliseconds), and the
load of other processes on both cores (the machine may be shared). At half the highest passing rate
one more run traces every message (``-trace_msg``, microsecond timestamps): the latency percentiles
reported come from it.

Prints one JSON object on stdout; progress on stderr. Every process is bounded (``-timeout``) and
ended in ``finally``; the temporary folder (``/tmp/cc-sipbench-*``) is removed.

    .venv/bin/python bench/sip_bench.py            # full run, ~3-5 min (bounded: <= ~10 min)
    .venv/bin/python bench/sip_bench.py --quick    # ~1.5-2 min: 2,000 calls a step, fewer steps
    .venv/bin/python bench/sip_bench.py --cases b --calls 5000
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import csv
import importlib.metadata
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from _sip_tools import (  # noqa: E402
    _epoch,
    _int,
    core_busy,
    cpu_of,
    free_udp_port,
    parse_messages,
    percentiles,
    pin_postgres,
    postgres_pids,
    prepare,
    progress,
    read_stat,
    reset_sessions,
    runqueue_wait,
    sipp_errors,
    sipp_version,
    spawn,
    stop,
    udp_drops,
    wait_bound,
    wait_rusage,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(ROOT))

from bench._env import machine_info  # noqa: E402
from ctiserver.db import remove_abandoned_clusters  # noqa: E402

PREFIX = "cc-sipbench-"
SCENARIOS = Path(__file__).resolve().parent / "sip_scenarios"
VENV_BIN = Path(sys.executable).parent
SIPP = shutil.which("sipp")
SUT_CORE, LOAD_CORE = 0, 1
TEST_PILOT = "999"
GOALS = {
    "b_calls_per_s_min": 1000,          # full path, zero failed calls
    "b_over_c_min": 4.0,                # "more than four times sippy"
    "a_calls_per_s_min": 3000,
    "p99_invite_to_180_ms_max": 5.0,    # at half the highest passing rate (case a: INVITE->200, no 180)
}
PACE_SLACK = (1.10, 0.10)   # a step keeps pace when it ended within window * 1.10 + 0.10 s


class Sut(abc.ABC):
    """One process on core 0 that takes the calls (restarted after a failing step: state is clean)."""

    name = ""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0         # in this case (a server serves a, then b)
        self.serial = 0         # over the run: names its files
        self.logs: list[Path] = []
        self.crashes: list[dict] = []

    @abc.abstractmethod
    def start(self) -> None:
        """Start the system under test (a subclass per case)."""

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu(self) -> float:
        return cpu_of(self.pids())

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def rss_mb(self) -> float | None:
        kb = 0
        for p in self.pids():
            try:
                m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{p}/status").read_text())
            except OSError:
                return None
            kb += int(m.group(1)) if m else 0
        return round(kb / 1024, 1)

    def log_tail(self, n: int = 30) -> list[str]:
        for log in reversed(self.logs):
            if log.exists():
                return log.read_text(errors="replace").splitlines()[-n:]
        return []


class CtiServer(Sut):
    name = "ctiserver"

    def __init__(self, tmp: Path, dsn: str, log_level: str, reset: Any) -> None:
        super().__init__(tmp)
        self.dsn = dsn
        self.log_level = log_level
        self.reset = reset   # callable: put the agents' sessions back to "ready" while the server is down

    def start(self) -> None:
        self.starts += 1
        self.serial += 1
        out = self.tmp / f"ctiserver-{self.serial}.out"
        log = self.tmp / f"ctiserver-{self.serial}.log"
        self.logs.append(log)
        self.reset()   # every agent logged in and ready at his workplace, no contact left over
        argv = [str(VENV_BIN / "ctiserver"),
                "--set", "simprot.port=0", "--set", "http.port=0", "--set", f"database.dsn={self.dsn}",
                "--set", f"log.level={self.log_level}",
                "--set", "sip.enabled=true", "--set", "sip.host=127.0.0.1", "--set", "sip.port=0",
                "--set", f"sip.test_pilot={TEST_PILOT}",
                # every call comes from 127.0.0.1: the per-address flood limit (500 requests/s by
                # default) would refuse the benchmark's own load
                "--set", "sip.rate_limit=10000000"]
        self.proc = spawn(argv, cwd=self.tmp, core=SUT_CORE, out=out, err=log)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            m = re.search(r"^\s*SIP\s+[\d.]+:(\d+)", out.read_text(errors="replace") if out.exists() else "", re.M)
            if m:
                self.port = int(m.group(1))
                wait_bound(self.port, self.proc, "ctiserver")
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"ctiserver exited with {self.proc.returncode}: {self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"ctiserver did not start: {self.log_tail()}")


class SippyB2bua(Sut):
    name = "sippy b2bua"

    def __init__(self, tmp: Path, phone_port: int) -> None:
        super().__init__(tmp)
        self.phone_port = phone_port

    def start(self) -> None:
        self.starts += 1
        self.serial += 1
        self.port = free_udp_port()
        log = self.tmp / f"b2bua-{self.serial}.log"
        self.logs.append(log)
        argv = [str(VENV_BIN / "b2bua"), "--foreground=on", "--sip_address=127.0.0.1", f"--sip_port={self.port}",
                f"--static_route=127.0.0.1:{self.phone_port}", "--auth_enable=off", "--acct_enable=off",
                f"--logfile={log}"]
        self.proc = spawn(argv, cwd=self.tmp, core=SUT_CORE, out=self.tmp / f"b2bua-{self.serial}.out",
                          err=self.tmp / f"b2bua-{self.serial}.out")
        wait_bound(self.port, self.proc, "sippy b2bua")

    def pids(self) -> list[int]:   # the b2bua and any helper it forks
        if self.proc is None:
            return []
        import psutil

        try:
            return [self.proc.pid] + [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return [self.proc.pid]


# ==== the database for ctiserver =====================================================================

class Phone:
    """The one sipp uas that all agents' workplaces (b) or sippy's static route (c) point at."""

    def __init__(self, tmp: Path, port: int, budget_s: float, trace: bool = False) -> None:
        self.tmp, self.port, self.budget_s, self.trace = tmp, port, budget_s, trace
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.dir: Path | None = None

    def start(self) -> None:
        self.starts += 1
        d = self.tmp / f"phone-{self.starts}"
        d.mkdir()
        shutil.copy(SCENARIOS / "uas.xml", d / "uas.xml")
        argv = [SIPP or "sipp", "-sf", "uas.xml", "-i", "127.0.0.1", "-p", str(self.port), "-t", "u1",
                "-buff_size", "4194304", "-timer_resol", "1", "-trace_err", "-trace_stat", "-stf", "stat.csv",
                "-fd", "1", "-nostdin", "-timeout", f"{int(self.budget_s) + 60}s"]
        if self.trace:
            argv.append("-trace_msg")
        self.proc = spawn(argv, cwd=d, core=LOAD_CORE, out=d / "out.txt", err=d / "out.txt")
        self.dir = d
        wait_bound(self.port, self.proc, "sipp uas")

    def stop(self) -> dict:
        stop(self.proc, grace=3)
        self.proc = None
        return read_stat(self.dir / "stat.csv") if self.dir else {}

    def restart(self) -> None:
        self.stop()
        self.start()


def run_uac(workdir: Path, tag: str, port: int, service: str, rate: int, calls: int, recv_timeout_ms: int,
            trace_msg: bool = False) -> dict:
    d = workdir / tag
    d.mkdir()
    shutil.copy(SCENARIOS / "uac.xml", d / "uac.xml")
    window = calls / rate
    limit_s = int(window * 2 + recv_timeout_ms / 1000 + 20)
    argv = [SIPP or "sipp", f"127.0.0.1:{port}", "-sf", "uac.xml", "-s", service, "-i", "127.0.0.1",
            "-p", str(free_udp_port()), "-t", "u1", "-m", str(calls), "-r", str(rate), "-rp", "1000", "-d", "0",
            "-l", str(max(calls, 1000)), "-buff_size", "4194304", "-timer_resol", "1",
            "-recv_timeout", str(recv_timeout_ms), "-trace_stat", "-stf", "stat.csv", "-fd", "1",
            "-trace_rtt", "-rtt_freq", "100", "-trace_err", "-nostdin", "-timeout", f"{limit_s}s", "-timeout_error"]
    if trace_msg:
        argv.append("-trace_msg")
    proc = spawn(argv, cwd=d, core=LOAD_CORE, out=d / "out.txt", err=d / "out.txt")
    rc, sipp_cpu = wait_rusage(proc, limit_s + 30)
    stat = read_stat(d / "stat.csv")
    elapsed = _epoch(stat.get("CurrentTime", "")) - _epoch(stat.get("StartTime", ""))
    ok, failed = _int(stat, "SuccessfulCall(C)"), _int(stat, "FailedCall(C)")
    failures = {k[:-3]: _int(stat, k) for k in stat if k.startswith("Failed") and k.endswith("(C)")
                and k != "FailedCall(C)" and _int(stat, k)}
    rtd: dict[str, list[float]] = {"1": [], "2": []}
    for f in d.glob("*_rtt.csv"):
        for row in csv.reader(f.open(errors="replace"), delimiter=";"):
            if len(row) >= 3 and row[2] in rtd:
                try:
                    rtd[row[2]].append(float(row[1]))
                except ValueError:
                    pass
    res: dict[str, Any] = {
        "rate": rate, "calls": calls, "sipp_exit": rc, "successful": ok, "failed": failed,
        "failed_by_kind": failures, "retransmissions": _int(stat, "Retransmissions(C)"),
        "out_of_call_msgs": _int(stat, "OutOfCallMsgs(C)"), "dead_call_msgs": _int(stat, "DeadCallMsgs(C)"),
        "window_s": round(window, 3), "elapsed_s": round(elapsed, 3),
        "kept_pace": elapsed > 0 and elapsed <= window * PACE_SLACK[0] + PACE_SLACK[1],
        "sipp_uac_cpu_pct": round(100 * sipp_cpu / elapsed, 1) if elapsed > 0 else None,
        "sipp_uac_cpu_s": round(sipp_cpu, 3),
        "rtd_ms": {"invite_to_180": percentiles(rtd["1"], 1), "invite_to_200": percentiles(rtd["2"], 1)},
    }
    res["all_succeeded"] = rc == 0 and failed == 0 and ok == calls
    res["passed"] = res["all_succeeded"] and res["kept_pace"]
    if not res["all_succeeded"]:
        res["sipp_errors_head"] = sipp_errors(d)[:1500]
        if rc not in (0, 1):
            res["sipp_output_tail"] = (d / "out.txt").read_text(errors="replace")[-800:]
    if trace_msg:
        for f in d.glob("*_messages.log"):
            res["traced"] = parse_messages(f)
    return res


# ==== one case: warm-up, rate search, latency at half rate ===========================================

def settle(sut: Sut, limit: float = 15.0) -> None:
    """Wait until the server is idle again (< 3 % of a core over 0.2 s), at most ``limit`` s."""
    end = time.monotonic() + limit
    last = sut.cpu()
    while time.monotonic() < end:
        time.sleep(0.2)
        now = sut.cpu()
        if now - last < 0.006:
            return
        last = now


def server_log_summary(sut: Sut) -> dict:
    """Warnings and errors the server logged (JSON lines), counted by event, with first examples."""
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    other: list[str] = []
    for log in sut.logs:
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                if line.strip() and len(other) < 20:
                    other.append(line[:400])
                continue
            level = str(rec.get("level", "")).lower()
            if level in ("info", "debug"):
                continue
            key = f"{level} {rec.get('event', '?')}"
            counts[key] += 1
            if len(examples.setdefault(key, [])) < 3:
                examples[key].append(line[:600])
    return {"by_event": dict(counts.most_common()), "examples": examples, "non_json_lines": other}


def run_case(name: str, sut: Sut, phone: Phone | None, service: str, args: argparse.Namespace,
             workdir: Path, pg: tuple[Path, list[int]] | None) -> dict:
    t_case = time.monotonic()
    steps: list[dict] = []
    problems: list[dict] = []

    def pg_cpu() -> float:
        return cpu_of(postgres_pids(pg[0])) if pg else 0.0

    def one(rate: int, calls: int, tag: str, trace_msg: bool = False) -> dict:
        if not sut.alive():
            problems.append({"what": f"{sut.name} was not running before step {tag}", "log_tail": sut.log_tail()})
            sut.restart()
            if phone:
                phone.restart()
        c0, p0, w0, b0, t0 = sut.cpu(), pg_cpu(), runqueue_wait(sut.pids()), core_busy(), time.monotonic()
        d0, pd0 = udp_drops(sut.port), udp_drops(phone.port) if phone else 0
        ph0, me0 = cpu_of([phone.proc.pid]) if phone and phone.proc else 0.0, cpu_of([os.getpid()])
        r = run_uac(workdir, tag, sut.port, service, rate, calls, args.recv_timeout, trace_msg)
        w1 = runqueue_wait(sut.pids())
        settle(sut)
        cpu, pcpu, b1, wall = sut.cpu() - c0, pg_cpu() - p0, core_busy(), time.monotonic() - t0
        r["server_cpu_us_per_call"] = round(1e6 * cpu / max(r["successful"], 1), 1)
        r["server_cpu_pct"] = round(100 * cpu / r["elapsed_s"], 1) if r["elapsed_s"] > 0 else None
        # noise: other processes of the machine on the server's core, and how long the server waited for it
        r["server_runqueue_wait_pct"] = round(100 * (w1 - w0) / r["elapsed_s"], 1) if r["elapsed_s"] > 0 else None
        ours = cpu + (pcpu if args.pg_core == str(SUT_CORE) else 0.0)
        r["other_load_on_server_core_pct"] = round(max(0.0, 100 * (b1[SUT_CORE] - b0[SUT_CORE] - ours) / wall), 1)
        load_ours = r["sipp_uac_cpu_s"] + cpu_of([os.getpid()]) - me0 + (
            cpu_of([phone.proc.pid]) - ph0 if phone and phone.proc else 0.0)
        r["other_load_on_load_core_pct"] = round(max(0.0, 100 * (b1[LOAD_CORE] - b0[LOAD_CORE] - load_ours) / wall), 1)
        r["server_rss_mb_after"] = sut.rss_mb()
        # datagrams lost in the kernel because a receive buffer was full (each costs a 500 ms retransmission)
        r["server_udp_drops"] = udp_drops(sut.port) - d0
        if phone:
            r["phone_udp_drops"] = udp_drops(phone.port) - pd0
        if pg:
            r["postgres_cpu_us_per_call"] = round(1e6 * pcpu / max(r["successful"], 1), 1)
        if not sut.alive():
            r["server_died"] = True
            problems.append({"what": f"{sut.name} exited during step {tag} (rate {rate}/s)",
                             "exit": sut.proc.returncode if sut.proc else None, "log_tail": sut.log_tail(40)})
        rt = r["rtd_ms"]["invite_to_180" if name != "a" else "invite_to_200"]
        progress(f"  {name} {tag}: {rate}/s x {calls}: {'PASS' if r['passed'] else 'FAIL'} "
                 f"ok {r['successful']} failed {r['failed']} {r['failed_by_kind'] or ''} "
                 f"retrans {r['retransmissions']} server drops {r['server_udp_drops']} "
                 f"elapsed {r['elapsed_s']} s (window {r['window_s']}), server {r['server_cpu_us_per_call']} us/call "
                 f"{r['server_cpu_pct']} %, sipp {r['sipp_uac_cpu_pct']} %, rtd p99 {rt['p99']} ms; noise: "
                 f"other load on core {SUT_CORE} {r['other_load_on_server_core_pct']} %, on core {LOAD_CORE} "
                 f"{r['other_load_on_load_core_pct']} %, server waited for the CPU {r['server_runqueue_wait_pct']} %")
        if not r["passed"]:   # start the next step from a clean server (stuck calls, agents logged out)
            sut.restart()
            if phone:
                phone.restart()
        else:
            time.sleep(0.3)
        return r

    sut.start()
    if phone:
        phone.start()
    progress(f"case {name}: {sut.name} on UDP {sut.port} (pid {sut.proc.pid if sut.proc else '?'})")
    warm = one(args.warmup_rate, args.warmup_calls, "warmup")
    if not warm["all_succeeded"]:
        problems.append({"what": f"warm-up of {args.warmup_calls} calls at {args.warmup_rate}/s did not all succeed",
                         "sipp_errors_head": warm.get("sipp_errors_head", ""), "log_tail": sut.log_tail(40)})
    lo: int | None = None
    hi: int | None = None
    rate = args.start_rates[name]
    budget = args.case_budget * (args.c_budget_factor if name == "c" else 1.0)
    while len(steps) < args.max_steps and time.monotonic() - t_case < budget:
        calls = max(args.calls, int(rate * args.step_seconds))
        r = one(rate, calls, f"r{rate}")
        steps.append(r)
        if r["passed"]:
            lo = rate if lo is None else max(lo, rate)
        else:
            hi = rate if hi is None else min(hi, rate)
        if lo is not None and lo >= args.max_rate:
            break
        if hi is None:
            rate = min(args.max_rate, rate * 2)
        elif lo is None:
            rate = rate // 2
            if rate < args.min_rate:
                break
        else:
            if (hi - lo) / lo <= args.tolerance:
                break
            step = 10 if hi - lo > 40 else 1
            rate = max(lo + 1, round((lo + hi) / 2 / step) * step)
            if rate >= hi:
                break
    best = next((s for s in steps if s["rate"] == lo), None)
    first_fail = next((s for s in steps if s["rate"] == hi), None)
    result: dict[str, Any] = {
        "max_passing_rate": lo, "lowest_failing_rate": hi,
        "max_rate_all_succeeded": max((s["rate"] for s in steps if s["all_succeeded"]), default=None),
        # the strictest view: no message was lost or late enough (500 ms) to be sent again
        "max_passing_rate_without_retransmissions": max(
            (s["rate"] for s in steps if s["passed"] and not s["retransmissions"] and not s["server_udp_drops"]),
            default=None),
        "server_cpu_us_per_call_at_max": best["server_cpu_us_per_call"] if best else None,
        "one_core_ceiling_calls_per_s": round(1e6 / best["server_cpu_us_per_call"])
        if best and best["server_cpu_us_per_call"] else None,
        "at_lowest_failing_rate": None if first_fail is None else {
            k: first_fail.get(k) for k in ("rate", "calls", "successful", "failed", "failed_by_kind", "retransmissions",
                                           "elapsed_s", "window_s", "kept_pace", "sipp_exit", "server_cpu_pct",
                                           "sipp_errors_head", "server_died", "other_load_on_server_core_pct",
                                           "server_udp_drops", "phone_udp_drops",
                                           "server_runqueue_wait_pct")},
    }
    if best and pg:
        result["postgres_cpu_us_per_call_at_max"] = best.get("postgres_cpu_us_per_call")
    if lo:
        half = max(1, lo // 2)
        calls = max(args.calls, int(half * args.step_seconds))
        progress(f"case {name}: latency at half the max rate, {half}/s, every message traced")
        lat = one(half, calls, f"half{half}", trace_msg=True)
        result["latency_at_half_rate"] = {
            "rate": half, "calls": calls, "passed": lat["passed"], "failed": lat["failed"],
            "server_cpu_us_per_call": lat["server_cpu_us_per_call"], "retransmissions": lat["retransmissions"],
            "server_udp_drops": lat["server_udp_drops"],
            "other_load_on_server_core_pct": lat["other_load_on_server_core_pct"],
            "other_load_on_load_core_pct": lat["other_load_on_load_core_pct"],
            "server_runqueue_wait_pct": lat["server_runqueue_wait_pct"],
            "traced_us_resolution": lat.get("traced"), "sipp_rtd_whole_ms": lat["rtd_ms"]}
    noise = sorted(s["other_load_on_server_core_pct"] for s in steps)
    result["other_load_on_server_core_pct_median"] = noise[len(noise) // 2] if noise else None
    noise = sorted(s["other_load_on_load_core_pct"] for s in steps)
    result["other_load_on_load_core_pct_median"] = noise[len(noise) // 2] if noise else None
    result["warmup"] = {k: warm[k] for k in ("rate", "calls", "successful", "failed", "passed")}
    result["steps"] = steps
    if phone:
        uas = phone.stop()
        result["phone_sipp_uas_totals_last_instance"] = {
            "successful": _int(uas, "SuccessfulCall(C)"), "failed": _int(uas, "FailedCall(C)"),
            "retransmissions": _int(uas, "Retransmissions(C)"), "restarts": phone.starts - 1}
    sut.stop()
    result["server_restarts"] = sut.starts - 1
    result["server_log"] = server_log_summary(sut) if isinstance(sut, CtiServer) else {
        "b2bua_log_tail": sut.log_tail(15)}
    result["problems"] = problems
    result["case_s"] = round(time.monotonic() - t_case, 1)
    return result


# ==== main ===========================================================================================

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="a,b,c", help="comma-separated subset of a,b,c")
    p.add_argument("--quick", action="store_true", help="~1-2 min: 2,000 calls a step, fewer steps, 20 %% tolerance")
    p.add_argument("--calls", type=int, default=2000, help="calls per step, at least (default 2000)")
    p.add_argument("--step-seconds", type=float, default=3.0,
                   help="at high rates a step lasts this long: calls = max(--calls, rate * this)")
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--tolerance", type=float, default=0.05, help="stop bisecting when (fail - pass) / pass <= this")
    p.add_argument("--max-steps", type=int, default=10, help="rate steps per case, at most")
    p.add_argument("--case-budget", type=float, default=150.0, help="seconds of searching per case, at most")
    p.add_argument("--max-rate", type=int, default=16000)
    p.add_argument("--min-rate", type=int, default=10)
    p.add_argument("--recv-timeout", type=int, default=5000, help="sipp -recv_timeout in ms: a call fails after it")
    p.add_argument("--log-level", default="INFO", help="ctiserver log.level (INFO is the shipped default)")
    p.add_argument("--pg-core", default="0", help="core for PostgreSQL: 0 (with the server), 1, or 'free'")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (logs, sipp traces)")
    p.add_argument("--trace-phone", action="store_true", help="the phone's sipp traces every message (debugging)")
    args = p.parse_args()
    args.c_budget_factor = 1.5
    args.warmup_rate, args.warmup_calls = 100, 200
    args.start_rates = {"a": 1000, "b": 500, "c": 100}
    if args.quick:
        args.step_seconds, args.tolerance, args.max_steps, args.case_budget = 0.0, 0.25, 3, 30.0
        args.start_rates = {"a": 1000, "b": 400, "c": 200}
        args.recv_timeout = min(args.recv_timeout, 4000)
        args.warmup_rate, args.warmup_calls = 100, 100
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    all_cores = set(os.sched_getaffinity(0))
    pg_cores = all_cores if args.pg_core == "free" else {int(args.pg_core)}
    if SIPP is None:
        print(json.dumps({"bench": "sip_bench", "error": "sipp is not installed (Debian package sip-tester)"}))
        return 2
    notes: list[str] = []
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or SUT_CORE not in cores or LOAD_CORE not in cores:
        print(json.dumps({"bench": "sip_bench", "error": f"needs cores {SUT_CORE} and {LOAD_CORE}, have {cores}"}))
        return 2
    os.sched_setaffinity(0, {LOAD_CORE})   # this process and what it starts: the load side
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    try:
        sippy_version = importlib.metadata.version("sippy")
    except importlib.metadata.PackageNotFoundError:
        sippy_version = None
    if "c" in cases and (sippy_version is None or not (VENV_BIN / "b2bua").exists()):
        notes.append("case c skipped: sippy is not installed in this venv (.venv/bin/pip install sippy)")
        cases.remove("c")

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
    remove_abandoned_clusters(PREFIX)
    tmp = Path(tempfile.mkdtemp(prefix=PREFIX))
    t0 = time.monotonic()
    pg = None
    suts: list[Sut] = []
    phones: list[Phone] = []
    results: dict[str, Any] = {}
    try:
        phone_port = free_udp_port()
        if "a" in cases or "b" in cases:
            progress(f"starting embedded PostgreSQL in {tmp}")
            pg = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
            dsn = pg.get_uri()
            progress(f"creating {args.agents} agents whose phones are sipp at 127.0.0.1:{phone_port}")
            asyncio.run(prepare(dsn, args.agents, phone_port))
            pin_postgres(tmp / "pgdata", pg_cores)

            def reset() -> None:
                asyncio.run(reset_sessions(dsn))

            cti = CtiServer(tmp, dsn, args.log_level, reset)
        for name in cases:
            workdir = tmp / f"case-{name}"
            workdir.mkdir()
            phone = Phone(tmp / f"case-{name}", phone_port, 1800, args.trace_phone) if name in ("b", "c") else None
            if name in ("a", "b"):
                sut: Sut = cti
                cti.logs, cti.starts = [], 0
            else:
                sut = SippyB2bua(tmp, phone_port)
            suts.append(sut)
            if phone:
                phones.append(phone)
            service = TEST_PILOT if name == "a" else "200"
            try:
                results[name] = run_case(name, sut, phone, service, args, workdir,
                                         (tmp / "pgdata", []) if name in ("a", "b") and pg else None)
            except Exception as exc:  # noqa: BLE001 - reported in the JSON with the server's log
                results[name] = {"error": f"{type(exc).__name__}: {exc}", "server_log_tail": sut.log_tail(40)}
                progress(f"case {name} failed: {exc}")
            finally:
                if phone:
                    phone.stop()
                sut.stop()
            if pg is not None:
                pin_postgres(tmp / "pgdata", pg_cores)   # backends of a restarted server inherit it anyway

        a, b, c = (results.get(k, {}) for k in "abc")
        mb, mc, ma = b.get("max_passing_rate"), c.get("max_passing_rate"), a.get("max_passing_rate")

        def p99(case: dict, key: str) -> float | None:
            t = (case.get("latency_at_half_rate") or {}).get("traced_us_resolution") or {}
            return (t.get(key) or {}).get("p99")

        goals_met = {
            "b_calls_per_s": None if "b" not in results else bool(mb and mb >= GOALS["b_calls_per_s_min"]),
            "b_over_c": None if not (mb and mc) else round(mb / mc, 2) >= GOALS["b_over_c_min"],
            "a_calls_per_s": None if "a" not in results else bool(ma and ma >= GOALS["a_calls_per_s_min"]),
            "b_p99_invite_to_180_at_half_rate": None if p99(b, "invite_to_180_ms") is None
            else p99(b, "invite_to_180_ms") <= GOALS["p99_invite_to_180_ms_max"],   # type: ignore[operator]
            "a_p99_invite_to_200_at_half_rate": None if p99(a, "invite_to_200_ms") is None
            else p99(a, "invite_to_200_ms") <= GOALS["p99_invite_to_180_ms_max"],   # type: ignore[operator]
        }
        info = machine_info()
        info["cpus_usable"] = len(all_cores)   # before this process pinned itself to the load core
        try:
            info["net_core_rmem_max"] = int(Path("/proc/sys/net/core/rmem_max").read_text())
            info["net_core_rmem_default"] = int(Path("/proc/sys/net/core/rmem_default").read_text())
        except OSError:
            pass
        notes += [
            "a passing step: sipp exit 0, every call successful, and the last call ended within "
            f"{PACE_SLACK[0]:.2f} x the sending window + {PACE_SLACK[1]} s (so a server that only catches up "
            "from its socket buffer after the run does not pass); max_rate_all_succeeded ignores the pace test",
            "case a has no 180 (the test pilot answers 200 at once): its latency is INVITE->200",
            "case b: the 180 is sent by the core at once, before the ACD offers the call; INVITE->200 includes "
            "the ACD offer, the INVITE to the phone and its 200",
            "case c: the 180 comes from the phone through sippy; sippy sends from several threads, so a 180 can "
            "arrive after the 200 (counted in calls_with_180_after_200; the uac scenario ignores such a 180)",
            "latency: traced_us_resolution comes from sipp -trace_msg timestamps (when sipp sent / read each "
            "message; sipp on its own core with -timer_resol 1); sipp_rtd_whole_ms are sipp's RTDs, whole ms",
            "agents are logged in and ready by their stored sessions (cc.agent_sessions), which ctiserver "
            "restores at start, as after a restart; after a failing step the server is restarted with the "
            "sessions reset (a failing step may auto-log-out agents or leave calls behind)",
            "other_load_on_*_core_pct: CPU used on that core by processes outside this bench during the step "
            "(the machine may be shared); server_runqueue_wait_pct: the server runnable but not running",
            "server_udp_drops: datagrams the kernel dropped at the server's socket (full receive buffer); each "
            "one costs a 500 ms retransmission",
            "the phone (sipp uas) answers a retransmitted INVITE with its 200 again, as a phone does",
            f"ctiserver runs with log.level={args.log_level} and sip.rate_limit raised (all load comes from "
            "127.0.0.1; the default per-address limit is 500 requests/s)",
        ]
        print(json.dumps({
            "bench": "sip_bench", "mode": "quick" if args.quick else "full", "cases": results,
            "b_over_c": round(mb / mc, 2) if mb and mc else None,
            "goals": GOALS, "goals_met": goals_met,
            "placement": {"system_under_test": f"core {SUT_CORE} (ctiserver; sippy's b2bua in c)",
                          "sipp_and_bench": f"core {LOAD_CORE} (uac and, for b/c, the uas phone)",
                          "postgresql": "free (unpinned)" if args.pg_core == "free" else f"core {args.pg_core}"},
            "parameters": {"calls_per_step_min": args.calls, "step_seconds": args.step_seconds,
                           "tolerance": args.tolerance, "max_steps": args.max_steps, "agents": args.agents,
                           "start_rates": args.start_rates, "recv_timeout_ms": args.recv_timeout,
                           "sipp_flags": "-t u1 -d 0 -buff_size 4194304 -timer_resol 1 -rp 1000 -l max(calls,1000)",
                           "ring_timeout_s": 10, "wrap_up_s": 0},
            "machine": info,
            "versions": {"sipp": sipp_version(), "sippy": sippy_version,
                         "ctiserver": importlib.metadata.version("ctiserver")},
            "notes": notes,
            "elapsed_s": round(time.monotonic() - t0, 1),
        }, indent=1))
        return 0
    finally:
        for ph in phones:
            stop(ph.proc, grace=3)
        for s in suts:
            stop(s.proc)
        if pg is not None:
            pg.cleanup()
        if args.keep_tmp:
            progress(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
