"""In-band DTMF detection (rtpmedia.dtmf) against the Q.24 figures of the issue, on synthetic signals
from rtpmedia.tones: digits, offsets, durations, twist, noise, talk-off, strings, batched == single."""

from __future__ import annotations

import numpy as np
import pytest

from rtpmedia import tones
from rtpmedia.dtmf import FS, KEYPAD, DtmfBank, DtmfDetector, DtmfDigit, DtmfError, DtmfParams, N

ALIGN = (0, 17, 52, 88)  # samples of silence before the tone: where it falls in the 105-sample grid


def detect(x: np.ndarray, seed: int = 0) -> list[DtmfDigit]:
    """Feed in random block sizes (as RTP packets of varying length would), then flush."""
    rng = np.random.default_rng(seed)
    det = DtmfDetector()
    out: list[DtmfDigit] = []
    i = 0
    while i < x.size:
        k = int(rng.integers(1, 400))
        out += det.feed(x[i : i + k])
        i += k
    return out + det.flush()


def tone_at(align: int, digit: str, ms: float, **kw: float) -> np.ndarray:
    return np.concatenate([np.zeros(align, np.int16), tones.dtmf(digit, ms, **kw), tones.silence(60)])


def digits_of(x: np.ndarray) -> str:
    return "".join(d.digit for d in detect(x))


# -- acceptance at nominal frequency ------------------------------------------------------------------


@pytest.mark.parametrize("ms", [40, 50, 100])
def test_all_16_digits_detected_once_with_start_and_duration(ms: int) -> None:
    for digit in tones.DIGITS:
        for align in ALIGN:
            got = detect(tone_at(align, digit, ms))
            assert [d.digit for d in got] == [digit], (digit, align, ms)
            tone_len = tones.samples(ms)
            assert align - N < got[0].start <= align + N
            assert got[0].duration % N == 0 and 2 * N <= got[0].duration <= tone_len + N


def test_keypad_covers_all_sixteen() -> None:
    assert sorted(KEYPAD) == sorted("0123456789*#ABCD") and len(set(tones.DIGITS)) == 16


def test_long_tone_is_one_digit_with_its_duration() -> None:
    got = detect(tone_at(30, "7", 1000))
    assert [d.digit for d in got] == ["7"]
    assert abs(got[0].duration - FS) <= 2 * N


# -- frequency tolerance: accept within 1.5 %, reject at 3.5 % and beyond -----------------------------


@pytest.mark.parametrize("offset", [-1.5, 1.5])
def test_offset_within_1_5_percent_accepted(offset: float) -> None:
    for digit in tones.DIGITS:
        for align in ALIGN[:2]:
            assert digits_of(tone_at(align, digit, 50, offset_pct=offset)) == digit, (digit, align)


@pytest.mark.parametrize("offset", [-5.0, -3.5, 3.5, 5.0])
def test_offset_of_3_5_percent_or_more_rejected(offset: float) -> None:
    for digit in tones.DIGITS:
        for align in ALIGN[:2]:
            assert digits_of(tone_at(align, digit, 100, offset_pct=offset)) == "", (digit, align)


@pytest.mark.parametrize("which", ["row", "col"])
def test_one_tone_off_by_3_5_percent_rejected(which: str) -> None:
    for digit in tones.DIGITS:
        for off in (-3.5, 3.5):
            kw = {"row_offset_pct": off} if which == "row" else {"col_offset_pct": off}
            assert digits_of(tone_at(5, digit, 100, **kw)) == "", (digit, off)


def test_far_off_tones_are_not_taken_for_the_nominal_digit() -> None:
    # +-10 % may land within 1.5 % of ANOTHER key's pair (697 * 1.1 = 767 ~ 770): that one is correct
    for digit in tones.DIGITS:
        for off in (-10.0, 10.0):
            assert digit not in digits_of(tone_at(5, digit, 100, offset_pct=off))


# -- duration: reject < 23 ms, accept >= 40 ms --------------------------------------------------------


@pytest.mark.parametrize("ms", [20, 22])
def test_short_tones_rejected_at_every_alignment(ms: int) -> None:
    for align in range(0, N, 5):
        for digit in "159#D":
            assert digits_of(tone_at(align, digit, ms)) == "", (digit, align, ms)


@pytest.mark.parametrize("ms", [40, 45])
def test_40_and_45_ms_accepted_at_every_alignment(ms: int) -> None:
    for align in range(0, N, 5):
        for digit in "159#D0*":
            assert digits_of(tone_at(align, digit, ms)) == digit, (digit, align, ms)


# -- twist: normal (column weaker) <= 8 dB, reverse (row weaker) <= 4 dB -----------------------------


@pytest.mark.parametrize(
    ("row", "col", "accepted"),
    [
        (-4.0, -11.0, True),  # normal twist 7 dB
        (-10.0, -7.0, True),  # reverse twist 3 dB
        (-3.0, -13.0, False),  # normal twist 10 dB
        (-12.0, -6.0, False),  # reverse twist 6 dB
    ],
)
def test_twist_limits(row: float, col: float, accepted: bool) -> None:
    for digit in tones.DIGITS:
        for off in (-1.5, 0.0, 1.5):
            got = digits_of(tone_at(11, digit, 50, row_dbm0=row, col_dbm0=col, offset_pct=off))
            assert got == (digit if accepted else ""), (digit, off)


