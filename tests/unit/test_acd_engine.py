"""Routing decisions of the ACD engine on small hand-built tables (fake clock, no I/O)."""

from __future__ import annotations

import pytest

from ctiserver.acd import (
    AgentPending,
    AgentProfile,
    AgentState,
    AgentStateChanged,
    AutoLogout,
    CancelOffer,
    Channel,
    Contact,
    ContactState,
    ContactStateChanged,
    Engine,
    EngineError,
    IllegalTransition,
    InvalidConfig,
    MissKind,
    NotFound,
    Offer,
    Overflowed,
    Project,
    Strategy,
)

S = AgentState
CS = ContactState


def project(pid: str = "p", **kw: object) -> Project:
    kw.setdefault("ring_timeout", 20.0)
    kw.setdefault("wrap_up_seconds", 0.0)
    return Project(pid, **kw)  # type: ignore[arg-type]


def world(projects: list[Project], agents: dict[str, dict[str, int]], *, langs: dict[str, set[str]] | None = None,
          **engine_kw: object) -> Engine:
    e = Engine(**engine_kw)  # type: ignore[arg-type]
    for p in projects:
        e.upsert_project(p)
    for aid, skills in agents.items():
        e.upsert_agent(AgentProfile(aid, skills=skills, languages=frozenset((langs or {}).get(aid, ()))))
        e.login(aid, 0.0)
    return e


def offers(actions: list) -> list[tuple[str, str]]:
    return [(a.agent_id, a.contact_id) for a in actions if isinstance(a, Offer)]


def contact(cid: str, pid: str = "p", at: float = 0.0, **kw: object) -> Contact:
    return Contact(cid, pid, enqueued_at=at, **kw)  # type: ignore[arg-type]


def serve(e: Engine, agent: str, cid: str, now: float) -> list:
    """Answer and end an offered contact; returns the actions of the end."""
    e.accept(agent, cid, now)
    return e.end_contact(agent, cid, now)


# ==== the basic cycle and the strategies ==========================================================

def test_contact_waits_until_an_agent_is_ready() -> None:
    e = world([project()], {"a1": {}})
    acts = e.enqueue(contact("c1"), 1.0)
    assert offers(acts) == [] and e.waiting("p") == ["c1"] and e.position("c1") == 1
    acts = e.ready("a1", 2.0)
    assert offers(acts) == [("a1", "c1")]
    assert [(a.old, a.new) for a in acts if isinstance(a, AgentStateChanged)] == [
        (S.NOT_READY, S.READY), (S.READY, S.RESERVED)]
    assert e.contact("c1").state is CS.OFFERED and e.position("c1") is None
    e.ringing("a1", "c1", 2.5)
    assert e.agent("a1").state is S.OFFERED
    acts = e.accept("a1", "c1", 3.0)
    assert e.agent("a1").state is S.BUSY and e.contact("c1").state is CS.ANSWERED
    assert ContactStateChanged("c1", CS.OFFERED, CS.ANSWERED, "answered", 3.0, "a1", "p") in acts
    e.end_contact("a1", "c1", 4.0)
    assert e.agent("a1").state is S.READY          # wrap_up_seconds=0
    with pytest.raises(NotFound):
        e.contact("c1")                            # terminal contacts are forgotten
    st = e.project_stats("p")
    assert (st.entered, st.offered, st.answered, st.answered_in_sl, st.service_level) == (1, 1, 1, 1, 1.0)


def test_longest_idle_and_back_of_the_line_after_work() -> None:
    e = world([project()], {"a1": {}, "a2": {}, "a3": {}})
    for t, a in ((1.0, "a2"), (2.0, "a1"), (3.0, "a3")):
        e.ready(a, t)
    assert offers(e.enqueue(contact("c1"), 4.0)) == [("a2", "c1")]
    serve(e, "a2", "c1", 5.0)                      # a2 READY again, now the most recent
    assert offers(e.enqueue(contact("c2"), 6.0)) == [("a1", "c2")]
    assert offers(e.enqueue(contact("c3"), 6.0)) == [("a3", "c3")]
    assert offers(e.enqueue(contact("c4"), 6.0)) == [("a2", "c4")]


