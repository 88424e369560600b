"""A call leg as the SIP side of the core keeps it, and the INVITE that starts an outgoing one."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sipcore.dialog import Dialog
from sipcore.message import Request, Response
from sipcore.net import Peer
from sipcore.offer_answer import LocalMedia, build_answer, make_origin, stamp, with_direction
from sipcore.sdp import Direction, SdpError, parse_sdp
from sipcore.syntax import ParseError
from sipcore.transaction import ClientTransaction, ServerTransaction, new_branch, new_tag
from sipcore.uri import SipUri, parse_uri

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, REFER, NOTIFY"
SDP = "application/sdp"
# what each kind of leg is in cc.call_legs
HISTORY_KIND = {"caller": "caller", "agent": "agent", "ivr": "ivr", "out-phone": "agent", "customer": "customer",
                "transfer": "customer"}


@dataclass(slots=True, eq=False)
class Leg:
    id: str
    kind: str                                     # caller | agent | ivr | out-phone | customer | transfer
    txn: ServerTransaction | ClientTransaction    # the INVITE's transaction
    invite: Request
    peer: Peer
    tag: str                                      # our tag on this leg
    dialog: Dialog | None = None
    rang: bool = False
    final: bool = False                           # caller: we sent a final; others: we got one
    ended: bool = False
    pending_ok: tuple[Dialog, Response] | None = None   # a 200 with a late offer waiting for its ACK
    sent_sdp: bytes = b""                         # the session description we last sent on this leg


def build_invite(target: str, *, sent_by: str, caller: str, contact: str, sdp: bytes,
                 call: str) -> tuple[Request, Peer, str]:
    """Our INVITE to ``target`` (an IP-literal SIP URI; ValueError otherwise): a new Call-ID and tag,
    ``sdp`` as the offer (empty: a late offer, RFC 3725 flow I), ``X-Contact-Id`` naming the call."""
    try:
        uri = parse_uri(target)
    except ParseError:
        uri = None
    if not isinstance(uri, SipUri):
        raise ValueError(f"not a SIP URI: {target[:100]!r}")
    transport = (uri.transport or "udp").lower()
    peer = Peer(transport, uri.host.strip("[]"), uri.port or 5060)
    tag = new_tag()
    call_id = f"{secrets.token_hex(10)}@{sent_by.rsplit(':', 1)[0]}"
    caller = caller if caller.replace("+", "").isalnum() else "anonymous"
    req = Request("INVITE", uri, headers=[
        ("Via", f"SIP/2.0/{transport.upper()} {sent_by};branch={new_branch()};rport"),
        ("Max-Forwards", "70"),
        ("From", f"\"{caller}\" <sip:{caller}@{sent_by}>;tag={tag}"),
        ("To", f"<{target}>"),
        ("Call-ID", call_id),
        ("CSeq", "1 INVITE"),
        ("Contact", contact),
        ("Allow", ALLOW),
        *([("Content-Type", SDP)] if sdp else []),
        ("X-Contact-Id", call),
    ], body=sdp)
    return req, peer, tag


def held_offer(sent: bytes, hold: bool) -> bytes | None:
    """What we last sent on a leg, re-offered with every stream inactive (hold) or sendrecv again,
    the o= version bumped (RFC 3264 §8, §8.4); None when there is nothing to re-offer."""
    if not sent:
        return None
    try:
        before = parse_sdp(sent)
    except SdpError:
        return None
    return stamp(before, with_direction(before, Direction.INACTIVE if hold else Direction.SENDRECV)).to_bytes()


def test_answer(offer: bytes, host: str) -> bytes:
    """The test pilot's answer to an offer (PCMU/PCMA/telephone-event at ``host``); SdpError if none."""
    return build_answer(parse_sdp(offer), LocalMedia(address=host, port=40000), make_origin(host, 1)).sdp.to_bytes()


def reap(legs: dict[str, Leg], live: Callable[[str], bool]) -> None:
    """Drop the legs of calls that are over once their INVITE transaction is over, breaking the
    leg <-> transaction <-> dialog cycles so that reference counting frees them at once (the cyclic
    collector's full passes paused the loop for tens of ms under load)."""
    for key in [k for k, leg in legs.items() if leg.txn is not None and leg.txn.terminated
                and (leg.final or leg.ended) and not live(k.split("/")[0])]:
        leg = legs.pop(key)
        if leg.txn.context is leg:
            leg.txn.context = None
        if leg.dialog is not None and leg.dialog.context is leg:
            leg.dialog.context = None
        leg.dialog = leg.pending_ok = None
