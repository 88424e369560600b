"""Waiting rules (announcements, callback offers) and pause/resume of projects and channels."""

from __future__ import annotations

import pytest

from ctiserver.acd import (
    AgentProfile,
    AgentState,
    Channel,
    ContactState,
    ContactStateChanged,
    EngineError,
    InvalidConfig,
    NotFound,
    Overflowed,
    Strategy,
    WaitingNotice,
)

from .test_acd_engine import contact, offers, project, world

S, CS = AgentState, ContactState


def notices(actions: list) -> list[tuple[str, str, float]]:
    return [(a.contact_id, a.kind, a.waited) for a in actions if isinstance(a, WaitingNotice)]


def run_timers(e, until: float, step: float = 1.0) -> list:  # type: ignore[no-untyped-def]
    out: list = []
    t = 0.0
    while t < until:
        t += step
        out.extend(e.on_timer(t))
    return out


# ==== waiting rules ===============================================================================

def test_announcements_come_every_interval_while_queued() -> None:
    e = world([project(announce_interval=10.0)], {"a1": {}})
    e.enqueue(contact("c1"), 0.0)
    got = notices(run_timers(e, 35.0))
    assert got == [("c1", "announce", 10.0), ("c1", "announce", 20.0), ("c1", "announce", 30.0)]


def test_no_announcement_once_answered_and_none_while_offered() -> None:
    e = world([project(announce_interval=10.0, ring_timeout=30.0)], {"a1": {}})
    e.enqueue(contact("c1"), 0.0)
    assert notices(e.on_timer(10.0)) == [("c1", "announce", 10.0)]
    e.ready("a1", 12.0)                     # offered at 12: rings until 42
    assert notices(e.on_timer(25.0)) == []  # the customer is about to be served
    e.accept("a1", "c1", 26.0)
    assert notices(run_timers(e, 100.0)) == []
    assert e.next_deadline() is None        # no timer left behind for an answered contact


def test_callback_offer_once_after_the_configured_wait() -> None:
    e = world([project(callback_offer_after=60.0, announce_interval=30.0)], {"a1": {}})
    e.enqueue(contact("c1"), 0.0)
    got = notices(run_timers(e, 125.0))
    assert got == [("c1", "announce", 30.0), ("c1", "callback_offer", 60.0), ("c1", "announce", 60.0),
                   ("c1", "announce", 90.0), ("c1", "announce", 120.0)]


def test_rules_restart_in_the_overflow_project() -> None:
    e = world([project("q", callback_offer_after=10.0),
               project("p", max_wait=30.0, overflow_project="q", callback_offer_after=100.0)], {"a1": {}})
    e.enqueue(contact("c1"), 0.0)
    acts = run_timers(e, 45.0)
    assert [a for a in acts if isinstance(a, Overflowed)] == [Overflowed("c1", "p", "q", 30.0)]
    assert notices(acts) == [("c1", "callback_offer", 10.0)]   # 10 s after entering q, at 40


def test_callback_ends_the_contact_and_frees_its_agent() -> None:
    e = world([project()], {"a1": {}})
    e.ready("a1", 0.0)
    assert offers(e.enqueue(contact("c1"), 1.0)) == [("a1", "c1")]
    acts = e.callback("c1", 2.0)
    assert ContactStateChanged("c1", CS.OFFERED, CS.CALLBACK, "callback", 2.0, "a1", "p") in acts
    assert e.agent("a1").state is S.READY and e.agent("a1").misses[next(iter(e.agent("a1").misses))] == 0
    st = e.project_stats("p")
    assert (st.callbacks, st.abandoned, st.waiting) == (1, 0, 0)
    with pytest.raises(NotFound):
        e.callback("c1", 3.0)


def test_waiting_rule_validation_names_the_field() -> None:
    with pytest.raises(InvalidConfig, match="announce_interval"):
        project(announce_interval=1.0)
    with pytest.raises(InvalidConfig, match="callback_offer_after"):
        project(callback_offer_after=-1.0)


def test_changing_the_rules_applies_to_waiting_contacts() -> None:
    e = world([project()], {"a1": {}})
    e.enqueue(contact("c1"), 0.0)
    assert e.next_deadline() is None
    e.upsert_project(project(announce_interval=10.0), now=25.0)
    assert notices(e.on_timer(25.0)) == [("c1", "announce", 25.0)]   # already past: due now
    e.upsert_project(project(), now=26.0)
    assert e.next_deadline() is None


# ==== pause and resume ============================================================================

