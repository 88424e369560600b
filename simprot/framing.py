"""Sans-IO framing: a 4-byte big-endian length, then that many bytes of one msgpack value.

:class:`FrameDecoder` takes bytes as they arrive and yields decoded values; it never holds more
than one incomplete frame (at most ``max_frame`` bytes plus the 4-byte prefix) and rejects a length
above the limit before reading the body, so a hostile peer cannot make it allocate more.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
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


def decode_body(body: bytes | bytearray, max_len: int) -> Any:
    """Decode one frame body; every failure becomes :class:`RemoteProtocolError`."""
    try:
        value = _unpackb(
            body, raw=False, strict_map_key=True, ext_hook=_no_ext, use_list=True,
            max_str_len=max_len, max_bin_len=max_len, max_array_len=max_len,
            max_map_len=max_len, max_ext_len=0,
        )
    except RemoteProtocolError:
        raise
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"invalid UTF-8 in string: {exc.reason}") from None
    except msgpack.StackError:
        raise RemoteProtocolError("msgpack nesting too deep") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise RemoteProtocolError(f"bad msgpack: {exc or type(exc).__name__}") from None
    return value


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
    """Incremental frame decoder.  ``feed(data)`` then iterate ``frames()``, or ``decode(data)``."""

    __slots__ = ("_max_frame", "_buf", "_pos", "_unpacker", "_fed")

    def __init__(self, max_frame: int) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.max_frame = max_frame

    @property
    def max_frame(self) -> int:
        return self._max_frame

    @max_frame.setter
    def max_frame(self, value: int) -> None:
        self._max_frame = value
        # one Unpacker per decoder, its limits set once: msgpack.unpackb would parse ten keyword
        # arguments on every frame
        self._unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=True, ext_hook=_no_ext, use_list=True, max_buffer_size=value,
            max_str_len=value, max_bin_len=value, max_array_len=value, max_map_len=value, max_ext_len=0,
        )
        self._fed = 0

    def decode(self, data: bytes) -> tuple[list[Any], RemoteProtocolError | None]:
        """Feed ``data``; return the values of every complete frame, and the error that stopped
        decoding, if any (the values before it are valid and should still be handled)."""
        self._buf += data
        buf = self._buf
        pos = 0
        end = len(buf)
        max_frame = self._max_frame
        unpacker = self._unpacker
        values: list[Any] = []
        append = values.append
        error: RemoteProtocolError | None = None
        try:
            while end - pos >= HEADER_SIZE:
                (length,) = HEADER.unpack_from(buf, pos)
                if length > max_frame or length == 0:
                    raise FrameTooLarge(f"frame length {length} outside 1..{max_frame}",
                                        details={"max_frame": max_frame})
                start = pos + HEADER_SIZE
                if end - start < length:
                    break
                pos = start + length
                unpacker.feed(buf[start:pos])
                self._fed += length
                try:
                    append(unpacker.unpack())
                except msgpack.OutOfData:
                    raise RemoteProtocolError("bad msgpack: truncated value") from None
                if unpacker.tell() != self._fed:
                    raise RemoteProtocolError("bad msgpack: extra data after the value")
        except RemoteProtocolError as exc:
            error = exc
        except UnicodeDecodeError as exc:
            error = RemoteProtocolError(f"invalid UTF-8 in string: {exc.reason}")
        except msgpack.StackError:
            error = RemoteProtocolError("msgpack nesting too deep")
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            error = RemoteProtocolError(f"bad msgpack: {exc or type(exc).__name__}")
        if pos:
            del buf[:pos]
        if error is not None:
            buf.clear()  # the stream is unusable after a protocol error
        return values, error

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        self._buf += data

    def frames(self) -> Iterator[bytearray]:
        """Yield complete frame bodies; raise on an illegal length prefix."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        try:
            while end - pos >= HEADER_SIZE:
                (length,) = HEADER.unpack_from(buf, pos)
                if length > self.max_frame or length == 0:
                    raise FrameTooLarge(
                        f"frame length {length} outside 1..{self.max_frame}",
                        details={"max_frame": self.max_frame},
                    )
                start = pos + HEADER_SIZE
                if end - start < length:
                    break
                pos = start + length
                self._pos = pos
                yield buf[start:pos]  # a slice is already a copy; msgpack reads a bytearray as is
        finally:
            self._pos = pos
            if pos:
                # drop consumed bytes; keeps the buffer at most one frame long
                del buf[:pos]
                self._pos = 0
