"""Parse one SIP message from bytes (RFC 3261 §7, §18.3, §25): :func:`parse_message`.

How it works. The start line and the header block are split eagerly; structured header values
are left for :class:`~sipcore.message.Request`/:class:`~sipcore.message.Response` to parse on
first access (see :mod:`sipcore.message`). The steps:

1. Leading CRLFs are skipped (§7.5); the header block ends at the first empty line.
2. The header block is decoded as UTF-8 with ``surrogateescape`` (lossless: invalid bytes survive a
   parse/serialize round trip) and split on CRLF. Lines must end in CRLF: a bare CR or LF is
   refused (400). We deliberately do not accept bare-LF line ends; RFC 3261 §7 requires CRLF and
   accepting both makes it ambiguous where a header block ends.
3. Folded lines (a line starting with SP/HTAB continues the previous one, §7.3.1) are joined
   with one space.
4. Each field is split at its first colon; the name (any case, any whitespace before the colon,
   compact forms) is mapped to its canonical name; the value is stripped. Header names must be
   tokens. A malformed line does not stop the loop, so an error still carries the fields around
   it (RFC 4475 expects a 400 answer, which needs Via/From/To/Call-ID/CSeq).
5. The start line: ``Method SP Request-URI SP SIP-Version`` with exactly single spaces (RFC 4475
   §3.1.2.9/10: extra SP is refused), or ``SIP-Version SP 3DIGIT SP Reason-Phrase`` (a missing
   reason, even without its SP, is accepted: §3.1.1.13). The Request-URI itself is parsed lazily
   (:meth:`Request.validate` does it).
   A datagram that ends right after the last header line's CRLF, without the empty line, is
   accepted as having no body (RFC 4475's archive has one such message; the datagram's end is
   unambiguous). A stream needs the empty line.
6. The body (§18.3): with Content-Length, exactly that many bytes; extra bytes in a datagram are
   ignored (RFC 4475 §3.1.1.8); fewer is an error (§3.1.2.2). Without Content-Length (allowed on
   datagrams only, RFC 2543 style), the rest of the datagram. Content-Length must be digits
   (§3.1.2.3: negative or "five" is refused) and all copies must agree (§3.3.9).

Errors: :class:`~sipcore.syntax.ParseError` only, whatever the bytes, with ``method``,
``is_response`` and ``headers`` filled in as far as parsing got. Bounds: :class:`MessageLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipcore.headers import Field
from sipcore.message import Request, Response
from sipcore.names import _BY_EXACT, _BY_LOWER, _METHODS, CONTENT_LENGTH, intern_method
from sipcore.syntax import (
    DEFAULT_LIMITS,
    DIGITS,
    TOKEN_CHARS,
    Memo,
    MessageLimits,
    ParseError,
    cut,
    is_digits,
    is_token,
)

__all__ = ["DEFAULT_LIMITS", "MessageLimits", "ParseError", "parse_message"]

_CRLF = b"\r\n"
_STATUS_LINES = Memo(256, 64)  # "SIP/2.0 180 Ringing" -> (180, "Ringing"): peers send few different ones
_END_OF_HEAD = b"\r\n\r\n"


@dataclass(slots=True)
class Head:
    """A split header block: the start line, the fields, the Content-Length values, the first problem."""

    start_line: str
    fields: list[Field]
    content_lengths: list[str]
    problem: ParseError | None

    def annotate(self, exc: ParseError) -> ParseError:
        """Attach what we know to ``exc`` so that the caller can answer it."""
        line = self.start_line
        exc.is_response = line[:4].upper() == "SIP/"
        if not exc.is_response:
            method = line.partition(" ")[0]
            exc.method = intern_method(method) if is_token(method) else None
        exc.headers = tuple((n, v) for _, n, v in self.fields)
        return exc

    def content_length(self) -> int | None:
        """The Content-Length (None if absent); ParseError if malformed or conflicting."""
        values = self.content_lengths
        if not values:
            return None
        first = values[0]
        if len(values) == 1 and len(first) < 10 and DIGITS.issuperset(first) and first:
            return int(first)
        for other in values:
            if other != first:  # RFC 4475 §3.3.9: a framing error
                raise self.annotate(ParseError(f"conflicting Content-Length values {cut(first)} and {cut(other)}"))
        if not is_digits(first) or len(first.lstrip("0")) > 10:
            raise self.annotate(ParseError(f"bad Content-Length {cut(first)}"))
        return int(first)


def read_head(data: bytes, start: int, end: int, limits: MessageLimits) -> Head:
    """Split ``data[start:end]`` (start line + header lines, without the final CRLFCRLF)."""
    return Head(*split_head(data[start:end].decode("utf-8", "surrogateescape"), limits))


_Split = tuple[str, list[Field], list[str], "ParseError | None"]


def split_head(text: str, limits: MessageLimits) -> _Split:
    """The start line, the fields, the Content-Length values and the first problem of a header
    block. The usual block (short, no folding, no malformed line) takes one tight loop; anything
    else starts over in :func:`_split_fields`, which bounds, unfolds and reports."""
    lines = text.split("\r\n")
    breaks = len(lines) - 1
    start_line = lines[0]
    joined = "".join(lines)  # a CR or LF left once split on CRLF is a bare one (memchr beats counting)
    if "\r" in joined or "\n" in joined:
        exc = ParseError("bare CR or LF in the header block (lines must end with CRLF, RFC 3261 §7)")
        raise Head(start_line, [], [], None).annotate(exc)
    # no line is longer than the block, nor are there more fields than lines: nothing to bound
    if len(text) <= limits.max_line_length and breaks <= limits.max_headers:
        by_exact = _BY_EXACT.get
        fields: list[Field] = []
        append = fields.append
        content_lengths: list[str] = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            hit = by_exact(name)
            if hit is None or not colon:
                if not colon or line[:1] in (" ", "\t"):
                    break  # an error or folding
                name = name.rstrip(" \t")
                hit = by_exact(name) or _BY_LOWER.get(name.lower())
                if hit is None:
                    if not name or not TOKEN_CHARS.issuperset(name):
                        break
                    hit = (name.lower(), name)
            if hit is CONTENT_LENGTH:
                content_lengths.append(value.strip(" \t"))
            else:
                key, display = hit
                append((key, display, value.strip(" \t")))
        else:
            return start_line, fields, content_lengths, None
    return _split_fields(start_line, lines, text, limits)


def _split_fields(start_line: str, lines: list[str], text: str, limits: MessageLimits) -> _Split:
    """:func:`split_head` the long way: bounds (line length, field count), unfolding (§7.3.1)
    and, for a malformed line, the first problem, the lines around it still split."""
    problem: ParseError | None = None
    if len(start_line) > limits.max_line_length:
        is_request = start_line[:4].upper() != "SIP/"
        problem = ParseError(f"start line longer than {limits.max_line_length}",
                             status=414 if is_request else 400)
    unfolded = False
    if len(lines) - 1 > limits.max_headers:
        if "\n " in text or "\n\t" in text:
            lines, unfolded = _unfold(lines), True
        if len(lines) - 1 > limits.max_headers:
            problem = problem or ParseError(f"more than {limits.max_headers} header fields")
            del lines[limits.max_headers + 1:]
    # no line can be longer than the block: skip the per-line check when the block is short
    max_line = limits.max_line_length if len(text) > limits.max_line_length else len(text) + 1
    by_exact = _BY_EXACT.get
    while True:
        fields: list[Field] = []
        append = fields.append
        content_lengths: list[str] = []
        first_problem = problem
        folded = False
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            hit = by_exact(name) if colon else None
            if hit is None:  # the slow path: odd spelling, unknown name, folding, or an error
                if line[:1] in (" ", "\t"):
                    if not unfolded:
                        folded = True  # folding is rare: only now pay for unfolding, and start over
                        break
                    first_problem = first_problem or ParseError("the start line cannot be folded")
                    continue
                if not colon:
                    first_problem = first_problem or ParseError(f"header line without a colon: {cut(line)}")
                    continue
                name = name.rstrip(" \t")
                hit = by_exact(name) or _BY_LOWER.get(name.lower())
                if hit is None:
                    if not name or not TOKEN_CHARS.issuperset(name):
                        first_problem = first_problem or ParseError(f"bad header name {cut(name)}")
                        continue
                    hit = (name.lower(), name)
            if len(line) > max_line:
                first_problem = first_problem or ParseError(f"header {hit[1]} longer than {max_line} characters")
                continue
            if hit is CONTENT_LENGTH:
                content_lengths.append(value.strip(" \t"))
            else:
                append((hit[0], hit[1], value.strip(" \t")))
        if not folded:
            break
        lines, unfolded = _unfold(lines), True
    return start_line, fields, content_lengths, first_problem


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (§7.3.1: CRLF followed by whitespace is one SP) to their field.
    A continuation of the start line is kept as is, for read_head to report."""
    out = [lines[0]]
    parts: list[str] | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if parts is None:
                out.append(line)
                continue
            parts.append(line.strip(" \t"))
        else:
            if parts is not None:
                out.append(" ".join(parts) if len(parts) > 1 else parts[0])
            parts = [line.rstrip(" \t")]
    if parts is not None:
        out.append(" ".join(parts) if len(parts) > 1 else parts[0])
    return out


