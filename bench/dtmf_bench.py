"""In-band DTMF benchmark: channels analysed in real time per core with the batched path.

Run ``.venv/bin/python bench/dtmf_bench.py [--channels K] [--seconds S] [--budget B]``.  ONE JSON
object goes to stdout, progress to stderr.  K channels of S seconds of 8 kHz audio each (default
4000 x 10 s) go through :class:`rtpmedia.dtmf.DtmfBank` one 105-sample frame step at a time.  The
audio comes from a pool of 32 distinct 10 s signals: digit strings (60 ms tone, 60 ms gap), the
synthetic speech-like signal of :mod:`rtpmedia.tones`, white noise and silence.  Two phases:

- "typical" (the headline number): every channel plays speech-like signal, noise or silence;
- "keying": channel k plays pool signal k % 32, so 1/4 of the channels key digits back to back
  all the time - far more than real traffic; tone frames take the costlier candidate stage.
  BLAS is held to one thread and CPU time is measured with ``time.process_time()``:
channels_per_core = K * audio_seconds / cpu_seconds.  The run stops after ``--budget`` seconds
of CPU (default 45 s) and reports on what it did.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # per-core figure: before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from rtpmedia import tones  # noqa: E402
from rtpmedia.dtmf import FS, DtmfBank, N  # noqa: E402

POOL = 32


def make_pool(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(POOL, frames, N) int16 signals, and how many digits one digit-string signal holds."""
    n = int(seconds * FS)
    out = np.zeros((POOL, n), np.int16)
    digits = 0
    for i in range(POOL):
        kind = i % 4
        if kind == 0:  # digit strings, 60 ms tones, 60 ms gaps
            seq = tones.sequence(tones.DIGITS * 8, tone_ms=60, gap_ms=60)[:n]
            out[i, : seq.size] = seq
            digits = min(len(tones.DIGITS) * 8, int(n / (0.12 * FS)))
        elif kind == 1:
            out[i] = tones.speech_like(seconds, rng)
        elif kind == 2:
            out[i] = tones.add_noise(np.zeros(n, np.int16), 0.0, rng, ref_power=1e4)
        # kind 3: silence
    frames = n // N
    return out[:, : frames * N].reshape(POOL, frames, N), digits


def run_phase(pool: np.ndarray, which: np.ndarray, budget: float, name: str) -> dict[str, object]:
    """Feed every channel's frames step by step through one DtmfBank; CPU-time it."""
    frames = pool.shape[1]
    bank = DtmfBank(which.size)
    found = steps = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in range(frames):
        block = pool[which, t]  # (K, N): assembling the step's frames is part of the cost
        found += len(bank.feed(block))
        steps += 1
        cpu = time.process_time() - cpu0
        if t % 200 == 0:
            print(f"{name}: step {t}/{frames} cpu {cpu:.1f}s", file=sys.stderr)
        if cpu > budget:
            print(f"{name}: budget reached, stopping early", file=sys.stderr)
            break
    found += len(bank.flush())
    cpu = time.process_time() - cpu0
    audio_s = steps * N / FS
    return {
        "channels": int(which.size),
        "audio_seconds_per_channel": round(audio_s, 3),
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(time.perf_counter() - wall0, 3),
        "channels_per_core_realtime": round(which.size * audio_s / cpu, 1),
        "digits_found": found,
        "completed": steps == frames,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--budget", type=float, default=45.0, help="CPU seconds for both phases together")
    args = ap.parse_args()
    if not (POOL <= args.channels <= 100_000 and 0.1 <= args.seconds <= 60 and 1 <= args.budget <= 55):
        ap.error(f"channels {POOL}..100000, seconds 0.1..60, budget 1..55")
    rng = np.random.default_rng(7)
    print(f"building {POOL} x {args.seconds} s signals", file=sys.stderr)
    pool, pool_digits = make_pool(args.seconds, rng)
    k = np.arange(args.channels)
    quiet = np.flatnonzero(np.arange(POOL) % 4 != 0)  # pool signals that are not digit strings
    no_digits = quiet[k % quiet.size]
    keying = k % POOL
    typical = run_phase(pool, no_digits, args.budget / 2, "typical")
    heavy = run_phase(pool, keying, args.budget / 2, "keying")
    heavy["digits_expected"] = int(np.sum(keying % 4 == 0)) * pool_digits if heavy["completed"] else None
    print(
        json.dumps(
            {
                "bench": "dtmf",
                "frame_samples": N,
                "channels_per_core_realtime": typical["channels_per_core_realtime"],
                "typical_speech_noise_silence": typical,
                "keying_quarter_of_channels": heavy,
                "numpy": np.__version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
