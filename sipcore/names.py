"""Header field names (RFC 3261 §7.3, §20) and request methods (§7.1).

Names are case-insensitive; :func:`canonical_name` maps any spelling, and the compact forms
(§7.3.3 and the extensions' own), to a lowercase *key* and the canonical display name we
serialize (``v`` -> ``("via", "Via")``). Unknown names keep their spelling. The parser looks the
exact spellings seen on the wire up first (:data:`_BY_EXACT`), and every spelling of a header
maps to the very same ``(key, display)`` tuple, its key interned, so that the parser and the
message can compare them by identity.

Comma lists (§7.3.1): a header whose grammar is ``x *(COMMA x)`` may be split over several lines
or combined on one; :data:`LIST_HEADERS` names them. Everything else is never split on commas,
in particular the ones whose grammar has bare commas in it: WWW-Authenticate, Authorization,
Proxy-Authenticate, Proxy-Authorization, Authentication-Info, Date, and unknown headers (RFC 4475
§3.1.1.1 "UnknownHeaderWithUnusualValue").
"""

from __future__ import annotations

import sys
from enum import StrEnum

from sipcore.syntax import TOKEN_CHARS, ParseError, cut

__all__ = ["CONTENT_LENGTH", "LIST_HEADERS", "Method", "canonical_name", "intern_method"]

_FULL_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Authentication-Info", "Authorization", "Call-ID",
    "Call-Info", "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
    "Content-Length", "Content-Type", "CSeq", "Date", "Diversion", "Error-Info", "Event", "Expires",
    "From", "Geolocation", "History-Info", "Identity", "Identity-Info", "In-Reply-To", "Join",
    "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity",
    "P-Preferred-Identity", "Path", "Priority", "Privacy", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-Sub",
    "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Reply-To", "Request-Disposition",
    "Require", "Resource-Priority", "Retry-After", "Route", "RSeq", "Security-Client",
    "Security-Server", "Security-Verify", "Server", "Service-Route", "Session-Expires", "SIP-ETag",
    "SIP-If-Match", "Subject", "Subscription-State", "Supported", "Target-Dialog", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)
# Compact forms: RFC 3261 §7.3.3 (i m e l c f s k t v), RFC 3265 (o u), RFC 3515 (r), RFC 3892 (b),
# RFC 4028 (x), RFC 4474 (y n), RFC 3841 (a j d).
_COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event",
    "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires", "y": "Identity",
    "n": "Identity-Info", "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition",
}
# one (key, display) tuple per header, its key interned
_BY_LOWER: dict[str, tuple[str, str]] = {n.lower(): (sys.intern(n.lower()), n) for n in _FULL_NAMES}
_BY_LOWER.update({c: _BY_LOWER[n.lower()] for c, n in _COMPACT.items()})
# exact spellings seen on the wire, looked up before paying for .lower()
_BY_EXACT: dict[str, tuple[str, str]] = dict(_BY_LOWER)
_BY_EXACT.update({n: _BY_LOWER[n.lower()] for n in _FULL_NAMES})
_BY_EXACT.update({c.upper(): _BY_LOWER[c] for c in _COMPACT})
_BY_EXACT.update({"Call-Id": _BY_LOWER["call-id"], "Cseq": _BY_LOWER["cseq"], "CSEQ": _BY_LOWER["cseq"]})
CONTENT_LENGTH = _BY_LOWER["content-length"]
"""``("content-length", "Content-Length")``, the very tuple every spelling of the name maps to."""

LIST_HEADERS = frozenset(n.lower() for n in (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Call-Info", "Contact", "Content-Encoding",
    "Content-Language", "Diversion", "Error-Info", "History-Info", "In-Reply-To",
    "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Proxy-Require", "Reason", "Record-Route",
    "Reject-Contact", "Request-Disposition", "Require", "Resource-Priority", "Route",
    "Security-Client", "Security-Server", "Security-Verify", "Service-Route", "Supported",
    "Unsupported", "Via", "Warning",
))
"""Keys of the headers whose values are comma lists (RFC 3261 §7.3.1 and the extensions)."""


def canonical_name(name: str) -> tuple[str, str]:
    """``(key, display)`` for a header name: lowercase full-name key, canonical spelling.

    Compact forms become their full name. Raises ParseError if ``name`` is not a token.
    """
    hit = _BY_EXACT.get(name) or _BY_LOWER.get(name.lower())
    if hit is not None:
        return hit
    if not name or not TOKEN_CHARS.issuperset(name):
        raise ParseError(f"bad header name {cut(name)}")
    return name.lower(), name


class Method(StrEnum):
    """The methods we know (RFC 3261, 3262, 3265, 3311, 3428, 3515, 6086).

    Methods are case-sensitive tokens (§7.1). A request with another method still parses: its
    ``method`` is then a plain ``str`` (``known_method`` is None) and the UAS answers 405/501
    (§8.2.1). A Method member *is* a ``str``, so ``req.method == "INVITE"`` works either way.
    """

    INVITE = "INVITE"
    ACK = "ACK"
    BYE = "BYE"
    CANCEL = "CANCEL"
    OPTIONS = "OPTIONS"
    REGISTER = "REGISTER"
    REFER = "REFER"
    NOTIFY = "NOTIFY"
    SUBSCRIBE = "SUBSCRIBE"
    INFO = "INFO"
    PRACK = "PRACK"
    UPDATE = "UPDATE"
    MESSAGE = "MESSAGE"


_METHODS: dict[str, str] = {m.value: m for m in Method}


def intern_method(token: str) -> str:
    """The Method member for a known method token, else the token itself (unchecked)."""
    return _METHODS.get(token, token)
