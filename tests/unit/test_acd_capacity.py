"""Capacity per channel (ACD-1): an agent holds up to capacity[ch] contacts of ONE channel at a time.

Presence, misses and the reported state are per agent; each contact he may hold is a slot (see
ctiserver/acd/slots.py and docs/acd.md "Channels and capacity"). Fake clock, no I/O.
"""

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
    MissKind,
    Offer,
    Project,
    Strategy,
)

S, CS = AgentState, ContactState
V, C, M = Channel.VOICE, Channel.CHAT, Channel.EMAIL
CHAT3 = {V: 1, C: 3}


def project(pid: str = "p", **kw: object) -> Project:
    kw.setdefault("ring_timeout", 20.0)
    kw.setdefault("wrap_up_seconds", 0.0)
    return Project(pid, **kw)  # type: ignore[arg-type]


def world(agents: dict[str, dict[Channel, int]], projects: list[Project] | None = None, **kw: object) -> Engine:
    e = Engine(**kw)  # type: ignore[arg-type]
    for p in projects or [project()]:
        e.upsert_project(p)
    for aid, cap in agents.items():
        e.upsert_agent(AgentProfile(aid, capacity=cap))
        e.login(aid, 0.0)
    return e


def chat(cid: str, pid: str = "p", at: float = 0.0, **kw: object) -> Contact:
    return Contact(cid, pid, channel=C, enqueued_at=at, **kw)  # type: ignore[arg-type]


def voice(cid: str, pid: str = "p", at: float = 0.0, **kw: object) -> Contact:
    return Contact(cid, pid, channel=V, enqueued_at=at, **kw)  # type: ignore[arg-type]


def offers(actions: list) -> list[tuple[str, str]]:
    return [(a.agent_id, a.contact_id) for a in actions if isinstance(a, Offer)]


def changes(actions: list, agent: str = "a") -> list[tuple[AgentState, AgentState]]:
    return [(a.old, a.new) for a in actions if isinstance(a, AgentStateChanged) and a.agent_id == agent]


# ==== several contacts of one channel =============================================================

def test_three_chats_at_once_and_a_fourth_waits() -> None:
    e = world({"a": CHAT3})
    e.ready("a", 1.0)
    got = [offers(e.enqueue(chat(f"c{i}"), 2.0 + i)) for i in range(4)]
    assert got == [[("a", "c0")], [("a", "c1")], [("a", "c2")], []]
    v = e.agent("a")
    assert v.contact_ids == ("c0", "c1", "c2") and v.contact_id == "c0" and e.waiting("p") == ["c3"]
    assert e.brief("a") == (S.RESERVED, v.reason, v.since, "c0", None, None)   # the old 6-tuple
    for cid in ("c0", "c1", "c2"):
        e.accept("a", cid, 7.0)
    assert e.agent("a").state is S.BUSY and e.agent("a").contacts_today == 3
    assert offers(e.end_contact("a", "c1", 8.0)) == [("a", "c3")]     # a slot frees: the fourth
    assert e.agent("a").contact_ids == ("c0", "c2", "c3")


def test_each_free_slot_competes_from_when_it_became_free() -> None:
    e = world({"a": {C: 2}, "b": {C: 1}})
    e.ready("a", 1.0)
    e.ready("b", 2.0)
    assert offers(e.enqueue(chat("c1"), 3.0)) == [("a", "c1")]   # idle longest
    # a's second slot opened at 3.0, when his first was taken: b has been idle since 2.0
    assert offers(e.enqueue(chat("c2"), 4.0)) == [("b", "c2")]
    assert offers(e.enqueue(chat("c3"), 5.0)) == [("a", "c3")]