def _version(text: str) -> str:
    """SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, case-insensitive (§7.1); returned upper-case."""
    if text == "SIP/2.0":
        return text
    upper = text.upper()
    major, dot, minor = upper[4:].partition(".")
    if upper[:4] != "SIP/" or not dot or not is_digits(major) or not is_digits(minor) \
            or len(major) > 3 or len(minor) > 3:
        raise ParseError(f"bad SIP version {cut(text)}")
    return upper


def build_message(head: Head, body: bytes) -> Request | Response:
    """The message from a split head and its body; ParseError (annotated) if the start line or a
    header line is malformed."""
    try:
        if head.problem is not None:
            raise head.problem
        return _build(head.start_line, head.fields, body)
    except ParseError as exc:
        raise head.annotate(exc) from None


def _build(line: str, fields: list[Field], body: bytes) -> Request | Response:
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not DIGITS.issuperset(code) or code[0] not in "123456":
            raise ParseError(f"bad status code {cut(code)}")
        return Response._from_wire(int(code), reason, _version(version), fields, body)
    parts = line.split(" ")
    if len(parts) != 3:
        raise ParseError(f"request line is not 'Method SP Request-URI SP SIP-Version': {cut(line)}")
    method, uri_text, version = parts
    known = _METHODS.get(method)
    if known is not None:
        method = known
    elif not is_token(method):
        raise ParseError(f"bad method {cut(method)}")
    if not uri_text:
        raise ParseError("empty Request-URI")
    return Request._from_wire(method, uri_text, _version(version), fields, body)