def test_level_floor_minus_30_dbm0() -> None:
    for digit in tones.DIGITS:
        assert digits_of(tone_at(3, digit, 50, row_dbm0=-28, col_dbm0=-28)) == digit
        assert digits_of(tone_at(3, digit, 50, row_dbm0=-33, col_dbm0=-33)) == ""


# -- noise and talk-off -------------------------------------------------------------------------------


def test_digits_in_white_noise_at_15_db_snr() -> None:
    rng = np.random.default_rng(15)
    for digit in tones.DIGITS:
        for align in ALIGN:
            for off in (-1.5, 1.5):
                x = tones.add_noise(tone_at(align, digit, 40, offset_pct=off), 15.0, rng)
                assert digits_of(x) == digit, (digit, align, off)


@pytest.mark.parametrize(("seed", "level"), [(0, -10.0), (1, -20.0), (2, -5.0)])
def test_no_talk_off_on_30_s_of_speech_like_signal(seed: int, level: float) -> None:
    x = tones.speech_like(30.0, np.random.default_rng(seed), level_dbm0=level)
    assert np.abs(x.astype(np.int32)).max() > 1000  # it is loud, not silence
    assert detect(x) == []


def test_digits_over_speech_like_background() -> None:
    rng = np.random.default_rng(9)
    sig = tones.sequence("159#", tone_ms=60, gap_ms=60, lead_ms=100)
    bg = tones.speech_like(sig.size / FS, rng, level_dbm0=-25.0)
    assert digits_of(tones.to_int16(sig.astype(np.float64) + bg)) == "159#"


# -- strings, gaps, interruptions ---------------------------------------------------------------------


@pytest.mark.parametrize("tone_ms", [40, 50])
def test_string_with_40_ms_gaps_each_digit_once_in_order(tone_ms: int) -> None:
    for lead in (0, 37, 80):
        got = detect(tones.sequence(tones.DIGITS + "1122", tone_ms=tone_ms, gap_ms=40, lead_ms=lead / 8))
        assert "".join(d.digit for d in got) == tones.DIGITS + "1122", lead
        starts = [d.start for d in got]
        assert starts == sorted(starts)
        assert all(b.start >= a.start + a.duration for a, b in zip(got, got[1:], strict=False))


def test_short_dropout_inside_a_tone_does_not_split_it() -> None:
    for cut in range(200, 200 + N, 9):
        x = tone_at(0, "5", 300)
        x[cut : cut + 8] = 0  # 1 ms dropout
        assert digits_of(x) == "5", cut


def test_change_of_digit_without_gap_reports_both() -> None:
    x = np.concatenate([tones.dtmf("1", 60), tones.dtmf("9", 60), tones.silence(50)])
    assert digits_of(x) == "19"


# -- batched path, streaming, bounds ------------------------------------------------------------------


def test_bank_agrees_with_per_channel_detectors() -> None:
    rng = np.random.default_rng(3)
    n = 2 * FS
    signals = []
    for k in range(24):
        kind = k % 4
        if kind == 0:
            s = tones.sequence(tones.DIGITS[k % 16 :] + "42", tone_ms=45, gap_ms=40, lead_ms=k)
        elif kind == 1:
            s = tones.add_noise(tones.sequence("0#7", tone_ms=50, gap_ms=45, lead_ms=3 * k), 15.0, rng)
        elif kind == 2:
            s = tones.speech_like(n / FS, rng)
        else:
            s = tones.sequence("D8", tone_ms=30 + k, gap_ms=40, offset_pct=(k - 12) / 4)
        buf = np.zeros(n, np.int16)
        buf[: min(n, s.size)] = s[:n]
        signals.append(buf)
    data = np.stack(signals)
    bank = DtmfBank(data.shape[0])
    bank_out: list[list[DtmfDigit]] = [[] for _ in signals]
    for t in range(n // N):
        for ch, d in bank.feed(data[:, t * N : (t + 1) * N]):
            bank_out[ch].append(d)
    for ch, d in bank.flush():
        bank_out[ch].append(d)
    single = [detect(s[: (n // N) * N], seed=i) for i, s in enumerate(signals)]
    assert bank_out == single
    assert sum(len(v) for v in single) > 40  # the comparison covered real detections


def test_sample_by_sample_feed_equals_block_feed_and_buffer_is_bounded() -> None:
    x = tones.sequence("3C", tone_ms=50, gap_ms=40, lead_ms=13)
    det = DtmfDetector()
    out: list[DtmfDigit] = []
    for v in x:
        out += det.feed(np.array([v], np.int16))
        assert det._buf.size < N
    out += det.flush()
    assert out == detect(x)
    assert [d.digit for d in out] == ["3", "C"]


def test_feed_accepts_empty_and_lists() -> None:
    det = DtmfDetector()
    assert det.feed(np.zeros(0, np.int16)) == []
    assert det.feed([0] * 300) == []
    assert det.pos == 2 * N


def test_errors() -> None:
    with pytest.raises(DtmfError):
        DtmfBank(2).feed(np.zeros((2, N - 1), np.int16))
    with pytest.raises(DtmfError):
        DtmfBank(0)
    with pytest.raises(DtmfError):
        DtmfDetector().feed(np.zeros((2, 3), np.int16))
    with pytest.raises(DtmfError):
        DtmfDetector().feed(np.zeros(5, np.float32))
    with pytest.raises(DtmfError):
        DtmfParams(max_offset_pct=4.0)
    with pytest.raises(DtmfError):
        DtmfDigit("x", 0, N)
    with pytest.raises(ValueError):
        tones.dtmf("E", 40)
