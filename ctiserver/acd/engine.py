"""The ACD engine: agents, contacts and the routing decision, without I/O and without a clock.

Every input is a method call that takes ``now`` and returns the :mod:`~ctiserver.acd.events`
actions to perform, in order; a bad input raises :class:`IllegalTransition` or
:class:`EngineError` before anything changed. Timers are the caller's: it asks
:meth:`Engine.next_deadline`, arms one timer, and calls :meth:`Engine.on_timer` when it fires
(the aioquic pattern, STYLE.md). The engine is deterministic: the same calls give the same actions.

The routing decision and the no-stall invariant live in :mod:`~ctiserver.acd.routing`, the data
structures in :mod:`~ctiserver.acd.queues`; docs/acd.md explains both.

Contacts carry a channel and queues are per (project, channel), so an agent is only offered
contacts of channels his profile has capacity for. An agent holds up to ``capacity[ch]`` contacts
of one channel at a time (voice: one): :mod:`~ctiserver.acd.slots` gives an agent with a capacity
above 1 one slot per contact, with presence, misses and the reported state per agent. Public
methods take the agent's id; those about a contact act on the slot holding it.
"""

from __future__ import annotations

import heapq

from .agents import Effect, transition
from .events import Action, AgentPending, CancelOffer, ContactStateChanged
from .model import (
    AgentProfile,
    Channel,
    Contact,
    ContactState,
    EngineError,
    InvalidConfig,
    MissKind,
    NotFound,
    Project,
    Strategy,
)
from .queues import AgentRt, ContactRt, ProjectRt, Queue, eligible, score
from .ready import FewestReady, SkillReady, make_ready_set
from .routing import ANN, ANSWERED, CBO, MISS_INPUT, OFFERED, PREF, RING, WAIT, WRAP, I, Q, held_order
from .slots import Slots

E = Effect
_heappush = heapq.heappush


