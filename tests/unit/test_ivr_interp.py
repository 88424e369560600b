"""The pure call-flow interpreter, driven with a fake clock: every step type, timers, outcomes."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_engine.flow import Flow, load_flow_file, parse_flow
from ivr_engine.interp import (
    Action,
    Callback,
    CallbackDone,
    Digit,
    Enqueue,
    Enqueued,
    Event,
    Finished,
    HangUp,
    Hangup,
    Lookup,
    LookupDone,
    Play,
    PlayDone,
    PromptRef,
    Session,
    Speak,
    StopPlay,
    Tick,
    Transfer,
    TransferDone,
    Waiting,
    render,
)

DEMO = load_flow_file(Path(__file__).resolve().parents[2] / "flows" / "demo.toml")
T0 = datetime(2024, 6, 3, 8, 0, tzinfo=UTC).timestamp()          # Monday 10:00 in Prague
SATURDAY = datetime(2024, 6, 8, 8, 0, tzinfo=UTC).timestamp()    # Saturday 10:00 in Prague
END: dict[str, Any] = {"type": "hangup"}


def mk(steps: dict[str, Any], start: str, **top: Any) -> Flow:
    return parse_flow({"name": "t", "start": start, "steps": steps, **top})


def sess(flow: Flow, caller: str = "420777123456", holidays: frozenset[date] = frozenset(),
         **variables: str) -> Session:
    return Session(flow, caller=caller, pilot="100", call_id="c1", variables=variables, holidays=holidays)


def P(*names: str, loop: bool = False) -> Play:
    return Play(tuple(PromptRef(n) for n in names), loop)


def say(text: str) -> Play:
    return Play((Speak(text),))


def feed(s: Session, now: float, *events: Event) -> list[Action]:
    out: list[Action] = []
    for event in events:
        out += s.step(event, now)
    return out


def digits(text: str) -> list[Event]:
    return [Digit(d) for d in text]


# ---- menu -------------------------------------------------------------------------------------------

MENU: dict[str, dict[str, Any]] = {
    "m": {"type": "menu", "prompt": "menu", "choices": {"1": "one", "9": "m"}, "invalid_prompt": "invalid",
          "timeout_prompt": "timeout", "retries": 2, "timeout": 5, "fail": "failed"},
    "one": {"type": "play", "prompt": "one", "next": "end"},
    "failed": {"type": "hangup", "prompt": "failed"},
    "end": END,
}


def test_a_digit_barges_into_the_menu_prompt() -> None:
    s = sess(mk(MENU, "m"))
    assert s.start(T0) == [P("menu")] and s.stage == "m" and s.deadline is None
    assert s.step(Digit("1"), T0 + 1) == [StopPlay(), P("one")]
    assert s.stage == "one" and s.path == ["m", "one"]
    assert s.step(PlayDone(), T0 + 2) == [HangUp(), Finished("completed", "end")]
    assert s.done and s.outcome == "completed"


def test_menu_timeouts_retry_then_fail() -> None:
    s = sess(mk(MENU, "m"))
    s.start(T0)
    assert s.step(PlayDone(), T0 + 3) == [] and s.deadline == T0 + 8
    assert s.step(Tick(), T0 + 7.9) == []                                 # early tick: nothing
    assert s.step(Tick(), T0 + 8) == [P("timeout")] and s.deadline is None
    assert s.step(PlayDone(), T0 + 9) == [P("menu")]
    assert s.step(PlayDone(), T0 + 10) == [] and s.deadline == T0 + 15
    assert s.step(Tick(), T0 + 15) == [P("timeout")]                      # second retry
    assert feed(s, T0 + 16, PlayDone(), PlayDone()) == [P("menu")]
    assert s.step(Tick(), T0 + 22) == [P("failed")] and s.stage == "failed"
    assert s.step(PlayDone(), T0 + 23) == [HangUp(), Finished("completed", "failed")]


def test_an_invalid_digit_plays_the_invalid_prompt_and_a_digit_barges_into_it() -> None:
    s = sess(mk(MENU, "m"))
    s.start(T0)
    assert s.step(Digit("7"), T0 + 1) == [StopPlay(), P("invalid")]
    assert s.step(Digit("1"), T0 + 2) == [StopPlay(), P("one")]
    s = sess(mk(MENU, "m"))
    s.start(T0)
    s.step(PlayDone(), T0 + 1)
    assert s.step(Digit("#"), T0 + 2) == [P("invalid")] and s.deadline is None
    assert s.step(Tick(), T0 + 20) == []                                   # the timer was disarmed


def test_invalid_digits_exhaust_the_retries() -> None:
    s = sess(mk(MENU, "m"))
    s.start(T0)
    assert s.step(Digit("5"), T0) == [StopPlay(), P("invalid")]
    assert s.step(Digit("5"), T0) == [StopPlay(), P("invalid")]
    assert s.step(Digit("5"), T0) == [StopPlay(), P("failed")]


def test_a_menu_without_notices_and_no_retries_fails_at_once() -> None:
    steps: dict[str, dict[str, Any]] = {
        "m": {"type": "menu", "prompt": "menu", "choices": {"1": "end"}, "retries": 0, "fail": "failed"},
        "failed": {"type": "hangup", "prompt": "failed"}, "end": END}
    s = sess(mk(steps, "m"))
    s.start(T0)
    assert s.step(Digit("2"), T0) == [StopPlay(), P("failed")]
    s = sess(mk({**steps, "m": {**steps["m"], "retries": 1}}, "m"))
    s.start(T0)
    assert s.step(Digit("2"), T0) == [StopPlay(), P("menu")]              # no invalid_prompt: the menu again


def test_repeating_a_menu_keeps_the_path_bounded() -> None:
    s = sess(mk(MENU, "m"))
    s.start(T0)
    for _ in range(150):
        assert s.step(Digit("9"), T0) == [StopPlay(), P("menu")]
    assert len(s.path) == 100 and s.path[-1] == "m"


def test_type_ahead_during_a_play_is_consumed_by_the_menu() -> None:
    steps = {"intro": {"type": "play", "prompt": "intro", "next": "m"}, **MENU}
    s = sess(mk(steps, "intro"))
    assert s.start(T0) == [P("intro")]
    assert feed(s, T0, *digits("1")) == []
    assert s.step(PlayDone(), T0 + 1) == [P("one")]                      # no menu prompt at all
    assert s.path == ["intro", "m", "one"]
    s = sess(mk(steps, "intro"))
    s.start(T0)
    feed(s, T0, *digits("71"))
    assert s.step(PlayDone(), T0 + 1) == [P("invalid")]                  # '7' is wrong: '1' is flushed
    assert s.step(PlayDone(), T0 + 2) == [P("menu")]


# ---- collect ----------------------------------------------------------------------------------------

COLLECT: dict[str, dict[str, Any]] = {
    "c": {"type": "collect", "prompt": "enter", "var": "num", "min": 3, "max": 5, "terminator": "#",
          "first_timeout": 5, "digit_timeout": 3, "retries": 1, "invalid_prompt": "invalid",
          "next": "ok", "fail": "failed"},
    "ok": {"type": "play", "prompt": "tts:You entered {num}", "next": "m2"},
    "m2": {"type": "menu", "prompt": "m2", "choices": {"6": "six"}, "fail": "end"},
    "six": {"type": "hangup", "prompt": "six"},
    "failed": {"type": "hangup", "prompt": "failed"},
    "end": END,
}


def test_collect_ends_on_the_terminator() -> None:
    s = sess(mk(COLLECT, "c"))
    assert s.start(T0) == [P("enter")]
    assert s.step(Digit("1"), T0 + 1) == [StopPlay()] and s.deadline == T0 + 4
    assert feed(s, T0 + 2, *digits("23")) == [] and s.deadline == T0 + 5
    assert s.step(Digit("#"), T0 + 3) == [say("You entered 123")]
    assert s.variables["num"] == "123" and s.deadline is None


def test_collect_ends_at_max_and_keeps_the_rest_as_type_ahead() -> None:
    steps = {"intro": {"type": "play", "prompt": "intro", "next": "c"}, **COLLECT}
    s = sess(mk(steps, "intro"))
    s.start(T0)
    feed(s, T0, *digits("123456"))
    assert s.step(PlayDone(), T0 + 1) == [say("You entered 12345")]      # no prompt: typed ahead
    assert s.step(PlayDone(), T0 + 2) == [P("six")]                      # the '6' chose in the next menu
    s = sess(mk(COLLECT, "c"))
    s.start(T0)
    assert feed(s, T0, *digits("98765")) == [StopPlay(), say("You entered 98765")]


def test_collect_min_not_reached_retries_then_fails() -> None:
    s = sess(mk(COLLECT, "c"))
    s.start(T0)
    assert feed(s, T0, *digits("12#")) == [StopPlay(), P("invalid")]
    assert s.step(PlayDone(), T0 + 1) == [P("enter")]
    assert feed(s, T0 + 2, *digits("1#")) == [StopPlay(), P("failed")]
    assert "num" not in s.variables


def test_collect_inter_digit_and_first_timeouts() -> None:
    s = sess(mk(COLLECT, "c"))
    s.start(T0)
    assert s.step(PlayDone(), T0 + 1) == [] and s.deadline == T0 + 6      # first_timeout
    feed(s, T0 + 2, *digits("123"))
    assert s.deadline == T0 + 5                                           # digit_timeout
    assert s.step(Tick(), T0 + 5) == [say("You entered 123")]             # enough digits: complete
    s = sess(mk(COLLECT, "c"))
    s.start(T0)
    s.step(PlayDone(), T0 + 1)
    feed(s, T0 + 2, *digits("12"))
    assert s.step(Tick(), T0 + 5) == [P("invalid")]                       # too few: invalid
    s = sess(mk(COLLECT, "c"))
    s.start(T0)
    s.step(PlayDone(), T0 + 1)
    assert s.step(Tick(), T0 + 6) == [P("invalid")]                       # nothing at all
    assert s.step(Digit("4"), T0 + 7) == [StopPlay()]                     # a digit barges into the notice
    assert feed(s, T0 + 7, *digits("44#")) == [say("You entered 444")]


def test_collect_without_terminator_takes_hash_as_a_digit() -> None:
    steps = {**COLLECT, "c": {**COLLECT["c"], "terminator": ""}}
    s = sess(mk(steps, "c"))
    s.start(T0)
    assert feed(s, T0, *digits("1#2"), Tick()) == [StopPlay()]
    assert s.step(Tick(), T0 + 3) == [say("You entered 1#2")]


# ---- lookup -----------------------------------------------------------------------------------------

LOOK = {
    "s": {"type": "set", "vars": {"card": "{raw}"}, "next": "l"},
    "l": {"type": "lookup", "url": "{base}/Verify/{card}?from={caller}", "var": "r", "timeout": 2,
          "next": "said", "error": "err"},
    "said": {"type": "play", "prompt": "tts:{r.name}|{r.n}|{r.ok}|{r.none}|{r.obj}", "next": "l"},
    "err": {"type": "hangup", "prompt": "err"},
}


def test_lookup_renders_a_quoted_url_and_sets_the_fields() -> None:
    s = sess(mk(LOOK, "s"), caller="+420777", raw="12 3/4", base="http://h:8080/api")
    assert s.start(T0) == [Lookup("http://h:8080/api/Verify/12%203%2F4?from=%2B420777", 2.0)]
    assert s.deadline == T0 + 3 and s.path == ["s", "l"]
    data = {"name": "Jan", "n": 5, "ok": True, "none": None, "obj": {"a": [1, 2]}}
    assert s.step(LookupDone(True, data), T0 + 1) == [say('Jan|5|true||{"a": [1, 2]}')]
    assert s.variables["r.n"] == "5" and s.deadline is None
    assert s.step(PlayDone(), T0 + 2) == [Lookup("http://h:8080/api/Verify/12%203%2F4?from=%2B420777", 2.0)]
    assert s.step(LookupDone(True, {"name": "Eva"}), T0 + 3) == [say("Eva||||")]
    assert "r.n" not in s.variables                                       # fields of the old answer are gone


def test_lookup_failure_and_guard_timeout_go_to_error() -> None:
    s = sess(mk(LOOK, "s"), base="http://h")
    s.start(T0)
    assert s.step(PlayDone(), T0) == []                                   # unexpected: ignored
    assert s.step(LookupDone(False, None, "HTTP 500"), T0 + 1) == [P("err")]
    s = sess(mk(LOOK, "s"), base="http://h")
    s.start(T0)
    assert s.step(Tick(), T0 + 2.9) == []
    assert s.step(Tick(), T0 + 3) == [P("err")]
    assert s.step(LookupDone(True, {"name": "late"}), T0 + 4) == []       # too late: ignored
    s = sess(mk(LOOK, "s"), base="http://h")
    s.start(T0)
    assert s.step(LookupDone(True, ["not", "an", "object"]), T0) == [P("err")]   # type: ignore[arg-type]


def test_render_quotes_values_in_urls_but_not_a_leading_base() -> None:
    values = {"base": "http://a:1/x", "v": "a/b c&d", "w.f": "é"}
    assert render("{base}/q/{v}", values, url=True) == "http://a:1/x/q/a%2Fb%20c%26d"
    assert render("http://h/{base}", values, url=True) == "http://h/http%3A%2F%2Fa%3A1%2Fx"
    assert render("{v}-{w.f}-{gone}-{{x}}", values) == "a/b c&d-é--{x}"


# ---- branch, switch, set, hours ---------------------------------------------------------------------

TARGETS = ("eq", "inn", "mt", "neg", "big", "uk", "hol", "opn", "els")
BRANCH = {
    "b": {"type": "branch", "else": "els", "when": [
        {"var": "x", "equals": "1", "then": "eq"},
        {"var": "x", "in": ["a", "b"], "then": "inn"},
        {"var": "x", "matches": "^[0-9]{3}$", "then": "mt"},
        {"var": "x", "less": 0, "then": "neg"},
        {"var": "x", "greater": 100, "then": "big"},
        {"caller_matches": "^\\+44", "then": "uk"},
        {"holiday": True, "then": "hol"},
        {"open": "office", "then": "opn"}]},
    **{name: {"type": "hangup", "prompt": name} for name in TARGETS},
}


@pytest.mark.parametrize(("x", "caller", "now", "holiday", "expected"), [
    ("1", "+420", SATURDAY, False, "eq"),
    ("b", "+420", SATURDAY, False, "inn"),
    ("123", "+420", SATURDAY, False, "mt"),
    ("-5", "+420", SATURDAY, False, "neg"),
    ("1000.5", "+420", SATURDAY, False, "big"),
    ("abc", "+441234", SATURDAY, False, "uk"),
    ("abc", "+420", SATURDAY, True, "hol"),
    ("", "+420", T0, False, "opn"),
    ("12.5", "+420", SATURDAY, False, "els"),
])
def test_branch_tests(x: str, caller: str, now: float, holiday: bool, expected: str) -> None:
    flow = mk(BRANCH, "b", calendars={"office": {"mon": "08:00-18:00"}})
    holidays = frozenset({datetime.fromtimestamp(now, UTC).date()}) if holiday else frozenset()
    s = sess(flow, caller=caller, holidays=holidays, x=x)
    assert s.start(now) == [P(expected)] and s.path == ["b", expected]


def test_switch_and_set_with_templates() -> None:
    steps = {
        "s": {"type": "set", "vars": {"greeting": "Hello {name}, {missing}!{{x}}", "name": "{caller}"},
              "next": "sw"},
        "sw": {"type": "switch", "var": "name", "cases": {"420777": "p"}, "default": "end"},
        "p": {"type": "play", "prompt": ["tts:{greeting}", "beep"], "next": "end"},
        "end": END,
    }
    s = sess(mk(steps, "s"), caller="420777", name="Eva")
    # all values of a set step are rendered before any is assigned
    assert s.start(T0) == [Play((Speak("Hello Eva, !{x}"), PromptRef("beep")))]
    assert s.variables["name"] == "420777" and s.variables["pilot"] == "100" and s.variables["call_id"] == "c1"
    s = sess(mk(steps, "s"), caller="111")
    assert s.start(T0) == [HangUp(), Finished("completed", "end")]        # switch default


def test_a_loop_of_steps_without_media_ends_the_session_as_an_error() -> None:
    steps = {"a": {"type": "set", "vars": {"n": "{n}1"}, "next": "b"},
             "b": {"type": "branch", "when": [{"var": "n", "equals": "x", "then": "end"}], "else": "a"},
             "end": END}
    s = sess(mk(steps, "a"))
    assert s.start(T0) == [HangUp(), Finished("error", s.stage)]
    assert s.done and s.outcome == "error" and len(s.path) == 100
    assert s.step(Hangup("caller"), T0) == []
    chain = {f"s{i}": {"type": "set", "vars": {"i": str(i)}, "next": f"s{i + 1}"} for i in range(60)}
    chain["s60"] = {"type": "play", "prompt": "done", "next": "end"}
    s = sess(mk({**chain, "end": END}, "s0"))
    assert s.start(T0) == [P("done")] and s.variables["i"] == "59"       # a long chain is fine


# ---- enqueue ----------------------------------------------------------------------------------------

QUEUE: dict[str, dict[str, Any]] = {
    "intro": {"type": "play", "prompt": "intro", "next": "q"},
    "q": {"type": "enqueue", "project": "sales-{lang}", "priority": 5, "data": {"lang": "{lang}", "card": "{card}"},
          "music": "music", "message": "wait", "message_interval": 30,
          "announce": ["tts:You are number {position}. About {ewt_min} minutes ({ewt} s)."],
          "callback_prompt": "offer", "callback": "cb", "error": "sorry"},
    "cb": {"type": "hangup", "prompt": "cb_ok"},
    "sorry": {"type": "hangup", "prompt": "sorry"},
}
MUSIC = P("music", loop=True)


def queued(steps: dict[str, Any] = QUEUE) -> Session:
    s = sess(mk(steps, "intro"), lang="cs")
    s.start(T0)
    assert s.step(PlayDone(), T0) == [Enqueue("sales-cs", 5, {"lang": "cs", "card": "", "ivr_flow": "t",
                                                                "ivr_stage": "q", "ivr_path": "intro>q"})]
    assert s.deadline is None
    return s


def test_enqueue_loops_music_and_plays_the_message_periodically() -> None:
    s = queued()
    assert s.step(Enqueued(True, "", "k1"), T0) == [MUSIC] and s.deadline == T0 + 30
    assert s.step(Tick(), T0 + 29.9) == []
    assert s.step(Tick(), T0 + 30) == [StopPlay(), P("wait")] and s.deadline == T0 + 60
    assert s.step(PlayDone(), T0 + 36) == [MUSIC]
    assert s.step(PlayDone(), T0 + 37) == []                              # a stray PlayDone of the loop
    assert s.step(Tick(), T0 + 60) == [P("wait")] and s.deadline == T0 + 90   # the music had stopped


def test_the_message_is_skipped_while_an_announcement_plays() -> None:
    s = queued()
    s.step(Enqueued(True), T0)
    assert s.step(Waiting("announce", 3, 61), T0 + 29) == [
        StopPlay(), say("You are number 3. About 2 minutes (61 s).")]
    assert s.step(Tick(), T0 + 30) == [] and s.deadline == T0 + 60
    assert s.step(PlayDone(), T0 + 33) == [MUSIC]
    assert s.step(Waiting("other", 1, 1), T0 + 34) == []                   # an unknown notice: ignored


@pytest.mark.parametrize(("ewt", "seconds", "minutes"), [
    (0, "0", "1"), (59, "59", "1"), (60, "60", "1"), (61, "61", "2"), (600, "600", "10"), (-5, "0", "1"),
    (math.nan, "0", "1"), (90.4, "90", "2"),
])
def test_announce_renders_position_and_expected_wait(ewt: float, seconds: str, minutes: str) -> None:
    s = queued()
    s.step(Enqueued(True), T0)
    text = f"You are number 2. About {minutes} minutes ({seconds} s)."
    assert s.step(Waiting("announce", 2, ewt), T0 + 1) == [StopPlay(), say(text)]


def test_callback_offer_and_accept() -> None:
    s = queued()
    s.step(Enqueued(True), T0)
    assert s.step(Digit("1"), T0 + 1) == []                                # nothing offered yet
    assert s.step(Waiting("callback_offer", 4, 300), T0 + 2) == [StopPlay(), P("offer")]
    assert s.step(Digit("2"), T0 + 3) == []                                # other digits are ignored
    assert s.step(Digit("1"), T0 + 4) == [Callback(), StopPlay(), MUSIC]
    assert s.step(Digit("1"), T0 + 5) == []                                # once
    assert s.step(CallbackDone(True), T0 + 6) == [StopPlay(), P("cb_ok")] and s.stage == "cb"
    assert s.step(Hangup("caller"), T0 + 7) == [Finished("abandoned", "cb")]   # no longer queued


def test_a_refused_callback_keeps_the_caller_waiting() -> None:
    s = queued()
    s.step(Enqueued(True), T0)
    s.step(Waiting("callback_offer", 4, 300), T0 + 1)
    assert s.step(Digit("1"), T0 + 2) == [Callback(), StopPlay(), MUSIC]
    assert s.step(CallbackDone(False, "no slot"), T0 + 3) == [] and s.stage == "q"
    assert s.step(Tick(), T0 + 30) == [StopPlay(), P("wait")]
    assert s.step(Hangup("caller"), T0 + 31) == [Finished("abandoned_queued", "q")]


def test_a_refused_enqueue_goes_to_error() -> None:
    s = queued()
    assert s.step(Enqueued(False, "no such project"), T0) == [P("sorry")]
    assert s.step(Hangup("caller"), T0 + 1) == [Finished("abandoned", "sorry")]


def test_waiting_without_music_is_silent_between_messages() -> None:
    steps = {**QUEUE, "q": {k: v for k, v in QUEUE["q"].items() if k != "music"}}
    s = queued(steps)
    assert s.step(Enqueued(True), T0) == [] and s.deadline == T0 + 30
    assert s.step(Tick(), T0 + 30) == [P("wait")]
    assert s.step(PlayDone(), T0 + 35) == []


@pytest.mark.parametrize(("events", "outcome"), [
    ([], "abandoned"),                                            # the caller left in the IVR
    ([PlayDone()], "abandoned_queued"),                           # left while the enqueue was on its way
    ([PlayDone(), Enqueued(True)], "abandoned_queued"),
])
def test_a_caller_hanging_up(events: list[Event], outcome: str) -> None:
    s = sess(mk(QUEUE, "intro"), lang="cs")
    s.start(T0)
    feed(s, T0, *events)
    assert s.step(Hangup("caller"), T0 + 1) == [Finished(outcome, s.stage)]
    assert s.outcome == outcome and s.done and s.deadline is None
    assert feed(s, T0 + 2, PlayDone(), Tick(), Hangup("caller"), Digit("1")) == []


@pytest.mark.parametrize("reason", ["bridged", "ended"])
def test_bridged_and_ended_hangups(reason: str) -> None:
    s = queued()
    s.step(Enqueued(True), T0)
    assert s.step(Hangup(reason), T0 + 5) == [Finished(reason, "q")]       # no HangUp: the call is gone


# ---- transfer, misc ---------------------------------------------------------------------------------

XFER = {"x": {"type": "transfer", "number": "{agent}", "error": "sorry"},
        "sorry": {"type": "hangup", "prompt": "sorry"}}


def test_transfer_ok_and_failed() -> None:
    s = sess(mk(XFER, "x"), agent="200")
    assert s.start(T0) == [Transfer("200")]
    assert s.step(TransferDone(True, 200), T0 + 1) == [Finished("transferred", "x")]
    assert s.done and s.step(TransferDone(True, 200), T0 + 2) == []
    s = sess(mk(XFER, "x"), agent="200")
    s.start(T0)
    assert s.step(Enqueued(True), T0) == []                                # unexpected: ignored
    assert s.step(TransferDone(False, 486), T0 + 1) == [P("sorry")]


def test_events_before_start_and_a_second_start_do_nothing() -> None:
    s = sess(mk(XFER, "x"), agent="200")
    assert s.step(Hangup("caller"), T0) == [] and not s.done
    assert s.start(T0) == [Transfer("200")]
    assert s.start(T0) == []
    with pytest.raises(ValueError):
        Digit("x")


# ---- the demo ---------------------------------------------------------------------------------------

DEMO_VARS = {"demo_project": "demo", "ehic_base": "http://127.0.0.1:8081"}


def demo(holidays: frozenset[date] = frozenset(), flow: Flow = DEMO, **extra: str) -> Session:
    return Session(flow, caller="420777123456", pilot="100", call_id="c1", variables={**DEMO_VARS, **extra},
                   holidays=holidays)


def test_demo_closed_hours_play_the_closed_prompt() -> None:
    s = demo()
    assert s.start(SATURDAY) == [P("closed")] and s.path == ["start", "hours", "closed"]
    assert s.step(PlayDone(), SATURDAY + 9) == [HangUp(), Finished("completed", "closed")]
    s = demo(frozenset({date(2024, 6, 3)}))
    assert s.start(T0) == [P("closed")]                                   # a holiday on a Monday
    assert demo().start(T0) == [P("welcome")]            # Monday 10:00: open
    assert demo(demo_always_open="1").start(SATURDAY) == [P("welcome")]


def in_menu() -> Session:
    s = demo(demo_always_open="1")
    s.start(T0)
    assert s.step(PlayDone(), T0 + 5) == [P("menu")]
    return s


def test_demo_1_queues_the_call() -> None:
    s = in_menu()
    assert s.step(Digit("9"), T0 + 6) == [StopPlay(), P("menu")]          # 9 repeats the menu
    assert s.step(Digit("1"), T0 + 7) == [StopPlay(), Enqueue("demo", 0, {
        "language": "en", "reason": "general", "ivr_flow": "demo", "ivr_stage": "queue",
        "ivr_path": "start>welcome>menu>menu>queue"})]
    assert s.step(Enqueued(True, "", "c1"), T0 + 8) == [P("music", loop=True)]
    assert s.step(Waiting("announce", 1, 30), T0 + 9) == [StopPlay(), say(
        "You are number 1 in the queue. The expected wait is 1 minutes.")]
    assert s.step(Hangup("bridged"), T0 + 10) == [Finished("bridged", "queue")]


@pytest.mark.parametrize(("answer", "prompt"), [
    ({"Priznak": 1, "Platnost": "A"}, "ehic_A"), ({"Priznak": 0, "Platnost": "N"}, "ehic_N"),
    ({"Priznak": 1, "Platnost": "P"}, "ehic_P"), ({"Priznak": 1, "Platnost": "Y"}, "ehic_Y"),
    ({"Priznak": 1, "Platnost": "X"}, "ehic_X"), ({"Priznak": -1, "Platnost": "A"}, "ehic_error"),
    ({"Platnost": "A"}, "ehic_A"), ({"Priznak": 1, "Platnost": "Q"}, "ehic_error"), (None, "ehic_error"),
])
def test_demo_2_verifies_an_ehic_card(answer: dict[str, Any] | None, prompt: str) -> None:
    s = in_menu()
    assert s.step(Digit("2"), T0 + 6) == [StopPlay(), P("ehic_enter")]
    assert feed(s, T0 + 7, *digits("802031234#")) == [
        StopPlay(), Lookup("http://127.0.0.1:8081/Verify/802031234", 3.0)]
    done = LookupDone(answer is not None, answer, "" if answer else "timeout")
    assert s.step(done, T0 + 8) == [P(prompt)]
    assert s.step(PlayDone(), T0 + 9) == [P("after_ehic")]
    assert s.step(Digit("1"), T0 + 10)[1] == Enqueue("demo", 0, {
        "language": "en", "reason": "general", "ivr_flow": "demo", "ivr_stage": "queue",
        "ivr_path": ">".join(s.path)})


def test_demo_menu_timeouts_say_goodbye() -> None:
    s = in_menu()
    s.step(PlayDone(), T0 + 6)
    for i in range(2):
        assert s.step(Tick(), T0 + 11 + 10 * i) == [P("invalid")]
        assert feed(s, T0 + 12 + 10 * i, PlayDone(), PlayDone()) == [P("menu")]
    assert s.step(Tick(), T0 + 40) == [P("goodbye")]
    assert s.step(PlayDone(), T0 + 41) == [HangUp(), Finished("completed", "goodbye")]


# ---- property: any event sequence -------------------------------------------------------------------

ALL = mk({
    "m": {"type": "menu", "prompt": "menu", "choices": {"1": "q", "2": "c", "3": "x", "4": "l", "5": "b"},
          "retries": 1, "timeout_prompt": "tts:again", "fail": "bye"},
    "q": {"type": "enqueue", "project": "p", "music": "music", "message": "wait", "message_interval": 5,
          "announce": "tts:{position} {ewt_min}", "callback_prompt": "offer", "callback": "m", "error": "m"},
    "c": {"type": "collect", "prompt": "enter", "var": "n", "min": 2, "max": 4, "retries": 1, "next": "l",
          "fail": "m"},
    "l": {"type": "lookup", "url": "http://h/{n}", "var": "r", "next": "sw", "error": "m"},
    "sw": {"type": "switch", "var": "r.k", "cases": {"A": "m"}, "default": "b"},
    "b": {"type": "branch", "when": [{"var": "r.v", "greater": 3, "then": "x"}], "else": "bye"},
    "x": {"type": "transfer", "number": "200", "error": "m"},
    "bye": {"type": "hangup", "prompt": "bye"},
}, "m")
EVENTS = st.one_of(
    st.sampled_from([PlayDone(), Tick(), LookupDone(False, None), Enqueued(True), Enqueued(False),
                     CallbackDone(True), CallbackDone(False), TransferDone(True), TransferDone(False, 486),
                     Hangup("caller"), Hangup("bridged"), Hangup("ended")]),
    st.builds(Digit, st.sampled_from("0123456789*#")),
    st.builds(LookupDone, st.just(True), st.dictionaries(st.sampled_from(["k", "v", "Priznak", "Platnost"]),
                                                         st.one_of(st.text(max_size=3), st.integers(-5, 5)))),
    st.builds(Waiting, st.sampled_from(["announce", "callback_offer", "x"]), st.integers(-1, 50),
              st.floats(allow_nan=True, allow_infinity=True)),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([DEMO, ALL]), st.lists(st.tuples(EVENTS, st.floats(0, 40)), max_size=60),
       st.booleans())
def test_random_event_sequences_never_raise_and_finish_once(flow: Flow, events: list[tuple[Event, float]],
                                                            always_open: bool) -> None:
    s = demo(flow=flow, demo_always_open="1" if always_open else "0")
    now = SATURDAY
    out = s.start(now)
    for event, delay in events:
        now += delay
        if isinstance(event, Tick) and s.deadline is not None:
            now = max(now, s.deadline)
        before = s.deadline
        out += s.step(event, now)
        assert s.deadline is None or s.deadline == before or s.deadline >= now   # timers armed from now
        assert all(a.items for a in out if isinstance(a, Play))
    finished = [a for a in out if isinstance(a, Finished)]
    assert len(finished) <= 1
    assert s.done == bool(finished)
    if finished:
        assert out[-1] == finished[0] and s.outcome == finished[0].outcome