def test_best_skill_then_longest_idle() -> None:
    p = project(strategy=Strategy.BEST_SKILL, required_skills={"de": 1, "vip": 1})
    e = world([p], {"a1": {"de": 3, "vip": 2}, "a2": {"de": 9, "vip": 1}, "a3": {"de": 5, "vip": 5}, "a4": {"de": 9}})
    for t, a in ((1.0, "a1"), (2.0, "a3"), (3.0, "a2"), (4.0, "a4")):
        e.ready(a, t)
    # sums: a1 5, a2 10, a3 10 (a4 lacks vip); a3 and a2 tie, a3 idle longer
    got = [offers(e.enqueue(contact(f"c{i}"), 5.0))[0][0] for i in range(3)]
    assert got == ["a3", "a2", "a1"]
    assert e.enqueue(contact("c9"), 5.0)[-1].new is CS.QUEUED   # a4 is not eligible


def test_round_robin_follows_the_ring_not_idle_time() -> None:
    e = world([project(strategy=Strategy.ROUND_ROBIN)], {"a1": {}, "a2": {}, "a3": {}})
    for t, a in ((1.0, "a3"), (2.0, "a1"), (3.0, "a2")):
        e.ready(a, t)
    order = []
    for i in range(6):
        (agent, cid), = offers(e.enqueue(contact(f"c{i}"), 10.0 + i))
        order.append(agent)
        serve(e, agent, cid, 10.5 + i)
    assert order == ["a1", "a2", "a3", "a1", "a2", "a3"]


def test_fewest_contacts_today() -> None:
    e = world([project(strategy=Strategy.FEWEST_CONTACTS)], {"a1": {}, "a2": {}})
    e.ready("a1", 1.0)
    for i in range(2):                             # a1 answers two while a2 is away
        (agent, cid), = offers(e.enqueue(contact(f"x{i}"), 2.0))
        serve(e, agent, cid, 3.0)
    e.ready("a2", 4.0)                             # a1 has been idle longer, but has 2 today
    assert offers(e.enqueue(contact("c1"), 5.0)) == [("a2", "c1")]
    assert e.agent("a1").contacts_today == 2
    e.reset_day(6.0)
    assert e.agent("a1").contacts_today == 0 and e.project_stats("p").answered == 0
    assert offers(e.enqueue(contact("c2"), 7.0)) == [("a1", "c2")]


def test_priority_and_ageing_across_projects() -> None:
    lo, hi = project("lo", priority=0), project("hi", priority=1)
    e = world([lo, hi], {"a1": {}}, ageing_seconds=60.0)
    e.enqueue(contact("old", "lo", at=0.0), 0.0)
    e.enqueue(contact("new", "hi", at=30.0), 30.0)   # score 30 - 60 = -30 < 0: goes first
    e.enqueue(contact("late", "hi", at=70.0), 70.0)  # score 70 - 60 = 10 > 0: after "old"
    got = []
    for t in (71.0, 72.0, 73.0):
        (agent, cid), = offers(e.ready("a1", t) if t == 71.0 else e.end_contact("a1", got[-1], t))
        e.accept(agent, cid, t)
        got.append(cid)
    assert got == ["new", "old", "late"]


def test_contact_priority_counts_like_project_priority() -> None:
    e = world([project()], {"a1": {}}, ageing_seconds=10.0)
    e.enqueue(contact("c1", at=0.0), 0.0)
    e.enqueue(contact("c2", at=5.0, priority=1), 5.0)
    assert e.waiting("p") == ["c2", "c1"] and e.position("c1") == 2


def test_language_and_minimum_levels() -> None:
    p = project(required_skills={"tech": 5}, language="fr")
    e = world([p], {"weak": {"tech": 4}, "mono": {"tech": 9}, "ok": {"tech": 5}},
              langs={"weak": {"fr"}, "ok": {"fr", "de"}})
    assert e.agent("ok").projects == frozenset({"p"}) and not e.agent("mono").projects
    for a in ("weak", "mono"):
        e.ready(a, 1.0)
    e.enqueue(contact("c1"), 2.0)
    assert e.contact("c1").state is CS.QUEUED      # READY agents, none eligible: no stall
    assert offers(e.ready("ok", 3.0)) == [("ok", "c1")]


def test_channels_keep_voice_only_agents_off_chats() -> None:
    e = Engine()
    e.upsert_project(project())
    e.upsert_agent(AgentProfile("voice"))
    e.upsert_agent(AgentProfile("chat", capacity={Channel.VOICE: 1, Channel.CHAT: 3}))
    for a in ("voice", "chat"):
        e.login(a, 0.0)
        e.ready(a, 1.0)
    assert offers(e.enqueue(contact("c1", channel=Channel.CHAT), 2.0)) == [("chat", "c1")]
    # capacity 3: a second chat goes to him too (test_acd_capacity.py has the rules)
    assert offers(e.enqueue(contact("c2", channel=Channel.CHAT), 2.0)) == [("chat", "c2")]
    assert offers(e.enqueue(contact("c3"), 2.0)) == [("voice", "c3")]
    assert e.enqueue(contact("c4"), 2.0)[-1].new is CS.QUEUED   # he holds chats: no voice for him