class Engine(Slots):
    """``Engine(miss_limits=3, ageing_seconds=60.0, not_ready_reasons=None)``.

    ``miss_limits``: consecutive misses of one kind that log an agent out (an int for all kinds or
    a dict per :class:`MissKind`; 0 = never). ``ageing_seconds``: the waiting time one priority
    step is worth. ``not_ready_reasons``: the admin-defined reasons (None accepts any non-empty
    string).
    """

    # ==== agent inputs ============================================================================

    def login(self, agent_id: str, now: float, workplace: str | None = None) -> list[Action]:
        a = self._agent(agent_id)
        if a.group is not None:
            return self._g_presence(a, I.LOGIN, now, "login", workplace)
        _, nxt = transition(a.state, I.LOGIN, a.id)
        self._now = now
        out: list[Action] = []
        a.misses = dict.fromkeys(MissKind, 0)
        a.workplace = workplace
        self._set(a, nxt, "login", now, out)
        return out

    def logout(self, agent_id: str, now: float, reason: str = "") -> list[Action]:
        """READY/NOT_READY: now. RESERVED/OFFERED: now, the offer is withdrawn and the contact
        re-queued (no miss). BUSY/WRAP_UP: pending until wrap-up ends. (Several contacts: every offer
        is withdrawn; pending until the wrap-up of the last one he works on ends.)"""
        a = self._agent(agent_id)
        reason = reason or "logout"
        if a.group is not None:
            return self._g_presence(a, I.LOGOUT, now, reason)
        effect, nxt = transition(a.state, I.LOGOUT, a.id)
        self._now = now
        out: list[Action] = []
        if effect is E.SET_PENDING:
            self._pend(a, "logout", reason, now, out)
            return out
        if effect is E.WITHDRAW:
            self._withdraw(a, "logout", now, out)
        self._leave_ready(a)
        self._set(a, nxt, reason, now, out)
        self._logged_out(a, now, out)
        return out

    def ready(self, agent_id: str, now: float) -> list[Action]:
        """NOT_READY: READY now (and maybe an offer at once). BUSY/WRAP_UP: cancels a pending
        not-ready (a pending logout stands). READY/RESERVED/OFFERED: nothing."""
        a = self._agent(agent_id)
        if a.group is not None:
            return self._g_presence(a, I.READY, now, "ready")
        effect, nxt = transition(a.state, I.READY, a.id)
        self._now = now
        out: list[Action] = []
        if effect is E.GO_READY:
            self._set(a, nxt, "ready", now, out)
            self._free(a, now, out)
        elif effect is E.CLEAR_PENDING and a.pending == "not_ready":
            a.pending, a.pending_reason = None, ""
            out.append(AgentPending(a.id, None, "ready", now))
        return out

    def not_ready(self, agent_id: str, now: float, reason: str) -> list[Action]:
        """READY/NOT_READY: now (a new reason is recorded). RESERVED/OFFERED: now, the offer is
        withdrawn and the contact re-queued (no miss) — also how a supervisor forces it.
        BUSY/WRAP_UP: pending until wrap-up ends (a pending logout wins)."""
        a = self._agent(agent_id)
        g = a.group
        effect, nxt = transition(a.state if g is None else g.state, I.NOT_READY, a.id)
        if type(reason) is not str or not reason or (self._reasons is not None and reason not in self._reasons):
            raise EngineError(f"unknown not-ready reason {reason!r}", hint="INVALID_ARGUMENT")
        if g is not None:
            return self._g_presence(a, I.NOT_READY, now, reason)
        self._now = now
        out: list[Action] = []
        if effect is E.SET_PENDING:
            if a.pending != "logout":
                self._pend(a, "not_ready", reason, now, out)
            return out
        if effect is E.WITHDRAW:
            self._withdraw(a, "not_ready", now, out)
        self._leave_ready(a)
        self._set(a, nxt, reason, now, out)
        return out

    def ringing(self, agent_id: str, contact_id: str, now: float) -> list[Action]:
        """Telephony: the workplace rings (RESERVED → OFFERED). Optional: accept works from both."""
        a = self._agent(agent_id)
        if a.group is not None:
            a = self._slot(a, contact_id, I.RINGING)
        effect, nxt = transition(a.state, I.RINGING, a.id)
        self._offered(a, contact_id)
        self._now = now
        out: list[Action] = []
        if effect is E.RING:
            self._set(a, nxt, "ringing", now, out)
        return out

    def accept(self, agent_id: str, contact_id: str, now: float) -> list[Action]:
        a = self._agent(agent_id)
        g = a.group
        if g is not None:
            a = self._slot(a, contact_id, I.ACCEPT)
        _, nxt = transition(a.state, I.ACCEPT, a.id)
        c = self._offered(a, contact_id)
        self._now = now
        out: list[Action] = []
        for k in a.misses:   # (shared by his slots)
            a.misses[k] = 0
        if g is None:
            a.today += 1
        else:
            for s in g.slots:   # (each slot's FEWEST_CONTACTS key)
                s.today += 1
        p = c.project
        p.answered += 1
        if now - c.queued_at <= p.cfg.sl_target_seconds:
            p.answered_in_sl += 1
        c.state, c.ring_tok, c.wait_tok, c.ann_tok, c.cb_tok = ANSWERED, 0, 0, 0, 0
        self._set(a, nxt, "answered", now, out)
        out.append(ContactStateChanged(c.id, OFFERED, ANSWERED, "answered", now, a.id, p.id))
        return out

    def reject(self, agent_id: str, contact_id: str, now: float) -> list[Action]:
        return self.offer_failed(agent_id, contact_id, now, MissKind.REJECTED)

    def offer_failed(self, agent_id: str, contact_id: str, now: float, kind: MissKind) -> list[Action]:
        """The offer failed (declined, not answered, workplace unreachable): a miss of ``kind``;
        the contact goes to the next agent, this one back to READY (or logged out at the limit)."""
        a = self._agent(agent_id)
        if a.group is not None:
            a = self._slot(a, contact_id, MISS_INPUT[kind])
        transition(a.state, MISS_INPUT[kind], a.id)
        self._offered(a, contact_id)
        self._now = now
        out: list[Action] = []
        self._miss(a, kind, now, out)
        return out

    def end_contact(self, agent_id: str, contact_id: str, now: float) -> list[Action]:
        """The contact ended: WRAP_UP for the project's ``wrap_up_seconds`` (0: straight on)."""
        a = self._agent(agent_id)
        if a.group is not None:
            a = self._slot(a, contact_id, I.CALL_END)
        _, nxt = transition(a.state, I.CALL_END, a.id)
        c = a.contact
        if c is None or c.id != contact_id:
            raise EngineError(f"agent {a.id} is not working on contact {contact_id}")
        self._now = now
        out: list[Action] = []
        a.contact, a.chan = None, c.queue.channel
        self._forget(c, ContactState.ENDED, "ended", now, out)
        self._set(a, nxt, "contact ended", now, out)
        wrap = c.project.cfg.wrap_up_seconds
        if wrap > 0:
            a.wrap_tok = tok = next(self._seq)
            _heappush(self._timers, (now + wrap, tok, WRAP, a))
        else:
            self._end_wrap_up(a, "no wrap-up", now, out)
        return out

    def end_wrap_up(self, agent_id: str, now: float) -> list[Action]:
        """The agent finished wrap-up early: READY, or what he chose meanwhile. (Several contacts: the
        wrap-up of every one in wrap-up.)"""
        a = self._agent(agent_id)
        if a.group is not None:
            return self._g_end_wrap_ups(a, now)
        self._now = now
        out: list[Action] = []
        self._end_wrap_up(a, "wrap-up done", now, out)   # its table lookup rejects other states
        return out

    def _pend(self, a: AgentRt, what: str, reason: str, now: float, out: list[Action]) -> None:
        a.pending, a.pending_reason = what, reason
        out.append(AgentPending(a.id, what, reason, now))

    def _offered(self, a: AgentRt, contact_id: str) -> ContactRt:
        c = a.contact
        if c is None or c.id != contact_id or c.state is not OFFERED:
            raise EngineError(f"contact {contact_id} is not offered to agent {a.id}")
        return c

    def _withdraw(self, a: AgentRt, why: str, now: float, out: list[Action]) -> None:
        """Take back the offer of a RESERVED/OFFERED agent (not a miss) and re-queue the contact."""
        c = a.contact
        assert c is not None
        a.contact = None
        out.append(CancelOffer(a.id, c.id, why))
        self._requeue(c, why, now, out)

    # ==== contacts ================================================================================

    def enqueue(self, contact: Contact, now: float) -> list[Action]:
        """A contact arrives: offered at once when an eligible agent is READY, else it waits
        (held for its preferred agent first, in a PREFERRED_AGENT project)."""
        if contact.id in self._contacts:
            raise EngineError(f"contact {contact.id} is already in the ACD", hint="CONFLICT")
        p = self._projects.get(contact.project)
        if p is None:
            raise NotFound(f"unknown project {contact.project}")
        self._now = now
        c = ContactRt(contact, p, now)
        self._contacts[c.id] = c
        p.entered += 1
        out: list[Action] = [ContactStateChanged(c.id, None, Q, "enqueued", now, None, p.id)]
        self._enter(c, p, now)
        cfg = p.cfg
        if cfg.strategy is Strategy.PREFERRED_AGENT and contact.preferred_agent is not None:
            a = self._agents.get(contact.preferred_agent)
            if a is not None and self._present(a) and p in a.projects and a.profile.handles(contact.channel):
                s = None if c.queue.paused else self._ready_slot(a, contact.channel)
                if s is not None:
                    self._offer(c, s, now, out)
                    return out
                if cfg.preferred_fallback_seconds > 0:
                    c.held_for = a
                    a.personal[c] = None
                    p.held[c] = None
                    c.pref_tok = tok = next(self._seq)
                    _heappush(self._timers, (now + cfg.preferred_fallback_seconds, tok, PREF, c))
                    return out
        self._arrive(c, now, out)
        return out

    def cancel(self, contact_id: str, now: float, reason: str = "abandoned") -> list[Action]:
        """The customer left (or the owner withdrew the contact) before it was answered; an
        offered contact's agent gets READY again (not a miss)."""
        return self._leave(contact_id, now, reason, ContactState.ABANDONED)

    def callback(self, contact_id: str, now: float) -> list[Action]:
        """The customer chose a callback instead of waiting (waiting rules, OUT-1): the contact
        leaves the queue as CALLBACK; an offered contact's agent gets READY again (not a miss).
        Scheduling the callback is its owner's job."""
        return self._leave(contact_id, now, "callback", ContactState.CALLBACK)

    def _leave(self, contact_id: str, now: float, reason: str, new: ContactState) -> list[Action]:
        c = self._contacts.get(contact_id)
        if c is None:
            raise NotFound(f"unknown contact {contact_id}")
        if c.state is ANSWERED:
            raise EngineError(f"contact {contact_id} was answered; end it with end_contact")
        self._now = now
        out: list[Action] = []
        a = c.agent
        nxt = None
        if c.state is Q:
            self._unqueue(c)
        elif a is not None:   # OFFERED
            _, nxt = transition(a.state, I.RELEASE, a.id)
            out.append(CancelOffer(a.id, c.id, reason))
            a.contact = None
        if new is ContactState.CALLBACK:
            c.project.callbacks += 1
        else:
            c.project.abandoned += 1
        self._forget(c, new, reason, now, out)
        if a is not None and nxt is not None:
            self._set(a, nxt, "offer cancelled", now, out)
            if a.group is None:
                self._free(a, now, out)
            else:
                self._settle(a.group, now, out)
        return out

    # ==== time ====================================================================================

    def next_deadline(self) -> float | None:
        t = self._timers
        while t and not self._live(t[0]):
            heapq.heappop(t)
        return t[0][0] if t else None

    def on_timer(self, now: float) -> list[Action]:
        """Ring timeouts, wrap-up ends, max waits (overflow), preferred-agent fallbacks due by ``now``."""
        self._now = now
        out: list[Action] = []
        t = self._timers
        while t and t[0][0] <= now:
            entry = heapq.heappop(t)
            if not self._live(entry):
                continue
            kind, obj = entry[2], entry[3]
            if kind == RING:
                assert isinstance(obj, ContactRt) and obj.agent is not None
                a = obj.agent
                out.append(CancelOffer(a.id, obj.id, MissKind.NO_ANSWER.value))
                self._miss(a, MissKind.NO_ANSWER, now, out)
            elif kind == WRAP:
                assert isinstance(obj, AgentRt)
                self._end_wrap_up(obj, "wrap-up timeout", now, out)
            elif kind == WAIT:
                assert isinstance(obj, ContactRt)
                if obj.state is Q:        # offered: a re-queue after the deadline overflows it
                    self._overflow(obj, now, out)
            elif kind == ANN or kind == CBO:
                assert isinstance(obj, ContactRt)
                self._waiting_rule(obj, kind, now, out)
            else:
                assert isinstance(obj, ContactRt)
                self._unhold(obj)
                self._arrive(obj, now, out)
        return out

    # ==== pause and resume (supervisors, MOD-2) ===================================================

    def pause(self, *, project: str | None = None, channel: Channel | str | None = None,
              now: float | None = None) -> list[Action]:
        """Stop offering the contacts of a project, or of a channel in every project: they wait,
        in order, and keep their timers (max wait still overflows them: the caller's protection).
        Offers already made run their course. Pausing what is paused changes nothing."""
        return self._set_paused(True, project, channel, now)

    def resume(self, *, project: str | None = None, channel: Channel | str | None = None,
               now: float | None = None) -> list[Action]:
        """Undo :meth:`pause`; waiting contacts go to READY agents at once (a queue stays paused
        while its project or its channel still is)."""
        return self._set_paused(False, project, channel, now)

    def paused_channels(self) -> frozenset[Channel]:
        return frozenset(self._paused_channels)

    def _set_paused(self, paused: bool, project: str | None, channel: Channel | str | None,
                    now: float | None) -> list[Action]:
        if (project is None) == (channel is None):
            raise EngineError("name a project or a channel", hint="INVALID_ARGUMENT")
        now = self._now if now is None else now
        if project is not None:
            pr = self._project(project)
            pr.paused = paused
            queues = list(pr.queues.values())
        else:
            try:
                ch = Channel(channel)
            except ValueError:
                raise InvalidConfig("channel", f"unknown channel {channel!r}") from None
            (self._paused_channels.add if paused else self._paused_channels.discard)(ch)
            queues = [pr.queues[ch] for pr in self._projects.values()]
        changed = [q for q in queues if q.paused != (q.project.paused or q.channel in self._paused_channels)]
        for q in changed:
            q.paused = not q.paused
        for a in {a for q in changed for a in q.project.agents if a.profile.handles(q.channel)}:
            for s in self._slots_of(a):
                s.relist()
        self._now = max(self._now, now)
        out: list[Action] = []
        if not paused:
            for pr in {q.project: None for q in changed}:
                self._match(pr, now, out)
        return out

    # ==== configuration ===========================================================================
    # Rare and O(agents or contacts of the project); ``now`` defaults to the latest time given.

    def upsert_project(self, p: Project, now: float | None = None) -> list[Action]:
        """Add or change a project. Eligibility, strategy, priority and max-wait changes apply to
        the contacts and agents present; contacts held for a preferred agent keep their fallback."""
        now = self._now if now is None else now
        out: list[Action] = []
        pr = self._projects.get(p.id)
        if pr is None:
            pr = self._projects[p.id] = ProjectRt(p, self._backlog)
            for q in pr.queues.values():
                q.paused = q.channel in self._paused_channels
            self._key_project(pr)
            for a in self._candidates(p):
                if eligible(a.profile, p):
                    self._attach(a, pr)
            return out
        old, pr.cfg = pr.cfg, p
        if old.required_skills != p.required_skills or old.language != p.language:
            self._by_key[pr.key_skill].discard(pr)
            self._key_project(pr)
            new = {a for a in self._candidates(p) if eligible(a.profile, p)}
            for a in pr.agents - new:
                self._detach(a, pr, now, out)
            for a in sorted(new - pr.agents, key=lambda a: a.since):
                self._attach(a, pr)
        if old.strategy is not p.strategy or old.required_skills != p.required_skills:
            for q in pr.queues.values():   # rebuild, longest READY first
                members = sorted((s for a in pr.agents if a.profile.handles(q.channel) for s in self._slots_of(a)
                                  if s.entry is not None and s.routes(q.channel)), key=lambda s: s.since)
                q.ready = make_ready_set(pr)
                for s in members:
                    q.ready.add(s.entry, next(self._seq))  # type: ignore[arg-type]
            for a in pr.agents:
                for s in self._slots_of(a):
                    s.relist()
        mine = [c for c in self._contacts.values() if c.project is pr]
        if old.priority != p.priority:
            for c in mine:
                c.score = score(c.contact, p, self._ageing)
            for q in pr.queues.values():
                q.rebuild()
        if old.max_wait != p.max_wait:
            for c in mine:
                if c.state is not ANSWERED:
                    self._arm_wait(c, now)
        if (old.announce_interval, old.callback_offer_after) != (p.announce_interval, p.callback_offer_after):
            for c in mine:
                if c.state is not ANSWERED:
                    self._arm_rules(c, now)
        if p.strategy is not Strategy.PREFERRED_AGENT:
            for c in sorted(pr.held, key=held_order):
                self._unhold(c)
                self._arrive(c, now, out)
        self._match(pr, now, out)
        return out

    def upsert_agent(self, a: AgentProfile, now: float | None = None) -> list[Action]:
        """Add an agent (LOGGED_OUT) or change his skills, languages or capacity: re-indexed now;
        a READY agent keeps his place in the queues he stays in, and takes a waiting contact at
        once if a queue he newly qualifies for has one. A capacity change opens or retires extra
        slots at once (a slot holding a contact is retired when it ends: nothing is taken away)."""
        now = self._now if now is None else now
        out: list[Action] = []
        rt = self._agents.get(a.id)
        if rt is None:
            rt = self._agents[a.id] = AgentRt(a, now)
            self._key_agent(rt, add=True)
            for pr in self._project_candidates(a):
                if eligible(a, pr.cfg):
                    self._attach(rt, pr)
            self._regroup(rt, now, out)
            return out
        old, rt.profile = rt.profile, a
        if old.skills == a.skills and old.languages == a.languages and old.capacity == a.capacity:
            for s in self._slots_of(rt):
                s.profile = a
            return out
        g = rt.group
        if g is not None:
            for s in g.slots[1:]:   # extra slots re-enter READY afterwards (settle)
                if s.entry is not None:
                    s.unindex()
        self._key_agent(rt, add=False, skills=old.skills)
        self._key_agent(rt, add=True)
        new = {pr for pr in self._project_candidates(a) if eligible(a, pr.cfg)}
        for pr in rt.projects - new:
            self._detach(rt, pr, now, out)
        for pr in new - rt.projects:
            rt.projects.add(pr)
            pr.agents.add(rt)
            pr.extra += len(g.slots) - 1 if g is not None else 0
            pr.set_limits()
        old_q = set(rt.queues)
        new_q = [q for pr in rt.projects for ch, q in pr.queues.items() if a.handles(ch)]
        added = [q for q in new_q if q not in old_q]
        kept = set(new_q)
        e = rt.entry
        if e is not None:
            for q in rt.queues:
                if q not in kept:
                    q.ready.purge(rt)
                elif isinstance(q.ready, SkillReady) and old.skills != a.skills and rt.routes(q.channel):
                    q.ready.purge(rt)   # his key (the skill sum) may have changed
                    q.ready.add(e, next(self._seq))
            for q in added:
                if rt.routes(q.channel):
                    q.ready.add(e, next(self._seq))   # at the end of a FIFO: he is new there
        rt.queues = new_q
        rt.relist()
        for c in sorted(rt.personal, key=held_order):   # held on a channel he no longer handles
            if c.queue not in kept:
                self._unhold(c)
                self._arrive(c, now, out)
        self._regroup(rt, now, out)
        if e is not None and rt.entry is e and any(q.waiting for q in added):
            self._leave_ready(rt)
            if rt.group is None:
                self._free(rt, now, out)
        if rt.group is not None:
            self._settle(rt.group, now, out)
        return out

    def reset_day(self, now: float | None = None) -> None:
        """Start a new day: project counters and agents' contacts-today to zero."""
        for a in self._agents.values():
            for s in self._slots_of(a):
                s.today = 0
        for pr in self._projects.values():
            pr.reset_counters()
            for q in pr.queues.values():
                if isinstance(q.ready, FewestReady):
                    q.ready.rekey()

    # ---- eligibility index: candidates by one skill, then the full check -------------------------

    def _key_project(self, pr: ProjectRt) -> None:
        req = pr.cfg.required_skills
        pr.key_skill = req[0].skill if req else None
        self._by_key.setdefault(pr.key_skill, set()).add(pr)

    def _key_agent(self, a: AgentRt, *, add: bool, skills: object = None) -> None:
        for s in (skills if skills is not None else a.profile.skills):  # type: ignore[attr-defined]
            if add:
                self._by_skill.setdefault(s, set()).add(a)
            else:
                self._by_skill[s].discard(a)

    def _candidates(self, p: Project) -> list[AgentRt]:
        if not p.required_skills:
            return list(self._agents.values())
        best: set[AgentRt] | None = None
        for r in p.required_skills:   # the rarest skill gives the fewest candidates
            s = self._by_skill.get(r.skill, set())
            if best is None or len(s) < len(best):
                best = s
        return list(best or ())

    def _project_candidates(self, a: AgentProfile) -> set[ProjectRt]:
        out = set(self._by_key.get(None, ()))
        for s in a.skills:
            out.update(self._by_key.get(s, ()))
        return out

    def _attach(self, a: AgentRt, pr: ProjectRt) -> None:
        """``a`` qualifies for ``pr`` now; so do his extra slots (they share his queue list)."""
        a.projects.add(pr)
        pr.agents.add(a)
        qs: list[Queue] = [q for ch, q in pr.queues.items() if a.profile.handles(ch)]
        slots = self._slots_of(a)
        pr.extra += len(slots) - 1
        pr.set_limits()
        a.queues.extend(qs)
        for s in slots:
            if s.entry is not None:
                for q in qs:
                    if s.routes(q.channel):
                        q.ready.add(s.entry, next(self._seq))
            s.relist()

    def _detach(self, a: AgentRt, pr: ProjectRt, now: float, out: list[Action]) -> None:
        a.projects.discard(pr)
        pr.agents.discard(a)
        slots = self._slots_of(a)
        pr.extra -= len(slots) - 1
        pr.set_limits()
        a.queues = [q for q in a.queues if q.project is not pr]
        for s in slots:
            if s.entry is not None:
                for q in pr.queues.values():
                    q.ready.purge(s)
            s.queues = a.queues
            s.relist()
        self._release_held(a, pr, now, out)

