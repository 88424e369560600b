"""Prompts: any WAV becomes 8 kHz mono int16, in-band content kept, out-of-band removed, cached."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from rtpmedia.prompts import PromptCache, PromptError, load_prompt


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def level_at(pcm: np.ndarray, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(spectrum[int(round(freq * len(pcm) / 8000))] / len(pcm))


@pytest.mark.parametrize(("rate", "channels", "subtype"), [(44100, 2, "FLOAT"), (16000, 1, "PCM_16"),
                                                          (8000, 1, "ULAW"), (48000, 1, "PCM_24"),
                                                          (22050, 1, "ALAW")])
def test_any_wav_becomes_8khz_mono_with_the_tone_kept(tmp_path: Path, rate: int, channels: int, subtype: str) -> None:
    path = tmp_path / f"p{rate}.wav"
    mono = tone(1000.0, rate, 1.0)
    soundfile.write(path, np.stack([mono] * channels, axis=1) if channels > 1 else mono, rate, subtype=subtype)
    pcm = load_prompt(path)
    assert pcm.dtype == np.int16 and pcm.ndim == 1 and abs(len(pcm) - 8000) <= 2
    assert abs(int(np.abs(pcm[1000:7000]).max()) - 16384) < 1200    # the 1 kHz tone at its level
    assert level_at(pcm, 1000.0) > 50 * level_at(pcm, 2500.0)      # and nothing else


def test_content_above_the_telephone_band_does_not_alias(tmp_path: Path) -> None:
    path = tmp_path / "hi.wav"
    soundfile.write(path, tone(6000.0, 44100, 1.0), 44100, subtype="FLOAT")   # would alias to 2 kHz
    pcm = load_prompt(path)
    inner = pcm[100:-100].astype(np.int32)               # (the abrupt start and end are broadband)
    assert np.abs(inner).max() < 500                     # 30 dB or more below the 16,384 it had


def test_missing_and_unreadable_files_name_the_file(tmp_path: Path) -> None:
    cache = PromptCache()
    with pytest.raises(PromptError) as err:
        cache.get(tmp_path / "welcome.wav")
    assert err.value.path.endswith("welcome.wav") and "missing" in str(err.value)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(PromptError) as err:
        load_prompt(bad)
    assert "bad.wav" in str(err.value)


def test_cache_reads_once_and_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "p.wav"
    soundfile.write(path, tone(500.0, 8000, 0.5), 8000, subtype="PCM_16")
    cache = PromptCache()
    first = cache.get(path)
    assert cache.get(path) is first and cache.loads == 1
    soundfile.write(path, tone(500.0, 8000, 0.25), 8000, subtype="PCM_16")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))
    assert len(cache.get(path)) == 2000 and cache.loads == 2


def test_cache_is_bounded(tmp_path: Path) -> None:
    cache = PromptCache(max_bytes=20_000)
    for n in range(3):
        path = tmp_path / f"p{n}.wav"
        soundfile.write(path, tone(500.0, 8000, 1.0), 8000, subtype="PCM_16")   # 16,000 bytes each
        cache.get(path)
    assert len(cache._items) == 1