# ==== offers that fail ============================================================================

def test_ring_timeout_reoffers_to_the_next_agent() -> None:
    e = world([project(ring_timeout=15.0)], {"a1": {}, "a2": {}})
    e.ready("a1", 1.0)
    e.ready("a2", 2.0)
    assert offers(e.enqueue(contact("c1"), 3.0)) == [("a1", "c1")]
    assert e.next_deadline() == 18.0
    assert e.on_timer(17.9) == []
    acts = e.on_timer(18.0)
    assert acts[0] == CancelOffer("a1", "c1", "no_answer")
    assert offers(acts) == [("a2", "c1")]
    assert e.agent("a1").state is S.READY and e.agent("a1").misses[MissKind.NO_ANSWER] == 1
    assert e.project_stats("p").offered == 2


def test_only_agent_misses_then_gets_it_again() -> None:
    e = world([project()], {"a1": {}})
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 1.0)
    acts = e.reject("a1", "c1", 2.0)
    assert not any(isinstance(a, CancelOffer) for a in acts)   # he declined: nothing to cancel
    assert offers(acts) == [("a1", "c1")]          # nobody else: no stall, back to him


def test_miss_counters_are_separate_and_auto_logout_records_the_reason() -> None:
    limits = {MissKind.NO_ANSWER: 3, MissKind.REJECTED: 2, MissKind.UNREACHABLE: 5}
    e = world([project()], {"a1": {}, "a2": {}}, miss_limits=limits)
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 1.0)
    e.on_timer(21.0)                               # no answer: 1 (a2 is not ready; back to a1)
    e.offer_failed("a1", "c1", 22.0, MissKind.UNREACHABLE)
    e.on_timer(42.0)                               # no answer: 2
    assert e.agent("a1").misses == {MissKind.NO_ANSWER: 2, MissKind.REJECTED: 0, MissKind.UNREACHABLE: 1}
    e.reject("a1", "c1", 43.0)                     # rejected: 1 — kinds do not reset each other
    e.accept("a1", "c1", 44.0)                     # an answer resets them all
    assert set(e.agent("a1").misses.values()) == {0}
    e.end_contact("a1", "c1", 45.0)
    e.enqueue(contact("c2"), 46.0)
    e.reject("a1", "c2", 47.0)
    e.ready("a2", 47.5)
    e.not_ready("a2", 47.6, "break")
    acts = e.reject("a1", "c2", 48.0)              # rejected: 2 = limit
    assert AutoLogout("a1", MissKind.REJECTED, 2, 48.0) in acts
    last = [a for a in acts if isinstance(a, AgentStateChanged)][-1]
    assert (last.new, last.reason) == (S.LOGGED_OUT, "auto-logout: 2 consecutive rejected")
    assert e.contact("c2").state is CS.QUEUED      # re-queued first
    e.login("a1", 50.0)
    assert set(e.agent("a1").misses.values()) == {0}


def test_limit_zero_never_logs_out() -> None:
    e = world([project()], {"a1": {}}, miss_limits=0)
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 0.0)
    for i in range(10):
        e.reject("a1", "c1", float(i))
    assert e.agent("a1").state is S.RESERVED and e.agent("a1").misses[MissKind.REJECTED] == 10


# ==== wrap-up and pending wishes ==================================================================

def test_wrap_up_timer_returns_to_ready_and_takes_work() -> None:
    e = world([project(wrap_up_seconds=10.0)], {"a1": {}})
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 1.0)
    e.enqueue(contact("c2"), 1.0)
    serve(e, "a1", "c1", 5.0)
    assert e.agent("a1").state is S.WRAP_UP and e.next_deadline() == 15.0
    acts = e.on_timer(15.0)
    assert AgentStateChanged("a1", S.WRAP_UP, S.READY, "wrap-up timeout", 15.0) in acts
    assert offers(acts) == [("a1", "c2")]
    serve(e, "a1", "c2", 16.0)
    assert e.end_wrap_up("a1", 17.0)[0].reason == "wrap-up done"   # early, by the agent
    assert e.on_timer(26.0) == []                  # the old timer is void
    with pytest.raises(IllegalTransition):
        e.end_wrap_up("a1", 27.0)


