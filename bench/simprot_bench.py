"""SimProt benchmark: request/response throughput and event fan-out, against bare uvloop ceilings.

Run ``.venv/bin/python bench/simprot_bench.py [--quick]`` (or ``./dev bench``).  ONE JSON object
goes to stdout, progress to stderr.  Everything runs on 127.0.0.1 on ports the OS picks; temporary
folders and child processes are removed at the end.  See bench/README.md for what each number means.

Processes (all children via multiprocessing "spawn", none pinned):

- the bench process: the clients of (a) and (b) and the fan-out publishers;
- "app": the real ctiserver :class:`~ctiserver.app.App` (SimProt server, HTTP, asyncpg pool) on an
  embedded PostgreSQL (pgserver, temp folder, fsync off, as the tests do), log level WARNING;
- "echo": the bare uvloop length-prefixed msgpack echo server of (b);
- "fanout": the bare uvloop fan-out server of (d);
- 2 subscriber processes (bench/_fanout_clients.py) holding the N fan-out connections of (c) and (d).

(a) SimProtClient.request_many("echo", window) against the App; (b) the bare pipelined client
against the echo server: same frames, same window size, same number of windows in flight, same
counts; the runs of (a) and (b) alternate, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import io
import itertools
import json
import logging
import math
import multiprocessing
import os
import pstats
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the repository's simprot/ctiserver, not some installed copy
    sys.path.insert(1, str(ROOT))

import uvloop  # noqa: E402
from _bare import BareClient, bare_listen, frame  # noqa: E402
from _env import LoadMonitor, code_fingerprint, machine_info, prepare_database  # noqa: E402
from _fanout_clients import raise_nofile, worker_main  # noqa: E402

from ctiserver.db import remove_abandoned_clusters  # noqa: E402
from simprot.client import SimProtClient  # noqa: E402

ADMIN, ADMIN_PW = "benchadmin", "bench-admin-pass-1"
PAD = "x" * 32
PG_PREFIX = "cc-pgbench-"
GOALS = {"a_over_b_min": 0.9, "fanout_1000_last_ms_max": 10.0, "fanout_10000_last_ms_max": 100.0}


@dataclasses.dataclass(frozen=True)
class Config:
    messages: int          # requests per measured run
    warmup: int            # requests of the unmeasured warm-up run per configuration
    runs: int              # measured runs per configuration
    window: int            # requests per request_many call (one write)
    in_flight: int         # request_many calls outstanding at once on the one connection
    fanout_ns: tuple[int, ...]
    rounds: int            # measured publish rounds per N
    warmup_rounds: int
    spacing: tuple[float, float]  # random pause between rounds, seconds
    sub_processes: int
    connect_concurrency: int  # handshakes in progress per subscriber process
    time_limit: float      # seconds; the run is abandoned (and cleaned up) after this


FULL = Config(messages=200_000, warmup=20_000, runs=3, window=1000, in_flight=8, fanout_ns=(1000, 10_000),
              rounds=20, warmup_rounds=2, spacing=(0.1, 0.2), sub_processes=2, connect_concurrency=64,
              time_limit=600)
QUICK = Config(messages=100_000, warmup=10_000, runs=3, window=1000, in_flight=8, fanout_ns=(1000, 10_000),
               rounds=8, warmup_rounds=1, spacing=(0.1, 0.15), sub_processes=2, connect_concurrency=64,
               time_limit=300)


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ==== child: a server (App, bare echo, bare fan-out) ==============================================

def server_main(conn: Any, kind: str, opts: dict) -> None:
    """Entry point of a server process; driven by commands over ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    raise_nofile()
    from ctiserver.logs import setup_logging

    setup_logging("WARNING", "text")
    uvloop.run(_serve(kind, conn, opts))


async def _serve(kind: str, conn: Any, opts: dict) -> None:
    loop = asyncio.get_running_loop()
    publish_times: list[tuple[float, float]] = []  # (wall, CPU) seconds per publish
    sweep_times: list[float] = []
    app = srv = None
    if kind == "app":
        from ctiserver.app import App
        from ctiserver.settings import load_settings

        base = load_settings(None, env={}, overrides=[
            "simprot.port=0", "http.port=0", "log.level=WARNING", "log.format=text"])
        settings = dataclasses.replace(base, database=dataclasses.replace(base.database, dsn=opts["dsn"]))
        app = App(settings, scrypt_n=2**10)
        await app.start()
        assert app.service is not None and app.server is not None
        await app.service.accounts.create(ADMIN, ADMIN_PW, kind="admin")
        addr = app.simprot_address
        server = app.server
        publish = server.publish

        def timed_publish(topic: str, *args: Any, **kw: Any) -> int:  # server-side cost of one publish
            t0, c0 = time.perf_counter(), time.thread_time()
            seq = publish(topic, *args, **kw)
            if topic == "messages":
                publish_times.append((time.perf_counter() - t0, time.thread_time() - c0))
            return seq

        server.publish = timed_publish  # type: ignore[method-assign]
        sweep = getattr(server, "_sweep", None)  # the once-a-second liveness sweep over all connections
        if sweep is not None:
            def timed_sweep() -> None:
                t0 = time.perf_counter()
                sweep()
                sweep_times.append(time.perf_counter() - t0)

            server._sweep = timed_sweep  # type: ignore[method-assign]
        subscribers = lambda: len(server.subscribers.get("messages", ()))  # noqa: E731
        connections = lambda: len(server.connections)  # noqa: E731
    else:
        srv, addr, st = await bare_listen(loop, kind)
        if st is not None:
            publish_times = st.publish_times
        subscribers = lambda: len(st.subscribers) if st is not None else 0  # noqa: E731
        connections = subscribers
    commands: asyncio.Queue = asyncio.Queue()

    def readable() -> None:
        try:
            while conn.poll():
                commands.put_nowait(conn.recv())
        except (EOFError, OSError):  # the parent is gone
            loop.remove_reader(conn.fileno())
            commands.put_nowait(("stop",))

    loop.add_reader(conn.fileno(), readable)
    conn.send(("ready", addr, os.getpid()))
    prof: cProfile.Profile | None = None
    gc_pauses: list[float] = []
    gc_t0 = [0.0]

    def gc_cb(phase: str, info: dict) -> None:
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            gc_pauses.append(time.perf_counter() - gc_t0[0])

    while True:
        cmd = await commands.get()
        what = cmd[0]
        if what == "stop":
            break
        if what == "cpu":
            conn.send(("cpu", time.process_time()))
        elif what == "counts":
            conn.send(("counts", subscribers(), connections()))
        elif what == "publish_times":
            conn.send(("publish_times", list(publish_times), list(sweep_times)))
            publish_times.clear()
            sweep_times.clear()
        elif what == "gc_watch":  # start timing garbage-collector pauses
            gc_pauses.clear()
            if gc_cb not in gc.callbacks:
                gc.callbacks.append(gc_cb)
            conn.send(("ok",))
        elif what == "gc_report":
            if gc_cb in gc.callbacks:
                gc.callbacks.remove(gc_cb)
            conn.send(("gc", list(gc_pauses)))
        elif what == "profile_start":
            prof = cProfile.Profile()
            prof.enable()
            conn.send(("ok",))
        elif what == "profile_stop":
            text = ""
            if prof is not None:
                prof.disable()
                prof.dump_stats(cmd[1] + ".pstats")
                text = profile_text(prof, cmd[2] if len(cmd) > 2 else 30)
                with open(cmd[1] + ".txt", "w") as f:
                    f.write(text)
                prof = None
            conn.send(("profile", text))
    if app is not None:
        await app.stop(grace=0.5)
    if srv is not None:
        srv.close()
    try:
        conn.send(("stopped",))
    except OSError:
        pass