def test_exclusivity_no_voice_while_he_holds_a_chat() -> None:
    e = world({"a": CHAT3})
    e.ready("a", 1.0)
    e.enqueue(chat("c1"), 2.0)
    e.accept("a", "c1", 2.5)
    assert offers(e.enqueue(voice("v1"), 3.0)) == []            # busy on chat: the call waits
    assert offers(e.enqueue(chat("c2"), 3.0)) == [("a", "c2")]  # another chat is fine
    e.accept("a", "c2", 3.5)
    assert offers(e.end_contact("a", "c1", 4.0)) == []           # one chat left: still no voice
    assert offers(e.end_contact("a", "c2", 5.0)) == [("a", "v1")]   # all chats done: the call
    assert offers(e.enqueue(chat("c3"), 6.0)) == []              # on a call: no chat
    e.accept("a", "v1", 6.5)
    assert offers(e.end_contact("a", "v1", 7.0)) == [("a", "c3")]


def test_exclusivity_between_chat_and_email() -> None:
    e = world({"a": {C: 2, M: 2}})
    e.ready("a", 1.0)
    e.enqueue(Contact("m1", "p", channel=M), 2.0)
    assert offers(e.enqueue(chat("c1"), 3.0)) == []
    assert offers(e.enqueue(Contact("m2", "p", channel=M), 4.0)) == [("a", "m2")]
    e.cancel("m1", 5.0)
    assert offers(e.cancel("m2", 6.0)) == [("a", "c1")]          # offers taken back: free for chat


def test_the_first_chat_goes_to_a_ready_agent_of_another_channel_mix() -> None:
    """An agent in chat mode is not READY for voice; another agent is."""
    e = world({"a": CHAT3, "v": {V: 1}})
    e.ready("a", 1.0)
    e.ready("v", 2.0)
    e.enqueue(chat("c1"), 3.0)
    assert offers(e.enqueue(voice("v1"), 4.0)) == [("v", "v1")]
    assert e.project_stats("p").ready_agents == 1                 # a: free chat slots


# ==== presence is per agent =======================================================================

def test_pending_not_ready_waits_for_the_last_chats_wrap_up() -> None:
    e = world({"a": CHAT3}, [project(wrap_up_seconds=5.0)])
    e.ready("a", 0.0)
    for cid in ("c1", "c2"):
        e.enqueue(chat(cid), 1.0)
        e.accept("a", cid, 1.0)
    e.enqueue(chat("c3"), 1.5)
    assert e.agent("a").state is S.OFFERED                        # busy + one reserved
    acts = e.not_ready("a", 2.0, "lunch")
    assert AgentPending("a", "not_ready", "lunch", 2.0) in acts
    assert CancelOffer("a", "c3", "not_ready") in acts and e.contact("c3").state is CS.QUEUED
    assert changes(acts) == [(S.OFFERED, S.BUSY)] and e.agent("a").pending == "not_ready"
    assert offers(e.enqueue(chat("c4"), 2.5)) == []               # he takes nothing new meanwhile
    e.end_contact("a", "c1", 3.0)                                 # wrap-up until 8.0
    assert changes(e.end_contact("a", "c2", 4.0)) == [(S.BUSY, S.WRAP_UP)]   # until 9.0
    assert e.on_timer(8.0) == [] and e.agent("a").state is S.WRAP_UP          # not the last
    assert e.on_timer(9.0) == [AgentStateChanged("a", S.WRAP_UP, S.NOT_READY, "lunch", 9.0)]
    assert e.agent("a").pending is None and e.waiting("p") == ["c3", "c4"]


def test_ready_while_working_cancels_the_pending_not_ready_and_reopens_his_slots() -> None:
    e = world({"a": CHAT3})
    e.ready("a", 0.0)
    e.enqueue(chat("c1"), 1.0)
    e.accept("a", "c1", 1.0)
    e.not_ready("a", 2.0, "break")
    e.enqueue(chat("c2"), 3.0)
    acts = e.ready("a", 4.0)
    assert acts[0] == AgentPending("a", None, "ready", 4.0) and offers(acts) == [("a", "c2")]
    assert changes(acts) == [(S.BUSY, S.OFFERED)]