def test_pending_not_ready_takes_effect_after_the_call() -> None:
    e = world([project(wrap_up_seconds=5.0)], {"a1": {}})
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 1.0)
    e.accept("a1", "c1", 2.0)
    assert e.not_ready("a1", 3.0, "lunch") == [AgentPending("a1", "not_ready", "lunch", 3.0)]
    assert e.agent("a1").state is S.BUSY and e.agent("a1").pending == "not_ready"
    e.enqueue(contact("c2"), 4.0)
    e.end_contact("a1", "c1", 5.0)
    acts = e.on_timer(10.0)
    assert acts == [AgentStateChanged("a1", S.WRAP_UP, S.NOT_READY, "lunch", 10.0)]
    assert e.contact("c2").state is CS.QUEUED and e.agent("a1").pending is None


def test_ready_while_busy_cancels_a_pending_not_ready_but_not_a_logout() -> None:
    e = world([project()], {"a1": {}})
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 1.0)
    e.accept("a1", "c1", 2.0)
    e.not_ready("a1", 3.0, "lunch")
    assert e.ready("a1", 4.0) == [AgentPending("a1", None, "ready", 4.0)]
    e.logout("a1", 5.0, "supervisor")
    e.not_ready("a1", 5.5, "lunch")                # a pending logout wins
    e.ready("a1", 6.0)
    assert e.agent("a1").pending == "logout"
    acts = e.end_contact("a1", "c1", 7.0)
    assert acts[-1] == AgentStateChanged("a1", S.WRAP_UP, S.LOGGED_OUT, "supervisor", 7.0)


# ==== the contact's side: max wait, preferred agent, cancel =======================================

def test_overflow_after_max_wait_and_terminal_overflow() -> None:
    p1 = project("p1", max_wait=30.0, overflow_project="p2")
    p2 = project("p2", max_wait=60.0, required_skills={"x": 1})
    e = world([p1, p2], {"a1": {"x": 1}, "a2": {}})
    e.not_ready("a1", 0.0, "away")
    e.upsert_project(project("p1", max_wait=30.0, overflow_project="p2", required_skills={"y": 1}))
    e.enqueue(contact("c1", "p1", at=0.0), 0.0)
    assert e.next_deadline() == 30.0
    acts = e.on_timer(30.0)
    assert acts == [Overflowed("c1", "p1", "p2", 30.0)]
    assert e.contact("c1").project_id == "p2" and e.contact("c1").queued_at == 30.0
    acts = e.on_timer(90.0)
    assert acts == [Overflowed("c1", "p2", None, 90.0),
                    ContactStateChanged("c1", CS.QUEUED, CS.OVERFLOWED, "max wait", 90.0, None, "p2")]
    assert e.project_stats("p1").overflowed_out == 1 and e.project_stats("p2").overflowed_in == 1


def test_overflow_lands_on_a_ready_agent() -> None:
    e = world([project("p1", max_wait=10.0, overflow_project="p2", required_skills={"y": 1}), project("p2")],
              {"a1": {}})
    e.ready("a1", 0.0)
    e.enqueue(contact("c1", "p1"), 0.0)
    assert offers(e.on_timer(10.0)) == [("a1", "c1")]


def test_max_wait_passed_while_ringing_overflows_on_requeue() -> None:
    e = world([project("p1", max_wait=10.0, ring_timeout=20.0)], {"a1": {}})
    e.ready("a1", 0.0)
    e.enqueue(contact("c1", "p1"), 5.0)
    assert e.on_timer(15.0) == []                  # offered: max wait does not pull it away
    acts = e.reject("a1", "c1", 16.0)
    assert Overflowed("c1", "p1", None, 16.0) in acts and e.agent("a1").state is S.READY


def test_max_wait_timer_survives_an_offer_that_is_taken_back() -> None:
    e = world([project("p1", max_wait=30.0, ring_timeout=25.0)], {"a1": {}})
    e.enqueue(contact("c1", "p1"), 0.0)
    e.ready("a1", 15.0)                            # offered; ring deadline 40, max wait 30
    assert e.next_deadline() == 30.0               # (this used to drop the max-wait timer)
    e.not_ready("a1", 16.0, "break")               # withdrawn before the deadline: waits again
    assert e.next_deadline() == 30.0
    assert e.on_timer(30.0) == [Overflowed("c1", "p1", None, 30.0),
                                ContactStateChanged("c1", CS.QUEUED, CS.OVERFLOWED, "max wait", 30.0, None, "p1")]


