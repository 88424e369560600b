"""Agents' phones registering their workplace extension (REGISTER, RFC 3261 §10) with digest
authentication (RFC 3261 §22, RFC 7616, RFC 8760).

:class:`PhoneRegistry` answers a REGISTER: it authenticates the phone, then hands the request to
the :class:`~sipcore.registrar.Registrar`. Sans-IO: ``now`` is passed in, the response returned.

The address of record is the To user, a workplace's extension. The phone proves it knows the
workplace's SIP password: the workplace row (``cc.workplaces``, migration 0004) holds only the
HA1s ``H(extension:realm:password)`` in MD5 and SHA-256; the realm is ``sip.realm``. The nonces come
from a :class:`~sipcore.digest.DigestServer` with a random secret made when the process starts, so
after a restart every phone's cached nonce is not ours any more: we answer it like an expired one
(401 with ``stale=true``), so the phone retries at once with the new nonce instead of giving up.

The answers, in the order they are decided:

1. the source address is locked out (too many failures, below) → 403;
2. the To header is unreadable → 400, no user in it → 404 (as the registrar would answer);
3. no ``Authorization`` for our realm → 401 with one ``WWW-Authenticate`` per algorithm, SHA-256
   first, then MD5 (RFC 8760: the server lists them most preferred first);
4. a malformed ``Authorization`` → 400 (a failure);
5. a nonce that is expired, forgotten or not ours (issued before a restart) → 401 ``stale=true``;
6. wrong password, credentials of another user than the To user, an extension without a workplace
   or without HA1s, a replayed nonce count, a URI other than the Request-URI → 403, all alike: the
   answer, and the hashing work, are the same, so nobody learns which extensions exist (a failure);
7. otherwise the registrar's answer (200, 423, 500 ...).

Failures (4 and 6) are counted per source address in a token bucket
(:class:`~ctiserver.calls.edge.RateLimiter`: ``max_failures`` at once, refilled at
``failure_rate`` per second; defaults 10 and 0.2/s, so about 12 guesses a minute). A source whose
bucket is empty is locked out for ``lockout`` seconds (default 60): every REGISTER from it gets
403, the right password too, so guessing costs time. Phones behind the same NAT as a guesser are
locked out with it; the lockout is short for that reason. Memory is bounded: ``max_sources``
buckets and locked sources (default 10,000), the least recently used dropped.

``algorithms`` are the challenges offered, most preferred first (default SHA-256, MD5). Phones on
libre 1.1.0 or older (baresip 1.0) know only MD5 and fail on the first challenge of another
algorithm instead of skipping it, so a site with such phones must offer ``(Algorithm.MD5,)``
alone (tests/e2e/test_baresip.py shows both).
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sipcore.digest import Algorithm, AuthError, DigestServer, Outcome, StoredSecret, parse_credentials
from sipcore.message import Request, Response, make_response
from sipcore.net import Peer
from sipcore.registrar import Registrar
from sipcore.syntax import ParseError

from .edge import RateLimiter

log = logging.getLogger("ctiserver.sip")

__all__ = ["PhoneRegistry"]

# DigestServer.verify's reason for a nonce it did not issue (or one issued by an earlier process)
_NOT_OUR_NONCE = "nonce or opaque not ours"


class PhoneRegistry:
    def __init__(self, registrar: Registrar, *, realm: str,
                 workplace: Callable[[str], dict[str, Any] | None],
                 algorithms: tuple[Algorithm, ...] = (Algorithm.SHA256, Algorithm.MD5),
                 secret: bytes | None = None, nonce_lifetime: float = 300.0,
                 max_failures: int = 10, failure_rate: float = 0.2, lockout: float = 60.0,
                 max_sources: int = 10_000) -> None:
        if max_failures < 1 or failure_rate <= 0 or lockout <= 0 or max_sources < 1:
            raise ValueError("need max_failures >= 1 and a positive failure_rate, lockout and max_sources")
        self.registrar = registrar
        self.realm = realm
        self.workplace = workplace   # extension -> the cc.workplaces row (all columns), or None
        self.digest = DigestServer(realm=realm, secret=secret or secrets.token_bytes(32), algorithms=algorithms,
                                   nonce_lifetime=nonce_lifetime)
        self.lockout, self.max_sources = lockout, max_sources
        self._failures = RateLimiter(failure_rate, burst=float(max_failures), max_sources=max_sources)
        self._locked: OrderedDict[str, float] = OrderedDict()   # source address -> locked until
        self.stats = {"challenged": 0, "stale": 0, "refused": 0, "locked_out": 0, "registered": 0}

    # ---- the REGISTER ---------------------------------------------------------------------------
    def register(self, req: Request, peer: Peer, now: float) -> Response:
        tag = secrets.token_hex(6)
        source = peer.host
        if self.locked(source, now):
            self.stats["locked_out"] += 1
            return self._forbidden(req, tag)
        try:
            aor = self.registrar.aor_of(req)
        except ParseError as exc:
            return make_response(req, 400, f"Bad Request ({exc})"[:120], to_tag=tag)
        if aor is None:
            return make_response(req, 404, "Not Found", to_tag=tag)
        value = self._our_authorization(req)
        if value is None:
            self.stats["challenged"] += 1
            return self._challenge(req, tag, now, stale=False)
        try:
            username = parse_credentials(value).username
            verdict = self.digest.verify(value, method=req.method, uri=req.uri_text, now=now,
                                         lookup=lambda user, _realm: self._secret(aor, user))
        except AuthError as exc:
            self._failed(source, now, aor, username="", reason=str(exc))
            return make_response(req, 400, "Bad Request (malformed Authorization)", to_tag=tag)
        if verdict.outcome is Outcome.STALE or verdict.reason == _NOT_OUR_NONCE:
            self.stats["stale"] += 1
            return self._challenge(req, tag, now, stale=True)
        if verdict.outcome is Outcome.FAILED:
            reason = verdict.reason if username == aor else "credentials of another user than the AOR"
            self._failed(source, now, aor, username=username, reason=reason)
            return self._forbidden(req, tag)
        response = self.registrar.register(req, peer, now)
        if response.status == 200:
            self.stats["registered"] += 1
        log.info("sip.register", extra={"aor": aor, "peer": str(peer), "status": response.status})
        return response

    def locked(self, source: str, now: float) -> bool:
        until = self._locked.get(source)
        if until is None:
            return False
        if until > now:
            return True
        del self._locked[source]
        return False

    # ---- helpers --------------------------------------------------------------------------------
    def _our_authorization(self, req: Request) -> str | None:
        """The first Authorization value for our realm (a request may carry credentials for others too)."""
        for value in req.header_values("Authorization")[:8]:
            try:
                if parse_credentials(value).realm == self.realm:
                    return value
            except AuthError:
                return value   # malformed: verify will say so (a failure)
        return None

    def _secret(self, aor: str, user: str) -> StoredSecret | None:
        """The HA1s of ``user`` if it is the extension being registered and its workplace has them."""
        if user != aor:
            return None
        row = self.workplace(aor)
        if row is None:
            return None
        md5, sha256 = row.get("sip_ha1_md5"), row.get("sip_ha1_sha256")
        if not md5 and not sha256:
            return None
        return StoredSecret(ha1_md5=md5 or None, ha1_sha256=sha256 or None)

    def _challenge(self, req: Request, tag: str, now: float, *, stale: bool) -> Response:
        headers = [("WWW-Authenticate", v) for v in self.digest.challenges(now, stale=stale)]
        return make_response(req, 401, "Unauthorized", to_tag=tag, headers=headers)

    @staticmethod
    def _forbidden(req: Request, tag: str) -> Response:
        return make_response(req, 403, "Forbidden", to_tag=tag)

    def _failed(self, source: str, now: float, aor: str, *, username: str, reason: str) -> None:
        self.stats["refused"] += 1
        locked = not self._failures.allow(source, now)
        if locked:
            self._locked[source] = now + self.lockout
            self._locked.move_to_end(source)
            while len(self._locked) > self.max_sources:
                self._locked.popitem(last=False)
        # the reason is for us, never for the peer; no secrets in it
        log.warning("sip.register_refused", extra={"aor": aor, "user": username, "peer": source,
                                                   "reason": reason, "locked_out": locked})
