"""Property tests: on arbitrary bytes only the documented protocol error escapes the decoder."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from simprot.errors import RemoteProtocolError
from simprot.framing import FrameDecoder, encode_frame
from simprot.messages import from_wire

MAX = 4096


def _drive(chunks: list[bytes]) -> int:
    dec = FrameDecoder(MAX)
    n = 0
    for chunk in chunks:
        values, error = dec.decode(chunk)  # must not raise: errors are returned
        assert error is None or isinstance(error, RemoteProtocolError)
        assert dec.buffered <= MAX + 4  # never more than one incomplete frame
        try:
            for v in values:
                from_wire(v)
                n += 1
        except RemoteProtocolError:
            return n
        if error is not None:
            return n
    return n


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_bytes(chunks: list[bytes]) -> None:
    _drive(chunks)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=200), max_size=10))
def test_well_framed_garbage(bodies: list[bytes]) -> None:
    _drive([struct.pack(">I", len(b)) + b for b in bodies])


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_like, min_size=1, max_size=6), st.integers(1, 7))
def test_arbitrary_msgpack_arrays_split_anywhere(values: list, step: int) -> None:
    stream = b"".join(encode_frame(v) for v in values)
    _drive([stream[i:i + step] for i in range(0, len(stream), step)])