def parse_message(data: bytes, *, limits: MessageLimits = DEFAULT_LIMITS) -> Request | Response:
    """Parse one message from a datagram (UDP, or any packet transport). Raises ParseError only."""
    if not isinstance(data, bytes):
        data = bytes(data)
    size = len(data)
    if size > limits.max_message_size:
        raise ParseError(f"message of {size} bytes exceeds {limits.max_message_size}", status=513)
    start = 0
    while data.startswith(_CRLF, start):  # §7.5: CRLFs before the start line are ignored
        start += 2
    end = data.find(_END_OF_HEAD, start)
    if end >= 0:
        body_start = end + 4
    elif start == size:
        raise ParseError("no message, only CRLF (a keep-alive?)")
    elif data.endswith(_CRLF):
        end = body_start = size - 2  # tolerated: the datagram ends before the empty line
    else:
        raise ParseError("the header block does not end with an empty line")
    line, fields, lengths, problem = split_head(data[start:end].decode("utf-8", "surrogateescape"), limits)
    if not lengths:
        body = data[body_start:]  # §18.3: no Content-Length on a datagram: up to its end
    else:
        first = lengths[0]
        if len(lengths) == 1 and len(first) < 10 and first.isdigit() and first.isascii():
            length = int(first)
        else:
            got = Head(line, fields, lengths, problem).content_length()  # raises, or allows repeats
            length = 0 if got is None else got
        if body_start + length > size:  # RFC 4475 §3.1.2.2
            raise Head(line, fields, lengths, problem).annotate(ParseError(
                f"Content-Length {length} but only {size - body_start} body bytes"))
        body = data[body_start:body_start + length]
    if problem is None:
        # the usual start lines, checked as _build would; anything else goes through it
        status = _STATUS_LINES.get(line)
        if status is not None:
            return Response._from_wire(status[0], status[1], "SIP/2.0", fields, body)  # type: ignore[index]
        if line[:8] == "SIP/2.0 ":
            code = line[8:11]
            if line[11:12] in (" ", "") and code[:1] in "123456" and DIGITS.issuperset(code) and len(code) == 3:
                _STATUS_LINES.remember(line, (int(code), line[12:]))
                return Response._from_wire(int(code), line[12:], "SIP/2.0", fields, body)
        elif line[-8:] == " SIP/2.0":
            method, space, uri_text = line[:-8].partition(" ")
            known = _METHODS.get(method)
            if known is not None and uri_text and " " not in uri_text:
                return Request._from_wire(known, uri_text, "SIP/2.0", fields, body)
    try:
        if problem is not None:
            raise problem
        return _build(line, fields, body)
    except ParseError as exc:
        raise Head(line, fields, lengths, problem).annotate(exc) from None