def test_preferred_agent_is_waited_for_then_fallback() -> None:
    p = project(strategy=Strategy.PREFERRED_AGENT, preferred_fallback_seconds=30.0)
    e = world([p], {"a1": {}, "fav": {}})
    e.ready("a1", 0.0)
    e.ready("fav", 1.0)
    e.enqueue(contact("busy", "p"), 1.0)           # a1 (longest idle) takes a plain contact
    assert e.contact("busy").agent_id == "a1"
    e.enqueue(contact("c0", preferred_agent="fav"), 2.0)
    assert e.contact("c0").agent_id == "fav"       # READY: straight to him
    e.accept("fav", "c0", 3.0)
    serve(e, "a1", "busy", 3.0)                    # a1 READY again
    e.enqueue(contact("c1", preferred_agent="fav"), 4.0)
    assert e.contact("c1").held_for == "fav" and e.project_stats("p").held == 1   # a1 idles: by design
    assert offers(e.end_contact("fav", "c0", 10.0)) == [("fav", "c1")]
    e.accept("fav", "c1", 11.0)
    e.enqueue(contact("c2", preferred_agent="fav"), 12.0)
    assert e.next_deadline() == 42.0
    assert offers(e.on_timer(42.0)) == [("a1", "c2")]   # fallback: longest idle


def test_preferred_agent_logged_out_means_no_waiting() -> None:
    e = world([project(strategy=Strategy.PREFERRED_AGENT)], {"a1": {}, "fav": {}})
    e.logout("fav", 0.0)
    e.ready("a1", 0.0)
    assert offers(e.enqueue(contact("c1", preferred_agent="fav"), 1.0)) == [("a1", "c1")]
    e.login("fav", 2.0)
    e.enqueue(contact("c2", preferred_agent="fav"), 3.0)
    assert e.contact("c2").held_for == "fav"
    acts = e.logout("fav", 4.0)                    # he leaves: it stops waiting for him
    assert e.contact("c2").held_for is None and e.waiting("p") == ["c2"]
    assert not offers(acts)


def test_cancel_waiting_and_offered_contacts() -> None:
    e = world([project()], {"a1": {}})
    e.enqueue(contact("c1"), 0.0)
    e.enqueue(contact("c2"), 0.0)
    acts = e.cancel("c1", 1.0)
    assert acts == [ContactStateChanged("c1", CS.QUEUED, CS.ABANDONED, "abandoned", 1.0, None, "p")]
    assert e.waiting("p") == ["c2"] and e.position("c1") is None
    e.enqueue(contact("c3"), 2.0)
    e.ready("a1", 3.0)                             # c2 offered
    acts = e.cancel("c2", 4.0, "caller hung up")
    assert acts[0] == CancelOffer("a1", "c2", "caller hung up")
    assert offers(acts) == [("a1", "c3")]          # no miss; he takes the next one
    assert e.agent("a1").misses[MissKind.NO_ANSWER] == 0 and e.project_stats("p").abandoned == 2
    e.accept("a1", "c3", 5.0)
    with pytest.raises(EngineError):
        e.cancel("c3", 6.0)                        # answered: end it instead


@pytest.mark.parametrize("how", ["not_ready", "logout"])
def test_supervisor_pulls_an_offered_agent_and_the_contact_moves_on(how: str) -> None:
    e = world([project()], {"a1": {}, "a2": {}})
    e.ready("a1", 0.0)
    e.ready("a2", 1.0)
    e.enqueue(contact("c1"), 2.0)
    acts = e.not_ready("a1", 3.0, "supervisor") if how == "not_ready" else e.logout("a1", 3.0, "supervisor")
    assert acts[0] == CancelOffer("a1", "c1", how)
    assert offers(acts) == [("a2", "c1")]
    assert e.agent("a1").state is (S.NOT_READY if how == "not_ready" else S.LOGGED_OUT)
    assert set(e.agent("a1").misses.values()) == {0}


# ==== configuration changes =======================================================================

def test_new_skill_lets_a_ready_agent_take_a_waiting_contact() -> None:
    e = world([project(required_skills={"fr": 1})], {"a1": {}})
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 1.0)
    acts = e.upsert_agent(AgentProfile("a1", skills={"fr": 2}), now=2.0)
    assert offers(acts) == [("a1", "c1")]


