"""Sans-IO framing: a 4-byte big-endian length, then that many bytes of one msgpack value.

:class:`FrameDecoder` takes bytes as they arrive and yields decoded values; it never holds more
than one incomplete frame (at most ``max_frame`` bytes plus the 4-byte prefix) and rejects a length
above the limit before reading the body, so a hostile peer cannot make it allocate more.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from .errors import FrameTooLarge, RemoteProtocolError

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
MAX_DEPTH = 32  # containers nested deeper than this are refused (msgpack's own limit is 1024)

_pack_len = HEADER.pack
_packb = msgpack.Packer().pack  # msgpack.packb builds a new Packer per call; encode_frame runs on the loop thread only
_unpackb = msgpack.unpackb


def _no_ext(code: int, data: bytes) -> Any:
    raise RemoteProtocolError(f"msgpack extension type {code} is not allowed")


def encode_frame(value: Any) -> bytes:
    """Serialise one message into a complete frame."""
    body = _packb(value)
    return _pack_len(len(body)) + body


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse containers nested deeper than ``limit`` and non-string map keys (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise RemoteProtocolError(f"containers nested deeper than {limit}")
        if type(item) is dict:
            if any(type(k) is not str for k in item):
                raise RemoteProtocolError("map keys must be strings")
            stack.extend((v, depth + 1) for v in item.values() if type(v) in (dict, list))
        elif type(item) is list:
            stack.extend((v, depth + 1) for v in item if type(v) in (dict, list))


class FrameDecoder:
    """Incremental frame decoder: ``decode(data)`` with each read returns the complete messages."""

    __slots__ = ("max_frame", "_buf")

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()  # the start of an incomplete frame, at most max_frame + 4 bytes

    def decode(self, data: bytes) -> tuple[list[Any], RemoteProtocolError | None]:
        """Feed ``data``; return the values of every complete frame, and the error that stopped
        decoding, if any (the values before it are valid and should still be handled)."""
        if self._buf:
            self._buf += data
            src: bytes | bytearray = self._buf
        else:
            src = data  # the common case: no partial frame waiting, slice the read directly
        pos = 0
        end = len(src)
        max_frame = self.max_frame
        values: list[Any] = []
        append = values.append
        error: RemoteProtocolError | None = None
        unpack_from = HEADER.unpack_from
        try:
            while end - pos >= HEADER_SIZE:
                (length,) = unpack_from(src, pos)
                if length > max_frame or length == 0:
                    raise FrameTooLarge(f"frame length {length} outside 1..{max_frame}",
                                        details={"max_frame": max_frame})
                start = pos + HEADER_SIZE
                if end - start < length:
                    break
                pos = start + length
                # msgpack bounds every length by the size of what it is given: at most max_frame
                append(_unpackb(src[start:pos], raw=False, ext_hook=_no_ext))
        except RemoteProtocolError as exc:
            error = exc
        except UnicodeDecodeError as exc:
            error = RemoteProtocolError(f"invalid UTF-8 in string: {exc.reason}")
        except msgpack.StackError:
            error = RemoteProtocolError("msgpack nesting too deep")
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            error = RemoteProtocolError(f"bad msgpack: {exc or type(exc).__name__}")
        if error is not None:
            self._buf.clear()  # the stream is unusable after a protocol error
        elif src is data:
            if pos < end:
                self._buf += data[pos:]
        elif pos:
            del self._buf[:pos]
        return values, error

    @property
    def buffered(self) -> int:
        return len(self._buf)