def test_a_paused_project_holds_its_contacts_and_resume_offers_them() -> None:
    e = world([project("p"), project("q")], {"a1": {}, "a2": {}})
    e.pause(project="p", now=0.0)
    e.ready("a1", 0.0)
    assert offers(e.enqueue(contact("c1", "p"), 1.0)) == []
    assert offers(e.enqueue(contact("c2", "q"), 2.0)) == [("a1", "c2")]   # other projects go on
    e.ready("a2", 3.0)
    assert e.agent("a2").state is S.READY and e.waiting("p") == ["c1"]
    assert e.project_stats("p").paused and not e.project_stats("q").paused
    assert offers(e.resume(project="p", now=4.0)) == [("a2", "c1")]
    assert e.pause(project="p", now=5.0) == [] and e.pause(project="p", now=5.0) == []   # idempotent


def test_agent_freed_while_a_project_is_paused_takes_other_work_first() -> None:
    e = world([project("p", priority=5), project("q")], {"a1": {}})
    e.enqueue(contact("c1", "p", at=0.0), 0.0)
    e.enqueue(contact("c2", "q", at=1.0), 1.0)
    e.pause(project="p", now=1.0)
    assert offers(e.ready("a1", 2.0)) == [("a1", "c2")]   # c1 is older and higher but paused


def test_paused_channel_in_every_project() -> None:
    e = world([project("p"), project("q")], {})
    e.upsert_agent(AgentProfile("a1", capacity={Channel.VOICE: 1, Channel.CHAT: 2}))
    e.login("a1", 0.0)
    e.pause(channel="chat", now=0.0)
    assert e.paused_channels() == {Channel.CHAT}
    e.ready("a1", 0.0)
    assert offers(e.enqueue(contact("c1", "q", channel=Channel.CHAT), 1.0)) == []
    assert offers(e.enqueue(contact("c2", "p"), 2.0)) == [("a1", "c2")]          # voice goes on
    e.accept("a1", "c2", 3.0)
    e.end_contact("a1", "c2", 4.0)
    assert e.agent("a1").state is S.READY and e.waiting("q") == ["c1"]
    e.pause(project="q", now=5.0)
    assert offers(e.resume(channel="chat", now=6.0)) == []            # q itself is still paused
    assert offers(e.resume(project="q", now=7.0)) == [("a1", "c1")]


def test_new_project_inherits_a_paused_channel() -> None:
    e = world([], {"a1": {}})
    e.pause(channel=Channel.VOICE, now=0.0)
    e.upsert_project(project("p"), now=0.0)
    e.ready("a1", 0.0)
    assert offers(e.enqueue(contact("c1"), 1.0)) == []
    assert offers(e.resume(channel=Channel.VOICE, now=2.0)) == [("a1", "c1")]


def test_max_wait_still_overflows_a_paused_project() -> None:
    e = world([project("q"), project("p", max_wait=30.0, overflow_project="q")], {"a1": {}})
    e.ready("a1", 0.0)
    e.pause(project="p", now=0.0)
    e.enqueue(contact("c1", "p"), 0.0)
    acts = e.on_timer(30.0)
    assert Overflowed("c1", "p", "q", 30.0) in acts and offers(acts) == [("a1", "c1")]


def test_preferred_agent_contact_waits_through_a_pause() -> None:
    e = world([project(strategy=Strategy.PREFERRED_AGENT, preferred_fallback_seconds=60.0)], {"a1": {}, "a2": {}})
    e.pause(project="p", now=0.0)
    e.ready("a1", 0.0)
    assert offers(e.enqueue(contact("c1", preferred_agent="a1"), 1.0)) == []
    assert e.contact("c1").held_for == "a1"
    e.ready("a2", 2.0)
    assert offers(e.resume(project="p", now=3.0)) == [("a1", "c1")]


def test_offers_made_before_a_pause_run_their_course() -> None:
    e = world([project()], {"a1": {}})
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 1.0)
    e.pause(project="p", now=2.0)
    e.accept("a1", "c1", 3.0)
    assert e.contact("c1").state is CS.ANSWERED


def test_pause_errors_change_nothing() -> None:
    e = world([project()], {"a1": {}})
    with pytest.raises(EngineError):
        e.pause(now=0.0)
    with pytest.raises(EngineError):
        e.pause(project="p", channel="voice", now=0.0)
    with pytest.raises(NotFound):
        e.pause(project="nope", now=0.0)
    with pytest.raises(InvalidConfig, match="channel"):
        e.pause(channel="fax", now=0.0)
    assert not e.project_stats("p").paused and e.paused_channels() == frozenset()
