"""The root of sipcore's errors.

Every error carries ``status``: the SIP response code a UAS answers with when the error comes from
a peer's message (400 for a malformed request, 488 for an SDP offer we cannot accept, ...), and
``reason``, its reason phrase. Modules define their own subclasses next to the code that raises
them; they all derive from :class:`SipError`, so an adapter can answer any of them the same way.
"""

from __future__ import annotations


class SipError(Exception):
    """Something about a SIP message or exchange is wrong; ``status``/``reason`` is the answer."""

    status = 500
    reason = "Server Internal Error"

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason
