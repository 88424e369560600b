"""G.711 tables against the integer reference coders, known vectors, and error bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rtpmedia import g711

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


@pytest.mark.parametrize(
    ("table", "reference"),
    [(g711.ULAW_ENCODE_TABLE, g711.ulaw_encode_ref), (g711.ALAW_ENCODE_TABLE, g711.alaw_encode_ref)],
)
def test_encode_table_matches_reference_for_every_sample(table: np.ndarray, reference: object) -> None:
    assert callable(reference)
    assert table.shape == (65536,) and table.dtype == np.uint8
    expected = [reference(int(s)) for s in ALL_SAMPLES]
    assert list(table[ALL_SAMPLES.view(np.uint16)]) == expected


@pytest.mark.parametrize(
    ("table", "reference"),
    [(g711.ULAW_DECODE_TABLE, g711.ulaw_decode_ref), (g711.ALAW_DECODE_TABLE, g711.alaw_decode_ref)],
)
def test_decode_table_matches_reference_for_every_code(table: np.ndarray, reference: object) -> None:
    assert callable(reference)
    assert table.shape == (256,) and table.dtype == np.int16
    assert list(table) == [reference(c) for c in range(256)]


# (sample, µ-law code, µ-law decoded, A-law code, A-law decoded)
KNOWN = [
    (0, 0xFF, 0, 0xD5, 8),
    (-1, 0x7F, 0, 0x55, -8),
    (1000, 0xCE, 988, 0xFA, 1008),
    (-1000, 0x4E, -988, 0x7A, -1008),
    (32767, 0x80, 32124, 0xAA, 32256),
    (-32768, 0x00, -32124, 0x2A, -32256),
]


@pytest.mark.parametrize(("sample", "ucode", "udec", "acode", "adec"), KNOWN)
def test_known_vectors(sample: int, ucode: int, udec: int, acode: int, adec: int) -> None:
    pcm = np.array([sample], dtype=np.int16)
    assert g711.ulaw_encode(pcm) == bytes([ucode])
    assert g711.alaw_encode(pcm) == bytes([acode])
    assert int(g711.ulaw_decode(bytes([ucode]))[0]) == udec
    assert int(g711.alaw_decode(bytes([acode]))[0]) == adec


def test_alaw_sign_convention() -> None:
    # G.711 §3.4: positive samples carry the sign bit set (after the 0x55 inversion too).
    code = g711.alaw_encode(np.array([1000], dtype=np.int16))[0]
    assert code & 0x80
    assert g711.alaw_decode(bytes([code]))[0] > 0


def test_code_tables_are_each_others_inverse_on_codes() -> None:
    # Every code decodes to a level that encodes back to the same code (apart from µ-law's
    # negative zero 0x7F, which decodes to 0 and re-encodes as 0xFF).
    for decode, encode in ((g711.ulaw_decode, g711.ulaw_encode), (g711.alaw_decode, g711.alaw_encode)):
        codes = bytes(range(256))
        again = encode(decode(codes))
        differ = {c for c, d in zip(codes, again, strict=True) if c != d}
        assert differ <= {0x7F}


def _step(code: np.ndarray, law: str) -> np.ndarray:
    if law == "u":
        segment = ((~code.astype(np.int32)) >> 4) & 7
        return 8 << segment
    segment = ((code.astype(np.int32) ^ 0x55) >> 4) & 7
    return 16 << np.maximum(segment - 1, 0)


@pytest.mark.parametrize("law", ["u", "a"])
def test_error_within_half_a_step_for_every_sample(law: str) -> None:
    encode, decode, top = {
        "u": (g711.ulaw_encode, g711.ulaw_decode, 32124),
        "a": (g711.alaw_encode, g711.alaw_decode, 32256),
    }[law]
    codes = np.frombuffer(encode(ALL_SAMPLES), dtype=np.uint8)
    x = ALL_SAMPLES.astype(np.int32)
    error = np.abs(decode(codes.tobytes()).astype(np.int32) - x)
    in_range = np.abs(x) <= top
    # Half a step, plus up to one for the one's-complement handling of negatives and the 2/4-bit drop.
    bound = _step(codes, law) // 2 + (4 if law == "u" else 1)
    assert np.all(error[in_range] <= bound[in_range])
    # Beyond the top level the coder saturates at it.
    assert np.all(np.abs(decode(codes.tobytes()).astype(np.int32))[~in_range] == top)


@given(arrays(np.int16, st.integers(0, 400)))
def test_round_trip_keeps_sign_and_length(samples: np.ndarray) -> None:
    for encode, decode in ((g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        data = encode(samples)
        assert len(data) == len(samples)
        out = decode(data)
        assert out.dtype == np.int16 and out.shape == samples.shape
        wide = samples.astype(np.int32)
        clear = np.abs(wide) > 8  # tiny samples may decode to zero
        assert np.array_equal(np.sign(out[clear]), np.sign(wide[clear]))
        assert np.array_equal(decode(encode(out)), out)  # decoded levels are fixed points


def test_encoder_rejects_wrong_dtype() -> None:
    with pytest.raises(TypeError):
        g711.ulaw_encode(np.zeros(4, dtype=np.int32))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        g711.alaw_encode(np.zeros((2, 2), dtype=np.int16))
