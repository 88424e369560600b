import pytest

from ctiserver.passwords import (
    DUMMY_HASH,
    MAX_LENGTH,
    check_password_policy,
    hash_password,
    verify_password,
)

FAST = 2**10  # low cost for tests only; production default is 2**14


def test_round_trip_and_format():
    stored = hash_password("correct horse", n=FAST)
    scheme, n, r, p, salt, key = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(FAST), "8", "1")
    assert len(salt) == 24 and len(key) == 44  # base64 of 16 and 32 bytes
    assert verify_password("correct horse", stored)


def test_wrong_password_is_false():
    stored = hash_password("correct horse", n=FAST)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)


def test_same_password_gets_a_different_salt():
    assert hash_password("correct horse", n=FAST) != hash_password("correct horse", n=FAST)


def test_unicode_is_normalised():
    composed, decomposed = "caf\u00e9-p\u00e4ss", "cafe\u0301-pa\u0308ss"
    assert verify_password(decomposed, hash_password(composed, n=FAST))


def test_dummy_hash_is_valid_and_matches_nothing_obvious():
    assert DUMMY_HASH.startswith("scrypt$16384$8$1$")
    assert not verify_password("", DUMMY_HASH)
    assert not verify_password("password", DUMMY_HASH)


GOOD = hash_password("correct horse", n=FAST)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "scrypt$",
        GOOD.replace("scrypt$", "bcrypt$"),
        GOOD + "$extra",
        GOOD.replace(f"${FAST}$", "$1000$"),  # n not a power of two
        GOOD.replace(f"${FAST}$", "$+1024$"),
        GOOD.replace(f"${FAST}$", f"${2**30}$"),  # would need far too much memory
        GOOD.replace("$8$1$", "$0$1$"),
        GOOD.replace("$8$1$", "$8$x$"),
        GOOD[:-4] + "!!!=",  # not base64
        GOOD.rsplit("$", 1)[0] + "$QUJD",  # key too short
        None,
        42,
    ],
)
def test_malformed_stored_hash_is_false(stored):
    assert verify_password("correct horse", stored) is False


def test_hash_rejects_bad_parameters():
    with pytest.raises(ValueError, match="power of two"):
        hash_password("correct horse", n=1000)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 8"),
        ("x" * (MAX_LENGTH + 1), "at most 1024"),
        ("new\nline-pass", "control characters"),
        (" " * 8, "only spaces"),
        ("\ud800abcdefgh", "valid Unicode"),
        (12345678, "text"),
    ],
)
def test_policy_rejects_with_field_name(password, message):
    with pytest.raises(ValueError, match=message) as info:
        check_password_policy(password)
    assert str(info.value).startswith("password: ")


@pytest.mark.parametrize("password", ["12345678", "x" * MAX_LENGTH, "pässwörd with spaces"])
def test_policy_accepts(password):
    check_password_policy(password)
