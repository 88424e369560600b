"""Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760): both sides, sans-IO.

How it works.

Server side (a registrar or trunk checking a client): :class:`DigestServer` makes the challenge
values for ``WWW-Authenticate`` / ``Proxy-Authenticate`` (one per algorithm, SHA-256 before MD5,
RFC 8760 §2.4) and checks an ``Authorization`` value with :meth:`DigestServer.verify`. Nonces
are stateless: ``base64url(issued-ms | 8 random bytes | HMAC-SHA-256(secret, realm, issued, random)
[:16])``, so any process holding the secret can check them, and they expire (``nonce_lifetime``)
without a table of issued nonces. An expired nonce with an otherwise correct response gives
:attr:`Outcome.STALE`, answered with a new challenge carrying ``stale=true`` (RFC 7616 §3.3), so the
client retries without asking its user again. The opaque value is an HMAC of the nonce.

Replay protection: each nonce's counts (nc, RFC 7616 §3.4) are remembered in a sliding window of
64 (as IPsec does), so requests sent in parallel may arrive out of order but no count is accepted
twice. Memory is bounded: at most ``max_nonces`` nonces are tracked (default 10,000; about 200 bytes
each, so ~2 MB). When that many are in use, the least recently used one is forgotten and every nonce
issued no later than it counts as stale from then on: a forgotten nonce can never be replayed,
its client just takes one more round trip. Only a correct response updates the counts, so a
forger cannot burn a client's counts.

Same answer for unknown users and wrong passwords: both give :attr:`Outcome.FAILED` with the
same ``reason``, and an unknown user's response is still computed against a dummy HA1, so the
timing is alike too. Digests are compared with ``hmac.compare_digest``.

Client side (our UAC towards a trunk): :func:`parse_challenge` / :func:`choose_challenge` read
challenges, :func:`authorization` computes an ``Authorization`` value (MD5, MD5-sess, SHA-256,
SHA-256-sess; qop auth or auth-int; RFC 2069 style without qop), and :class:`DigestClient` keeps the
nonce counts per realm and reuses the last challenge for the next request.

Header values: ``Digest k=v, k="quoted, with \\"escapes\\"", ...``. Bounds on peer input: 4096
characters per value, 32 parameters, no parameter twice. Malformed values raise
:class:`AuthError` (400).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sipcore.errors import SipError

__all__ = [
    "Algorithm", "AuthError", "Challenge", "Credentials", "DigestClient", "DigestServer", "Outcome",
    "StoredSecret", "Verdict", "authorization", "choose_challenge", "compute_response", "parse_challenge",
    "parse_credentials", "parse_digest",
]

MAX_HEADER_LENGTH = 4096
MAX_PARAMS = 32
_WINDOW = 64  # nonce counts accepted out of order, behind the highest seen


class AuthError(SipError):
    """A malformed or unusable Digest header value (400)."""

    status = 400
    reason = "Bad Request"


class Algorithm(enum.Enum):
    """RFC 7616 §3.3 / RFC 8760 §2.1. (SHA-512-256 is not supported.)"""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"

    @classmethod
    def parse(cls, text: str) -> Algorithm | None:
        """Case-insensitive (some UAs send ``md5``); None for an algorithm we do not know."""
        return _ALGORITHMS.get(text.lower())

    @property
    def session(self) -> bool:
        return self.value.endswith("-sess")

    def hash(self, text: str) -> str:
        return self.hash_bytes(_utf8(text))

    def hash_bytes(self, data: bytes) -> str:
        if self in (Algorithm.MD5, Algorithm.MD5_SESS):
            return hashlib.md5(data, usedforsecurity=False).hexdigest()
        return hashlib.sha256(data).hexdigest()


_ALGORITHMS = {a.value.lower(): a for a in Algorithm}


def _utf8(text: str) -> bytes:
    """Header text as bytes: a parser that decoded with surrogateescape gets its bytes back;
    any other lone surrogate is passed through rather than raising."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


