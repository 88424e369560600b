"""Call flows: validation names the flow, the step and the field; round trips; calendars and DST."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from ivr_engine.calendar import CalendarError, is_holiday, is_open, parse_calendar
from ivr_engine.flow import (
    BranchStep,
    Condition,
    EnqueueStep,
    FlowError,
    HangupStep,
    MenuStep,
    load_flow_file,
    parse_flow,
)

DEMO = Path(__file__).resolve().parents[2] / "flows" / "demo.toml"


def base() -> dict[str, Any]:
    """A valid flow that uses every step type."""
    return {
        "name": "t", "pilots": ["100"], "start": "menu",
        "calendars": {"office": {"mon": "08:00-18:00"}},
        "steps": {
            "menu": {"type": "menu", "prompt": "menu", "fail": "bye",
                     "choices": {"1": "hello", "2": "card", "3": "q", "4": "look", "5": "br", "6": "xfer"}},
            "hello": {"type": "play", "prompt": ["hello", "tts:Hi {caller}"], "next": "bye"},
            "card": {"type": "collect", "prompt": "enter", "var": "card", "next": "bye", "fail": "bye"},
            "q": {"type": "enqueue", "project": "p", "error": "bye", "music": "music",
                  "callback_prompt": "offer", "callback": "bye", "data": {"why": "{card}"}},
            "look": {"type": "lookup", "url": "http://x/{card}", "var": "r", "next": "sw", "error": "bye"},
            "sw": {"type": "switch", "var": "r.code", "cases": {"A": "bye"}, "default": "bye"},
            "br": {"type": "branch", "when": [{"var": "x", "equals": "1", "then": "hrs"}], "else": "setx"},
            "hrs": {"type": "hours", "calendar": "office", "open": "bye", "closed": "bye"},
            "setx": {"type": "set", "vars": {"x": "{caller}"}, "next": "bye"},
            "xfer": {"type": "transfer", "number": "200", "error": "bye"},
            "bye": {"type": "hangup"},
        },
    }


def error_of(change: Callable[[dict[str, Any]], None]) -> str:
    doc = base()
    change(doc)
    with pytest.raises(FlowError) as info:
        parse_flow(doc)
    return str(info.value)


def put(step: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["steps"][step][key] = value
    return change


def drop(step: str, key: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        del doc["steps"][step][key]
    return change


def test_the_base_flow_is_valid_and_knows_its_prompt_files() -> None:
    flow = parse_flow(base())
    assert flow.name == "t" and flow.pilots == ("100",) and flow.start == "menu" and flow.language == "en"
    assert isinstance(flow.steps["menu"], MenuStep) and flow.steps["menu"].timeout == 5.0
    assert flow.steps["menu"].retries == 3 and flow.steps["card"].max == 20   # type: ignore[union-attr]
    assert flow.prompt_names() == {"menu", "hello", "enter", "music", "offer"}   # not the tts item


@pytest.mark.parametrize(("change", "message"), [
    (put("menu", "choices", {"12": "hello"}),
     "flow t: step 'menu': choices: '12' is not a single DTMF digit"),
    (put("menu", "choices", {"A": "hello"}), "step 'menu': choices: 'A' is not a single DTMF digit"),
    (put("hello", "next", "nowhere"), "flow t: step 'hello': next 'nowhere' is not a step"),
    (put("menu", "choices", {"1": "nowhere"}), "step 'menu': choices.1 'nowhere' is not a step"),
    (put("menu", "fail", "nowhere"), "step 'menu': fail 'nowhere' is not a step"),
    (put("sw", "cases", {"A": "gone"}), "step 'sw': cases.A 'gone' is not a step"),
    (put("br", "when", [{"var": "x", "equals": "1", "then": "gone"}]),
     "step 'br': when[0].then 'gone' is not a step"),
    (put("hello", "next", "no way"), "step 'hello': next: 'no way' is not a step name"),
    (put("hello", "promt", "x"), "step 'hello': unknown key 'promt' (did you mean 'prompt'?)"),
    (put("menu", "retrys", 2), "step 'menu': unknown key 'retrys' (did you mean 'retries'?)"),
    (put("bye", "next", "menu"), "step 'bye': unknown key 'next'"),
    (drop("hello", "next"), "step 'hello': next: required"),
    (drop("menu", "prompt"), "step 'menu': prompt: required"),
    (put("menu", "timeout", "5"), "step 'menu': timeout: must be a number, not str"),
    (put("menu", "timeout", True), "step 'menu': timeout: must be a number, not bool"),
    (put("menu", "timeout", 0), "step 'menu': timeout: 0 is out of range 1..60"),
    (put("menu", "retries", 11), "step 'menu': retries: 11 is out of range 0..10"),
    (put("menu", "retries", 2.5), "step 'menu': retries: must be a whole number, not float"),
    (put("card", "max", 41), "step 'card': max: 41 is out of range 1..40"),
    (lambda doc: doc["steps"]["card"].update(min=5, max=4), "step 'card': max: 4 is less than min 5"),
    (put("card", "terminator", "x"), "step 'card': terminator: 'x' is not '#', '*' or '' (none)"),
    (put("card", "var", "1abc"), "step 'card': var: '1abc' is not an identifier"),
    (put("card", "digit_timeout", 61), "step 'card': digit_timeout: 61 is out of range 1..60"),
    (put("hello", "prompt", "../etc/passwd"), "step 'hello': prompt: '../etc/passwd' is neither tts:text"),
    (put("hello", "prompt", "/abs"), "step 'hello': prompt: '/abs' is neither"),
    (put("hello", "prompt", "bad name"), "step 'hello': prompt: 'bad name' is neither"),
    (put("hello", "prompt", []), "step 'hello': prompt: must be a prompt name or a non-empty list"),
    (put("hello", "prompt", ["a", 3]), "step 'hello': prompt: a prompt must be a string, not int"),
    (put("hello", "prompt", "tts:  "), "step 'hello': prompt: 'tts:  ' has no text"),
    (put("hello", "prompt", "tts:Hi {a b}"), "step 'hello': prompt: bad template 'Hi {a b}'"),
    (put("setx", "vars", {"x": "{x!r}"}), "step 'setx': vars.x: bad template '{x!r}'"),
    (put("setx", "vars", {"x": "{x:>3}"}), "step 'setx': vars.x: bad template"),
    (put("setx", "vars", {"x": "{0}"}), "step 'setx': vars.x: bad template '{0}'"),
    (put("setx", "vars", {"x": "{x"}), "step 'setx': vars.x: bad template '{x'"),
    (put("setx", "vars", {"x": "{a.b.c}"}), "step 'setx': vars.x: bad template"),
    (put("setx", "vars", {"x": 1}), "step 'setx': vars.x: must be a string template, not int"),
    (put("setx", "vars", {"9x": "a"}), "step 'setx': vars: '9x' is not an identifier"),
    (put("setx", "vars", {}), "step 'setx': vars: must not be empty"),
    (put("br", "when", []), "step 'br': when: must be a non-empty list of tests"),
    (put("br", "when", ["x"]), "step 'br': when[0]: must be a table, not str"),
    (put("br", "when", [{"var": "x", "then": "hrs"}]), "step 'br': when[0]: test: needs exactly one of"),
    (put("br", "when", [{"var": "x", "equals": "1", "in": ["2"], "then": "hrs"}]),
     "step 'br': when[0]: test: needs exactly one of"),
    (put("br", "when", [{"var": "x", "matches": "(", "then": "hrs"}]),
     "step 'br': when[0]: matches: bad regular expression '('"),
    (put("br", "when", [{"caller_matches": "[", "then": "hrs"}]),
     "step 'br': when[0]: caller_matches: bad regular expression '['"),
    (put("br", "when", [{"open": "shop", "then": "hrs"}]), "step 'br': when[0]: open: 'shop' is not a calendar"),
    (put("br", "when", [{"holiday": "yes", "then": "hrs"}]), "step 'br': when[0]: holiday: must be true or false"),
    (put("br", "when", [{"var": "x", "in": "a", "then": "hrs"}]), "step 'br': when[0]: in: must be a non-empty list"),
    (put("br", "when", [{"var": "x", "less": "3", "then": "hrs"}]), "step 'br': when[0]: less: must be a number"),
    (put("br", "when", [{"var": "x", "holiday": True, "then": "hrs"}]),
     "step 'br': when[0]: var: not used by the test 'holiday'"),
    (put("br", "when", [{"equals": "1", "then": "hrs"}]), "step 'br': when[0]: var: required"),
    (put("br", "when", [{"var": "x", "equal": "1", "then": "hrs"}]),
     "step 'br': when[0]: unknown key 'equal' (did you mean 'equals'?)"),
    (drop("br", "else"), "step 'br': else: required"),
    (put("hrs", "calendar", "shop"), "step 'hrs': calendar: 'shop' is not a calendar"),
    (put("look", "url", "ftp://x/{card}"), "step 'look': url: 'ftp://x/{card}' must start with http://"),
    (put("look", "url", "http://x/{card"), "step 'look': url: bad template"),
    (put("look", "timeout", 31), "step 'look': timeout: 31 is out of range 0.1..30"),
    (put("look", "var", "a.b"), "step 'look': var: 'a.b' is not an identifier"),
    (put("sw", "var", "a b"), "step 'sw': var: 'a b' is not a variable name"),
    (drop("q", "callback"), "step 'q': callback: callback and callback_prompt go together"),
    (drop("q", "callback_prompt"), "step 'q': callback_prompt: callback and callback_prompt go together"),
    (put("q", "priority", 101), "step 'q': priority: 101 is out of range -100..100"),
    (put("q", "message_interval", 4), "step 'q': message_interval: 4 is out of range 5..3600"),
    (put("q", "data", {"ivr_flow": "x"}), "step 'q': data: 'ivr_flow' is not a data key"),
    (put("q", "data", {"n": 1}), "step 'q': data.n: must be a string template, not int"),
    (put("q", "project", " "), "step 'q': project: must not be empty"),
    (put("q", "announce", "tts:{position:3}"), "step 'q': announce: bad template"),
    (put("xfer", "number", ""), "step 'xfer': number: must not be empty"),
    (put("hello", "type", "plya"), "step 'hello': type: unknown step type 'plya' (did you mean 'play'?)"),
    (drop("hello", "type"), "step 'hello': type: required"),
])
def test_each_mistake_is_named_with_flow_step_and_field(change: Callable[[dict[str, Any]], None],
                                                        message: str) -> None:
    assert message in error_of(change)


def test_flow_level_mistakes_are_named() -> None:
    def top(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda doc: doc.__setitem__(key, value)

    assert error_of(top("name", "Demo!")) == "flow ?: name: 'Demo!' is not a flow name ([a-z0-9_-]{1,40})"
    assert "flow t: pilots: must be a list of digit strings" in error_of(top("pilots", ["12a"]))
    assert "flow t: pilots: a pilot is listed twice" in error_of(top("pilots", ["1", "1"]))
    assert "flow t: language: 'de' is not one of en, cs" in error_of(top("language", "de"))
    assert "flow t: timezone: 'Mars/Base' is not a known IANA time zone" in error_of(top("timezone", "Mars/Base"))
    assert error_of(top("stpes", {})) == "flow t: unknown key 'stpes' (did you mean 'steps'?)"
    assert error_of(top("start", "nope")) == "flow t: start: 'nope' is not a step"
    assert "flow t: steps: must be a table, not list" in error_of(top("steps", []))
    assert "flow t: step 'menu': a step must be a table, not int" in error_of(
        lambda doc: doc["steps"].__setitem__("menu", 3))
    assert "flow t: steps: 'my-step' is not a step name" in error_of(
        lambda doc: doc["steps"].__setitem__("my-step", {"type": "hangup"}))


def test_unreachable_steps_are_errors() -> None:
    msg = error_of(lambda doc: doc["steps"].__setitem__("orphan", {"type": "hangup"}))
    assert msg == "flow t: step 'orphan' is unreachable from start 'menu'"


@pytest.mark.parametrize(("calendar", "message"), [
    ({"mon": "8-18"}, "flow t: calendar 'office': mon: '8-18' is not HH:MM-HH:MM"),
    ({"mon": "18:00-08:00"}, "calendar 'office': mon: '18:00-08:00' ends before it starts"),
    ({"mon": "08:00-12:00,11:00-13:00"}, "calendar 'office': mon: '11:00-13:00' overlaps"),
    ({"mon": "08:00-24:30"}, "calendar 'office': mon: '08:00-24:30' is not a time of day"),
    ({"tue": 8}, "calendar 'office': tue: must be a string"),
    ({"monday": "08:00-18:00"}, "calendar 'office': unknown key 'monday' (did you mean 'mon'?)"),
    ({"timezone": "Europe/Nowhere"}, "calendar 'office': timezone: 'Europe/Nowhere' is not a known IANA"),
    ({"timezone": "../etc/passwd"}, "calendar 'office': timezone: '../etc/passwd' is not a known IANA"),
])
def test_calendar_mistakes_name_the_calendar_and_key(calendar: dict[str, Any], message: str) -> None:
    assert message in error_of(lambda doc: doc["calendars"].__setitem__("office", calendar))


def test_the_demo_loads_validates_and_round_trips_through_json(tmp_path: Path) -> None:
    flow = load_flow_file(DEMO)
    assert flow.name == "demo" and flow.pilots == ("100",) and flow.start == "start"
    assert flow.prompt_names() == {
        "closed", "welcome", "menu", "invalid", "music", "please_wait", "callback_offer", "ehic_enter",
        "ehic_A", "ehic_N", "ehic_P", "ehic_Y", "ehic_X", "ehic_error", "after_ehic", "goodbye", "sorry",
        "callback_ok"}
    queue = flow.steps["queue"]
    assert isinstance(queue, EnqueueStep) and queue.callback == "callback_ok" and queue.message_interval == 30
    assert queue.announce is not None and queue.announce[0].startswith("tts:You are number {position}")
    doc = json.loads(json.dumps(flow.to_doc()))
    assert parse_flow(doc) == flow
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(flow.to_doc()))
    assert load_flow_file(path) == flow
    assert parse_flow(flow.to_doc()).to_doc() == flow.to_doc()


def test_the_base_flow_round_trips_too() -> None:
    flow = parse_flow(base())
    again = parse_flow(json.loads(json.dumps(flow.to_doc())))
    assert again == flow
    branch = again.steps["br"]
    assert isinstance(branch, BranchStep) and branch.when == (Condition("equals", "hrs", "x", "1"),)
    assert branch.else_ == "setx" and flow.to_doc()["steps"]["br"]["else"] == "setx"
    assert again.steps["bye"] == HangupStep("bye")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad_toml = tmp_path / "broken.toml"
    bad_toml.write_text("name = \n")
    with pytest.raises(FlowError, match=r"broken\.toml: not valid TOML"):
        load_flow_file(bad_toml)
    bad_json = tmp_path / "broken.json"
    bad_json.write_text("{")
    with pytest.raises(FlowError, match=r"broken\.json: not valid JSON"):
        load_flow_file(bad_json)
    wrong = tmp_path / "wrong.toml"
    text = DEMO.read_text().replace('next = "after_ehic"\n\n[steps.ehic_n]', 'next = "gone"\n\n[steps.ehic_n]')
    wrong.write_text(text)
    with pytest.raises(FlowError) as info:
        load_flow_file(wrong)
    assert str(info.value) == f"{wrong}: flow demo: step 'ehic_a': next 'gone' is not a step"
    with pytest.raises(FlowError, match=r"missing\.toml: cannot read"):
        load_flow_file(tmp_path / "missing.toml")
    with pytest.raises(FlowError, match=r"flow\.yaml: a flow file must end with \.toml or \.json"):
        load_flow_file(tmp_path / "flow.yaml")


def test_a_step_table_that_is_copied_does_not_alias_the_document() -> None:
    doc = base()
    flow = parse_flow(doc)
    doc["steps"]["menu"]["choices"]["7"] = "bye"
    assert "7" not in flow.steps["menu"].choices   # type: ignore[union-attr]
    assert parse_flow(copy.deepcopy(base())) == flow


# ---- calendars ------------------------------------------------------------------------------------

def utc(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


WEEK = {"mon": "08:00-18:00", "tue": "08:00-18:00", "wed": "08:00-12:00,13:00-17:00", "thu": "",
        "fri": "00:00-24:00"}


def test_weekday_hours_in_prague_summer_time() -> None:
    cal = parse_calendar("office", WEEK)
    assert cal.timezone == "Europe/Prague"
    # Monday 3 June 2024; Prague is UTC+2
    assert not is_open(cal, utc(2024, 6, 3, 5, 59, 59), frozenset())
    assert is_open(cal, utc(2024, 6, 3, 6, 0), frozenset())
    assert is_open(cal, utc(2024, 6, 3, 15, 59, 59), frozenset())
    assert not is_open(cal, utc(2024, 6, 3, 16, 0), frozenset())
    assert not is_open(cal, utc(2024, 6, 6, 10, 0), frozenset())          # Thursday: closed
    assert not is_open(cal, utc(2024, 6, 8, 10, 0), frozenset())          # Saturday: not given
    assert is_open(cal, utc(2024, 6, 7, 21, 59), frozenset())             # Friday 23:59 local
    assert not is_open(cal, utc(2024, 6, 7, 22, 0), frozenset())          # Saturday 00:00 local


def test_split_hours() -> None:
    cal = parse_calendar("office", WEEK)
    # Wednesday 5 June 2024
    assert is_open(cal, utc(2024, 6, 5, 9, 59), frozenset())     # 11:59
    assert not is_open(cal, utc(2024, 6, 5, 10, 30), frozenset())  # 12:30: lunch
    assert is_open(cal, utc(2024, 6, 5, 11, 0), frozenset())      # 13:00
    assert not is_open(cal, utc(2024, 6, 5, 15, 0), frozenset())  # 17:00


def test_a_holiday_is_closed_all_day_by_the_local_date() -> None:
    cal = parse_calendar("office", WEEK)
    holidays = frozenset({date(2024, 6, 3)})
    assert not is_open(cal, utc(2024, 6, 3, 8, 0), holidays)
    assert is_open(cal, utc(2024, 6, 4, 8, 0), holidays)
    # 00:30 on 3 June in Prague is still 2 June in UTC
    assert is_holiday(cal, utc(2024, 6, 2, 22, 30), holidays)
    assert not is_holiday("UTC", utc(2024, 6, 2, 22, 30), holidays)
    assert not is_holiday(cal, utc(2024, 6, 3, 8, 0), frozenset())


def test_the_days_the_clocks_change_in_prague() -> None:
    cal = parse_calendar("office", {"sun": "08:00-18:00"})
    # 31 March 2024: 02:00 CET becomes 03:00 CEST, so 08:00 local is 06:00 UTC
    assert not is_open(cal, utc(2024, 3, 31, 5, 59), frozenset())
    assert is_open(cal, utc(2024, 3, 31, 6, 0), frozenset())
    assert is_open(cal, utc(2024, 3, 31, 15, 59), frozenset())
    assert not is_open(cal, utc(2024, 3, 31, 16, 0), frozenset())
    # 27 October 2024: back to CET, so 08:00 local is 07:00 UTC
    assert not is_open(cal, utc(2024, 10, 27, 6, 59), frozenset())
    assert is_open(cal, utc(2024, 10, 27, 7, 0), frozenset())
    assert not is_open(cal, utc(2024, 10, 27, 17, 0), frozenset())


def test_a_calendar_in_another_time_zone() -> None:
    cal = parse_calendar("ny", {"timezone": "America/New_York", "mon": "09:00-17:00"})
    # Monday 3 June 2024, New York is UTC-4
    assert not is_open(cal, utc(2024, 6, 3, 12, 59), frozenset())
    assert is_open(cal, utc(2024, 6, 3, 13, 0), frozenset())
    assert not is_open(cal, utc(2024, 6, 3, 21, 0), frozenset())
    assert cal.to_doc()["mon"] == "09:00-17:00" and cal.to_doc()["sun"] == ""
    assert parse_calendar("ny", cal.to_doc()) == cal


def test_parse_calendar_errors_name_calendar_and_key() -> None:
    with pytest.raises(CalendarError, match=r"calendar 'x': fri: '25:00-26:00' is not a time of day"):
        parse_calendar("x", {"fri": "25:00-26:00"})
    with pytest.raises(CalendarError, match=r"calendar 'x': must be a table"):
        parse_calendar("x", "mon")
