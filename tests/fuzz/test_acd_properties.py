"""Property tests of the ACD engine: random event sequences with a fake clock.

After EVERY step: no contact waits while an agent eligible for it has presence ready (logged in,
READY chosen, nothing pending) and a free slot for its channel that exclusivity allows (no stall),
unless its project or channel is paused; no contact is offered to or held by two agents; an agent
holds (reserved, offered, busy or in wrap-up) contacts of one channel only, and is offered one only
within his capacity for it and only of a channel he handles; the actions, replayed, give exactly
the engine's agent states (the per-agent aggregate, recomputed here from the contacts he holds, the
ringing calls and the wrap-ups), contacts held, pending wishes, contact states, miss counters and
project counters. At the end, with agents kept available, every contact ends answered, abandoned,
overflowed or called back. Waiting-rule notices come only for QUEUED contacts, at their interval.
Eligibility, free slots and wrap-ups are recomputed here from the records and the actions, not
taken from the engine's index. Only the documented errors may escape a call, and it changes nothing.
Most profiles may hold 2-3 chats or e-mails at once.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctiserver.acd import (
    AcdError,
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
    MissKind,
    Offer,
    Overflowed,
    Project,
    Strategy,
    WaitingNotice,
)

S, CS = AgentState, ContactState
V, C, M = Channel.VOICE, Channel.CHAT, Channel.EMAIL
TERMINAL = {CS.ENDED, CS.ABANDONED, CS.OVERFLOWED, CS.CALLBACK}
PROFILES = [
    {"skills": {"a": 1}},                                                        # voice only: one slot
    {"skills": {"a": 3, "b": 2}, "languages": {"fr"}, "capacity": {V: 1, C: 3}},
    {"skills": {"b": 5}, "languages": {"fr", "de"}, "capacity": {V: 1, C: 2, M: 2}},
    {"skills": {}, "capacity": {V: 1, C: 2}},
    {"skills": {"a": 2}, "capacity": {C: 3, M: 2}},
    {"skills": {"a": 1, "b": 1}, "languages": {"fr"}, "capacity": {V: 1, C: 1, M: 1}},   # one slot, three channels
    {"skills": {"a": 2, "b": 1}},
]
CHANNELS = [C, C, M, V, V]   # of the contacts, by (j // 3) % 5
REQS: list[dict[str, int]] = [{}, {"a": 2}, {"b": 1}, {"a": 1, "b": 1}]
STRATEGIES = list(Strategy)
LIMITS = {MissKind.NO_ANSWER: 3, MissKind.REJECTED: 2, MissKind.UNREACHABLE: 4}
KINDS = list(MissKind)
DTS = [0.5, 1.0, 3.0, 10.0, 25.0, 40.0]


def eligible(a: AgentProfile, p: Project, ch: Channel) -> bool:
    return (a.capacity.get(ch, 0) > 0 and all(a.skills.get(r.skill, -1) >= r.min_level for r in p.required_skills)
            and (p.language is None or p.language in a.languages))


class Harness:
    def __init__(self, n_agents: int, n_projects: int, variants: list[int]) -> None:
        self.e = Engine(miss_limits=LIMITS, ageing_seconds=30.0, not_ready_reasons={"break", "lunch"})
        self.now = 0.0
        self.np = n_projects
        self.projects: dict[str, Project] = {}
        self.profiles: dict[str, AgentProfile] = {}
        self.agent_state: dict[str, AgentState] = {}
        self.misses: dict[str, dict[MissKind, int]] = {}
        self.pending: dict[str, str | None] = {}
        self.held: dict[str, dict[str, str]] = {}          # agent -> contact -> "reserved"|"rung"|"busy", by offer
        self.wraps: dict[str, list[tuple[float, Channel]]] = {}   # agent -> (wrap-up end, channel) per ended contact
        self.chan: dict[str, Channel] = {}                  # live contact -> channel
        self.contact_state: dict[str, ContactState] = {}
        self.offered_to: dict[str, str] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.n = 0
        self.paused_projects: set[str] = set()
        self.paused_channels: set[Channel] = set()
        self.entered: dict[str, tuple[str, float]] = {}   # contact -> (project, when it entered it)
        for k in range(n_projects):
            self.set_project(k, variants[k % len(variants)])
        for k in range(n_agents):
            self.set_agent(k, k)

    # ---- configuration -------------------------------------------------------------------------

    def set_project(self, k: int, v: int) -> None:
        p = Project(f"p{k}", priority=(v // 40) % 2, required_skills=REQS[v % 4], language=(None, "fr")[(v // 4) % 2],
                    strategy=STRATEGIES[(v // 8) % 5], max_wait=40.0 + 10 * k, ring_timeout=10.0,
                    overflow_project=f"p{k + 1}" if k + 1 < self.np else None, wrap_up_seconds=(0.0, 5.0, 3.0)[k % 3],
                    preferred_fallback_seconds=15.0, announce_interval=(None, 5.0, 12.0)[(v // 3) % 3],
                    callback_offer_after=(None, 20.0)[(v // 5) % 2])
        self.projects[p.id] = p
        self.apply(self.e.upsert_project(p, now=self.now))

    def set_agent(self, k: int, v: int) -> None:
        spec = PROFILES[v % len(PROFILES)]
        a = AgentProfile(f"a{k}", skills=spec["skills"], languages=frozenset(spec.get("languages", ())),
                         capacity=spec.get("capacity", {V: 1}))
        self.profiles[a.id] = a
        self.agent_state.setdefault(a.id, S.LOGGED_OUT)
        self.misses.setdefault(a.id, dict.fromkeys(MissKind, 0))
        self.pending.setdefault(a.id, None)
        self.held.setdefault(a.id, {})
        self.wraps.setdefault(a.id, [])
        self.apply(self.e.upsert_agent(a, now=self.now))

    # ---- driving -------------------------------------------------------------------------------

    def snapshot(self) -> tuple:
        e = self.e
        return (e.agents(), e.contacts(), [e.waiting(p) for p in self.projects],
                [e.project_stats(p) for p in self.projects], e.next_deadline())

    def call(self, fn, *args) -> bool:  # type: ignore[no-untyped-def]
        before = self.snapshot()
        try:
            acts = fn(*args)
        except AcdError:
            assert self.snapshot() == before, f"{fn.__name__}{args} failed half-way"   # documented: no change
            return False
        self.apply(acts)
        return True

    def pick(self, op: int, i: int) -> str:
        """The agent an op acts on: mostly one it can act on (so agents work and hold several
        contacts), one in five at random (the error paths)."""
        aid = f"a{i % len(self.profiles)}"
        if i % 5 == 0 or not (0 <= op <= 9 or op == 14):   # (14: a capacity change while he works)
            return aid
        want = {0: lambda a: self.agent_state[a] is S.LOGGED_OUT,
                2: lambda a: self.agent_state[a] is S.NOT_READY or self.pending[a] is not None,
                9: lambda a: bool(self.wrapping(a))}.get(op, lambda a: bool(self.held[a]))
        fit = [a for a in self.profiles if want(a)]
        return fit[i % len(fit)] if fit else aid

    def step(self, op: int, i: int, j: int) -> None:
        e = self.e
        aid = self.pick(op, i)
        ids = e.agent(aid).contact_ids
        cur = ids[j % len(ids)] if ids and j % 7 else f"c{j}"   # one of his contacts, now and then another
        if op == 0:
            self.call(e.login, aid, self.now, f"ws{i}")
        elif op == 1:
            self.call(e.logout, aid, self.now, "bye")
        elif op == 2:
            self.call(e.ready, aid, self.now)
        elif op == 3:
            self.call(e.not_ready, aid, self.now, ("break", "lunch", "coffee")[j % 3])
        elif op == 4:
            if self.call(e.ringing, aid, cur, self.now):
                self.held[aid][cur] = "rung"
        elif op == 5:
            self.call(e.accept, aid, cur, self.now)
        elif op == 6:
            self.call(e.reject, aid, cur, self.now)
        elif op == 7:
            self.call(e.offer_failed, aid, cur, self.now, KINDS[j % 3])
        elif op == 8:
            self.call(e.end_contact, aid, cur, self.now)
        elif op == 9:   # ends all his wrap-ups (before the offers it may make)
            wraps, self.wraps[aid] = self.wrapping(aid), []
            ok = self.call(e.end_wrap_up, aid, self.now)
            assert ok is bool(wraps), (aid, wraps)
            if not ok:
                self.wraps[aid] = wraps
        elif op in (10, 11):
            if j % 8 or not self.n:   # else: the last id again (a duplicate while it lives)
                self.n += 1
            c = Contact(f"c{self.n}", f"p{j % self.np}", channel=CHANNELS[(j // 3) % 5], priority=(j // 12) % 3,
                        enqueued_at=self.now - (j % 5), preferred_agent=aid if j % 2 else None)
            prev = self.chan.get(c.id)
            self.chan[c.id] = c.channel
            if not self.call(e.enqueue, c, self.now) and prev is not None:
                self.chan[c.id] = prev
        elif op == 12:
            live = [c.contact_id for c in e.contacts()]
            self.call(e.cancel, live[j % len(live)] if live else f"c{j}", self.now)
        elif op == 13:
            self.now += DTS[j % len(DTS)]
            self.apply(e.on_timer(self.now))
            d = e.next_deadline()
            assert d is None or d > self.now
        elif op == 14:
            self.set_agent(int(aid[1:]), j)
        elif op == 15:
            self.set_project(i % self.np, j * 7 + i)
        elif op == 16:   # pause or resume a project
            pid = f"p{i % self.np}"
            fn = e.resume if pid in self.paused_projects else e.pause
            self.call(lambda: fn(project=pid, now=self.now))
            (self.paused_projects.discard if fn == e.resume else self.paused_projects.add)(pid)
        elif op == 17:   # pause or resume a channel
            ch = (V, C, M)[j % 3]
            fn = e.resume if ch in self.paused_channels else e.pause
            self.call(lambda: fn(channel=ch, now=self.now))
            (self.paused_channels.discard if fn == e.resume else self.paused_channels.add)(ch)
        else:            # the customer takes the callback offered
            live = [c.contact_id for c in e.contacts()]
            self.call(e.callback, live[j % len(live)] if live else f"c{j}", self.now)

    # ---- the history the actions tell, checked as it arrives ----------------------------------

    def count(self, pid: str, what: str) -> None:
        self.counts[(pid, what)] = self.counts.get((pid, what), 0) + 1

    def apply(self, acts: list) -> None:
        auto = None
        for a in acts:
            if isinstance(a, AgentStateChanged):
                assert a.old is self.agent_state[a.agent_id], a
                assert a.at == self.now
                assert a.new is not a.old or a.new is S.NOT_READY, a   # emitted only when it changes
                if a.old not in (S.LOGGED_OUT, S.NOT_READY) and a.new in (S.LOGGED_OUT, S.NOT_READY):
                    # leaving work: a wish waits for the last wrap-up; only an auto-logout leaves work behind
                    assert not self.working(a.agent_id) or (a.new is S.LOGGED_OUT and auto == a.agent_id), a
                if a.old is S.LOGGED_OUT:
                    self.misses[a.agent_id] = dict.fromkeys(MissKind, 0)
                if a.new in (S.NOT_READY, S.LOGGED_OUT):
                    self.pending[a.agent_id] = None   # a pending wish ends with the work
                self.agent_state[a.agent_id] = a.new
            elif isinstance(a, AgentPending):
                assert a.at == self.now and self.agent_state[a.agent_id] not in (S.LOGGED_OUT, S.NOT_READY), a
                assert self.working(a.agent_id) or a.pending is None, a
                self.pending[a.agent_id] = a.pending
            elif isinstance(a, ContactStateChanged):
                prev = self.contact_state.get(a.contact_id)
                if a.old is None:   # a new contact (an id may be used again once its contact ended)
                    assert prev is None or prev in TERMINAL, a
                else:
                    assert a.old is prev and prev not in TERMINAL, a
                self.contact_state[a.contact_id] = a.new
                if a.old is None:
                    self.count(a.project_id, "entered")
                if a.old in (CS.OFFERED, CS.ANSWERED) and a.new is not CS.ANSWERED:   # no longer his
                    del self.held[a.agent_id][a.contact_id]  # type: ignore[index]
                if a.new is CS.OFFERED:
                    self.offered_to[a.contact_id] = a.agent_id  # type: ignore[assignment]
                    self.held[a.agent_id][a.contact_id] = "reserved"  # type: ignore[index]
                    self.count(a.project_id, "offered")
                elif a.old is CS.OFFERED and a.new is CS.QUEUED and a.reason in {k.value for k in MissKind}:
                    self.misses[a.agent_id][MissKind(a.reason)] += 1  # type: ignore[index]
                elif a.new is CS.ANSWERED:
                    assert a.agent_id == self.offered_to[a.contact_id]
                    self.misses[a.agent_id] = dict.fromkeys(MissKind, 0)  # type: ignore[index]
                    self.held[a.agent_id][a.contact_id] = "busy"  # type: ignore[index]
                    self.count(a.project_id, "answered")
                elif a.new is CS.ENDED:   # his wrap-up for it: the project's, from now
                    wrap = self.projects[a.project_id].wrap_up_seconds
                    self.wraps[a.agent_id].append((self.now + wrap, self.chan[a.contact_id]))  # type: ignore[index]
                elif a.new is CS.ABANDONED:
                    self.count(a.project_id, "abandoned")
                elif a.new is CS.CALLBACK:
                    self.count(a.project_id, "callbacks")
                if a.old is None:
                    self.entered[a.contact_id] = (a.project_id, self.now)
            elif isinstance(a, Offer):
                aid = a.agent_id
                assert self.contact_state[a.contact_id] is CS.OFFERED and self.offered_to[a.contact_id] == aid
                assert self.agent_state[aid] in (S.RESERVED, S.OFFERED) and self.pending[aid] is None, a
                pid, ch = self.entered[a.contact_id][0], self.chan[a.contact_id]   # (it may end later in the call)
                assert eligible(self.profiles[aid], self.projects[pid], ch), a
                chans = self.channels(aid)   # capacity and exclusivity, with this one
                assert chans == {ch}, (a, chans)
                assert self.holding(aid) <= self.profiles[aid].capacity[ch], a
            elif isinstance(a, AutoLogout):
                auto = a.agent_id
                assert a.misses == LIMITS[a.kind] == self.misses[a.agent_id][a.kind]
            elif isinstance(a, Overflowed):
                self.count(a.from_project, "overflowed_out")
                if a.to_project is not None:
                    self.entered[a.contact_id] = (a.to_project, self.now)
                    self.count(a.to_project, "overflowed_in")
                    self.count(a.to_project, "entered")
            elif isinstance(a, WaitingNotice):
                assert self.contact_state[a.contact_id] is CS.QUEUED and a.at == self.now, a
                pid, since = self.entered[a.contact_id]
                p = self.projects[pid]
                assert a.project_id == pid and abs(a.waited - (self.now - since)) < 1e-9, a
                if a.kind == "announce":
                    assert p.announce_interval is not None and a.waited >= p.announce_interval - 1e-9, a
                else:
                    assert a.kind == "callback_offer" and p.callback_offer_after is not None
                    assert a.waited >= p.callback_offer_after - 1e-9, a
            else:
                assert isinstance(a, CancelOffer), a

    # ---- invariants after every step ----------------------------------------------------------

    # ---- what an agent holds, recomputed from the actions -------------------------------------

    def wrapping(self, aid: str) -> list[tuple[float, Channel]]:
        """His contacts still in wrap-up (their timers fire at on_timer(now) once due)."""
        self.wraps[aid] = w = [x for x in self.wraps[aid] if x[0] > self.now]
        return w

    def holding(self, aid: str) -> int:
        return len(self.held[aid]) + len(self.wrapping(aid))

    def working(self, aid: str) -> bool:
        return "busy" in self.held[aid].values() or bool(self.wrapping(aid))

    def channels(self, aid: str) -> set[Channel]:
        return {self.chan[c] for c in self.held[aid]} | {ch for _, ch in self.wrapping(aid)}

    def expected_state(self, aid: str) -> AgentState:
        """The aggregate: presence first, then offered (reserved when all he holds is reserved),
        busy, wrap-up, ready."""
        st = self.agent_state[aid]
        held = list(self.held[aid].values())
        if st in (S.LOGGED_OUT, S.NOT_READY):
            assert "reserved" not in held and "rung" not in held, (aid, held)   # offers are withdrawn
            return st
        if "reserved" in held or "rung" in held:
            return S.RESERVED if set(held) == {"reserved"} and not self.wrapping(aid) else S.OFFERED
        return S.BUSY if held else S.WRAP_UP if self.wrapping(aid) else S.READY

    def free_for(self, aid: str, ch: Channel) -> bool:
        """Presence ready and a free slot for ``ch`` that exclusivity allows."""
        if self.agent_state[aid] in (S.LOGGED_OUT, S.NOT_READY) or self.pending[aid] is not None:
            return False
        return self.channels(aid) <= {ch} and self.holding(aid) < self.profiles[aid].capacity.get(ch, 0)

    # ---- invariants after every step ----------------------------------------------------------

    def check(self) -> None:
        e = self.e
        views = {v.agent_id: v for v in e.agents()}
        live = {c.contact_id: c for c in e.contacts()}
        assert set(live) == {cid for cid, s in self.contact_state.items() if s not in TERMINAL}
        holders: dict[str, str] = {}
        for aid, v in views.items():
            assert v.state is self.agent_state[aid] and v.misses == self.misses[aid]
            assert v.state is self.expected_state(aid), (aid, v, self.held[aid], self.wrapping(aid))
            assert v.pending == self.pending[aid], (aid, v.pending, self.pending[aid])
            assert list(v.contact_ids) == list(self.held[aid]), (aid, v.contact_ids, self.held[aid])
            assert v.contact_id == (v.contact_ids[0] if v.contact_ids else None)
            assert len(self.channels(aid)) <= 1, (aid, self.channels(aid))    # exclusivity
            assert e.brief(aid) == (v.state, v.reason, v.since, v.contact_id, v.pending, v.workplace)
            for cid in v.contact_ids:
                c = live[cid]
                assert cid not in holders and c.agent_id == aid                 # one agent per contact
                holders[cid] = aid
                assert c.state is (CS.ANSWERED if self.held[aid][cid] == "busy" else CS.OFFERED)
        for aid in views:   # (white box) his slots match his capacity; a retired one still holds
            g = e._agents[aid].group
            if g is not None:
                extra = [s for s in g.slots[1:] if not s.retired]
                want = {ch: n - 1 for ch, n in self.profiles[aid].capacity.items() if n > 1}
                assert {ch: sum(1 for s in extra if s.only is ch) for ch in want} == want and len(extra) == sum(
                    want.values()), (aid, want)
                assert all(s.contact is not None or s.state in (S.BUSY, S.WRAP_UP) for s in g.slots if s.retired)
        for cid, c in live.items():
            assert c.state is self.contact_state[cid]
            paused = c.project_id in self.paused_projects or c.channel in self.paused_channels
            if c.state is CS.QUEUED:
                assert c.agent_id is None and cid not in holders
                if c.held_for is not None:     # waits for HIM only, while he is there and qualifies
                    assert views[c.held_for].state is not S.LOGGED_OUT, (cid, c.held_for)
                    assert paused or not self.free_for(c.held_for, c.channel), (cid, c.held_for)
                    assert eligible(self.profiles[c.held_for], self.projects[c.project_id], c.channel)
                    assert self.projects[c.project_id].strategy is Strategy.PREFERRED_AGENT
                else:
                    p = self.projects[c.project_id]
                    stalled = [a for a in views if not paused and eligible(self.profiles[a], p, c.channel)
                               and self.free_for(a, c.channel)]
                    assert not stalled, f"{cid} waits in {c.project_id} while {stalled} have a free slot"
                    rt = e._contacts[cid]   # the position index agrees with a count over the queue
                    ahead = sum(1 for o in rt.queue.live() if (o.score, o.hseq) < (rt.score, rt.hseq))
                    assert e.position(cid) == 1 + ahead
                    assert len(rt.queue.order) - rt.queue.lo == rt.queue.waiting
            else:
                assert holders.get(cid) == c.agent_id
        for pid in self.projects:
            st_ = e.project_stats(pid)
            waiting = e.waiting(pid)
            assert sorted(waiting) == sorted(cid for cid, c in live.items()
                                             if c.project_id == pid and c.state is CS.QUEUED)
            assert st_.waiting == len(waiting)
            assert st_.paused is (pid in self.paused_projects)
            for what in ("entered", "offered", "answered", "abandoned", "overflowed_out", "overflowed_in", "callbacks"):
                assert getattr(st_, what) == self.counts.get((pid, what), 0), (pid, what)

    def drain(self) -> None:
        """Agents stay available and nothing is paused: everything must end."""
        e = self.e
        for pid in sorted(self.paused_projects):
            self.apply(e.resume(project=pid, now=self.now))
        for ch in sorted(self.paused_channels, key=lambda c: c.value):
            self.apply(e.resume(channel=ch, now=self.now))
        self.paused_projects.clear()
        self.paused_channels.clear()
        self.check()
        for _ in range(400):
            for aid in self.profiles:
                v = e.agent(aid)
                if v.state is S.LOGGED_OUT:
                    self.apply(e.login(aid, self.now))
                elif v.state is S.NOT_READY:
                    self.apply(e.ready(aid, self.now))
                for cid in v.contact_ids:
                    if cid in e.agent(aid).contact_ids:   # (still his)
                        busy = e.contact(cid).state is CS.ANSWERED
                        self.apply((e.end_contact if busy else e.accept)(aid, cid, self.now))
                        self.check()
                if self.wrapping(aid):
                    self.wraps[aid] = []
                    self.apply(e.end_wrap_up(aid, self.now))
                self.check()
            if not e.contacts():
                break
            self.now += 5.0
            self.apply(e.on_timer(self.now))
            self.check()
        assert not e.contacts()
        assert set(self.contact_state.values()) <= TERMINAL


# how often each op (0..18, see Harness.step) is drawn: mostly the ordinary flow of work
WEIGHTS = [4, 1, 6, 2, 2, 8, 2, 1, 6, 3, 6, 6, 2, 5, 1, 1, 1, 1, 1]
OP_TABLE = [op for op, w in enumerate(WEIGHTS) for _ in range(w)]
OPS = st.tuples(st.sampled_from(OP_TABLE), st.integers(0, 9), st.integers(0, 63))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variants=st.lists(st.integers(0, 79), min_size=1, max_size=3), ops=st.lists(OPS, min_size=40, max_size=120))
def test_random_sequences_keep_the_invariants(variants: list[int], ops: list[tuple[int, int, int]]) -> None:
    h = Harness(5, 3, variants)
    h.check()
    for op, i, j in ops:
        h.step(op, i, j)
        h.check()
    h.drain()


def test_long_random_runs() -> None:
    """Longer runs on a bigger table than hypothesis draws (fixed seeds: reproducible)."""
    for seed in range(8):
        rng = random.Random(seed)
        h = Harness(12, 6, [rng.randrange(80) for _ in range(6)])
        for _ in range(1500):
            h.step(rng.choices(range(len(WEIGHTS)), WEIGHTS)[0], rng.randrange(12), rng.randrange(64))
            h.check()
        h.drain()