def test_pending_logout_wins_and_logs_him_out_after_the_last_chat() -> None:
    e = world({"a": CHAT3})
    e.ready("a", 0.0)
    for cid in ("c1", "c2"):
        e.enqueue(chat(cid), 1.0)
        e.accept("a", cid, 1.0)
    e.logout("a", 2.0, "end of shift")
    e.not_ready("a", 2.5, "lunch")                                # a pending logout wins
    assert e.agent("a").pending == "logout"
    assert changes(e.end_contact("a", "c1", 3.0)) == []
    acts = e.end_contact("a", "c2", 4.0)
    assert changes(acts) == [(S.BUSY, S.WRAP_UP), (S.WRAP_UP, S.LOGGED_OUT)]   # (no wrap-up: both at once)
    assert acts[-1].reason == "end of shift"


def test_not_ready_with_offers_only_withdraws_them_all_at_once() -> None:
    e = world({"a": CHAT3, "b": {C: 1}})
    e.ready("a", 0.0)
    e.enqueue(chat("c1"), 1.0)
    e.enqueue(chat("c2"), 1.0)
    e.ready("b", 1.5)
    acts = e.not_ready("a", 2.0, "break")
    assert changes(acts) == [(S.RESERVED, S.NOT_READY)]
    assert {a.contact_id for a in acts if isinstance(a, CancelOffer)} == {"c1", "c2"}
    assert offers(acts) == [("b", "c1")] and e.waiting("p") == ["c2"]   # never back to him
    assert e.agent("a").contact_ids == () and e.agent("a").pending is None


# ==== misses are per agent ========================================================================

def test_a_reject_on_one_slot_counts_for_the_agent_and_an_answer_on_another_resets() -> None:
    e = world({"a": CHAT3}, miss_limits=3)
    e.ready("a", 0.0)
    e.enqueue(chat("c1"), 1.0)
    e.enqueue(chat("c2"), 1.0)
    e.reject("a", "c1", 2.0)                                      # nobody else: back to him
    e.reject("a", "c2", 3.0)
    assert e.agent("a").misses[MissKind.REJECTED] == 2 and set(e.agent("a").contact_ids) == {"c1", "c2"}
    e.accept("a", "c1", 4.0)
    assert set(e.agent("a").misses.values()) == {0}


def test_the_miss_limit_logs_him_out_withdraws_his_offers_and_leaves_his_work() -> None:
    e = world({"a": CHAT3, "b": {C: 1}}, miss_limits=2)
    e.ready("a", 0.0)
    e.enqueue(chat("work"), 1.0)
    e.accept("a", "work", 1.0)
    e.enqueue(chat("c1"), 2.0)
    e.enqueue(chat("c2"), 2.0)
    e.reject("a", "c1", 3.0)                                      # 1; c1 comes back to him
    assert e.agent("a").state is S.OFFERED and set(e.agent("a").contact_ids) == {"work", "c1", "c2"}
    acts = e.reject("a", "c1", 4.0)                               # 2 = limit
    assert AutoLogout("a", MissKind.REJECTED, 2, 4.0) in acts
    assert CancelOffer("a", "c2", "logout") in acts
    assert changes(acts) == [(S.OFFERED, S.LOGGED_OUT)]
    assert [a for a in acts if isinstance(a, AgentStateChanged)][0].reason == "auto-logout: 2 consecutive rejected"
    assert e.contact("c1").state is CS.QUEUED and e.contact("c2").state is CS.QUEUED
    assert e.agent("a").contact_ids == ("work",) and e.contact("work").state is CS.ANSWERED   # stays his
    e.ready("b", 5.0)
    assert e.contact("c1").agent_id == "b"
    acts = e.end_contact("a", "work", 6.0)                        # he may still end it
    assert changes(acts) == [] and e.agent("a").state is S.LOGGED_OUT and e.agent("a").contact_ids == ()
    e.login("a", 7.0)
    assert set(e.agent("a").misses.values()) == {0}


def test_ring_timeout_on_one_slot_goes_to_the_next_agent() -> None:
    e = world({"a": CHAT3, "b": {C: 1}}, [project(ring_timeout=10.0)])
    e.ready("a", 0.0)
    e.enqueue(chat("c1"), 1.0)                                    # a; ring deadline 11
    e.ready("b", 2.0)
    acts = e.on_timer(11.0)
    assert CancelOffer("a", "c1", "no_answer") in acts and offers(acts) == [("b", "c1")]
    assert e.agent("a").misses[MissKind.NO_ANSWER] == 1 and e.agent("a").state is S.READY


