"""Password hashing and policy. Pure: no I/O, no clock, no event loop.

Hashes use scrypt (RFC 7914) from the standard library and are stored as one self-describing string::

    scrypt$<n>$<r>$<p>$<base64 salt>$<base64 key>

so the cost can be raised later without invalidating stored hashes: verification reads the parameters
from the string. Hashing is CPU- and memory-hard on purpose (about 50 ms and 16 MiB at the default
n=2**14, r=8); callers on an event loop must run it in a thread (`AccountStore` does).

Passwords are normalised to Unicode NFC before hashing, so the same password typed on systems that
compose accents differently still matches (as RFC 8265's OpaqueString profile does).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import unicodedata

__all__ = [
    "DEFAULT_N",
    "DUMMY_HASH",
    "MAX_LENGTH",
    "MIN_LENGTH",
    "check_password_policy",
    "hash_password",
    "verify_password",
]

DEFAULT_N = 2**14
MIN_LENGTH = 8
MAX_LENGTH = 1024

_SCHEME = "scrypt"
_SALT_BYTES = 16
_KEY_BYTES = 32
# Bounds on parameters read back from a stored hash, so a corrupt or hostile row cannot make one
# verification allocate gigabytes or run for minutes. 128*n*r*p bytes is what scrypt needs.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MAX_MEMORY = 256 * 1024 * 1024

# A valid hash (default parameters) of a random string that was thrown away: verifying against it
# spends the same time as verifying a real password, and never succeeds. Used for unknown users.
DUMMY_HASH = (
    "scrypt$16384$8$1$eKpOwsZHIUoOuW9cnao2Uw==$l1apmh5MppS4+Lj/LrsnNJsMl/ASQu8c21n0slD+HTQ="
)


def _memory(n: int, r: int, p: int) -> int:
    return 128 * n * r * p


def _check_params(n: int, r: int, p: int) -> None:
    if n < 2 or n > _MAX_N or n & (n - 1):
        raise ValueError(f"scrypt n must be a power of two between 2 and {_MAX_N}, got {n}")
    if not 1 <= r <= _MAX_R:
        raise ValueError(f"scrypt r must be between 1 and {_MAX_R}, got {r}")
    if not 1 <= p <= _MAX_P:
        raise ValueError(f"scrypt p must be between 1 and {_MAX_P}, got {p}")
    if _memory(n, r, p) > _MAX_MEMORY:
        raise ValueError(f"scrypt n*r*p needs more than {_MAX_MEMORY} bytes")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    # maxmem: OpenSSL's default (32 MiB) is too small for larger r; allow what the parameters need.
    return hashlib.scrypt(
        secret, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_memory(n, r, p) + 1024 * 1024
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = 8, p: int = 1) -> str:
    """Return the storable scrypt hash of `password` with a fresh 16-byte random salt."""
    _check_params(n, r, p)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, n, r, p, _KEY_BYTES)
    return f"{_SCHEME}${n}${r}${p}${_b64(salt)}${_b64(key)}"


def _parse_int(text: str) -> int:
    # int() would also accept " 5", "+5", "5_0" and non-ASCII digits; a stored hash has none of those.
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise ValueError("not a plain decimal number")
    return int(text)


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored`. A malformed or unsupported `stored` is simply False."""
    try:
        scheme, n_text, r_text, p_text, salt_text, key_text = stored.split("$")
        if scheme != _SCHEME:
            return False
        n, r, p = _parse_int(n_text), _parse_int(r_text), _parse_int(p_text)
        _check_params(n, r, p)
        salt = base64.b64decode(salt_text, validate=True)
        expected = base64.b64decode(key_text, validate=True)
        if not salt or not 16 <= len(expected) <= 64:
            return False
        actual = _derive(password, salt, n, r, p, len(expected))
    except (ValueError, TypeError, AttributeError, binascii.Error, MemoryError):
        # ValueError covers bad numbers, parameters, base64 and UnicodeEncodeError (lone surrogates).
        return False
    return hmac.compare_digest(actual, expected)


def check_password_policy(password: str) -> None:
    """Raise ValueError naming the field when `password` may not be set as a new password."""
    if not isinstance(password, str):
        raise ValueError("password: must be text")
    if len(password) < MIN_LENGTH:
        raise ValueError(f"password: must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"password: must be at most {MAX_LENGTH} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in password):
        raise ValueError("password: must not contain control characters")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("password: must be valid Unicode text") from None
    if not password.strip():
        raise ValueError("password: must not be only spaces")
