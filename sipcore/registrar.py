"""A registrar (RFC 3261 §10.3) for the agents' phones: bindings with expiry, sans-IO.

:meth:`Registrar.register` takes an (already authenticated) REGISTER and ``now`` and returns the
response to send; :meth:`Registrar.lookup` gives the live contacts of an address of record. The
address of record is the user part of the To URI (the phones register their extension: a workplace's
extension is its AOR); the host part is not checked — one registrar serves one domain.

Per binding we keep the contact URI, its expiry, the Call-ID and CSeq of the REGISTER that last
changed it (§10.3 step 7: a REGISTER with the same Call-ID and a CSeq not higher is out of order
and fails with 500), and the peer it came from, so a phone behind NAT can be reached where its
REGISTER came from (RFC 3581 keeps that path open while the phone refreshes).

Answers: 200 with every live binding of the AOR and its remaining ``expires``; 400 for ``*`` with
another contact or an Expires other than 0, or a malformed expires; 423 Interval Too Brief with
Min-Expires for 0 < expires < ``min_expires``; 500 for an out-of-order CSeq; 403 when the AOR
would exceed ``max_bindings`` or the registrar ``max_aors``. Expires above ``max_expires`` are cut
to it. Memory is bounded by ``max_aors`` × ``max_bindings``; expired bindings are dropped by
:meth:`expire` (the adapter calls it every few seconds) and skipped by :meth:`lookup` meanwhile.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sipcore.message import Request, Response, make_response
from sipcore.net import Peer
from sipcore.syntax import ParseError
from sipcore.uri import SipUri


@dataclass(frozen=True, slots=True)
class Binding:
    aor: str
    contact: str          # the Contact URI as the phone sent it
    expires_at: float
    call_id: str
    cseq: int
    peer: Peer            # where the REGISTER came from


class Registrar:
    def __init__(self, *, min_expires: int = 60, max_expires: int = 3600, default_expires: int = 3600,
                 max_bindings: int = 5, max_aors: int = 100_000) -> None:
        if not 0 < min_expires <= default_expires <= max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        self.min_expires, self.max_expires, self.default_expires = min_expires, max_expires, default_expires
        self.max_bindings, self.max_aors = max_bindings, max_aors
        self._aors: dict[str, dict[str, Binding]] = {}   # aor -> contact key -> binding

    @staticmethod
    def aor_of(req: Request) -> str | None:
        uri = req.to.uri
        return uri.user if isinstance(uri, SipUri) and uri.user else None

    def register(self, req: Request, peer: Peer, now: float) -> Response:
        tag = secrets.token_hex(6)
        try:
            aor = self.aor_of(req)
            if aor is None:
                return make_response(req, 404, "Not Found", to_tag=tag)
            header = req.expires
            contacts = req.contacts
            wildcard = req.contact_wildcard
            wanted = [(c, c.expires) for c in contacts]
        except ParseError as exc:
            return make_response(req, 400, f"Bad Request ({exc})"[:120], to_tag=tag)
        call_id, cseq = req.call_id, req.cseq.number
        current = self._live(aor, now)
        if wildcard:   # §10.3 step 6: "*" only alone and with Expires: 0
            if header != 0 or len(req.header_values("Contact")) != 1:
                return make_response(req, 400, "Bad Request (Contact * needs Expires: 0)", to_tag=tag)
            if any(b.call_id == call_id and cseq <= b.cseq for b in current.values()):
                return make_response(req, 500, "Out Of Order", to_tag=tag)
            self._aors.pop(aor, None)
            return make_response(req, 200, to_tag=tag)
        changes: list[tuple[str, Binding | None]] = []
        for contact, param in wanted:
            expires = param if param is not None else header if header is not None else self.default_expires
            if 0 < expires < self.min_expires:
                return make_response(req, 423, "Interval Too Brief", to_tag=tag,
                                     headers=[("Min-Expires", str(self.min_expires))])
            key = str(contact.uri)
            old = current.get(key)
            if old is not None and old.call_id == call_id and cseq <= old.cseq:
                return make_response(req, 500, "Out Of Order", to_tag=tag)
            if expires == 0:
                changes.append((key, None))
            else:
                changes.append((key, Binding(aor, key, now + min(expires, self.max_expires), call_id, cseq, peer)))
        result = dict(current)
        for key, binding in changes:
            if binding is None:
                result.pop(key, None)
            else:
                result[key] = binding
        if len(result) > self.max_bindings or (aor not in self._aors and result
                                                and len(self._aors) >= self.max_aors):
            return make_response(req, 403, "Forbidden (too many registrations)", to_tag=tag)
        if result:
            self._aors[aor] = result
        else:
            self._aors.pop(aor, None)
        listed = [("Contact", f"<{b.contact}>;expires={max(0, int(b.expires_at - now))}") for b in result.values()]
        return make_response(req, 200, to_tag=tag, headers=listed)

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of ``aor``, the most recently refreshed first."""
        return sorted(self._live(aor, now).values(), key=lambda b: -b.expires_at)

    def expire(self, now: float) -> int:
        """Drop expired bindings; returns how many."""
        gone = 0
        for aor in list(self._aors):
            live = self._live(aor, now)
            gone += len(self._aors[aor]) - len(live)
            if live:
                self._aors[aor] = live
            else:
                del self._aors[aor]
        return gone

    def _live(self, aor: str, now: float) -> dict[str, Binding]:
        return {k: b for k, b in self._aors.get(aor, {}).items() if b.expires_at > now}

    def __len__(self) -> int:
        return sum(len(v) for v in self._aors.values())
