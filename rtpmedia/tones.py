"""8 kHz int16 test signals: DTMF digits (offset, twist, noise), silence and a synthetic speech-like signal.

Levels are in dBm0 per G.711: a full-scale sine (peak 32767) is +3.17 dBm0, so 0 dBm0 is a sine of
peak ~22,700.  Everything is deterministic given a ``numpy.random.Generator``; nothing here reads a
clock or touches a file.  The "speech-like" signal is SYNTHETIC (harmonics of a moving fundamental
shaped by moving formants, syllabic modulation, noise bursts and pauses), not recorded speech.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FS = 8000
ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
DIGITS = "".join(KEYPAD)
FULL_SCALE_DBM0 = 3.17

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.float64]


def digit_freqs(digit: str) -> tuple[float, float]:
    """(row Hz, column Hz) of a DTMF digit; ValueError for anything not in 0-9 * # A-D."""
    for r, line in enumerate(KEYPAD):
        c = line.find(digit.upper()) if len(digit) == 1 else -1
        if c >= 0:
            return ROW_HZ[r], COL_HZ[c]
    raise ValueError(f"not a DTMF digit: {digit!r}")


def dbm0_to_amplitude(level_dbm0: float) -> float:
    """Peak amplitude (int16 scale) of a sine at ``level_dbm0``."""
    return 32767.0 * 10.0 ** ((level_dbm0 - FULL_SCALE_DBM0) / 20.0)


def to_int16(x: FloatArray) -> Int16Array:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def samples(ms: float) -> int:
    return int(round(ms * FS / 1000.0))


def silence(ms: float) -> Int16Array:
    return np.zeros(samples(ms), dtype=np.int16)


def dtmf(
    digit: str,
    ms: float,
    *,
    offset_pct: float = 0.0,
    row_offset_pct: float | None = None,
    col_offset_pct: float | None = None,
    row_dbm0: float = -7.0,
    col_dbm0: float = -7.0,
    phase: float = 0.0,
) -> Int16Array:
    """One DTMF digit of ``ms`` milliseconds.  ``offset_pct`` shifts both tones (per-tone overrides
    win); twist is set with ``row_dbm0``/``col_dbm0`` (normal twist: column weaker than row)."""
    fr, fc = digit_freqs(digit)
    fr *= 1.0 + (offset_pct if row_offset_pct is None else row_offset_pct) / 100.0
    fc *= 1.0 + (offset_pct if col_offset_pct is None else col_offset_pct) / 100.0
    t = np.arange(samples(ms)) / FS
    x = dbm0_to_amplitude(row_dbm0) * np.sin(2 * np.pi * fr * t + phase)
    x += dbm0_to_amplitude(col_dbm0) * np.sin(2 * np.pi * fc * t + 2.1 * phase + 0.7)
    return to_int16(x)


def sequence(
    digits: str, tone_ms: float = 50.0, gap_ms: float = 50.0, lead_ms: float = 50.0, **kw: float
) -> Int16Array:
    """``lead_ms`` silence, then each digit followed by ``gap_ms`` silence.  ``kw`` goes to :func:`dtmf`."""
    parts = [silence(lead_ms)]
    for d in digits:
        parts += [dtmf(d, tone_ms, **kw), silence(gap_ms)]
    return np.concatenate(parts)


def add_noise(x: Int16Array, snr_db: float, rng: np.random.Generator, *, ref_power: float | None = None) -> Int16Array:
    """White Gaussian noise at ``snr_db`` below ``ref_power`` (default: mean power of the non-zero
    samples of ``x``, i.e. of the tones, not of the gaps)."""
    xf = x.astype(np.float64)
    if ref_power is None:
        nz = xf[xf != 0]
        ref_power = float(np.mean(nz * nz)) if nz.size else 1.0
    sigma = np.sqrt(ref_power / 10.0 ** (snr_db / 10.0))
    return to_int16(xf + rng.normal(0.0, sigma, x.shape))


def speech_like(seconds: float, rng: np.random.Generator, level_dbm0: float = -15.0) -> Int16Array:
    """Synthetic voiced/unvoiced "speech": a fundamental wandering over 100-300 Hz, its harmonics
    up to 3.6 kHz weighted by three moving formants, 3-6 Hz syllabic envelope, fricative noise
    bursts and pauses, plus background noise.  Not real speech; a talk-off stress signal."""
    n = int(seconds * FS)
    t = np.arange(n) / FS

    def wander(lo: float, hi: float, rate_hz: float) -> FloatArray:
        # smooth random curve in [lo, hi]: sum of a few slow sines with random phases
        k = rng.uniform(0.3, 1.0, 3) * rate_hz
        ph = rng.uniform(0, 2 * np.pi, 3)
        s = sum(np.sin(2 * np.pi * kk * t + p) for kk, p in zip(k, ph, strict=True)) / 3.0
        return lo + (hi - lo) * (0.5 + 0.5 * np.asarray(s))

    f0 = wander(100.0, 300.0, 1.5)
    formants = [(wander(300, 900, 2.0), 90.0), (wander(900, 2500, 2.5), 120.0), (wander(2500, 3300, 1.0), 200.0)]
    base_phase = 2 * np.pi * np.cumsum(f0) / FS
    voiced = np.zeros(n)
    for h in range(1, 36):
        fh = h * f0
        gain = sum(1.0 / (1.0 + ((fh - fc) / bw) ** 2) for fc, bw in formants)
        gain = np.where(fh < 3600.0, gain / h**0.5, 0.0)
        voiced += gain * np.sin(h * base_phase + rng.uniform(0, 2 * np.pi))
    syll = np.clip(np.sin(2 * np.pi * wander(3.0, 6.0, 0.3) * t + rng.uniform(0, 6)), 0.0, None) ** 0.7
    pauses = (wander(0.0, 1.0, 0.4) > 0.2).astype(np.float64)
    # unvoiced bursts: high-passed noise (first difference) in some syllable gaps
    fric = np.diff(rng.normal(0, 1, n + 1)) * (wander(0.0, 1.0, 2.0) > 0.75)
    x = (voiced / (np.std(voiced) + 1e-9)) * syll * pauses + 0.4 * fric * pauses
    x = x / (np.sqrt(np.mean(x * x)) + 1e-9)
    x += rng.normal(0, 0.03, n)
    rms = dbm0_to_amplitude(level_dbm0) / np.sqrt(2.0)
    return to_int16(x * rms)
