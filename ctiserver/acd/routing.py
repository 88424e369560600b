"""The engine's state, its routing decision and its read-only queries (base of :class:`Engine`).

The decision is taken on every event, and it keeps one invariant — **no stall**: when a public
call returns, no contact waits in a queue while an agent eligible for that queue has a READY slot
routable for its channel (an agent who holds at most one contact is one slot: READY). It is
enforced in exactly three places:

* :meth:`Router._arrive` — a contact enters a queue (new, re-queued after a miss or a withdrawn
  offer, overflowed, released by its preferred agent): the queue's first READY agent (in the
  project's strategy order) gets it; only when there is none does it wait. When READY agents
  exist, the invariant says no contact of any of their queues waits, so giving it to one of them
  takes nothing from anyone.
* :meth:`Router._free` — an agent enters READY: he takes the contact held for him as preferred
  agent, else the best head over his queues (smallest score: priority with ageing, then arrival);
  only when all are empty is he indexed as READY.
* :meth:`Router._match` — after a configuration change widened who qualifies for a project.

An agent who may hold several contacts (``AgentRt.group``, :mod:`~ctiserver.acd.slots`) has one
slot per contact he may hold; :meth:`Slots._settle` brings his free slots to READY (through
``_free``) or parks them, after every change of his presence or of what he holds. The hot paths
here only check ``group is None``.

A contact held for its preferred agent waits for HIM alone (the invariant then applies to him)
until the project's ``preferred_fallback_seconds`` pass; then it enters its queue via ``_arrive``.

A *paused* queue (its project or its channel paused by a supervisor, MOD-2) is outside the
invariant: its contacts wait and keep their order, no agent is offered one, and agents are not
shown its head (``AgentRt.heaps`` leaves it out). Resuming it runs ``_match`` on it. Offers already
made when it was paused run their course.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .agents import AgentInput, AgentState, Effect, transition
from .events import (
    Action,
    AgentStateChanged,
    AgentView,
    AutoLogout,
    ContactStateChanged,
    ContactView,
    Offer,
    Overflowed,
    ProjectStats,
    WaitingNotice,
)
from .model import Channel, ContactState, MissKind, NotFound
from .queues import AgentRt, Backlog, ContactRt, ProjectRt, RingReady, score

if TYPE_CHECKING:
    from .slots import Group

A, I, E = AgentState, AgentInput, Effect  # noqa: E741
Q, OFFERED, ANSWERED = ContactState.QUEUED, ContactState.OFFERED, ContactState.ANSWERED
MISS_INPUT = {MissKind.NO_ANSWER: I.NO_ANSWER, MissKind.REJECTED: I.REJECT, MissKind.UNREACHABLE: I.UNREACHABLE}
HELD = frozenset({A.RESERVED, A.OFFERED, A.BUSY, A.WRAP_UP})   # a slot holding a contact (or its wrap-up)
RING, WAIT, PREF, WRAP, ANN, CBO = 0, 1, 2, 3, 4, 5   # timer kinds
Timer = tuple[float, int, int, object]   # (deadline, token, kind, ContactRt | AgentRt)
_heappush = heapq.heappush


def held_order(c: ContactRt) -> tuple[float, float]:
    return (c.score, c.queued_at)


class Router:
    def __init__(self, *, miss_limits: dict[MissKind, int] | int = 3, ageing_seconds: float = 60.0,
                 not_ready_reasons: Iterable[str] | None = None) -> None:
        if isinstance(miss_limits, int):
            miss_limits = dict.fromkeys(MissKind, miss_limits)
        self._limits = {k: int(miss_limits.get(k, 0)) for k in MissKind}  # 0: never auto-logout
        if any(v < 0 for v in self._limits.values()) or not ageing_seconds >= 0:
            raise ValueError("miss limits and ageing_seconds must be >= 0")
        self._ageing = float(ageing_seconds)
        self._reasons = frozenset(not_ready_reasons) if not_ready_reasons is not None else None
        self._projects: dict[str, ProjectRt] = {}
        self._agents: dict[str, AgentRt] = {}
        self._contacts: dict[str, ContactRt] = {}
        self._by_skill: dict[str, set[AgentRt]] = {}          # agents having the skill (any level)
        self._by_key: dict[str | None, set[ProjectRt]] = {}   # projects by their first required skill
        self._backlog = Backlog()                             # contacts waiting in heaps, all queues
        self._timers: list[Timer] = []
        self._seq = itertools.count(1)
        self._now = 0.0   # the latest time given; used for configuration changes without a time
        self._paused_channels: set[Channel] = set()

    # ==== the routing decision ====================================================================

    def _arrive(self, c: ContactRt, now: float, out: list[Action]) -> None:
        """``c`` (QUEUED, in no heap, held by nobody) enters its queue: first READY agent, else wait."""
        q = c.queue
        a = None if q.paused else q.ready.first()
        if a is not None:
            self._offer(c, a, now, out)
        else:
            q.push(c, next(self._seq))

    def _free(self, a: AgentRt, now: float, out: list[Action]) -> None:
        """``a`` just became READY (not yet indexed): give him work or index him."""
        if a.personal:   # (``only``: a slot of a multi-capacity agent takes his own channel's)
            held = [c for c in a.personal if not c.queue.paused and (a.only is None or c.queue.channel is a.only)]
            if held:
                c = min(held, key=held_order)
                self._unhold(c)
                self._offer(c, a, now, out)
                return
        best = None
        if self._backlog.n:
            for h in a.heaps:   # the heads of his ~23 queues (a heap's top is always live)
                if h and (best is None or h[0] < best):
                    best = h[0]
        if best is not None:
            self._offer(best[2].queue.pop_head(), a, now, out)
        else:
            a.index(next(self._seq))

    def _match(self, p: ProjectRt, now: float, out: list[Action]) -> None:
        for q in p.queues.values():
            if q.paused:
                continue
            for c in sorted((c for c in p.held if c.queue is q), key=held_order):
                a = c.held_for
                s = None if a is None else self._ready_slot(a, q.channel)
                if s is not None:   # READY: held while the queue was paused
                    self._unhold(c)
                    self._offer(c, s, now, out)
            while q.heap:
                a = q.ready.first()
                if a is None:
                    break
                self._offer(q.pop_head(), a, now, out)

    def _offer(self, c: ContactRt, a: AgentRt, now: float, out: list[Action]) -> None:
        """Reserve READY ``a`` for QUEUED ``c`` (already out of its heap or hold) and offer it."""
        if a.entry is not None:
            a.unindex()
        _, nxt = transition(a.state, I.RESERVE, a.id)   # always READY here
        p = c.project
        r = c.queue.ready
        if type(r) is RingReady:
            r.picked(a)
        g = a.group
        c.state, c.agent = OFFERED, a
        p.offered += 1
        rt = p.cfg.ring_timeout
        c.ring_tok = tok = next(self._seq)
        _heappush(self._timers, (now + rt, tok, RING, c))
        if g is None:
            a.state, a.reason, a.since, a.contact = nxt, "offer", now, c
            out.append(AgentStateChanged(a.id, A.READY, nxt, "offer", now))
        else:
            woke = g.mode is None   # his first contact: his slots of its channel open up
            a.contact, a.chan, a.oseq = c, c.queue.channel, tok
            self._gset(a, nxt, "offer", now, out)
        out.append(ContactStateChanged(c.id, Q, OFFERED, "offer", now, a.id, p.id))
        out.append(Offer(a.id, c.id, rt))
        if g is not None and woke:
            self._settle(g, now, out)

    # ==== agent effects ===========================================================================

    def _set(self, a: AgentRt, new: AgentState, reason: str, now: float, out: list[Action]) -> None:
        if a.group is not None:
            self._gset(a, new, reason, now, out)
            return
        out.append(AgentStateChanged(a.id, a.state, new, reason, now))
        a.state, a.reason, a.since = new, reason, now

    def _leave_ready(self, a: AgentRt) -> None:
        if a.entry is not None:
            a.unindex()

    def _miss(self, a: AgentRt, kind: MissKind, now: float, out: list[Action]) -> None:
        if a.group is not None:
            self._g_miss(a, kind, now, out)
            return
        count = a.misses[kind] + 1
        limit = self._limits[kind]
        effect, nxt = transition(a.state, I.MISS_LIMIT if limit and count >= limit else MISS_INPUT[kind], a.id)
        a.misses[kind] = count
        c = a.contact
        assert c is not None
        a.contact = None
        self._requeue(c, kind.value, now, out)   # first, so that the NEXT agent gets it
        if effect is E.AUTO_LOGOUT:
            out.append(AutoLogout(a.id, kind, count, now))
            self._set(a, nxt, f"auto-logout: {count} consecutive {kind.value}", now, out)
            self._logged_out(a, now, out)
        else:
            self._set(a, nxt, kind.value, now, out)
            self._free(a, now, out)

    def _end_wrap_up(self, a: AgentRt, reason: str, now: float, out: list[Action]) -> None:
        if a.group is not None:
            self._g_end_wrap_up(a, reason, now, out)
            return
        pending = a.pending
        inp = I.WRAP_UP_END if pending is None else (
            I.WRAP_UP_END_LOGOUT if pending == "logout" else I.WRAP_UP_END_NOT_READY)
        _, nxt = transition(a.state, inp, a.id)
        if pending is not None:
            reason = a.pending_reason
        a.wrap_tok = 0
        a.pending, a.pending_reason = None, ""
        self._set(a, nxt, reason, now, out)
        if nxt is A.READY:
            self._free(a, now, out)
        elif nxt is A.LOGGED_OUT:
            self._logged_out(a, now, out)

    # ---- multi-capacity agents (implemented by slots.Slots, which Engine derives from) -----------
    if TYPE_CHECKING:   # declared for the type checker; the methods are Slots'
        def _gset(self, a: AgentRt, new: AgentState, reason: str, now: float, out: list[Action]) -> None: ...

        def _g_miss(self, a: AgentRt, kind: MissKind, now: float, out: list[Action]) -> None: ...

        def _g_end_wrap_up(self, a: AgentRt, reason: str, now: float, out: list[Action]) -> None: ...

        def _settle(self, g: Group, now: float, out: list[Action]) -> None: ...

    def _ready_slot(self, a: AgentRt, ch: Channel) -> AgentRt | None:
        """A READY slot of agent ``a`` that may take a contact of ``ch`` now (``a`` itself when he
        is one slot: READY)."""
        g = a.group
        if g is None:
            return a if a.entry is not None else None
        for s in g.slots:
            if s.entry is not None and s.routes(ch):
                return s
        return None

    @staticmethod
    def _slots_of(a: AgentRt) -> tuple[AgentRt, ...]:
        """His slots: himself, or his group's (first slot first)."""
        g = a.group
        return (a,) if g is None else tuple(g.slots)

    def _present(self, a: AgentRt) -> bool:
        """Logged in (whatever his slots hold)."""
        g = a.group
        return (a.state if g is None else g.presence) is not A.LOGGED_OUT

    def _logged_out(self, a: AgentRt, now: float, out: list[Action]) -> None:
        a.pending, a.pending_reason, a.workplace = None, "", None
        self._release_held(a, None, now, out)

    def _release_held(self, a: AgentRt, project: ProjectRt | None, now: float, out: list[Action]) -> None:
        """Contacts held for ``a`` (of ``project``, or all) stop waiting for him."""
        for c in sorted(a.personal, key=held_order):
            if project is None or c.project is project:
                self._unhold(c)
                self._arrive(c, now, out)

    # ==== contact effects =========================================================================

    def _enter(self, c: ContactRt, p: ProjectRt, now: float) -> None:
        """Put ``c`` in project ``p`` (score, queue, max-wait timer); not yet in a heap."""
        c.project, c.queue, c.queued_at = p, p.queues[c.contact.channel], now
        c.score = score(c.contact, p.cfg, self._ageing)
        self._arm_wait(c, now)
        cfg = p.cfg
        if cfg.announce_interval is not None or cfg.callback_offer_after is not None or c.ann_tok or c.cb_tok:
            self._arm_rules(c, now)

    def _arm_wait(self, c: ContactRt, now: float) -> None:
        mw = c.project.cfg.max_wait
        if mw is None:
            c.wait_tok, c.wait_deadline = 0, None
        else:
            c.wait_deadline = deadline = c.queued_at + mw
            c.wait_tok = tok = next(self._seq)
            _heappush(self._timers, (max(deadline, now), tok, WAIT, c))

    def _arm_rules(self, c: ContactRt, now: float) -> None:
        """The waiting rules' timers, counted from entering the project (a rule already past in a
        changed project is due now)."""
        cfg = c.project.cfg
        c.ann_tok = c.cb_tok = 0
        if cfg.announce_interval is not None:
            c.ann_tok = tok = next(self._seq)
            _heappush(self._timers, (max(c.queued_at + cfg.announce_interval, now), tok, ANN, c))
        if cfg.callback_offer_after is not None:
            c.cb_tok = tok = next(self._seq)
            _heappush(self._timers, (max(c.queued_at + cfg.callback_offer_after, now), tok, CBO, c))

    def _waiting_rule(self, c: ContactRt, kind: int, now: float, out: list[Action]) -> None:
        """An announcement or callback-offer timer fired: a notice while QUEUED; while OFFERED the
        rule waits for the offer's outcome (the customer is about to be served)."""
        cfg = c.project.cfg
        if kind == ANN:
            assert cfg.announce_interval is not None
            if c.state is Q:
                out.append(WaitingNotice(c.id, c.project.id, "announce", now - c.queued_at, now))
            c.ann_tok = tok = next(self._seq)
            _heappush(self._timers, (now + cfg.announce_interval, tok, ANN, c))
        elif c.state is Q:
            c.cb_tok = 0
            out.append(WaitingNotice(c.id, c.project.id, "callback_offer", now - c.queued_at, now))
        else:
            c.cb_tok = tok = next(self._seq)
            _heappush(self._timers, (now + cfg.ring_timeout, tok, CBO, c))

    def _requeue(self, c: ContactRt, reason: str, now: float, out: list[Action]) -> None:
        a = c.agent
        c.state, c.agent, c.ring_tok = Q, None, 0
        out.append(ContactStateChanged(c.id, OFFERED, Q, reason, now, a.id if a else None, c.project.id))
        if c.wait_deadline is not None and now >= c.wait_deadline:
            self._overflow(c, now, out)   # its max wait passed while it was offered
        else:
            self._arrive(c, now, out)

    def _unqueue(self, c: ContactRt) -> None:
        if c.held_for is not None:
            self._unhold(c)
        elif c.hseq >= 0:
            c.queue.discard(c)

    def _unhold(self, c: ContactRt) -> None:
        a = c.held_for
        assert a is not None
        del a.personal[c]
        del c.project.held[c]
        c.held_for, c.pref_tok = None, 0

    def _overflow(self, c: ContactRt, now: float, out: list[Action]) -> None:
        self._unqueue(c)
        p = c.project
        p.overflowed_out += 1
        target = self._projects.get(p.cfg.overflow_project or "")
        out.append(Overflowed(c.id, p.id, target.id if target else None, now))
        if target is None:
            self._forget(c, ContactState.OVERFLOWED, "max wait", now, out)
            return
        target.overflowed_in += 1
        target.entered += 1
        self._enter(c, target, now)
        self._arrive(c, now, out)

    def _forget(self, c: ContactRt, new: ContactState, reason: str, now: float, out: list[Action]) -> None:
        out.append(ContactStateChanged(c.id, c.state, new, reason, now, c.agent.id if c.agent else None,
                                       c.project.id))
        c.state = new
        c.ring_tok = c.wait_tok = c.pref_tok = c.ann_tok = c.cb_tok = 0
        del self._contacts[c.id]

    # ==== timers ==================================================================================

    @staticmethod
    def _live(entry: Timer) -> bool:
        _, tok, kind, obj = entry
        if kind == RING:
            return obj.ring_tok == tok and obj.state is OFFERED  # type: ignore[attr-defined]
        if kind == WRAP:
            return obj.wrap_tok == tok and obj.state is A.WRAP_UP  # type: ignore[attr-defined]
        if kind == WAIT:   # also while offered: a re-queue before the deadline still needs it
            return obj.wait_tok == tok  # type: ignore[attr-defined]
        if kind == ANN:
            return obj.ann_tok == tok  # type: ignore[attr-defined]
        if kind == CBO:
            return obj.cb_tok == tok  # type: ignore[attr-defined]
        return obj.pref_tok == tok and obj.held_for is not None  # type: ignore[attr-defined]

    # ==== queries (for SimProt snapshots, EWT and tests) ==========================================

    def _agent(self, agent_id: str) -> AgentRt:
        a = self._agents.get(agent_id)
        if a is None:
            raise NotFound(f"unknown agent {agent_id}")
        return a

    def _project(self, project_id: str) -> ProjectRt:
        p = self._projects.get(project_id)
        if p is None:
            raise NotFound(f"unknown project {project_id}")
        return p

    def agent(self, agent_id: str) -> AgentView:
        """His state; for an agent with several slots, the aggregate (docs/acd.md) and
        ``contact_ids`` all the contacts he holds in order of offer (``contact_id`` the first)."""
        a = self._agent(agent_id)
        g = a.group
        if g is None:
            ids: tuple[str, ...] = (a.contact.id,) if a.contact else ()
            state, reason, since = a.state, a.reason, a.since
        else:
            ids = g.contact_ids()
            state, reason, since = g.state, g.reason, g.since
        return AgentView(a.id, state, reason, since, a.workplace, a.pending, a.pending_reason,
                         ids[0] if ids else None, dict(a.misses), a.today,
                         frozenset(p.id for p in a.projects), ids)

    def brief(self, agent_id: str) -> tuple[AgentState, str, float, str | None, str | None, str | None]:
        """``(state, reason, since, contact_id, pending, workplace)``: what the hot paths need, without
        building an :class:`AgentView` (the aggregate state and the first contact for an agent with
        several slots)."""
        a = self._agent(agent_id)
        g = a.group
        if g is None:
            return a.state, a.reason, a.since, a.contact.id if a.contact else None, a.pending, a.workplace
        ids = g.contact_ids()
        return g.state, g.reason, g.since, ids[0] if ids else None, a.pending, a.workplace

    def contacts_of(self, agent_id: str) -> tuple[str, ...]:
        """Every contact the agent holds (reserved, offered, worked on), in order of offer."""
        a = self._agent(agent_id)
        if a.group is None:
            return (a.contact.id,) if a.contact else ()
        return a.group.contact_ids()

    def agent_projects(self, agent_id: str) -> list[str]:
        """Ids of the projects the agent is eligible for, sorted."""
        return sorted(p.id for p in self._agent(agent_id).projects)

    def agents(self) -> list[AgentView]:
        return [self.agent(i) for i in self._agents]

    def contact(self, contact_id: str) -> ContactView:
        """A live contact; terminal ones are forgotten (NotFound)."""
        c = self._contacts.get(contact_id)
        if c is None:
            raise NotFound(f"unknown contact {contact_id}")
        return ContactView(c.id, c.project.id, c.contact.channel, c.state, c.agent.id if c.agent else None,
                           c.contact.enqueued_at, c.queued_at, c.held_for.id if c.held_for else None)

    def contacts(self) -> list[ContactView]:
        return [self.contact(i) for i in self._contacts]

    def waiting(self, project_id: str) -> list[str]:
        """Ids of the project's QUEUED contacts in dispatch order (held ones included)."""
        return [c.id for c in self._waiting(self._project(project_id))]

    def _waiting(self, p: ProjectRt) -> list[ContactRt]:
        live = [c for q in p.queues.values() for c in q.live()]
        live.extend(p.held)
        live.sort(key=lambda c: (c.score, c.hseq if c.hseq >= 0 else 0, c.queued_at))
        return live

    def position(self, contact_id: str) -> int | None:
        """1-based place among the contacts of its queue (or held for the same agent) that are
        ahead of it; None when it is not waiting."""
        c = self._contacts.get(contact_id)
        if c is None or c.state is not Q:
            return None
        if c.held_for is not None:
            return 1 + sum(1 for o in c.held_for.personal if held_order(o) < held_order(c))
        return c.queue.place(c)

    def project_stats(self, project_id: str) -> ProjectStats:
        p = self._project(project_id)
        waiting = self._waiting(p)
        ready = sum(1 for a in p.agents if a.entry is not None
                    or (a.group is not None and any(s.entry is not None for s in a.group.slots)))
        left = p.answered + p.abandoned + p.overflowed_out + p.callbacks
        return ProjectStats(
            p.id, len(waiting), len(p.held), min((c.contact.enqueued_at for c in waiting), default=None),
            ready, len(p.agents), p.entered, p.offered, p.answered, p.answered_in_sl, p.abandoned,
            p.overflowed_out, p.overflowed_in, p.callbacks, p.paused,
            p.answered_in_sl / left if left else None)

    def timers(self) -> int:
        """Entries in the timer heap (live or not yet dropped), for monitoring."""
        return len(self._timers)
