"""The checks of :meth:`Message.validate <sipcore.message.Message.validate>`, as one straight run.

How it works. ``validate()`` parses every header field the transaction and dialog layers rely on
(RFC 3261 §8.1.1, §8.2; the list is in :mod:`sipcore.message`) and fills the message's parse
cache with the records, so that the accessors (``via``, ``vias``, ``call_id``, ``cseq``,
``from_``, ``to``, ``contacts``, ``record_routes``, ``routes``, ``content_type``, ``uri``) later
return them without parsing again. The accessors and :func:`check_fields` share the helpers
below, so a field is refused the same way whichever asks first, and :func:`check_fields` runs
the checks in the order the accessors used to run them, so the first problem reported is the same.

Why a module of its own: on the receive path every message is validated, with new Call-ID, tags
and branch every call, so this is where the time goes. Here each field is looked up once in the
message's name index, each record parser is called directly (its memo first, then its scanner,
then the full parser: see :mod:`sipcore.syntax`), and nothing is parsed that is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from sipcore.headers import Field, parse_cseq, parse_media_type, parse_name_addr, parse_via
from sipcore.syntax import WORD_CHARS, ParseError, cut, is_digits, split_commas

__all__ = ["MAX_LIST_VALUES", "build_index", "check_call_id", "check_fields", "check_max_forwards",
           "is_contact_wildcard", "parse_list", "parse_single"]

MAX_LIST_VALUES = 256
"""Bound on the values of one list header (Via, Contact, Route, ...) that an accessor parses: a
64 KiB message could otherwise hold thousands, each costing a few µs to parse."""

_R = TypeVar("_R")

# Single-valued headers that must not appear twice (RFC 4475 §3.3.8 "multi01")
_SINGLE = (("call-id", "Call-ID"), ("from", "From"), ("to", "To"), ("cseq", "CSeq"),
           ("max-forwards", "Max-Forwards"), ("content-type", "Content-Type"))


def build_index(fields: list[Field]) -> dict[str, Sequence[str]]:
    """The raw values of each header key, in order."""
    index: dict[str, Sequence[str]] = {key: (value,) for key, _, value in fields}
    if len(index) == len(fields):  # the usual case: no key repeats
        return index
    lists: dict[str, list[str]] = {}
    for key, _, value in fields:
        got = lists.get(key)
        if got is None:
            lists[key] = [value]
        else:
            got.append(value)
    return lists  # type: ignore[return-value]


def parse_list(lines: Sequence[str], display: str, parser: Callable[[str], _R]) -> tuple[_R, ...]:
    """All values of a comma-list header (§7.3.1), parsed; at most MAX_LIST_VALUES of them."""
    try:
        if len(lines) == 1 and "," not in lines[0]:
            return (parser(lines[0]),)
        values: list[str] = []
        for line in lines:
            values.extend(split_commas(line) if "," in line else (line,))
        if len(values) > MAX_LIST_VALUES:
            raise ParseError(f"more than {MAX_LIST_VALUES} values")
        return tuple(parser(v) for v in values)
    except ParseError as exc:
        raise ParseError(f"{display}: {exc}") from None


def parse_single(lines: Sequence[str] | None, display: str, parser: Callable[[str], _R]) -> _R:
    """The first value of a single-valued header, parsed; ParseError if absent or malformed."""
    if not lines:
        raise ParseError(f"missing {display} header")
    try:
        return parser(lines[0])
    except ParseError as exc:
        raise ParseError(f"{display}: {exc}") from None


_CALL_ID = re.compile("[{0}]+(?:@[{0}]+)?".format(re.escape("".join(sorted(WORD_CHARS))))).fullmatch


def check_call_id(lines: Sequence[str] | None) -> str:
    """callid = word [ "@" word ] (§25.1)."""
    if not lines:
        raise ParseError("missing Call-ID header")
    value = lines[0]
    if _CALL_ID(value) is None:
        raise ParseError(f"bad Call-ID {cut(value)}")
    return value


def check_max_forwards(value: str) -> int:
    """Max-Forwards (§20.22): 0..255, leading zeros allowed."""
    if not is_digits(value) or len(value.lstrip("0")) > 3 or int(value) > 255:
        raise ParseError(f"bad Max-Forwards {cut(value)}")
    return int(value)


def is_contact_wildcard(lines: Sequence[str] | None) -> bool:
    """``Contact: *`` (REGISTER removing all bindings, §10.2.2)."""
    return lines is not None and len(lines) == 1 and lines[0].strip(" \t") == "*"


def check_fields(fields: list[Field], index: dict[str, Sequence[str]], cache: dict[str, object],
                 has_body: bool) -> None:
    """What requests and responses both need (Via, Call-ID, CSeq, From, To, no duplicated
    single-valued header, Max-Forwards, Contact, Record-Route, Content-Type if there is a body),
    parsed into ``cache``; ParseError for the first problem. The cache keys are the accessors'
    (what is cached already is parsed again: from the same text, to an equal record).

    Written out straight, with the helpers above inlined for the usual case (one value per
    header line), because every message received runs it."""
    get = index.get
    lines = get("via")
    if not lines:
        raise ParseError("missing Via header")
    if len(lines) == 1 and "," not in lines[0]:
        try:
            via = parse_via(lines[0])
        except ParseError as exc:
            raise ParseError(f"Via: {exc}") from None
        cache["via*"] = (via,)
    else:
        vias = cache["via*"] = parse_list(lines, "Via", parse_via)
        via = vias[0]
    cache["via"] = via
    lines = get("call-id")
    if not lines or _CALL_ID(lines[0]) is None:
        check_call_id(lines)  # raises the error
    cache["call-id"] = lines[0]  # type: ignore[index]
    lines = get("cseq")
    if not lines:
        raise ParseError("missing CSeq header")
    try:
        cache["cseq"] = parse_cseq(lines[0])
    except ParseError as exc:
        raise ParseError(f"CSeq: {exc}") from None
    lines = get("from")
    if not lines:
        raise ParseError("missing From header")
    try:
        cache["from"] = parse_name_addr(lines[0])
    except ParseError as exc:
        raise ParseError(f"From: {exc}") from None
    lines = get("to")
    if not lines:
        raise ParseError("missing To header")
    try:
        cache["to"] = parse_name_addr(lines[0])
    except ParseError as exc:
        raise ParseError(f"To: {exc}") from None
    if len(index) != len(fields):  # else no header repeats
        for key, display in _SINGLE:
            lines = get(key)
            if lines is not None and len(lines) > 1:
                raise ParseError(f"more than one {display} header")
    lines = get("max-forwards")
    if lines is not None:
        value = lines[0]
        if len(value) > 3 or not value.isdigit() or not value.isascii() or int(value) > 255:
            check_max_forwards(value)  # raises, or accepts leading zeros
    lines = get("contact")
    if lines is not None:
        value = lines[0]
        if len(lines) == 1 and "," not in value:
            if value.strip(" \t") != "*":  # not the wildcard (§10.2.2)
                try:
                    cache["contact*"] = (parse_name_addr(value),)
                except ParseError as exc:
                    raise ParseError(f"Contact: {exc}") from None
        else:
            cache["contact*"] = parse_list(lines, "Contact", parse_name_addr)
    lines = get("record-route")
    if lines is not None:
        cache["record-route*"] = parse_list(lines, "Record-Route", parse_name_addr)
    if has_body:
        lines = get("content-type")
        if lines is not None:
            try:
                cache["content-type"] = parse_media_type(lines[0])
            except ParseError as exc:
                raise ParseError(f"Content-Type: {exc}") from None
