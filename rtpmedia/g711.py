"""G.711 µ-law and A-law companding by lookup tables (ITU-T G.711, 11/1988).

How it works: the reference coders below are plain integer code written from the segment and
quantisation rules of G.711 Tables 1a/1b (µ-law) and 2a/2b (A-law), in the form used by the
ITU-T G.191 Software Tool Library (`g711.c`). At import we run them once over every input to
build four numpy tables:

* decode tables: 256 int16 entries, indexed by the code byte;
* encode tables: 65536 uint8 entries, indexed by the int16 sample reinterpreted as uint16.

Encoding and decoding a frame is then one fancy-index, with no per-sample Python. `audioop`
is gone from Python 3.13 and is not used.

Conventions (both follow the G.191 reference):

* Input samples are 16-bit linear PCM; G.711 works on 14 bits (µ-law) or 13 bits (A-law), so the
  low bits are dropped. Negative samples use the one's complement (``~x``) before the shift, so the
  coders are symmetric: ``x`` and ``-1 - x`` give codes that differ only in the sign bit.
* µ-law: the code is the bitwise inverse of sign/segment/step; 0 encodes to 0xFF, +32767 to 0x80.
  Samples above the µ-law range (|x| > 32635) clip to the top step.
* A-law: positive samples carry the sign bit SET, then even bits are inverted (XOR 0x55,
  G.711 §3.4 / Table 2). So 0 encodes to 0xD5 and a positive sample decodes positive. (Some
  Python RTP stacks get this sign backwards; the tests pin it.)
* Decoders reconstruct at the middle of the quantisation step, in the 16-bit domain:
  µ-law spans ±32124, A-law ±32256.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "alaw_decode",
    "alaw_decode_ref",
    "alaw_encode",
    "alaw_encode_ref",
    "ulaw_decode",
    "ulaw_decode_ref",
    "ulaw_encode",
    "ulaw_encode_ref",
]

_ULAW_BIAS = 33  # 0x84 >> 2: bias added to the 14-bit magnitude so segments are powers of two
_ULAW_MAX = 0x1FFF  # largest biased 14-bit magnitude


def ulaw_encode_ref(sample: int) -> int:
    """Reference µ-law encoder for one 16-bit sample (G.711 Table 1a, G.191 ``ulaw_compress``)."""
    if not -32768 <= sample <= 32767:
        raise ValueError(f"sample {sample} is outside int16")
    magnitude = ((~sample) if sample < 0 else sample) >> 2  # 14-bit magnitude, one's complement
    biased = min(magnitude + _ULAW_BIAS, _ULAW_MAX)
    segment = (biased >> 6).bit_length()  # 0..7: position of the leading one above bit 5
    step = (biased >> (segment + 1)) & 0x0F  # four bits below the leading one
    code = (segment << 4) | step
    if sample >= 0:
        code |= 0x80
    # The transmitted byte is the complement of sign/segment/step (G.711 Table 1a, note 2),
    # but the sign was encoded as "1 = positive" above, so only the seven magnitude bits invert.
    return code ^ 0x7F


def ulaw_decode_ref(code: int) -> int:
    """Reference µ-law decoder for one byte (G.711 Table 1b, G.191 ``ulaw_expand``)."""
    if not 0 <= code <= 0xFF:
        raise ValueError(f"code {code} is outside a byte")
    inverted = ~code & 0xFF
    segment = (inverted >> 4) & 0x07
    step_index = inverted & 0x0F
    step = 8 << segment  # step size in the 16-bit domain
    magnitude = (0x80 << segment) + step * step_index + step // 2 - 4 * _ULAW_BIAS
    return magnitude if code & 0x80 else -magnitude


def alaw_encode_ref(sample: int) -> int:
    """Reference A-law encoder for one 16-bit sample (G.711 Table 2a, G.191 ``alaw_compress``)."""
    if not -32768 <= sample <= 32767:
        raise ValueError(f"sample {sample} is outside int16")
    magnitude = ((~sample) if sample < 0 else sample) >> 4  # 12-bit magnitude, one's complement
    if magnitude > 0x0F:
        # Segments 1..7: find the leading one, keep the four bits below it.
        segment = magnitude.bit_length() - 4  # 1..7
        code = (segment << 4) | ((magnitude >> (segment - 1)) & 0x0F)
    else:
        code = magnitude  # segment 0 is linear, same step as segment 1
    if sample >= 0:
        code |= 0x80  # G.711 §3.4: sign bit 1 = positive
    return code ^ 0x55  # even-bit inversion


def alaw_decode_ref(code: int) -> int:
    """Reference A-law decoder for one byte (G.711 Table 2b, G.191 ``alaw_expand``)."""
    if not 0 <= code <= 0xFF:
        raise ValueError(f"code {code} is outside a byte")
    value = (code ^ 0x55) & 0x7F
    segment = value >> 4
    mantissa = value & 0x0F
    if segment > 0:
        mantissa += 16  # restore the implicit leading one
    magnitude = (mantissa << 4) + 8  # middle of the step
    if segment > 1:
        magnitude <<= segment - 1
    return magnitude if code & 0x80 else -magnitude


def _encode_table(reference: Callable[[int], int]) -> npt.NDArray[np.uint8]:
    # Index i is the int16 sample whose bit pattern is i, so samples.view(uint16) indexes directly.
    samples = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16)
    table = np.fromiter((reference(int(s)) for s in samples), dtype=np.uint8, count=65536)
    table.flags.writeable = False
    return table


def _decode_table(reference: Callable[[int], int]) -> npt.NDArray[np.int16]:
    table = np.fromiter((reference(c) for c in range(256)), dtype=np.int16, count=256)
    table.flags.writeable = False
    return table


ULAW_ENCODE_TABLE = _encode_table(ulaw_encode_ref)
ULAW_DECODE_TABLE = _decode_table(ulaw_decode_ref)
ALAW_ENCODE_TABLE = _encode_table(alaw_encode_ref)
ALAW_DECODE_TABLE = _decode_table(alaw_decode_ref)


def _as_indices(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint16]:
    # A wrong dtype is a caller bug (not peer input), so it is a TypeError, not an RtpError.
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        raise TypeError("G.711 encoders take a numpy int16 array")
    if samples.ndim != 1:
        raise TypeError("G.711 encoders take a one-dimensional (mono) array")
    return samples.view(np.uint16)


def ulaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """Encode mono int16 PCM to µ-law bytes, one byte per sample."""
    return bytes(ULAW_ENCODE_TABLE[_as_indices(samples)].tobytes())


def ulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """Decode µ-law bytes to a new int16 array, one sample per byte."""
    return ULAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(samples: npt.NDArray[np.int16]) -> bytes:
    """Encode mono int16 PCM to A-law bytes, one byte per sample."""
    return bytes(ALAW_ENCODE_TABLE[_as_indices(samples)].tobytes())


def alaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """Decode A-law bytes to a new int16 array, one sample per byte."""
    return ALAW_DECODE_TABLE[np.frombuffer(data, dtype=np.uint8)]
