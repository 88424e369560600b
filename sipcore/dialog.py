"""Dialogs (RFC 3261 §12-§15), sans-IO, on top of :class:`~sipcore.transaction.TransactionLayer`.

How it works. A :class:`Dialog` holds the state of §12: Call-ID, local and remote tags, local and
remote URIs, local and remote CSeq, the remote target and the route set. :class:`Dialogs` is the
registry, keyed by ``(Call-ID, local tag, remote tag)``, and the part of the UA core that keeps
dialogs right while the TU talks to the transaction layer through it:

- inbound requests: :meth:`Dialogs.receive_request` for every :class:`IncomingRequest` that has a
  To tag; it returns the dialog or raises the error to answer with (:class:`NoSuchDialog` 481,
  :class:`OutOfOrder` 500, :class:`Glare` 491, :class:`InviteInProgress` 500 + Retry-After, §12.2.2,
  §14.2; :func:`error_response` builds the answer). An ACK never raises: it is matched (None if
  nothing matches) and stops our 2xx retransmissions.
- our responses to INVITEs: :meth:`Dialogs.respond` instead of ``layer.respond``: a 1xx (not 100) or
  2xx with a To tag to a dialog-creating INVITE makes the UAS dialog and gets the request's
  Record-Route copied in unless it has its own (§12.1.1), a 3xx-6xx ends its
  early dialog, and a 2xx is retransmitted (T1 doubling to T2) until its ACK arrives, or for 64*T1,
  when the TU gets :class:`AckTimeout` and should send BYE (§13.3.1.4). As §13.3.1.4 says, that
  happens on reliable transports too (the 2xx is end-to-end and may cross UDP hops further on).
- inbound responses: :meth:`Dialogs.receive_response` for every :class:`IncomingResponse` and
  :class:`StrayResponse`: a 1xx/2xx with a To tag to our INVITE makes the UAC dialog (§12.1.2, route
  set reversed, confirmed by the 2xx which also recomputes route set and target), a retransmitted
  2xx gets the remembered ACK again (§13.2.2.4), 481/408 to an in-dialog request ends the dialog
  (§12.2.1.2). The returned :class:`DialogResponse` says what happened (``ESTABLISHED``: the TU must
  ACK with :meth:`Dialog.new_ack` and :meth:`Dialogs.send_ack`).
- failures: :meth:`Dialogs.transaction_failed` on TransactionTimeout/TransportFailed of a client
  transaction ends the early dialogs of an INVITE, or the dialog of an in-dialog request (§12.2.1.2).
- our in-dialog requests: :meth:`Dialog.new_request` builds BYE, re-INVITE, INFO, REFER, NOTIFY, ...
  (§12.2.1.1: Request-URI = remote target, Route = route set, CSeq + 1, tags, Max-Forwards 70, a Via
  with a new branch and the sent-by the caller gives); :meth:`Dialogs.send_request` starts its
  client transaction (a BYE ends the dialog, a re-INVITE is refused while another INVITE is in
  progress on the dialog, §14.1).

The dialog's own life is a table (:data:`DIALOG_TABLE`, EARLY → CONFIRMED → TERMINATED); an illegal
pair raises :class:`IllegalDialogTransition` before anything changes. Terminated dialogs leave the
registry at once.

Timers share the transaction layer's heap (:meth:`TransactionLayer.schedule`), so the adapter keeps
one ``next_deadline()``; :class:`AckTimeout` comes out of ``layer.on_timer(now)``.

Routing: loose routing (``lr``) as §12.2.1.1 says; a strict router first in the route set is
handled too (Request-URI = its URI, the remote target appended as the last Route). Parameters not
allowed in a Request-URI are not stripped from it.

Bounds: at most ``max_dialogs`` dialogs. Beyond that :meth:`Dialogs.respond` raises
:class:`DialogLimitError` (503) before sending, and :meth:`Dialogs.receive_response` makes no UAC
dialog (returns None: the TU should ACK and BYE such a 2xx itself).

Out of scope: session timers (RFC 4028), PRACK and reliable provisionals (RFC 3262), UPDATE's
offer/answer rules (RFC 3311), subscriptions as dialog usages (RFC 6665). Forking is simplified to
one dialog per remote tag: the first 2xx ends the other early dialogs of the INVITE at once (instead
of 64*T1 later); a 2xx from a second fork makes a second confirmed dialog, which the TU ACKs and
BYEs. Early-dialog requests from the UAS side are not checked (a callee MUST NOT send BYE there).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable
from dataclasses import dataclass

from sipcore.headers import HeaderValue, Method, NameAddr, intern_method, make_field, make_fields
from sipcore.message import Request, Response
from sipcore.net import Peer
from sipcore.syntax import Memo, ParseError, is_token
from sipcore.transaction import ClientTransaction, ServerTransaction, TransactionLayer, new_branch
from sipcore.txn_dialog_table import (
    DIALOG_TABLE,
    DialogEffect,
    DialogError,
    DialogInput,
    DialogLimitError,
    DialogState,
    Glare,
    IllegalDialogTransition,
    InviteInProgress,
    InvitePending,
    NoSuchDialog,
    OutOfOrder,
    error_response,
    render_dialog_table,
)
from sipcore.txn_tables import TxnState
from sipcore.uri import SipUri, Uri, check_host, parse_hostport

__all__ = [
    "DIALOG_TABLE", "TARGET_REFRESH", "AckTimeout", "Dialog", "DialogEffect", "DialogError", "DialogInput",
    "DialogLimitError", "DialogResponse", "DialogState", "Dialogs", "Glare", "IllegalDialogTransition",
    "InviteInProgress", "InvitePending", "NoSuchDialog", "OutOfOrder", "ResponseKind", "Role", "error_response",
    "render_dialog_table",
]

_INVITE, _ACK, _CANCEL, _BYE = Method.INVITE, Method.ACK, Method.CANCEL, Method.BYE
# §12.2 + RFC 3311, 3515, 6665: requests whose Contact replaces the remote target
TARGET_REFRESH = frozenset((Method.INVITE, Method.UPDATE, Method.SUBSCRIBE, Method.NOTIFY, Method.REFER))
_MAX_CSEQ = 0xFFFFFFFF
_DS, _DI, _DE = DialogState, DialogInput, DialogEffect


# --- the dialog ------------------------------------------------------------------------------------

class Role(enum.Enum):
    __hash__ = object.__hash__
    UAC = "uac"
    UAS = "uas"


_VIA_PREFIXES = Memo(256)


def _via_prefix(transport: str, sent_by: str) -> str:
    """``SIP/2.0/UDP host:port;branch=`` for our own address, checked once."""
    key = transport + " " + sent_by
    hit = _VIA_PREFIXES.get(key)
    if hit is None:
        if not isinstance(transport, str) or not is_token(transport) or not isinstance(sent_by, str):
            raise ParseError(f"bad Via transport or sent-by: {transport!r} {sent_by!r}")
        check_host(parse_hostport(sent_by)[0])
        hit = f"SIP/2.0/{transport.upper()} {sent_by};rport;branch="
        _VIA_PREFIXES.remember(key, hit)
    return hit  # type: ignore[return-value]


class Dialog:
    """One dialog (§12). Read the public attributes; the TU may hang its object on ``context``."""

    __slots__ = ("call_id", "local_tag", "remote_tag", "role", "state", "local_uri", "remote_uri",
                 "local_seq", "remote_seq", "remote_target", "route_set", "secure", "local_contact",
                 "context", "_from", "_to", "_uri_text", "_route", "_uac_invite", "_uas_invite", "_answered",
                 "_ack", "_ack_cseq", "_ack_peer", "_ok", "_ok_response", "_ok_cseq", "_ok_peer", "_retx", "_main",
                 "_ok_interval", "_ok_giveup")

    call_id: str
    local_tag: str
    remote_tag: str
    role: Role
    state: DialogState
    local_uri: NameAddr
    remote_uri: NameAddr
    local_seq: int | None
    remote_seq: int | None
    remote_target: Uri
    route_set: tuple[NameAddr, ...]
    secure: bool
    local_contact: str | None
    context: object
    _uri_text: str | None
    _route: str | None
    _from: str
    _to: str

    def _init(self, role: Role, state: DialogState, call_id: str, local_tag: str, remote_tag: str,
              local_uri: NameAddr, remote_uri: NameAddr, remote_target: Uri,
              route_set: tuple[NameAddr, ...], local_contact: str | None, secure: bool) -> None:
        self.role, self.state, self.call_id = role, state, call_id
        self.local_tag, self.remote_tag = local_tag, remote_tag
        self.local_uri, self.remote_uri = local_uri, remote_uri
        self.local_seq = self.remote_seq = None
        self.local_contact = local_contact
        self.secure = secure
        self.context = None
        self._uac_invite: ClientTransaction | None = None
        self._uas_invite: ServerTransaction | None = None
        self._answered = -1
        self._ack: bytes | None = None
        self._ack_cseq = -1
        self._ack_peer: Peer | None = None
        self._ok: bytes | None = None
        self._ok_response: Response | None = None
        self._ok_cseq = -1
        self._ok_peer: Peer | None = None
        self._retx = 0  # token of the armed 2xx retransmission timer (the layer's timer-owner convention)
        self._main = 0  # (unused: dialogs have one timer)
        self._ok_interval = 0.0
        self._ok_giveup = 0.0
        self._set_route(remote_target, route_set)

    def _set_route(self, remote_target: Uri, route_set: tuple[NameAddr, ...]) -> None:
        self.remote_target = remote_target
        self.route_set = route_set
        self._uri_text = None  # recomputed by _prepare when a request is built

    def _prepare(self) -> str:
        """Request-URI, Route, From and To text for our requests (§12.2.1.1), computed on the
        first request after a change: many dialogs never build one."""
        route_set, remote_target = self.route_set, self.remote_target
        first = route_set[0].uri if route_set else None
        if first is None or (isinstance(first, SipUri) and first.lr):
            uri_text = str(remote_target)
            routes = [str(r) for r in route_set]
        else:  # a strict router: it becomes the Request-URI, the target the last Route
            uri_text = str(first)
            routes = [str(r) for r in route_set[1:]] + [f"<{remote_target}>"]
        self._route = ", ".join(routes) if routes else None
        self._from, self._to = str(self.local_uri), str(self.remote_uri)
        self._uri_text = uri_text
        return uri_text

    @property
    def id(self) -> tuple[str, str, str]:
        """``(Call-ID, local tag, remote tag)`` (§12)."""
        return self.call_id, self.local_tag, self.remote_tag

    @property
    def next_hop(self) -> Uri:
        """Where our in-dialog requests go first: the first route, else the remote target (§8.1.2).
        The adapter resolves it to a Peer (RFC 3263)."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    @property
    def request_uri(self) -> str:
        return self._uri_text or self._prepare()

    def new_request(self, method: str, *, transport: str, sent_by: str,
                    headers: Iterable[tuple[str, HeaderValue]] = (), body: bytes = b"",
                    content_type: str | None = None, branch: str | None = None) -> Request:
        """An in-dialog request (§12.2.1.1) with the next local CSeq. ``transport`` and ``sent_by``
        (``host[:port]``) make our Via; the branch is new unless given. Target refresh requests
        (INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER) get ``local_contact`` unless ``headers`` has a
        Contact. ACK: use :meth:`new_ack`; CANCEL: ``layer.cancel``."""
        if not isinstance(method, str) or not is_token(method):
            raise ParseError(f"bad method {method!r}")
        method = intern_method(method)
        if method == _ACK or method == _CANCEL:
            raise DialogError(f"{method} is not built with new_request (use new_ack / layer.cancel)")
        if (self.state, _DI.REQUEST) not in DIALOG_TABLE:
            raise IllegalDialogTransition(self.state, _DI.REQUEST)
        seq = 1 if self.local_seq is None else self.local_seq + 1  # §12.2.1.1 (1 when empty: any value will do)
        if seq > _MAX_CSEQ:
            raise DialogError("local CSeq exhausted")
        extra = make_fields(headers)
        fields = self._common(transport, sent_by, branch, f"{seq} {method}")
        if method in TARGET_REFRESH and self.local_contact is not None and not any(f[0] == "contact" for f in extra):
            fields.append(("contact", "Contact", self.local_contact))
        request = self._finish(method, fields, extra, body, content_type)
        self.local_seq = seq
        return request

    def new_ack(self, cseq: int, *, transport: str, sent_by: str, headers: Iterable[tuple[str, HeaderValue]] = (),
                body: bytes = b"", content_type: str | None = None, branch: str | None = None) -> Request:
        """The ACK for a 2xx to our INVITE with CSeq number ``cseq`` (§13.2.2.4): built like an
        in-dialog request, same CSeq number, method ACK, a new branch. Put the INVITE's
        Authorization/Proxy-Authorization in ``headers`` if it had them; the answer SDP in ``body``
        for a late offer."""
        if type(cseq) is not int or not 0 <= cseq <= _MAX_CSEQ:
            raise DialogError(f"bad CSeq number {cseq!r}")
        extra = make_fields(headers)
        return self._finish(_ACK, self._common(transport, sent_by, branch, f"{cseq} ACK"), extra, body, content_type)

    def _common(self, transport: str, sent_by: str, branch: str | None, cseq: str) -> list[tuple[str, str, str]]:
        if self._uri_text is None:
            self._prepare()
        via = _via_prefix(transport, sent_by) + (new_branch() if branch is None else _checked_branch(branch))
        fields = [("via", "Via", via), ("max-forwards", "Max-Forwards", "70")]
        if self._route is not None:
            fields.append(("route", "Route", self._route))
        fields += [("from", "From", self._from), ("to", "To", self._to), ("call-id", "Call-ID", self.call_id),
                   ("cseq", "CSeq", cseq)]
        return fields

    def _finish(self, method: str, fields: list[tuple[str, str, str]], extra: list[tuple[str, str, str]],
                body: bytes, content_type: str | None) -> Request:
        if content_type is not None:
            ct = make_field("Content-Type", content_type)
            assert ct is not None
            extra = [f for f in extra if f[0] != "content-type"] + [ct]
        return Request._from_wire(method, self.request_uri, "SIP/2.0", fields + extra, bytes(body))

    def __repr__(self) -> str:
        return f"<Dialog {self.role.name} {self.state.name} {self.call_id} {self.local_tag}/{self.remote_tag}>"