# -- header values (RFC 7616 §3.3-3.4; quoted-string and token per RFC 7230 §3.2.6) ----------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(
    rf"[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:\"((?:[^\"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)\"|"
    rf"([!#$%&'*+\-.^_`|~0-9A-Za-z/:@]+))[ \t]*(?:,|\Z)")
_SEPARATORS = re.compile(r"[ \t,]*")
_UNESCAPE = re.compile(r"\\(.)")


def parse_digest(value: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` value, names lower-cased, quoted values unescaped."""
    if len(value) > MAX_HEADER_LENGTH:
        raise AuthError(f"authentication header longer than {MAX_HEADER_LENGTH} characters")
    scheme, rest = (re.split(r"[ \t]+", value.strip(" \t"), maxsplit=1) + [""])[:2]
    if scheme.lower() != "digest":
        raise AuthError(f"not a Digest header: {value[:20]!r}")
    params: dict[str, str] = {}
    pos, end = 0, len(rest)
    while True:
        sep = _SEPARATORS.match(rest, pos)
        assert sep is not None  # the pattern matches the empty string
        pos = sep.end()
        if pos >= end:
            break
        m = _PARAM.match(rest, pos)
        if m is None:
            raise AuthError(f"malformed Digest parameter at {rest[pos:pos + 20]!r}")
        name = m[1].lower()
        if name in params:
            raise AuthError(f"parameter {name!r} given twice")
        if len(params) >= MAX_PARAMS:
            raise AuthError(f"more than {MAX_PARAMS} parameters")
        params[name] = _UNESCAPE.sub(r"\1", m[2]) if m[2] is not None else m[3]
        pos = m.end()
    if not params:
        raise AuthError("Digest header without parameters")
    return params


def _quote(text: str) -> str:
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", text):
        raise AuthError("control character in a Digest parameter")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Challenge:
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` Digest value (RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    opaque: str | None = None
    qop: tuple[str, ...] = ()  # empty: an RFC 2069 style challenge
    stale: bool = False
    userhash: bool = False

    def header_value(self) -> str:
        parts = [f"realm={_quote(self.realm)}"]
        if self.qop:
            parts.append(f"qop={_quote(', '.join(self.qop))}")
        parts += [f"algorithm={self.algorithm.value}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> Challenge:
    """Raise :class:`AuthError` if malformed, or if its algorithm is one we do not support."""
    p = parse_digest(value)
    if "realm" not in p or "nonce" not in p:
        raise AuthError("challenge without realm or nonce")
    algorithm = Algorithm.parse(p.get("algorithm", "MD5"))
    if algorithm is None:
        raise AuthError(f"unsupported algorithm {p['algorithm'][:20]!r}")
    qop = tuple(q for q in (q.strip(" \t").lower() for q in p.get("qop", "").split(",")) if q)
    return Challenge(p["realm"], p["nonce"], algorithm, p.get("opaque"), qop,
                     p.get("stale", "").lower() == "true", p.get("userhash", "").lower() == "true")


def choose_challenge(values: Iterable[str]) -> Challenge | None:
    """The first challenge we can answer, in header order (the server's preference, RFC 8760)."""
    for value in values:
        try:
            return parse_challenge(value)
        except AuthError:
            continue
    return None


@dataclass(frozen=True, slots=True)
class Credentials:
    """An ``Authorization`` / ``Proxy-Authorization`` Digest value (RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"  # as sent: the verifier decides whether it is one it offered
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None  # 8 hex digits, as sent (it enters the hash as text)
    userhash: bool = False

    def header_value(self) -> str:
        parts = [f"username={_quote(self.username)}", f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}",
                 f"uri={_quote(self.uri)}", f"response={_quote(self.response)}", f"algorithm={self.algorithm}"]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts += [f"qop={self.qop}", f"nc={self.nc}"]
        if self.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def parse_credentials(value: str) -> Credentials:
    p = parse_digest(value)
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
    if missing:
        raise AuthError(f"credentials without {', '.join(missing)}")
    qop = p.get("qop")
    if qop is not None and ("cnonce" not in p or "nc" not in p):
        raise AuthError("qop given without cnonce and nc")
    if "nc" in p and not re.fullmatch(r"[0-9a-fA-F]{1,8}", p["nc"]):
        raise AuthError("nc is not 1-8 hex digits")
    return Credentials(p["username"], p["realm"], p["nonce"], p["uri"], p["response"], p.get("algorithm", "MD5"),
                       p.get("cnonce"), p.get("opaque"), qop, p.get("nc"), p.get("userhash", "").lower() == "true")


# -- the digest computation (RFC 7616 §3.4.1-3.4.3, RFC 2617 §3.2.2) ------------------------------

def compute_response(algorithm: Algorithm, *, ha1: str, nonce: str, method: str, uri: str, qop: str | None = None,
                     nc: str | None = None, cnonce: str | None = None, body: bytes = b"") -> str:
    """The ``response`` value, from HA1 = H(username:realm:password) of ``algorithm``'s hash."""
    if algorithm.session:  # RFC 7616 §3.4.2: A1 = H(user:realm:password):nonce:cnonce
        ha1 = algorithm.hash(f"{ha1}:{nonce}:{cnonce or ''}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + algorithm.hash_bytes(body)
    ha2 = algorithm.hash(a2)
    if qop is None:  # RFC 2069 compatibility (RFC 2617 §3.2.2.1)
        return algorithm.hash(f"{ha1}:{nonce}:{ha2}")
    return algorithm.hash(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _ha1(algorithm: Algorithm, username: str, realm: str, password: str) -> str:
    return algorithm.hash(f"{username}:{realm}:{password}")


def authorization(challenge: Challenge, *, username: str, password: str, method: str, uri: str, cnonce: str,
                  nc: int = 1, body: bytes = b"") -> Credentials:
    """Our answer to ``challenge``; ``header_value()`` gives the Authorization header value."""
    qop = "auth" if "auth" in challenge.qop else "auth-int" if "auth-int" in challenge.qop else None
    if challenge.qop and qop is None:
        raise AuthError(f"no qop we support in {challenge.qop!r}")
    if not 0 < nc < 2 ** 32:
        raise AuthError("nonce count out of range")
    nc_text = f"{nc:08x}" if qop else None
    ha1 = _ha1(challenge.algorithm, username, challenge.realm, password)
    response = compute_response(challenge.algorithm, ha1=ha1, nonce=challenge.nonce, method=method, uri=uri,
                                qop=qop, nc=nc_text, cnonce=cnonce if qop or challenge.algorithm.session else None,
                                body=body)
    name = challenge.algorithm.hash(f"{username}:{challenge.realm}") if challenge.userhash else username
    return Credentials(name, challenge.realm, challenge.nonce, uri, response, challenge.algorithm.value,
                       cnonce if qop or challenge.algorithm.session else None, challenge.opaque, qop, nc_text,
                       challenge.userhash)


class DigestClient:
    """One user's credentials: answers challenges and counts nonces, per realm (at most 8 realms)."""

    _MAX_REALMS = 8

    def __init__(self, username: str, password: str, *, random: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._username, self._password, self._random = username, password, random
        self._state: OrderedDict[str, tuple[Challenge, int]] = OrderedDict()  # realm -> (challenge, last nc)

    def respond(self, challenge: Challenge | str, *, method: str, uri: str, body: bytes = b"") -> str:
        """The Authorization value for a request answering ``challenge`` (a 401 or 407)."""
        if isinstance(challenge, str):
            challenge = parse_challenge(challenge)
        known = self._state.get(challenge.realm)
        nc = known[1] + 1 if known is not None and known[0].nonce == challenge.nonce else 1
        return self._answer(challenge, nc, method, uri, body)

    def authorize(self, realm: str, *, method: str, uri: str, body: bytes = b"") -> str | None:
        """Credentials for the next request from the last challenge of ``realm`` (or None)."""
        known = self._state.get(realm)
        return None if known is None else self._answer(known[0], known[1] + 1, method, uri, body)

    def _answer(self, challenge: Challenge, nc: int, method: str, uri: str, body: bytes) -> str:
        cnonce = base64.urlsafe_b64encode(self._random(12)).decode("ascii")
        value = authorization(challenge, username=self._username, password=self._password, method=method,
                              uri=uri, cnonce=cnonce, nc=nc, body=body).header_value()
        self._state[challenge.realm] = (challenge, nc)
        self._state.move_to_end(challenge.realm)
        while len(self._state) > self._MAX_REALMS:
            self._state.popitem(last=False)
        return value


# -- server side ------------------------------------------------------------------------------------

class Outcome(enum.Enum):
    OK = "ok"
    STALE = "stale"  # right credentials, nonce expired or forgotten: challenge again with stale=true
    FAILED = "failed"  # anything else: challenge again (401/407) or refuse (403)


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    username: str | None = None  # set for OK and STALE
    reason: str = ""  # for our logs, never for the peer; the same for unknown user and wrong password


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """What the lookup knows of a user: the password, or the HA1 per hash (RFC 7616 §3.4.2)."""

    password: str | None = None
    ha1_md5: str | None = None
    ha1_sha256: str | None = None

    def ha1(self, algorithm: Algorithm, username: str, realm: str) -> str | None:
        if self.password is not None:
            return _ha1(algorithm, username, realm, self.password)
        md5 = algorithm in (Algorithm.MD5, Algorithm.MD5_SESS)
        ha1 = self.ha1_md5 if md5 else self.ha1_sha256
        return ha1.lower() if ha1 else None


Lookup = Callable[[str, str], StoredSecret | None]  # (username, realm) -> secret, None if unknown


class _NonceCounts:
    """Per nonce: highest nc seen and a 64-bit window of those seen below it. Bounded, see the top."""

    def __init__(self, max_nonces: int) -> None:
        self._max = max_nonces
        self._seen: OrderedDict[str, tuple[int, int, int]] = OrderedDict()  # nonce -> (issued, highest, bits)
        self._floor = -1  # nonces issued at or before this (ms) and not in _seen are stale

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, nonce: str, issued: int, nc: int, expiry_ms: int) -> Outcome:
        state = self._seen.get(nonce)
        if state is None:
            if issued <= self._floor:
                return Outcome.STALE
            state = (issued, nc, 1)
        else:
            _, highest, bits = state
            if nc > highest:  # slide the window; a jump past it keeps only the new count (no huge shift)
                shift = nc - highest
                state = (issued, nc, ((bits << shift) | 1) & ((1 << _WINDOW) - 1) if shift < _WINDOW else 1)
            elif highest - nc >= _WINDOW or (bits >> (highest - nc)) & 1:
                return Outcome.FAILED
            else:
                state = (issued, highest, bits | (1 << (highest - nc)))
        self._seen[nonce] = state
        self._seen.move_to_end(nonce)
        while len(self._seen) > self._max:
            _, (old_issued, _, _) = self._seen.popitem(last=False)
            if old_issued > expiry_ms:  # an expired one is stale anyway; else remember it was dropped
                self._floor = max(self._floor, old_issued)
        return Outcome.OK


class DigestServer:
    """Challenges and verifies Digest credentials for one realm. ``now`` is seconds (any epoch)."""

    def __init__(self, *, realm: str, secret: bytes, algorithms: tuple[Algorithm, ...] = (Algorithm.SHA256,
                 Algorithm.MD5), nonce_lifetime: float = 300.0, max_nonces: int = 10_000,
                 random: Callable[[int], bytes] = secrets.token_bytes) -> None:
        if len(secret) < 16 or not algorithms or nonce_lifetime <= 0 or max_nonces < 1:
            raise ValueError("need a secret of 16+ bytes, an algorithm, a positive lifetime and bound")
        _quote(realm)
        self.realm, self.algorithms = realm, algorithms
        self._secret, self._lifetime_ms, self._random = secret, int(nonce_lifetime * 1000), random
        self._counts = _NonceCounts(max_nonces)
        self._dummy_password = hashlib.sha256(secret + b"dummy").hexdigest()

    def _mac(self, label: bytes, data: bytes) -> bytes:
        return hmac.new(self._secret, label + self.realm.encode() + b"\0" + data, hashlib.sha256).digest()

    def _opaque(self, nonce: str) -> str:
        return base64.urlsafe_b64encode(self._mac(b"opaque", nonce.encode())[:12]).decode("ascii")

    def new_nonce(self, now: float) -> str:
        body = int(now * 1000).to_bytes(8, "big") + self._random(8)
        return base64.urlsafe_b64encode(body + self._mac(b"nonce", body)[:16]).decode("ascii").rstrip("=")

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` (or ``Proxy-Authenticate``) values, one header each, most preferred
        algorithm first (RFC 8760 §2.4), all with the same nonce."""
        nonce = self.new_nonce(now)
        return [Challenge(self.realm, nonce, a, self._opaque(nonce), ("auth",), stale).header_value()
                for a in self.algorithms]

    def _issued(self, nonce: str) -> int | None:
        """The issue time (ms) of a nonce we made, or None if it is not ours or was altered."""
        if len(nonce) != 43:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except ValueError:
            return None
        body, mac = raw[:16], raw[16:]
        if len(raw) != 32 or base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != nonce:
            return None  # the last character has spare bits: only the one spelling we made is ours
        if not hmac.compare_digest(mac, self._mac(b"nonce", body)[:16]):
            return None
        return int.from_bytes(body[:8], "big")

    def verify(self, authorization: str, *, method: str, uri: str | None, now: float, lookup: Lookup,
               body: bytes = b"") -> Verdict:
        """Check an ``Authorization`` (or ``Proxy-Authorization``) value for a request ``method`` to
        ``uri`` (its Request-URI; None skips that check). ``body`` matters only for qop auth-int,
        which we do not offer. Raise :class:`AuthError` (400) if the value is malformed."""
        c = parse_credentials(authorization)
        algorithm = Algorithm.parse(c.algorithm)
        if c.realm != self.realm:
            return Verdict(Outcome.FAILED, reason="wrong realm")
        if algorithm is None or algorithm not in self.algorithms:
            return Verdict(Outcome.FAILED, reason="algorithm not offered")
        issued = self._issued(c.nonce)
        if issued is None or not hmac.compare_digest(_utf8(c.opaque or ""), self._opaque(c.nonce).encode()):
            return Verdict(Outcome.FAILED, reason="nonce or opaque not ours")
        if c.qop != "auth" or c.nc is None or int(c.nc, 16) == 0 or c.userhash:
            return Verdict(Outcome.FAILED, reason="qop, nc or userhash not as challenged")
        if uri is not None and c.uri != uri:
            return Verdict(Outcome.FAILED, reason="uri does not match the request")
        stored = lookup(c.username, c.realm)
        ha1 = stored.ha1(algorithm, c.username, c.realm) if stored is not None else None
        # an unknown user costs the same hashing as a known one with a password
        fallback = ha1 or _ha1(algorithm, c.username, c.realm, self._dummy_password)
        expected = compute_response(algorithm, ha1=fallback, nonce=c.nonce, method=method, uri=c.uri,
                                    qop=c.qop, nc=c.nc, cnonce=c.cnonce, body=body)
        right = hmac.compare_digest(expected.encode(), _utf8(c.response.lower()))
        if not right or ha1 is None:
            return Verdict(Outcome.FAILED, reason="bad credentials")
        now_ms = int(now * 1000)
        if not now_ms - self._lifetime_ms <= issued <= now_ms + 1000:
            return Verdict(Outcome.STALE, c.username, "nonce expired")
        outcome = self._counts.check(c.nonce, issued, int(c.nc, 16), now_ms - self._lifetime_ms)
        if outcome is Outcome.FAILED:
            return Verdict(Outcome.FAILED, reason="nonce count replayed")
        return Verdict(outcome, c.username, "nonce forgotten" if outcome is Outcome.STALE else "")
