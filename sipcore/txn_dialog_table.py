"""The dialog state table and the dialog errors (used by :mod:`sipcore.dialog`, which re-exports them).

A dialog is EARLY, CONFIRMED or TERMINATED (RFC 3261 §12). :data:`DIALOG_TABLE` maps
``(state, input)`` to ``(effect, next state)``; a missing pair raises
:class:`IllegalDialogTransition` before anything changes. Late news (a 1xx or final after the
dialog moved on) is absorbed; building or sending a request on a terminated dialog is a TU bug.

Every error carries the response a UAS answers with (``status``, ``reason``, ``headers``):
:func:`error_response` builds it.
"""

from __future__ import annotations

import enum

from sipcore.errors import SipError
from sipcore.message import Request, Response, make_response

__all__ = [
    "DIALOG_TABLE", "DialogEffect", "DialogError", "DialogInput", "DialogLimitError", "DialogState", "Glare",
    "IllegalDialogTransition", "InviteInProgress", "InvitePending", "NoSuchDialog", "OutOfOrder",
    "error_response", "render_dialog_table",
]


# --- errors (each carries the answer a UAS sends) ---------------------------------------------------

class DialogError(SipError):
    """Base of the dialog errors; ``headers`` go into the error response (Retry-After, ...)."""

    status = 500
    reason = "Server Internal Error"
    headers: tuple[tuple[str, str], ...] = ()


class NoSuchDialog(DialogError):
    """A request with a To tag that matches no dialog (§12.2.2)."""

    status = 481
    reason = "Call/Transaction Does Not Exist"


class OutOfOrder(DialogError):
    """CSeq lower than the remote sequence number (§12.2.2)."""

    status = 500
    reason = "Server Internal Error"


class Glare(DialogError):
    """A re-INVITE while ours on the same dialog has no final response yet (§14.2)."""

    status = 491
    reason = "Request Pending"


class InviteInProgress(DialogError):
    """A re-INVITE while we have not answered the previous INVITE on the dialog (§14.2)."""

    status = 500
    reason = "Server Internal Error"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = (("Retry-After", str(retry_after)),)


class InvitePending(DialogError):
    """Local: the TU tried a re-INVITE while an INVITE is in progress on the dialog (§14.1)."""

    status = 491
    reason = "Request Pending"


class IllegalDialogTransition(DialogError):
    """No entry for ``(state, input)`` in :data:`DIALOG_TABLE`; nothing was changed."""

    def __init__(self, state: DialogState, input: DialogInput) -> None:
        super().__init__(f"dialog: no transition for {input.name} in state {state.name}")
        self.state = state
        self.input = input


class DialogLimitError(DialogError):
    """``max_dialogs`` dialogs exist."""

    status = 503
    reason = "Service Unavailable"


def error_response(request: Request, error: SipError, *, to_tag: str | None = None) -> Response:
    """The answer to ``request`` for a dialog (or any Sip) error: its status, reason and headers."""
    headers = getattr(error, "headers", ())
    return make_response(request, error.status, error.reason, to_tag=to_tag, headers=headers)


# --- the dialog table ------------------------------------------------------------------------------

class DialogState(enum.Enum):
    __hash__ = object.__hash__
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(enum.Enum):
    __hash__ = object.__hash__
    PROVISIONAL = "1xx"        # a 1xx with To tag to the dialog-creating INVITE (sent or received)
    SUCCESS = "2xx"            # a 2xx to the dialog-creating INVITE
    FAILURE = "3xx-6xx"        # a non-2xx final to the dialog-creating INVITE
    REMOTE_GONE = "481/408"    # to an in-dialog request (§12.2.1.2)
    BYE = "bye"                # sent or received (§15)
    REQUEST = "request"        # the TU builds another in-dialog request


class DialogEffect(enum.Enum):
    __hash__ = object.__hash__
    KEEP = "keep"          # nothing (late or repeated news)
    REFRESH = "refresh"    # a 1xx: its Contact becomes the remote target
    CONFIRM = "confirm"    # UAC: route set and remote target from the 2xx (§13.2.2.4)
    END = "end"            # stop 2xx retransmissions, leave the registry
    ALLOW = "allow"        # the request may be built


_DS, _DI, _DE = DialogState, DialogInput, DialogEffect
DIALOG_TABLE: dict[tuple[DialogState, DialogInput], tuple[DialogEffect, DialogState]] = {
    (_DS.EARLY, _DI.PROVISIONAL): (_DE.REFRESH, _DS.EARLY),
    (_DS.EARLY, _DI.SUCCESS): (_DE.CONFIRM, _DS.CONFIRMED),
    (_DS.EARLY, _DI.FAILURE): (_DE.END, _DS.TERMINATED),
    (_DS.EARLY, _DI.REMOTE_GONE): (_DE.END, _DS.TERMINATED),
    (_DS.EARLY, _DI.BYE): (_DE.END, _DS.TERMINATED),
    (_DS.EARLY, _DI.REQUEST): (_DE.ALLOW, _DS.EARLY),
    (_DS.CONFIRMED, _DI.PROVISIONAL): (_DE.KEEP, _DS.CONFIRMED),
    (_DS.CONFIRMED, _DI.SUCCESS): (_DE.KEEP, _DS.CONFIRMED),
    (_DS.CONFIRMED, _DI.FAILURE): (_DE.KEEP, _DS.CONFIRMED),
    (_DS.CONFIRMED, _DI.REMOTE_GONE): (_DE.END, _DS.TERMINATED),
    (_DS.CONFIRMED, _DI.BYE): (_DE.END, _DS.TERMINATED),
    (_DS.CONFIRMED, _DI.REQUEST): (_DE.ALLOW, _DS.CONFIRMED),
    # a terminated dialog absorbs late news; building or sending a request on it is a TU bug
    (_DS.TERMINATED, _DI.PROVISIONAL): (_DE.KEEP, _DS.TERMINATED),
    (_DS.TERMINATED, _DI.SUCCESS): (_DE.KEEP, _DS.TERMINATED),
    (_DS.TERMINATED, _DI.FAILURE): (_DE.KEEP, _DS.TERMINATED),
    (_DS.TERMINATED, _DI.REMOTE_GONE): (_DE.KEEP, _DS.TERMINATED),
}


def render_dialog_table() -> str:
    """:data:`DIALOG_TABLE` as Markdown (inputs × states); ``—`` is illegal."""
    states = list(DialogState)
    lines = ["| input \\ state | " + " | ".join(s.name for s in states) + " |", "|---|" + "---|" * len(states)]
    for i in DialogInput:
        cells = []
        for s in states:
            entry = DIALOG_TABLE.get((s, i))
            if entry is None:
                cells.append("—")
            else:
                cells.append(entry[0].name if entry[1] is s else f"{entry[0].name} → {entry[1].name}")
        lines.append(f"| {i.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