def _checked_branch(branch: str) -> str:
    if not isinstance(branch, str) or not is_token(branch):
        raise ParseError(f"bad branch {branch!r}")
    return branch


# --- events and results ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AckTimeout:
    """Our 2xx was retransmitted for 64*T1 and no ACK came (§13.3.1.4): the dialog stays
    confirmed, but the TU SHOULD end the session with a BYE."""

    dialog: Dialog
    response: Response


class ResponseKind(enum.Enum):
    __hash__ = object.__hash__
    EARLY = "early"                    # a 1xx with a To tag made or updated an early dialog
    ESTABLISHED = "established"        # a new 2xx to an INVITE (initial or re-INVITE): ACK it
    RETRANSMISSION = "retransmission"  # a 2xx already seen: the remembered ACK went out again
    IN_DIALOG = "in dialog"            # a response to another in-dialog request
    TERMINATED = "terminated"          # the response ended the dialog (non-2xx to the INVITE, 481, 408)


@dataclass(frozen=True, slots=True)
class DialogResponse:
    """What :meth:`Dialogs.receive_response` did with a response."""

    dialog: Dialog | None
    kind: ResponseKind


# --- the registry ----------------------------------------------------------------------------------

class Dialogs:
    """All dialogs of one UA (or of both sides of a B2BUA). See the module documentation."""

    def __init__(self, layer: TransactionLayer, *, max_dialogs: int = 100_000,
                 rng: random.Random | None = None) -> None:
        if max_dialogs < 1:
            raise ValueError("max_dialogs must be >= 1")
        self._layer = layer
        self.max_dialogs = max_dialogs
        self._rng = rng or random.Random()  # Retry-After jitter only (§14.2), nothing secret
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}
        self._early: dict[tuple[str, str], list[Dialog]] = {}  # UAC early dialogs per INVITE
        self._fire = self._fire_2xx

    def __len__(self) -> int:
        return len(self._dialogs)

    def get(self, call_id: str, local_tag: str, remote_tag: str) -> Dialog | None:
        return self._dialogs.get((call_id, local_tag, remote_tag))

    def match(self, msg: Request | Response) -> Dialog | None:
        """The dialog of a request we received (To tag is ours) or a response we received (From
        tag is ours)."""
        if isinstance(msg, Request):
            return self._dialogs.get((msg.call_id, msg.to_tag or "", msg.from_tag or ""))
        return self._dialogs.get((msg.call_id, msg.from_tag or "", msg.to_tag or ""))

    def terminate(self, dialog: Dialog) -> None:
        """Forget a dialog now (e.g. after AckTimeout and our BYE)."""
        if dialog.state is not _DS.TERMINATED:
            dialog.state = _DS.TERMINATED
            self._forget(dialog)

    # --- UAS -----------------------------------------------------------------------------------------
    def receive_request(self, request: Request, transaction: ServerTransaction | None, now: float) -> Dialog | None:
        """Check and apply an incoming request against its dialog (§12.2.2, §14.2).

        Returns None for a request outside any dialog (no To tag: the TU handles it) and for an
        unmatched ACK or CANCEL; else the dialog. Raises :class:`NoSuchDialog`, :class:`OutOfOrder`,
        :class:`Glare` or :class:`InviteInProgress`: answer with :func:`error_response`."""
        to_tag = request.to_tag
        if to_tag is None:
            return None
        method = request.method
        dialog = self._dialogs.get((request.call_id, to_tag, request.from_tag or ""))
        if method == _ACK:
            if dialog is not None and dialog._retx and request.cseq.number == dialog._ok_cseq:
                dialog._retx = 0  # §13.3.1.4: retransmissions cease
                dialog._ok = dialog._ok_response = None
            return dialog
        if method == _CANCEL:
            return dialog
        if dialog is None:
            raise NoSuchDialog(f"no dialog for Call-ID {request.call_id} tags {to_tag}/{request.from_tag}")
        number = request.cseq.number
        if dialog.remote_seq is not None and number < dialog.remote_seq:
            raise OutOfOrder(f"CSeq {number} is lower than {dialog.remote_seq}")
        dialog.remote_seq = number
        if method == _INVITE:
            uas = dialog._uas_invite
            if uas is not None and uas.state is TxnState.PROCEEDING and uas is not transaction:
                raise InviteInProgress("the previous INVITE on this dialog has no final response yet",
                                       self._rng.randint(0, 10))
            uac = dialog._uac_invite
            if uac is not None and (uac.state is TxnState.CALLING or uac.state is TxnState.PROCEEDING):
                raise Glare("our re-INVITE on this dialog is pending")
            dialog._uas_invite = transaction
        if method in TARGET_REFRESH:
            self._refresh(dialog, request)  # §12.2.2
        elif method == _BYE:
            self._step(dialog, _DI.BYE)  # §15.1.2
        return dialog

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> Dialog | None:
        """``layer.respond`` plus what the response means for dialogs (see the module docs)."""
        request = transaction.request
        status = response.status
        if transaction.method != _INVITE:
            self._layer.respond(transaction, response, now)
            return self.match(request) if request.to_tag is not None else None
        if request.to_tag is not None:  # a re-INVITE
            dialog = self.match(request)
            self._layer.respond(transaction, response, now)
            if dialog is not None and 200 <= status < 300:
                self._start_2xx(dialog, transaction, response, now)
            return dialog
        tag = response.to_tag
        if tag is None:
            if 200 <= status < 300:
                raise DialogError("a 2xx to an INVITE needs a To tag (§12.1.1)")
            self._layer.respond(transaction, response, now)
            return None
        key = (request.call_id, tag, request.from_tag or "")
        dialog = self._dialogs.get(key)
        creates = 100 < status < 300
        if creates and dialog is None and len(self._dialogs) >= self.max_dialogs:
            raise DialogLimitError(f"{len(self._dialogs)} dialogs exist")
        if creates and not response.has_header("Record-Route"):
            # §12.1.1: a dialog-creating response carries the request's Record-Route, in order
            for value in request.header_values("Record-Route"):
                response = response.with_header("Record-Route", value)
        self._layer.respond(transaction, response, now)
        if creates:
            if dialog is None:
                dialog = self._new_uas(request, response, key, _DS.EARLY if status < 200 else _DS.CONFIRMED)
                dialog._uas_invite = transaction
            else:
                self._step(dialog, _DI.PROVISIONAL if status < 200 else _DI.SUCCESS)
            if status >= 200:
                self._start_2xx(dialog, transaction, response, now)
        elif status >= 300 and dialog is not None:
            self._step(dialog, _DI.FAILURE)
        return dialog

    def _new_uas(self, invite: Request, response: Response, key: tuple[str, str, str], state: DialogState) -> Dialog:
        """§12.1.1: route set = Record-Route in order, remote target = the INVITE's Contact."""
        contacts = invite.contacts
        uri = invite.uri
        dialog = Dialog()
        dialog._init(Role.UAS, state, key[0], key[1], key[2], response.to, invite.from_,
                     contacts[0].uri if contacts else invite.from_.uri, invite.record_routes,
                     response.header("Contact"), isinstance(uri, SipUri) and uri.secure)
        dialog.remote_seq = invite.cseq.number
        self._dialogs[key] = dialog
        return dialog

    def _start_2xx(self, dialog: Dialog, transaction: ServerTransaction, response: Response, now: float) -> None:
        """§13.3.1.4: retransmit the 2xx, T1 doubling up to T2, until the ACK or 64*T1."""
        layer = self._layer
        dialog._ok = bytes(response)
        dialog._ok_response = response
        dialog._ok_cseq = response.cseq.number
        dialog._ok_peer = transaction.peer
        dialog._ok_interval = layer.t1
        dialog._ok_giveup = now + 64 * layer.t1
        dialog._retx = layer.schedule(now + layer.t1, self._fire, dialog, None)

    def _fire_2xx(self, dialog: Dialog, what: object, token: int, now: float, events: list) -> None:
        if token != dialog._retx:
            return  # the ACK came, the dialog ended, or a newer 2xx took over
        if now >= dialog._ok_giveup:
            response = dialog._ok_response
            dialog._retx = 0
            dialog._ok = dialog._ok_response = None
            assert response is not None
            events.append(AckTimeout(dialog, response))
            return
        layer = self._layer
        assert dialog._ok is not None and dialog._ok_peer is not None
        layer.send(dialog._ok, dialog._ok_peer)
        dialog._ok_interval = min(2 * dialog._ok_interval, layer.t2)
        dialog._retx = layer.schedule(min(now + dialog._ok_interval, dialog._ok_giveup), self._fire, dialog, None)

    # --- UAC -----------------------------------------------------------------------------------------
    def receive_response(self, response: Response, transaction: ClientTransaction | None,
                         now: float) -> DialogResponse | None:
        """Apply a response we received (IncomingResponse: with its transaction; StrayResponse:
        None). None when no dialog is concerned."""
        method = response.cseq.method
        if method == _CANCEL:
            return None
        if transaction is not None and method == _INVITE and transaction.request.to_tag is None:
            return self._initial_response(response, transaction)
        to_tag = response.to_tag
        if to_tag is None:
            return None
        dialog = self._dialogs.get((response.call_id, response.from_tag or "", to_tag))
        if dialog is None:
            return None
        status = response.status
        if method == _INVITE and 200 <= status < 300:
            return self._invite_2xx(dialog, response)
        if status == 481 or status == 408:  # §12.2.1.2
            self._step(dialog, _DI.REMOTE_GONE)
            return DialogResponse(dialog, ResponseKind.TERMINATED)
        if 200 <= status < 300 and method in TARGET_REFRESH:
            self._refresh(dialog, response)  # §12.2.1.2
        return DialogResponse(dialog, ResponseKind.IN_DIALOG)

    def _initial_response(self, response: Response, transaction: ClientTransaction) -> DialogResponse | None:
        status = response.status
        tag = response.to_tag
        call_id = response.call_id
        local_tag = response.from_tag or ""
        group = (call_id, local_tag)
        if status >= 300:  # every early dialog of this INVITE ends (§12.3 / §13.2.2.3)
            ended = None
            for early in self._early.pop(group, ()):
                if early.state is _DS.EARLY:
                    self._step(early, _DI.FAILURE)
                    if early.remote_tag == tag:
                        ended = early
            return DialogResponse(ended, ResponseKind.TERMINATED) if ended is not None else None
        if tag is None or status == 100:
            return None
        key = (call_id, local_tag, tag)
        made = transaction.dialogs
        # the dialog this INVITE made for the tag, even if it has ended since (then it is not
        # made again: a 1xx or 2xx retransmitted after our BYE stays a retransmission)
        dialog: Dialog | None = made.get(tag) if made is not None else None  # type: ignore[assignment]
        if status < 200:
            if dialog is None:
                if len(self._dialogs) >= self.max_dialogs:
                    return None
                dialog = self._new_uac(transaction, response, key, _DS.EARLY)
                self._early.setdefault(group, []).append(dialog)
            elif self._step(dialog, _DI.PROVISIONAL) is _DE.REFRESH:
                self._refresh(dialog, response)
            return DialogResponse(dialog, ResponseKind.EARLY)
        if dialog is not None and dialog.state is not _DS.EARLY:
            return self._invite_2xx(dialog, response)
        if dialog is None:
            if len(self._dialogs) >= self.max_dialogs:
                return None
            dialog = self._new_uac(transaction, response, key, _DS.CONFIRMED)
        elif self._step(dialog, _DI.SUCCESS) is _DE.CONFIRM:
            # §13.2.2.4: the route set and target are recomputed from the 2xx
            contacts = response.contacts
            dialog._set_route(contacts[0].uri if contacts else dialog.remote_target,
                              tuple(reversed(response.record_routes)))
        for other in self._early.pop(group, ()):  # forking simplified: the other early dialogs end
            if other is not dialog and other.state is _DS.EARLY:
                self._step(other, _DI.FAILURE)
        dialog._answered = response.cseq.number
        return DialogResponse(dialog, ResponseKind.ESTABLISHED)

    def _new_uac(self, transaction: ClientTransaction, response: Response, key: tuple[str, str, str],
                 state: DialogState) -> Dialog:
        """§12.1.2: route set = Record-Route reversed, remote target = the response's Contact."""
        invite = transaction.request
        contacts = response.contacts
        uri = invite.uri
        dialog = Dialog()
        dialog._init(Role.UAC, state, key[0], key[1], key[2], invite.from_, response.to,
                     contacts[0].uri if contacts else uri, tuple(reversed(response.record_routes)),
                     invite.header("Contact"), isinstance(uri, SipUri) and uri.secure)
        dialog.local_seq = invite.cseq.number
        dialog._uac_invite = transaction
        self._dialogs[key] = dialog
        if transaction.dialogs is None:
            transaction.dialogs = {}
        transaction.dialogs[key[2]] = dialog
        return dialog

    def _invite_2xx(self, dialog: Dialog, response: Response) -> DialogResponse:
        number = response.cseq.number
        if number == dialog._answered:  # §13.2.2.4: a retransmission; ACK it again
            if dialog._ack is not None and dialog._ack_cseq == number and dialog._ack_peer is not None:
                self._layer.send(dialog._ack, dialog._ack_peer)
            return DialogResponse(dialog, ResponseKind.RETRANSMISSION)
        dialog._answered = number
        self._refresh(dialog, response)
        return DialogResponse(dialog, ResponseKind.ESTABLISHED)

    def send_request(self, dialog: Dialog, request: Request, peer: Peer, now: float) -> ClientTransaction:
        """Start the client transaction of an in-dialog request built with :meth:`Dialog.new_request`.
        A re-INVITE raises :class:`InvitePending` while another INVITE is in progress (§14.1); a
        BYE ends the dialog (§15.1.1)."""
        method = request.method
        if (dialog.state, _DI.REQUEST) not in DIALOG_TABLE:
            raise IllegalDialogTransition(dialog.state, _DI.REQUEST)
        if method == _INVITE and self._invite_busy(dialog):
            raise InvitePending("an INVITE is in progress on this dialog")
        txn = self._layer.request(request, peer, now)
        if method == _INVITE:
            dialog._uac_invite = txn
        elif method == _BYE:
            self._step(dialog, _DI.BYE)
        return txn

    def send_ack(self, dialog: Dialog, ack: Request, peer: Peer) -> None:
        """Send the ACK for a 2xx (built with :meth:`Dialog.new_ack`) and remember it for the 2xx's
        retransmissions (§13.2.2.4)."""
        data = bytes(ack)
        self._layer.send(data, peer)
        dialog._ack = data
        dialog._ack_cseq = ack.cseq.number
        dialog._ack_peer = peer

    def transaction_failed(self, transaction: ClientTransaction) -> list[Dialog]:
        """Call on TransactionTimeout / TransportFailed of a client transaction. A dialog-creating
        INVITE's early dialogs end; an in-dialog request's dialog ends (§12.2.1.2: no response at all
        counts as a 408). Returns the dialogs that ended."""
        request = transaction.request
        method = transaction.method
        if method == _CANCEL:
            return []
        if request.to_tag is None:
            ended = []
            if method == _INVITE:
                for early in self._early.pop((request.call_id, request.from_tag or ""), ()):
                    if early.state is _DS.EARLY:
                        self._step(early, _DI.FAILURE)
                        ended.append(early)
            return ended
        dialog = self._dialogs.get((request.call_id, request.from_tag or "", request.to_tag))
        if dialog is None:
            return []
        self._step(dialog, _DI.REMOTE_GONE)
        return [dialog]

    # --- shared --------------------------------------------------------------------------------------
    @staticmethod
    def _invite_busy(dialog: Dialog) -> bool:
        uac, uas = dialog._uac_invite, dialog._uas_invite
        return (uac is not None and (uac.state is TxnState.CALLING or uac.state is TxnState.PROCEEDING)) or \
            (uas is not None and uas.state is TxnState.PROCEEDING)

    @staticmethod
    def _refresh(dialog: Dialog, msg: Request | Response) -> None:
        contacts = msg.contacts
        if contacts and contacts[0].uri != dialog.remote_target:
            dialog._set_route(contacts[0].uri, dialog.route_set)

    def _step(self, dialog: Dialog, inp: DialogInput) -> DialogEffect:
        state = dialog.state
        try:
            effect, nxt = DIALOG_TABLE[(state, inp)]
        except KeyError:
            raise IllegalDialogTransition(state, inp) from None
        dialog.state = nxt
        if effect is _DE.END:
            self._forget(dialog)
        return effect

    def _forget(self, dialog: Dialog) -> None:
        dialog._retx = 0
        dialog._ok = dialog._ok_response = None
        key = dialog.id
        if self._dialogs.get(key) is dialog:
            del self._dialogs[key]
        group = self._early.get((dialog.call_id, dialog.local_tag))
        if group is not None and dialog in group:
            group.remove(dialog)
            if not group:
                del self._early[(dialog.call_id, dialog.local_tag)]
