"""IVR media benchmark: N RTP legs on ONE core through rtpmedia's shared MediaClock.

Run ``.venv/bin/python bench/ivr_media_bench.py [--steps 250,500,1000] [--measure 10]``.  ONE JSON
object goes to stdout, progress to stderr; the whole run is bounded by ``--budget`` (default 85 s).

Two processes. This one is the IVR: pinned to CPU 0, one event loop (uvloop unless ``--loop
asyncio``), one :class:`rtpmedia.clock.MediaClock`, N :class:`rtpmedia.leg.MediaLeg` on 127.0.0.1,
each playing the same 3 s synthetic speech-like prompt (rtpmedia.tones.speech_like) in a loop as
paced PCMU (the prompt is encoded once, for all legs).  The receiver (a spawned child pinned to
CPU 1) has ONE UDP socket: it timestamps every packet in the kernel (SO_TIMESTAMPNS, so its own
scheduling does not blur the measurement) and keeps its RTP header; and it sends a 20 ms PCMU
frame to every leg every 20 ms (4 groups 5 ms apart): low-level noise, and for 1 % of the legs
(at least one) real DTMF digits (100 ms tones every 600 ms, "1234567890*#" in turn, over the
noise), so every leg listens through the batched in-band detector.

Per step (N legs): ``--warmup`` s, then ``--measure`` s measured, then the legs are closed.
Receiver side, over the measured window: per SSRC, intervals between packets of consecutive
sequence numbers; deviation = |interval - 20 ms|, p50/p99/max over all intervals; intervals over
30 ms (a frame >= 10 ms behind its predecessor); packets lost (sequence gaps).  IVR side, from the
clock's accounting: lateness of each 5 ms slot's first packet and of its last (the end of the
burst), p50/p99/max; frames later than 10 ms; skipped slots; IVR process CPU % (process_time /
wall); garbage-collector passes and their longest pause.  Digits: sent by the receiver (tones
that end >= 0.5 s before the step does) vs detected by the legs (per leg, per digit), and false
detections.  ``machine_load``: CPU other processes used on each core meanwhile (the machine may
be shared; a step with other load on CPU 0 measures the scheduler, not the code).  ``--rt`` runs
the IVR process SCHED_FIFO.  Goal: 1,000 legs with p99 <= 2 ms and no frame later than 10 ms.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # the per-core figure: before numpy is imported

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import select  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from multiprocessing.connection import Connection  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from rtpmedia import tones  # noqa: E402
from rtpmedia.clock import MediaClock  # noqa: E402
from rtpmedia.g711 import ulaw_encode  # noqa: E402
from rtpmedia.leg import MediaLeg, encode_cached, open_leg  # noqa: E402

GOAL_P99_MS = 2.0
GOAL_LATE_MS = 10.0
DIGITS = "1234567890*#"
DIGIT_PERIOD = 0.6  # s between digit starts
DIGIT_MS = 100
IVR_CPU, RECEIVER_CPU = 0, 1
_HDR = struct.Struct("!BBHII")
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def log(msg: str) -> None:
    print(f"[ivr-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pin(cpu: int) -> bool:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})
        return True
    return False


def pct(x: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(x, q)), 3) if x.size else None


# ==== the receiver (child process, CPU 1) ========================================================

def _streams(seconds: float) -> tuple[bytes, bytes, list[tuple[float, str]]]:
    """PCMU of noise and of noise + digits, and the digit schedule (start s, digit)."""
    rng = np.random.default_rng(11)
    n = int(seconds * 8000)
    noise = tones.add_noise(np.zeros(n, np.int16), 0.0, rng, ref_power=100.0**2)
    keyed = noise.astype(np.int32)
    plan = []
    t, k = 0.3, 0
    while t + DIGIT_MS / 1000 < seconds:
        d = DIGITS[k % len(DIGITS)]
        tone = tones.dtmf(d, DIGIT_MS, row_dbm0=-10, col_dbm0=-11)
        i = int(t * 8000)
        keyed[i:i + tone.size] += tone
        plan.append((t, d))
        t, k = t + DIGIT_PERIOD, k + 1
    keyed16 = np.clip(keyed, -32768, 32767).astype(np.int16)
    return ulaw_encode(noise), ulaw_encode(keyed16), plan


def _open_receiver_socket() -> tuple[socket.socket, bool]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt, size in ((SO_RCVBUFFORCE, 64 << 20), (socket.SO_RCVBUF, 4 << 20)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
            break
        except OSError:
            continue
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    kernel_ts = True
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        kernel_ts = False
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock, kernel_ts


def _run_step(sock: socket.socket, kernel_ts: bool, cmd: dict[str, Any]) -> dict[str, Any]:
    legs: list[tuple[int, int]] = cmd["legs"]  # (port, ssrc)
    keyed_idx = set(cmd["digit_legs"])
    warmup, measure = cmd["warmup"], cmd["measure"]
    total = warmup + measure
    noise, keyed, plan = _streams(total + 1.0)
    frames = len(noise) // 160
    rng = np.random.default_rng(len(legs))
    # per leg: address, ssrc, stream, offset (frames), seq
    state: list[list[Any]] = [[("127.0.0.1", port), int(rng.integers(1 << 32)), keyed if i in keyed_idx else noise,
              0 if i in keyed_idx else int(rng.integers(frames)), int(rng.integers(1 << 16))]
             for i, (port, _) in enumerate(legs)]
    groups = [state[g::4] for g in range(4)]
    hdrs, stamps = bytearray(), bytearray()
    sent = recv_all = send_errors = 0
    t0 = time.monotonic()
    start_measure, end = t0 + warmup, t0 + total
    # digits count as sent if their tone ends >= 0.5 s before the step does; keyed legs switch to
    # plain noise in the gap after the last of them (frame-exact, so no tone is cut short)
    counted = [(t, d) for t, d in plan if t + DIGIT_MS / 1000 <= total - 0.5]
    cut_frame = int(((counted[-1][0] + DIGIT_MS / 1000 + 0.1) if counted else 0.0) / 0.020)
    next_send, g, frame_no = t0, 0, 0
    cpu0 = time.process_time()
    recv = sock.recvmsg
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_send:
            for st in groups[g]:
                stream = st[2]
                f = (st[3] + frame_no) % frames
                if stream is keyed and frame_no >= cut_frame:
                    stream = noise
                seq = st[4]
                pkt = _HDR.pack(0x80, 0, seq, (f * 160) & 0xFFFFFFFF, st[1]) + stream[f * 160:f * 160 + 160]
                st[4] = (seq + 1) & 0xFFFF
                try:
                    sock.sendto(pkt, st[0])
                    sent += 1
                except OSError:
                    send_errors += 1
            g = (g + 1) % 4
            if g == 0:
                frame_no += 1
            next_send += 0.005
            if now - next_send > 0.1:  # fell far behind: resynchronise rather than burst
                next_send = now + 0.005
            continue
        ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
        if not ready:
            continue
        record = now >= start_measure
        for _ in range(4096):
            try:
                data, anc, _flags, _addr = recv(256, 64)
            except BlockingIOError:
                break
            recv_all += 1
            if record and len(data) >= 12:
                hdrs += data[:12]
                if anc:
                    stamps += anc[0][2]
                else:
                    stamps += struct.pack("qq", *divmod(time.time_ns(), 1_000_000_000))
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - t0
    digits_sent = [d for _, d in counted]
    return {"stats": _arrival_stats(hdrs, stamps), "sent": sent, "send_errors": send_errors,
            "received_total": recv_all, "cpu_pct": round(100 * cpu / wall, 1),
            "digits_sent_per_keyed_leg": "".join(digits_sent), "kernel_timestamps": kernel_ts}


def _arrival_stats(hdrs: bytearray, stamps: bytearray) -> dict[str, Any]:
    h = np.frombuffer(bytes(hdrs), dtype=np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"),
                                                   ("ts", ">u4"), ("ssrc", ">u4")]))
    ts = np.frombuffer(bytes(stamps), dtype=np.int64).reshape(-1, 2)
    t = ts[:, 0].astype(np.float64) + ts[:, 1] * 1e-9
    ssrc = h["ssrc"].astype(np.int64)
    seq = h["seq"].astype(np.int64)
    order = np.lexsort((t, ssrc))
    ssrc, seq, t = ssrc[order], seq[order], t[order]
    same = ssrc[1:] == ssrc[:-1]
    dseq = (seq[1:] - seq[:-1]) % 65536
    consecutive = same & (dseq == 1)
    dev = np.abs(np.diff(t)[consecutive] - 0.020) * 1e3
    # loss: per SSRC, expected (extended sequence span) minus packets received
    lost = 0
    bounds = np.flatnonzero(np.concatenate([[True], ~same, [True]]))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        ext = np.concatenate([[0], np.cumsum((seq[a + 1:b] - seq[a:b - 1]) % 65536)]) if b - a > 1 else [0]
        lost += int(ext[-1]) + 1 - int(b - a)
    return {"packets": int(t.size), "ssrcs": int(bounds.size - 1), "intervals": int(dev.size),
            "dev_ms_p50": pct(dev, 50), "dev_ms_p99": pct(dev, 99), "dev_ms_p999": pct(dev, 99.9),
            "dev_ms_max": round(float(dev.max()), 3) if dev.size else None,
            "intervals_over_30ms": int(np.sum(dev > 10.0)), "lost": lost}


def receiver_main(conn: Connection) -> None:
    pinned = pin(RECEIVER_CPU)
    sock, kernel_ts = _open_receiver_socket()
    conn.send({"port": sock.getsockname()[1], "pinned": pinned, "kernel_ts": kernel_ts,
               "rcvbuf": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)})
    while True:
        cmd = conn.recv()
        if cmd.get("op") != "step":
            break
        conn.send(_run_step(sock, kernel_ts, cmd))
    sock.close()


# ==== the IVR (this process, CPU 0) ==============================================================

class LoadWatch:
    """CPU the rest of the machine used on each core during a window: user + nice + system time
    of the core (/proc/stat) minus our two processes' (/proc/PID/stat; IVR pinned to CPU 0,
    receiver to CPU 1). Interrupt and softirq time is left out (our own packets make most of it);
    steal is reported apart; ``busy_pct_by_cpu`` is everything (user, system, irq, softirq, steal)."""

    def __init__(self, receiver_pid: int) -> None:
        self.pids = (os.getpid(), receiver_pid)
        self.tick = os.sysconf("SC_CLK_TCK")
        self._t0 = self._sample()

    def _sample(self) -> tuple[list[tuple[int, int, int]], list[int]]:
        cores = []
        try:
            with open("/proc/stat") as f:
                for line in f:
                    if line.startswith("cpu") and line[3].isdigit():
                        v = [int(x) for x in line.split()[1:]]
                        cores.append((v[0] + v[1] + v[2], v[7] if len(v) > 7 else 0, sum(v[:3]) + sum(v[5:8])))
            ours: list[int] = []
            for pid in self.pids:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ours.append(int(fields[11]) + int(fields[12]))
        except (OSError, ValueError, IndexError):
            return [], []
        return cores, ours

    def start(self) -> None:
        self._t0 = self._sample()
        self._w0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        (c0, o0), (c1, o1) = self._t0, self._sample()
        wall = (time.monotonic() - self._w0) * self.tick
        if not c0 or not c1 or len(c1) < 2:
            return {}
        other = [(c1[i][0] - c0[i][0] - (o1[i] - o0[i] if i < 2 else 0)) / wall * 100 for i in range(len(c1))]
        return {"other_load_pct_by_cpu": [round(max(0.0, x), 1) for x in other],
                "steal_pct_by_cpu": [round((c1[i][1] - c0[i][1]) / wall * 100, 1) for i in range(len(c1))],
                "busy_pct_by_cpu": [round((c1[i][2] - c0[i][2]) / wall * 100, 1) for i in range(len(c1))]}

class GcWatch:
    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.max_ms = 0.0
        self._t = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.passes[info["generation"]] += 1
            self.max_ms = max(self.max_ms, (time.perf_counter() - self._t) * 1e3)

    def reset(self) -> None:
        self.passes, self.max_ms = [0, 0, 0], 0.0


async def _wait_conn(conn: Connection, timeout: float) -> Any:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await asyncio.wait_for(fut, timeout)
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


async def run_step(n: int, args: argparse.Namespace, conn: Connection, recv_port: int,
                   prompt: np.ndarray, gcw: GcWatch, load: LoadWatch) -> dict[str, Any]:
    clock = MediaClock(asyncio.get_running_loop(), groups=args.groups, lead=args.lead / 1000, early=args.early / 1000)
    detected: dict[int, list[str]] = {}
    legs: list[MediaLeg] = []
    for i in range(n):
        sink = detected.setdefault(i, [])
        leg = await open_leg(("127.0.0.1", 0), ("127.0.0.1", recv_port), clock=clock,
                             on_digit=lambda d, src, sink=sink: sink.append(d))
        legs.append(leg)
    for leg in legs:
        leg.play(prompt, loop=True)
    keyed = list(range(0, n, 100))  # 1 % of the legs, at least one
    ports = [(leg.transport.get_extra_info("sockname")[1], leg.ssrc) for leg in legs if leg.transport]
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    conn.send({"op": "step", "legs": ports, "digit_legs": keyed, "warmup": args.warmup, "measure": args.measure})
    await asyncio.sleep(args.warmup)
    clock.reset_history()
    gcw.reset()
    late0, skipped0, sent0 = clock.late_frames, clock.skipped_slots, clock.frames_sent
    rx0 = sum(leg.received for leg in legs)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    load.start()
    await asyncio.sleep(args.measure)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    other = load.stop()
    start, end, frames = clock.lateness_history()
    late, skipped, sent = clock.late_frames - late0, clock.skipped_slots - skipped0, clock.frames_sent - sent0
    rx = sum(leg.received for leg in legs) - rx0
    gc_passes, gc_max = list(gcw.passes), gcw.max_ms
    res = await _wait_conn(conn, args.warmup + args.measure + 30)
    await asyncio.sleep(0.4)  # digits still in the jitter buffer / state machine
    for leg in legs:
        leg.close()
    clock.close()
    if args.gc_freeze:
        gc.unfreeze()
    busy = frames > 0
    first_ms, last_ms = start[busy] * 1e3, end[busy] * 1e3
    want = res.pop("digits_sent_per_keyed_leg")
    correct = wrong = 0
    for i, got in detected.items():
        exp = Counter(want) if i in keyed else Counter()
        ok = sum((Counter(got) & exp).values())
        correct += ok
        wrong += len(got) - ok
    rstats = res.pop("stats")
    return {
        "legs": n,
        "receiver": rstats,
        "sender": {
            "frames_sent": sent, "frames_per_s": round(sent / wall),
            "slot_first_packet_lateness_ms": {"p50": pct(first_ms, 50), "p99": pct(first_ms, 99),
                                              "max": round(float(first_ms.max()), 3) if first_ms.size else None},
            "slot_last_packet_lateness_ms": {"p50": pct(last_ms, 50), "p99": pct(last_ms, 99),
                                             "max": round(float(last_ms.max()), 3) if last_ms.size else None},
            "frames_later_than_10ms": late, "skipped_slots": skipped,
            "packets_received_by_legs": rx,
            "dsp_steps": clock.dsp_steps, "callback_errors": clock.callback_errors,
        },
        "ivr_cpu_pct": round(100 * cpu / wall, 1),
        "ivr_cpu_us_per_packet_sent_or_received": round(cpu / max(1, sent + rx) * 1e6, 3),
        "gc_passes_by_generation": gc_passes, "gc_longest_pause_ms": round(gc_max, 3),
        "digits": {"sent": len(want) * len(keyed), "detected": correct, "false": wrong, "keyed_legs": len(keyed)},
        "receiver_process": res,
        "machine_load": other,
        "goal_met": bool(rstats["dev_ms_p99"] is not None and rstats["dev_ms_p99"] <= GOAL_P99_MS
                         and late == 0 and rstats["intervals_over_30ms"] == 0),
    }


async def run_all(args: argparse.Namespace, conn: Connection, recv_port: int,
                  receiver_pid: int) -> list[dict[str, Any]]:
    prompt = tones.speech_like(3.0, np.random.default_rng(5))
    encode_cached(prompt, 0)  # encoded once here; every leg's play() finds it
    gcw = GcWatch()
    load = LoadWatch(receiver_pid)
    out: list[dict[str, Any]] = []
    t_end = time.monotonic() + args.budget
    for n in args.steps:
        if time.monotonic() + args.warmup + args.measure + 3 > t_end:
            log(f"budget: skipping the step of {n} legs")
            out.append({"legs": n, "skipped": "time budget"})
            continue
        log(f"step: {n} legs, {args.warmup} s warm-up + {args.measure} s measured")
        r = await run_step(n, args, conn, recv_port, prompt, gcw, load)
        log(f"  {n} legs: receiver p99 {r['receiver']['dev_ms_p99']} ms, max {r['receiver']['dev_ms_max']} ms, "
            f"late {r['sender']['frames_later_than_10ms']}, lost {r['receiver']['lost']}, cpu {r['ivr_cpu_pct']} %, "
            f"digits {r['digits']['detected']}/{r['digits']['sent']}, other load {r['machine_load']}")
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="250,500,1000", help="leg counts, comma-separated")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--measure", type=float, default=10.0)
    ap.add_argument("--groups", type=int, default=4, help="phase groups of the MediaClock")
    ap.add_argument("--lead", type=float, default=1.0, help="MediaClock lead, ms (0: loop timer only)")
    ap.add_argument("--early", type=float, default=1.0, help="MediaClock early tolerance, ms")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--gc-freeze", action=argparse.BooleanOptionalAction, default=True,
                    help="gc.freeze() after set-up, as the App does (default on)")
    ap.add_argument("--rt", action="store_true",
                    help="run the IVR process SCHED_FIFO (priority 10), as a media server would be run")
    ap.add_argument("--budget", type=float, default=85.0, help="wall seconds for the whole run")
    args = ap.parse_args()
    args.steps = [int(x) for x in args.steps.split(",") if x]
    if not (all(1 <= n <= 5000 for n in args.steps) and 0 <= args.warmup <= 30 and 1 <= args.measure <= 60
            and 10 <= args.budget <= 600 and 1 <= args.groups <= 10):
        ap.error("steps 1..5000 legs, warmup 0..30 s, measure 1..60 s, budget 10..600 s, groups 1..10")
    t0 = time.monotonic()
    pinned = pin(IVR_CPU)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=receiver_main, args=(child,), daemon=True)
    proc.start()  # before --rt: the receiver keeps the normal scheduler
    rt = False
    if args.rt and hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            rt = True
        except OSError as exc:
            log(f"--rt: {exc}; running with the normal scheduler")
    try:
        if not parent.poll(30):
            raise RuntimeError("the receiver did not start")
        hello = parent.recv()
        loop: asyncio.AbstractEventLoop
        if args.loop == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        try:
            steps = loop.run_until_complete(run_all(args, parent, hello["port"], proc.pid or 0))
        finally:
            loop.close()
        parent.send({"op": "quit"})
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    last = next((s for s in reversed(steps) if "receiver" in s), None)
    print(json.dumps({
        "bench": "ivr_media",
        "goal": {"legs": 1000, "receiver_dev_ms_p99_max": GOAL_P99_MS, "frames_later_than_ms": GOAL_LATE_MS},
        "goal_met_at_1000": next((s["goal_met"] for s in steps if s.get("legs") == 1000 and "goal_met" in s), None),
        "steps": steps,
        "config": {"warmup_s": args.warmup, "measure_s": args.measure, "groups": args.groups, "lead_ms": args.lead,
                   "early_ms": args.early, "loop": args.loop,
                   "gc_freeze": args.gc_freeze, "ivr_sched_fifo": rt, "prompt": "3 s tones.speech_like, looped, PCMU",
                   "ivr_pinned_cpu": IVR_CPU if pinned else None,
                   "receiver_pinned_cpu": RECEIVER_CPU if hello["pinned"] else None,
                   "receiver_kernel_timestamps": hello["kernel_ts"], "receiver_rcvbuf": hello["rcvbuf"]},
        "largest_step_ok": bool(last and last.get("goal_met")),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "machine": platform.machine(), "kernel": platform.release()},
        "elapsed_s": round(time.monotonic() - t0, 1),
    }))


if __name__ == "__main__":
    main()