# ==== the reported state ==========================================================================

def test_the_aggregate_state_is_emitted_once_per_change() -> None:
    e = world({"a": CHAT3}, [project(wrap_up_seconds=30.0)])
    steps = [
        (lambda: e.ready("a", 1.0), [(S.NOT_READY, S.READY)]),
        (lambda: e.enqueue(chat("c1"), 2.0), [(S.READY, S.RESERVED)]),
        (lambda: e.enqueue(chat("c2"), 2.0), []),                        # all held are reserved
        (lambda: e.ringing("a", "c1", 3.0), [(S.RESERVED, S.OFFERED)]),
        (lambda: e.ringing("a", "c2", 3.0), []),
        (lambda: e.accept("a", "c1", 4.0), []),                          # c2 still offered
        (lambda: e.accept("a", "c2", 4.0), [(S.OFFERED, S.BUSY)]),
        (lambda: e.enqueue(chat("c3"), 5.0), [(S.BUSY, S.OFFERED)]),     # reserved beside busy: offered
        (lambda: e.accept("a", "c3", 5.0), [(S.OFFERED, S.BUSY)]),
        (lambda: e.end_contact("a", "c1", 6.0), []),
        (lambda: e.end_contact("a", "c2", 6.0), []),
        (lambda: e.end_contact("a", "c3", 7.0), [(S.BUSY, S.WRAP_UP)]),
        (lambda: e.end_wrap_up("a", 8.0), [(S.WRAP_UP, S.READY)]),       # all three wrap-ups end
    ]
    history: list[AgentStateChanged] = []
    for act, want in steps:
        acts = act()
        assert changes(acts) == want, want
        history += [a for a in acts if isinstance(a, AgentStateChanged)]
    assert all(x.new is y.old for x, y in zip(history, history[1:], strict=False))   # one interval chain
    assert e.on_timer(40.0) == []                                        # the wrap-up timers are void
    with pytest.raises(IllegalTransition):
        e.end_wrap_up("a", 41.0)


# ==== one-slot agents are as before ===============================================================

def test_agents_without_multi_capacity_hold_one_contact_on_the_old_path() -> None:
    e = world({"v": {V: 1}, "mix": {V: 1, C: 1, M: 1}})
    assert e._agents["v"].group is None and e._agents["mix"].group is None   # no slots, no group
    e.ready("mix", 1.0)
    assert offers(e.enqueue(chat("c1"), 2.0)) == [("mix", "c1")]
    assert offers(e.enqueue(chat("c2"), 2.0)) == [] and offers(e.enqueue(voice("v1"), 2.0)) == []
    assert e.agent("mix").contact_ids == ("c1",)
    e.accept("mix", "c1", 3.0)
    assert offers(e.end_contact("mix", "c1", 4.0)) == [("mix", "c2")]   # the oldest head first


# ==== capacity changes ============================================================================

def test_more_capacity_while_busy_opens_a_slot_at_once() -> None:
    e = world({"a": {V: 1, C: 1}})
    e.ready("a", 0.0)
    e.enqueue(chat("c1"), 1.0)
    e.accept("a", "c1", 1.0)
    e.enqueue(chat("c2"), 2.0)
    acts = e.upsert_agent(AgentProfile("a", capacity={V: 1, C: 2}), now=3.0)
    assert offers(acts) == [("a", "c2")] and changes(acts) == [(S.BUSY, S.OFFERED)]
    assert e.agent("a").contact_ids == ("c1", "c2")