def test_project_requirement_change_reindexes() -> None:
    e = world([project(required_skills={"fr": 1})], {"a1": {"fr": 1}, "a2": {"de": 1}})
    e.ready("a1", 0.0)
    e.ready("a2", 0.0)
    assert e.project_stats("p").ready_agents == 1
    e.upsert_project(project(required_skills={"de": 1}), now=1.0)
    assert e.project_stats("p").ready_agents == 1 and e.agent("a1").projects == frozenset()
    assert offers(e.enqueue(contact("c1"), 2.0)) == [("a2", "c1")]


def test_strategy_change_keeps_ready_agents() -> None:
    e = world([project()], {"a1": {"x": 1}, "a2": {"x": 5}})
    e.ready("a1", 0.0)
    e.ready("a2", 1.0)
    e.upsert_project(project(strategy=Strategy.BEST_SKILL, required_skills={"x": 1}), now=2.0)
    assert offers(e.enqueue(contact("c1"), 3.0)) == [("a2", "c1")]


def test_round_robin_forgets_an_agent_who_left_while_not_ready() -> None:
    """His ring bit (cleared lazily) must not outlive his place in the queue: he left the project
    while not READY, then became READY elsewhere; the ring once offered him its contact."""
    e = world([project("rr", strategy=Strategy.ROUND_ROBIN, required_skills={"x": 1}), project("other")],
              {"a1": {"x": 1}})
    e.ready("a1", 0.0)
    e.not_ready("a1", 1.0, "break")
    e.upsert_agent(AgentProfile("a1", skills={}), now=2.0)
    e.ready("a1", 3.0)
    assert offers(e.enqueue(contact("c1", "rr"), 4.0)) == [] and e.waiting("rr") == ["c1"]


# ==== errors ======================================================================================

def test_errors_name_the_problem_and_change_nothing() -> None:
    e = world([project()], {"a1": {}}, not_ready_reasons={"lunch", "break"})
    with pytest.raises(NotFound) as nf:
        e.ready("nobody", 0.0)
    assert nf.value.hint == "NOT_FOUND"
    with pytest.raises(NotFound):
        e.enqueue(contact("c0", "nope"), 0.0)
    with pytest.raises(EngineError) as bad:
        e.not_ready("a1", 0.0, "coffee")
    assert bad.value.hint == "INVALID_ARGUMENT"
    e.ready("a1", 0.0)
    e.enqueue(contact("c1"), 0.0)
    with pytest.raises(EngineError) as dup:
        e.enqueue(contact("c1"), 0.0)
    assert dup.value.hint == "CONFLICT"
    with pytest.raises(EngineError):
        e.accept("a1", "c2", 1.0)                  # not his offer
    with pytest.raises(IllegalTransition):
        e.end_contact("a1", "c1", 1.0)             # not answered yet
    with pytest.raises(IllegalTransition):
        e.login("a1", 1.0)
    assert e.agent("a1").state is S.RESERVED and e.contact("c1").state is CS.OFFERED


@pytest.mark.parametrize(("build", "field"), [
    (lambda: Project("p", priority=500), "priority"),
    (lambda: Project("p", ring_timeout=0), "ring_timeout"),
    (lambda: Project("p", overflow_project="p"), "overflow_project"),
    (lambda: Project("p", required_skills={"x": 101}), "required_skills[x]"),
    (lambda: Project("p", strategy="fastest"), "strategy"),
    (lambda: Project("", name="x"), "id"),
    (lambda: AgentProfile("a", capacity={Channel.VOICE: 2}), "capacity[voice]"),
    (lambda: AgentProfile("a", languages="de"), "languages"),
    (lambda: Contact("c", "p", channel="fax"), "channel"),
    (lambda: Contact("c", "p", enqueued_at=float("nan")), "enqueued_at"),
    (lambda: Contact("c", "p", data={str(i): i for i in range(100)}), "data"),
])
def test_records_validate_on_construction(build: object, field: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        build()  # type: ignore[operator]
    assert info.value.field == field and info.value.hint == "INVALID_ARGUMENT"


def test_records_normalise() -> None:
    p = Project("p", required_skills={"b": 2, "a": 1}, strategy="best_skill")
    assert [r.skill for r in p.required_skills] == ["a", "b"] and p.required == {"a": 1, "b": 2}
    assert p.strategy is Strategy.BEST_SKILL
    a = AgentProfile("a", skills={"x": 1}, capacity={"chat": 2})
    assert a.handles(Channel.CHAT) and not a.handles(Channel.VOICE)
    with pytest.raises(TypeError):
        a.skills["y"] = 1  # type: ignore[index]
