"""Security at the SIP edge: trunk peers, rate limits, the dial plan."""

from __future__ import annotations

from ctiserver.calls.edge import DialPlan, RateLimiter, TrunkPeers


def test_trunk_peers_by_address_and_network() -> None:
    t = TrunkPeers(["127.0.0.1", "10.20.0.0/16", "::1"])
    assert t.admits("127.0.0.1") and t.admits("10.20.3.4") and t.admits("::1")
    assert not t.admits("127.0.0.2") and not t.admits("10.21.0.1") and not t.admits("pbx.example")
    assert not TrunkPeers([]).admits("127.0.0.1")


def test_rate_limiter_bucket_and_bounded_table() -> None:
    r = RateLimiter(10.0, burst=5, max_sources=2)
    assert [r.allow("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert r.allow("a", 0.1)            # one token back after 0.1 s at 10/s
    assert not r.allow("a", 0.1)
    assert r.allow("b", 0.0) and r.allow("c", 0.0)   # "a" (idle longest) is forgotten
    assert r.allow("a", 0.1) and r.refused == 2


def test_dial_plan() -> None:
    d = DialPlan()
    assert d.check("271004245") is None and d.check("+420271004245") is None
    assert d.check("00441234567") == "international numbers are not allowed"
    assert d.check("+441234567") == "international numbers are not allowed"
    assert d.check("909123456") == "premium-rate numbers are not allowed"
    assert d.check("+420976123456") == "premium-rate numbers are not allowed"
    assert d.check("12") == "not a phone number" and d.check("27100;x") == "not a phone number"
    assert DialPlan(international=True, premium=True).check("0044909") is None