def profile_text(prof: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# ==== parent side: child handles =================================================================

class Child:
    """A spawned child process and its command pipe; replies and round notices are demultiplexed."""

    def __init__(self, name: str, target: Callable, args: tuple, registry: list[Child]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.name = name
        self.conn, child_end = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_end, *args), name=name, daemon=True)
        self.proc.start()
        child_end.close()
        registry.append(self)
        self.replies: asyncio.Queue = asyncio.Queue()
        self.rounds: asyncio.Queue = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.conn.fileno(), self._readable)
        self.dead = False

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                msg = self.conn.recv()
                (self.rounds if msg[0] == "round" else self.replies).put_nowait(msg)
        except (EOFError, OSError):
            self.loop.remove_reader(self.conn.fileno())
            self.dead = True
            self.replies.put_nowait(("dead", self.name))

    async def reply(self, timeout: float) -> tuple:
        msg = await asyncio.wait_for(self.replies.get(), timeout)
        if msg[0] == "dead":
            raise RuntimeError(f"child {self.name} died (exit code {self.proc.exitcode})")
        return msg

    async def ask(self, cmd: tuple, timeout: float = 30.0) -> tuple:
        self.conn.send(cmd)
        return await self.reply(timeout)

    async def stop(self, cmd: tuple = ("stop",), timeout: float = 15.0) -> None:
        if self.proc.is_alive() and not self.dead:
            try:
                await self.ask(cmd, timeout)
            except (RuntimeError, TimeoutError, OSError):
                pass
        await asyncio.to_thread(self.proc.join, 5)
        self.kill()

    def kill(self) -> None:
        try:
            self.loop.remove_reader(self.conn.fileno())
        except (ValueError, OSError, RuntimeError):
            pass
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# ==== measurement helpers =========================================================================

def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def r3(x: float) -> float:
    return round(x, 3)


async def throughput_run(call_many: Callable[[list[dict]], Awaitable[list]], total: int, window: int,
                         in_flight: int) -> tuple[float, int]:
    """Send ``total`` echo requests in windows of ``window``, ``in_flight`` windows outstanding.

    Returns (seconds, bad answers)."""
    nwin = total // window
    counter = itertools.count()
    bad = 0

    async def lane() -> None:
        nonlocal bad
        while (k := next(counter)) < nwin:
            base = k * window
            res = await asyncio.wait_for(call_many([{"n": base + j, "pad": PAD} for j in range(window)]), 60)
            if len(res) != window:
                bad += window
                continue
            first, last = res[0], res[-1]
            if type(first) is not dict or first.get("n") != base or type(last) is not dict \
                    or last.get("n") != base + window - 1:
                bad += 1
    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(in_flight)))
    return time.perf_counter() - t0, bad


@dataclasses.dataclass
class Pair:
    """One client/server configuration of the throughput test."""

    key: str
    label: str
    server: Child
    call_many: Callable[[list[dict]], Awaitable[list]]
    rates: list[float] = dataclasses.field(default_factory=list)
    server_cpu: list[float] = dataclasses.field(default_factory=list)
    client_cpu: list[float] = dataclasses.field(default_factory=list)
    bad: int = 0

    def summary(self, total: int) -> dict:
        return {
            "what": self.label,
            "msgs_per_s_best": round(max(self.rates)),
            "msgs_per_s_median": round(statistics.median(self.rates)),
            "msgs_per_s_runs": [round(r) for r in self.rates],
            "spread_pct": round(100 * (max(self.rates) - min(self.rates)) / statistics.median(self.rates), 1),
            "server_cpu_us_per_msg": r3(statistics.median(self.server_cpu) * 1e6 / total),
            "client_cpu_us_per_msg": r3(statistics.median(self.client_cpu) * 1e6 / total),
            "bad_answers": self.bad,
        }


