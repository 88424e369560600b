"""Entry rules: first match by position; each condition; time windows including midnight."""

from __future__ import annotations

from datetime import time

from ctiserver.acd.entry import EntryRule, route_entry

RULES = [
    EntryRule(40, "general"),                                               # catch-all last
    EntryRule(10, "night", pilot="200", time_from=time(22), time_to=time(6)),
    EntryRule(20, "ehic", pilot="200", data_key="menu", data_value="3"),
    EntryRule(30, "slovak", caller_prefix="421"),
]


def test_first_match_by_position() -> None:
    day = time(10, 30)
    assert route_entry(RULES, "200", "420271004245", {"menu": "3"}, day) == "ehic"
    assert route_entry(RULES, "200", "420271004245", {"menu": 3}, day) == "ehic"   # IVR values compared as text
    assert route_entry(RULES, "200", "421905123456", {"menu": "1"}, day) == "slovak"
    assert route_entry(RULES, "200", "420271004245", {}, day) == "general"
    assert route_entry(RULES, "100", None, {"menu": "3"}, day) == "general"          # ehic needs pilot 200


def test_time_window_wraps_midnight() -> None:
    for t, expected in ((time(23, 0), "night"), (time(2, 0), "night"), (time(6, 0), "ehic"), (time(21, 59), "ehic")):
        assert route_entry(RULES, "200", "420", {"menu": "3"}, t) == expected


def test_no_rule_matches() -> None:
    assert route_entry([EntryRule(1, "x", pilot="999")], "200", None, {}, time(12)) is None
