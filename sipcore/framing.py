"""Sans-IO framing of SIP messages on a byte stream (TCP, TLS): RFC 3261 §18.3.

:class:`StreamDecoder` takes bytes as they arrive (``feed``) and returns what they completed, in
order: :class:`~sipcore.message.Request` / :class:`~sipcore.message.Response` objects,
:data:`PING` events, and :class:`~sipcore.syntax.ParseError` objects (returned, never raised).

How a message is framed: its header block ends at the first CRLFCRLF; its body is exactly
Content-Length bytes, which is mandatory on a stream (§18.3, §20.14). The header block is split
once (:func:`sipcore.parser.read_head`) and kept while the body arrives.

Errors come in two kinds:

- *not fatal* (``error.fatal`` is False): the message was framed but is malformed (bad start line,
  bad header line). The stream is still in sync; answer it (``make_error_response``) and go on.
- *fatal*: framing is lost: Content-Length missing, malformed or conflicting (RFC 4475 §3.1.2.3,
  §3.3.9), a bare CR or LF in the header block, a message over ``max_message_size`` (513), or a
  header block that does not end within it. Answer if the error allows it, then close the
  connection. The decoder is ``closed`` and ignores further input.

Keep-alives (RFC 5626 §3.5.1): between messages a CRLFCRLF "ping" yields :data:`PING` (the
transport answers with a single CRLF "pong"); a lone CRLF (a "pong", or stray CRLF before a start
line, RFC 3261 §7.5) is dropped. A CRLF is only judged once the next bytes are known, so how the
stream is cut into reads never changes the result.

Bounds: at most one incomplete message is held, ``max_message_size`` bytes (plus the last read);
rescanning for the end of a header block resumes where the previous read stopped, so a message
trickling in byte by byte costs linear time.
"""

from __future__ import annotations

from sipcore.message import Request, Response
from sipcore.parser import Head, build_message, read_head
from sipcore.syntax import DEFAULT_LIMITS, MessageLimits, ParseError

__all__ = ["PING", "PONG", "Ping", "StreamDecoder", "StreamEvent"]


class Ping:
    """A CRLFCRLF keep-alive ping arrived (RFC 5626 §3.5.1); answer it with a single CRLF."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PING"


PING = Ping()
PONG = b"\r\n"
"""The bytes to send in answer to a :data:`PING`."""

StreamEvent = Request | Response | ParseError | Ping


class StreamDecoder:
    """Incremental decoder for one connection: ``feed(data)`` returns the completed events."""

    __slots__ = ("limits", "_buf", "_scan", "_head", "_head_end", "_total", "_closed")

    def __init__(self, limits: MessageLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for CRLFCRLF
        self._head: Head | None = None  # the split head of the message whose body is awaited
        self._head_end = 0
        self._total = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        """A fatal error was returned; the connection should be closed."""
        return self._closed

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._closed:
            return []
        buf = self._buf
        buf += data
        out: list[StreamEvent] = []
        max_size = self.limits.max_message_size
        while buf:
            if self._head is None:
                if buf[0] == 13:  # CR: a keep-alive, or stray CRLF before a start line
                    if len(buf) < 4 and bytes(buf) in (b"\r", b"\r\n", b"\r\n\r"):
                        break  # not known yet
                    if buf[:4] == b"\r\n\r\n":
                        out.append(PING)
                        del buf[:4]
                        continue
                    if buf[:2] == b"\r\n":
                        del buf[:2]
                        continue
                end = buf.find(b"\r\n\r\n", max(0, self._scan - 3))
                if end < 0 or end + 4 > max_size:
                    if len(buf) > max_size or end >= 0:
                        out.append(self._fail(ParseError(
                            f"header block longer than {max_size} bytes", status=513, fatal=True)))
                        break
                    self._scan = len(buf)
                    break
                self._scan = 0
                head_bytes = bytes(buf[:end])
                try:
                    head = read_head(head_bytes, 0, end, self.limits)
                    length = head.content_length()
                except ParseError as exc:
                    exc.fatal = True
                    out.append(self._fail(exc))
                    break
                if length is None:
                    out.append(self._fail(head.annotate(ParseError(
                        "Content-Length is mandatory on stream transports (RFC 3261 §18.3)", fatal=True))))
                    break
                total = end + 4 + length
                if total > max_size:
                    out.append(self._fail(head.annotate(ParseError(
                        f"message of {total} bytes exceeds {max_size}", status=513, fatal=True))))
                    break
                self._head, self._head_end, self._total = head, end, total
            if len(buf) < self._total:
                break
            head, total = self._head, self._total
            assert head is not None
            body = bytes(buf[self._head_end + 4:total])
            del buf[:total]
            self._head = None
            try:
                out.append(build_message(head, body))
            except ParseError as exc:
                out.append(exc)  # framed: the stream is still in sync
        return out

    def _fail(self, exc: ParseError) -> ParseError:
        self._closed = True
        self._buf.clear()
        self._head = None
        return exc