async def measure_pair(pair: Pair, cfg: Config, total: int, record: bool) -> None:
    gc.collect()
    (_, s0) = await pair.server.ask(("cpu",))
    c0 = time.process_time()
    dt, bad = await throughput_run(pair.call_many, total, cfg.window, cfg.in_flight)
    c1 = time.process_time()
    (_, s1) = await pair.server.ask(("cpu",))
    if record:
        pair.rates.append(total / dt)
        pair.server_cpu.append(s1 - s0)
        pair.client_cpu.append(c1 - c0)
        pair.bad += bad
        progress(f"  {pair.key}: {total / dt:,.0f} msg/s  (server {1e6 * (s1 - s0) / total:.2f} us/msg, "
                 f"client {1e6 * (c1 - c0) / total:.2f} us/msg)")


# ==== fan-out ====================================================================================

async def fanout_phase(kind: str, n: int, server: Child, addr: tuple[str, int], token: str,
                       workers: list[Child], publish: Callable[[str], Awaitable[Any]], cfg: Config,
                       prof_path: str | None) -> dict:
    host, port = addr
    progress(f"fan-out ({kind}) N={n}: connecting {n} subscribers ...")
    shares = [n // len(workers) + (1 if i < n % len(workers) else 0) for i in range(len(workers))]
    for w, share in zip(workers, shares, strict=True):
        w.conn.send(("connect", host, port, share, token, cfg.connect_concurrency))
    connected = [await w.reply(300) for w in workers]
    ok = sum(c[2] for c in connected)
    failed = sum(c[3] for c in connected)
    connect_s = max(c[4] for c in connected)
    errors = [c[5] for c in connected if c[5]]
    (_, subs, conns) = await server.ask(("counts",))
    progress(f"  connected {ok}/{n} in {connect_s:.1f} s (server sees {subs} subscribers)"
             + (f"; first error: {errors[0]}" if errors else ""))
    for w in workers:
        await w.ask(("arm",))
    await asyncio.sleep(0.5)  # let the server finish the login burst
    await server.ask(("publish_times",))  # drop what the logins published
    await server.ask(("gc_watch",))
    if prof_path:
        await server.ask(("profile_start",))
    total_rounds = cfg.warmup_rounds + cfg.rounds
    per_round: dict[int, tuple[int, float, float]] = {}
    incomplete = 0
    for r in range(1, total_rounds + 1):
        for w in workers:  # drop notices of an earlier round that timed out
            while not w.rounds.empty():
                w.rounds.get_nowait()
        t0 = time.monotonic()
        await publish(f"{r} {t0!r}")
        got: list[tuple] = []
        deadline = time.monotonic() + 5.0
        for w in workers:
            while True:
                left = deadline - time.monotonic()
                try:
                    msg = await asyncio.wait_for(w.rounds.get(), max(left, 0.001))
                except TimeoutError:
                    msg = None
                if msg is None or msg[2] == r:
                    break
            if msg is not None:
                got.append(msg)
        if len(got) == len(workers):
            per_round[r] = (sum(m[3] for m in got), min(m[4] for m in got), max(m[5] for m in got))
        else:
            incomplete += 1
        await asyncio.sleep(random.uniform(*cfg.spacing))
    if prof_path:
        (_, text) = await server.ask(("profile_stop", prof_path, 25))
    (_, gc_pauses) = await server.ask(("gc_report",))
    (_, pub_times, sweeps) = await server.ask(("publish_times",))
    reports = [await w.ask(("report", list(range(1, total_rounds + 1))), 60) for w in workers]
    misses = sum(rep[3] for rep in reports)
    dups = sum(rep[4] for rep in reports)
    measured = [per_round[r] for r in range(cfg.warmup_rounds + 1, total_rounds + 1) if r in per_round]
    last = [m[2] * 1e3 for m in measured]
    first = [m[1] * 1e3 for m in measured]
    pub = [t[0] * 1e3 for t in pub_times[cfg.warmup_rounds:]]
    pub_cpu = [t[1] * 1e3 for t in pub_times[cfg.warmup_rounds:]]
    for w in workers:
        w.conn.send(("close",))
    for w in workers:
        await w.reply(60)
    # wait until the server has torn the connections down
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (_, subs_now, conns_now) = await server.ask(("counts",))
        if subs_now == 0 and conns_now <= conns - subs:
            break
        await asyncio.sleep(0.1)
    res = {
        "subscribers": n,
        "subscribed": ok,
        "connect_failures": failed,
        "connect_s": round(connect_s, 2),
        "rounds": len(measured),
        "rounds_incomplete": incomplete,
        "misses": misses + (n - ok) * total_rounds,
        "duplicates": dups,
        "last_ms_median": r3(statistics.median(last)) if last else None,
        "last_ms_p90": r3(pct(last, 90)) if last else None,
        "last_ms_max": r3(max(last)) if last else None,
        "first_ms_median": r3(statistics.median(first)) if first else None,
        "server_publish_ms_median": r3(statistics.median(pub)) if pub else None,
        "server_publish_ms_max": r3(max(pub)) if pub else None,
        "server_publish_cpu_ms_median": r3(statistics.median(pub_cpu)) if pub_cpu else None,
        "server_sweeps": len(sweeps),
        "server_sweep_ms_max": r3(max(sweeps) * 1e3) if sweeps else None,
        "server_gc_pauses": len(gc_pauses),
        "server_gc_ms_max": r3(max(gc_pauses) * 1e3) if gc_pauses else 0.0,
    }
    progress(f"  last subscriber: median {res['last_ms_median']} ms, p90 {res['last_ms_p90']} ms, "
             f"max {res['last_ms_max']} ms; first median {res['first_ms_median']} ms; "
             f"server publish loop median {res['server_publish_ms_median']} ms "
             f"(CPU {res['server_publish_cpu_ms_median']} ms); misses {res['misses']}")
    return res


# ==== main ========================================================================================

async def amain(cfg: Config, mode: str, admin_uri: str, registry: list[Child], prof_dir: Path | None,
                pg_dir: Path) -> dict:
    t_start = time.monotonic()
    code = code_fingerprint()
    dsn = await prepare_database(admin_uri)
    progress("starting servers (App on embedded PostgreSQL, bare echo, bare fan-out) and subscriber processes")
    app = Child("app", server_main, ("app", {"dsn": dsn}), registry)
    echo = Child("echo", server_main, ("echo", {}), registry)
    fan = Child("fanout", server_main, ("fanout", {}), registry)
    workers = [Child(f"subs{i}", worker_main, (i,), registry) for i in range(cfg.sub_processes)]
    (_, app_addr, _) = await app.reply(120)
    (_, echo_addr, _) = await echo.reply(60)
    (_, fan_addr, _) = await fan.reply(60)
    for w in workers:
        await w.reply(60)
    progress(f"App SimProt on {app_addr[0]}:{app_addr[1]}, echo on {echo_addr[1]}, fan-out on {fan_addr[1]}")

    # ---- clients of the throughput test: one connection each, kept for all runs ----------------------
    real_app = SimProtClient([app_addr], user=ADMIN, password=ADMIN_PW, client_name="simprot-bench",
                             reconnect=False)
    login = await real_app.connect()
    token = login["token"]
    real_echo = SimProtClient([echo_addr], user=ADMIN, password=ADMIN_PW, client_name="simprot-bench",
                              reconnect=False)
    await real_echo.connect()
    bare_echo = await BareClient.connect(*echo_addr)
    bare_app = await BareClient.connect(*app_addr)
    await asyncio.wait_for(bare_app.call("hello", {"versions": [1], "client": "bare-bench"}), 30)
    await asyncio.wait_for(bare_app.call("login", {"token": token}), 30)

    pairs = [
        Pair("a", "SimProtClient.request_many -> ctiserver App (real SimProt server)", app,
             lambda args: real_app.request_many("echo", args)),
        Pair("b", "bare pipelined client -> bare uvloop msgpack echo server", echo,
             lambda args: bare_echo.call_many("echo", args)),
        Pair("x_real_client_bare_server", "SimProtClient.request_many -> bare echo server (client cost)", echo,
             lambda args: real_echo.request_many("echo", args)),
        Pair("x_bare_client_real_server", "bare pipelined client -> ctiserver App (server cost)", app,
             lambda args: bare_app.call_many("echo", args)),
    ]
    sample = [1, 1000, "echo", {"n": 1000, "pad": PAD}]
    monitor = LoadMonitor(pg_dir)
    load: dict[str, dict] = {}
    mark = monitor.start()
    progress(f"throughput: {cfg.runs} runs x {cfg.messages:,} echo requests per configuration, windows of "
             f"{cfg.window} per write, {cfg.in_flight} windows in flight; warm-up {cfg.warmup:,}")
    for pair in pairs:
        await measure_pair(pair, cfg, cfg.warmup, record=False)
    for run in range(cfg.runs):
        progress(f" run {run + 1}/{cfg.runs}")
        for pair in pairs:
            await measure_pair(pair, cfg, cfg.messages, record=True)
    profiles: dict[str, str] = {}
    if prof_dir is not None:
        progress("profiling the servers (cProfile) for one run of each configuration")
        for pair in pairs:
            await pair.server.ask(("profile_start",))
            cp = cProfile.Profile()
            cp.enable()
            await throughput_run(pair.call_many, cfg.messages, cfg.window, cfg.in_flight)
            cp.disable()
            base = str(prof_dir / f"throughput_{pair.key}")
            await pair.server.ask(("profile_stop", base + "_server", 30))
            cp.dump_stats(base + "_client.pstats")
            Path(base + "_client.txt").write_text(profile_text(cp, 30))
            profiles[pair.key] = base
    load["throughput"] = monitor.stop(mark)
    summaries = {p.key: p.summary(cfg.messages) for p in pairs}
    a, b = summaries["a"], summaries["b"]
    await real_echo.close()
    bare_echo.close()
    bare_app.close()

    # ---- fan-out ------------------------------------------------------------------------------------
    fan_pub = await BareClient.connect(*fan_addr)
    await asyncio.wait_for(fan_pub.call("hello", {"versions": [1], "client": "bare-publisher"}), 30)

    async def publish_app(text: str) -> Any:
        return await real_app.request("messages.send", {"text": text})

    async def publish_bare(text: str) -> Any:
        return await asyncio.wait_for(fan_pub.call("publish", {"text": text}), 30)

    c_res: dict[str, dict] = {}
    d_res: dict[str, dict] = {}
    mark = monitor.start()
    for n in cfg.fanout_ns:
        pc = str(prof_dir / f"fanout_c_{n}") if prof_dir else None
        pd = str(prof_dir / f"fanout_d_{n}") if prof_dir else None
        c_res[str(n)] = await fanout_phase("c: ctiserver App", n, app, app_addr, token, workers, publish_app, cfg, pc)
        d_res[str(n)] = await fanout_phase("d: bare uvloop", n, fan, fan_addr, token, workers, publish_bare, cfg, pd)
    load["fanout"] = monitor.stop(mark)
    fan_pub.close()
    await real_app.close()
    progress("stopping")
    for w in workers:
        await w.stop(("exit",), 30)
    for s in (app, echo, fan):
        await s.stop()

    def met(res: dict, n: int, key: str, limit: float) -> bool | None:
        r = res.get(str(n))
        return None if r is None or r[key] is None else bool(r[key] <= limit and r["misses"] == 0)

    result: dict[str, Any] = {
        "bench": "simprot",
        "mode": mode,
        "machine": machine_info(),
        "code": code,
        "config": {
            "messages_per_run": cfg.messages, "warmup_messages": cfg.warmup, "runs": cfg.runs,
            "window_requests_per_write": cfg.window, "windows_in_flight": cfg.in_flight,
            "request_example": sample, "request_frame_bytes": len(frame(sample)),
            "answer_frame_bytes": len(frame([2, 1000, sample[3]])),
            "fanout_subscribers": list(cfg.fanout_ns), "fanout_rounds": cfg.rounds,
            "fanout_warmup_rounds": cfg.warmup_rounds, "fanout_spacing_ms": [int(x * 1000) for x in cfg.spacing],
            "subscriber_processes": cfg.sub_processes,
            "processes": "servers (App, echo, fan-out) and subscribers in spawned child processes, "
                         "clients of (a)/(b) and publishers in the bench process; no pinning",
        },
        "a": a,
        "b": b,
        "a_over_b": round(a["msgs_per_s_best"] / b["msgs_per_s_best"], 3),
        "a_over_b_median": round(a["msgs_per_s_median"] / b["msgs_per_s_median"], 3),
        "diagnostic": {k: v for k, v in summaries.items() if k.startswith("x_")},
        "c": c_res,
        "d": d_res,
        "goals": GOALS,
        "goals_met": {
            "a_over_b": a["msgs_per_s_best"] / b["msgs_per_s_best"] >= GOALS["a_over_b_min"],
            "fanout_1000_median": met(c_res, 1000, "last_ms_median", GOALS["fanout_1000_last_ms_max"]),
            "fanout_1000_p90": met(c_res, 1000, "last_ms_p90", GOALS["fanout_1000_last_ms_max"]),
            "fanout_10000_median": met(c_res, 10_000, "last_ms_median", GOALS["fanout_10000_last_ms_max"]),
            "fanout_10000_p90": met(c_res, 10_000, "last_ms_p90", GOALS["fanout_10000_last_ms_max"]),
        },
        "other_load": load,
        "elapsed_s": round(time.monotonic() - t_start, 1),
    }
    disturbed = [k for k, v in load.items() if v["other_cpu_pct_of_machine"] > 5]
    if disturbed:
        result["warning"] = (f"other processes used more than 5% of the machine during {', '.join(disturbed)}: "
                             "those numbers are disturbed; run again on a quiet machine")
        progress("WARNING: " + result["warning"])
    if prof_dir is not None:
        result["profiled"] = True
        result["profile_dir"] = str(prof_dir)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer messages and rounds (< 40 s)")
    p.add_argument("--profile", metavar="DIR", help="also cProfile the servers and the client; write reports to DIR")
    p.add_argument("--window", type=int, help="requests per write (default 1000)")
    p.add_argument("--in-flight", type=int, help="windows in flight (default 8)")
    p.add_argument("--fanout", help="comma-separated subscriber counts (default 1000,10000)")
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.window:
        cfg = dataclasses.replace(cfg, window=args.window)
    if args.in_flight:
        cfg = dataclasses.replace(cfg, in_flight=args.in_flight)
    if args.fanout is not None:
        cfg = dataclasses.replace(cfg, fanout_ns=tuple(int(x) for x in args.fanout.split(",") if x))
    prof_dir = Path(args.profile).resolve() if args.profile else None
    if prof_dir is not None:
        prof_dir.mkdir(parents=True, exist_ok=True)
    raise_nofile()

    def on_term(signum: int, frame: Any) -> None:
        progress(f"signal {signum}: stopping, cleaning up")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    logging.basicConfig(level=logging.WARNING)
    registry: list[Child] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
    remove_abandoned_clusters(PG_PREFIX)
    tmp = Path(tempfile.mkdtemp(prefix=PG_PREFIX))
    pg = None
    try:
        progress(f"starting embedded PostgreSQL in {tmp}")
        pg = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
        run = amain(cfg, "quick" if args.quick else "full", pg.get_uri(), registry, prof_dir, tmp / "pgdata")
        result = uvloop.run(asyncio.wait_for(run, cfg.time_limit))  # a hard bound on the whole run
        print(json.dumps(result, indent=2))
        return 0
    finally:
        for child in registry:
            child.kill()
        if pg is not None:
            try:
                pg.cleanup()
            except Exception as exc:  # noqa: BLE001 - cleanup must go on
                progress(f"stopping PostgreSQL failed: {exc!r}")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
