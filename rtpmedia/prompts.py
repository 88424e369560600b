"""IVR prompts: any WAV (rate, channels, sample format) read once, turned into 8 kHz mono int16.

:func:`load_prompt` reads a file with ``soundfile`` (libsndfile: PCM 8/16/24/32, float, µ-law,
A-law ...), mixes the channels down, and resamples to 8 kHz with a windowed-sinc filter whose
cut-off sits below the new Nyquist frequency (so a 44.1 kHz recording does not alias into the
telephone band). :class:`PromptCache` keeps the results, keyed by path, size and modification time
(an edited file is read again), bounded in bytes (least recently used out first).

A file that is missing or unreadable raises :class:`PromptError` naming the file: the IVR treats
it as a configuration error when a call flow is loaded, not in the middle of a call.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

RATE = 8000
MAX_SECONDS = 600.0   # a prompt longer than ten minutes is a mistake (or music: give it its own limit)


class PromptError(Exception):
    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def resample(x: npt.NDArray[np.float64], src: int, dst: int = RATE, half_width: int = 24) -> npt.NDArray[np.float64]:
    """Band-limited resampling: each output sample is a Kaiser-windowed sinc sum over the input
    around its position; the cut-off is 0.95 of the lower Nyquist frequency."""
    if src == dst or len(x) == 0:
        return x.astype(np.float64, copy=True)
    ratio = dst / src
    cutoff = 0.95 * min(1.0, ratio)            # relative to the input's Nyquist
    n_out = int(math.floor(len(x) * ratio))
    out = np.empty(n_out, dtype=np.float64)
    width = int(math.ceil(half_width / cutoff))
    taps = np.arange(-width + 1, width + 1)
    window_beta = 8.0
    chunk = 4096
    for lo in range(0, n_out, chunk):
        t = np.arange(lo, min(n_out, lo + chunk)) / ratio          # positions in input samples
        base = np.floor(t).astype(np.int64)
        idx = base[:, None] + taps[None, :]
        d = t[:, None] - idx                                        # distance to each input sample
        w = np.kaiser(2 * width + 1, window_beta)
        weights = cutoff * np.sinc(cutoff * d) * np.interp(d, np.arange(-width, width + 1), w)
        valid = (idx >= 0) & (idx < len(x))
        samples = np.where(valid, x[np.clip(idx, 0, len(x) - 1)], 0.0)
        out[lo:lo + len(t)] = (samples * weights).sum(axis=1)
    return out


def load_prompt(path: str | os.PathLike[str]) -> npt.NDArray[np.int16]:
    """The file as 8 kHz mono int16 (PromptError naming the file if it cannot be used)."""
    try:
        info = soundfile.info(os.fspath(path))
        if info.frames / info.samplerate > MAX_SECONDS:
            raise PromptError(path, f"{info.frames / info.samplerate:.0f} s long; at most {MAX_SECONDS:.0f} s")
        data, rate = soundfile.read(os.fspath(path), dtype="float64", always_2d=True)
    except PromptError:
        raise
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise PromptError(path, f"cannot read it as audio ({exc})") from None
    mono = data.mean(axis=1)
    pcm = resample(mono, int(rate))
    return np.clip(np.round(pcm * 32767.0), -32768, 32767).astype(np.int16)


class PromptCache:
    """Loaded prompts, re-read when the file changes, at most ``max_bytes`` of samples kept."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int, int], npt.NDArray[np.int16]] = OrderedDict()
        self._bytes = 0
        self.loads = 0

    def get(self, path: str | os.PathLike[str]) -> npt.NDArray[np.int16]:
        p = Path(path)
        try:
            st = p.stat()
        except OSError as exc:
            raise PromptError(path, f"missing ({exc.strerror})") from None
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        got = self._items.get(key)
        if got is not None:
            self._items.move_to_end(key)
            return got
        got = load_prompt(p)
        self.loads += 1
        self._items[key] = got
        self._bytes += got.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
        return got