def test_less_capacity_while_busy_takes_nothing_away_and_no_more_is_offered() -> None:
    e = world({"a": CHAT3})
    e.ready("a", 0.0)
    for cid in ("c1", "c2", "c3"):
        e.enqueue(chat(cid), 1.0)
        e.accept("a", cid, 1.0)
    assert e.upsert_agent(AgentProfile("a", capacity={V: 1, C: 2}), now=2.0) == []
    e.enqueue(chat("c4"), 3.0)
    assert offers(e.end_contact("a", "c1", 4.0)) == []            # still 2 held: at capacity
    assert offers(e.end_contact("a", "c2", 5.0)) == [("a", "c4")]
    e.accept("a", "c4", 5.0)
    assert e.upsert_agent(AgentProfile("a", capacity={V: 1, C: 1}), now=6.0) == []
    e.enqueue(chat("c5"), 6.0)
    assert offers(e.end_contact("a", "c3", 7.0)) == []            # c4 held: capacity 1
    acts = e.end_contact("a", "c4", 8.0)
    assert offers(acts) == [("a", "c5")] and e._agents["a"].group is None   # one slot again
    assert e.agent("a").state is S.RESERVED
    e.accept("a", "c5", 9.0)
    e.enqueue(voice("v1"), 9.5)
    assert offers(e.end_contact("a", "c5", 10.0)) == [("a", "v1")]


def test_a_channel_removed_while_he_works_in_it_blocks_him_until_it_ends() -> None:
    e = world({"a": CHAT3})
    e.ready("a", 0.0)
    e.enqueue(chat("c1"), 1.0)
    e.accept("a", "c1", 1.0)
    e.upsert_agent(AgentProfile("a", capacity={V: 1}), now=2.0)
    assert offers(e.enqueue(voice("v1"), 3.0)) == []              # still on a chat
    assert offers(e.end_contact("a", "c1", 4.0)) == [("a", "v1")]


# ==== preferred agent and errors ==================================================================

def test_a_contact_held_for_him_takes_a_free_slot_of_its_channel() -> None:
    p = project(strategy=Strategy.PREFERRED_AGENT, preferred_fallback_seconds=30.0)
    e = world({"fav": CHAT3, "other": {V: 1, C: 1}}, [p])
    e.ready("fav", 0.0)
    e.enqueue(chat("c1"), 1.0)
    e.accept("fav", "c1", 1.0)
    e.ready("other", 2.0)
    assert offers(e.enqueue(chat("c2", preferred_agent="fav"), 3.0)) == [("fav", "c2")]
    e.enqueue(voice("v1", preferred_agent="fav"), 4.0)
    assert e.contact("v1").held_for == "fav"                      # he is on chats: held for him
    e.accept("fav", "c2", 5.0)
    e.end_contact("fav", "c1", 6.0)
    assert offers(e.end_contact("fav", "c2", 7.0)) == [("fav", "v1")]


def test_errors_change_nothing() -> None:
    e = world({"a": {V: 1, C: 2}, "b": CHAT3})
    e.ready("a", 0.0)
    e.enqueue(chat("c1"), 1.0)                                    # a
    e.enqueue(chat("c2"), 1.0)                                    # a's second slot: he is full
    e.ready("b", 1.5)
    with pytest.raises(IllegalTransition):
        e.accept("b", "c1", 2.0)                                  # READY: nothing to accept
    e.enqueue(chat("c3"), 1.5)                                    # b
    before = (e.agents(), e.contacts())
    with pytest.raises(EngineError):
        e.accept("b", "c1", 2.0)                                  # not his
    with pytest.raises(EngineError):
        e.reject("a", "c3", 2.0)
    with pytest.raises(IllegalTransition):
        e.end_contact("a", "c2", 2.0)                             # offered, not answered
    with pytest.raises(IllegalTransition):
        e.end_wrap_up("a", 2.0)                                   # no wrap-up
    with pytest.raises(IllegalTransition):
        e.login("a", 2.0)
    with pytest.raises(EngineError):
        e.not_ready("a", 2.0, "")
    assert (e.agents(), e.contacts()) == before
    e.accept("a", "c2", 3.0)
    with pytest.raises(IllegalTransition):
        e.ringing("a", "c2", 3.0)                                 # answered already
    acts = e.accept("a", "c1", 4.0)
    assert ContactStateChanged("c1", CS.OFFERED, CS.ANSWERED, "answered", 4.0, "a", "p") in acts
    assert changes(acts) == [(S.OFFERED, S.BUSY)]
