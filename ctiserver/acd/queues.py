"""The engine's runtime records and routing structures (internal to :mod:`ctiserver.acd`).

A *queue* is one (project, channel) pair; a contact waits in exactly one, and an agent is indexed
in every queue whose project he qualifies for and whose channel he handles (~23 in the bench).

Waiting contacts: a binary heap of ``(score, seq, contact)`` per queue. ``score`` is static while
the contact stays in the project (see :func:`score`), so the head of every queue can be compared
with any other queue's head: an agent who becomes free takes the smallest head over his queues.
Deletion is lazy: a contact that leaves other than from the head (cancel, overflow) only marks
itself (``hseq = -1``); stale entries are dropped when they surface at the head, and the heap is
rebuilt when they outnumber the live ones. ``waiting`` counts the live entries exactly.

READY agents: per queue, ordered by the project's strategy, with lazy deletion: see
:mod:`ctiserver.acd.ready`. :meth:`AgentRt.index` is the hot loop that enters them.

An :class:`AgentRt` is one *slot*: the state machine of :mod:`ctiserver.acd.agents` holding at most
one contact. An agent whose capacity is at most 1 per channel is exactly one slot (``group`` None);
an agent who may hold several chats or e-mails has extra slots, grouped by a
:class:`ctiserver.acd.slots.Group` (see there).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import deque
from itertools import compress, repeat
from operator import not_
from typing import TYPE_CHECKING

from .agents import AgentState
from .model import AgentProfile, Channel, Contact, ContactState, MissKind, Project
from .ready import (
    BucketReady,
    Entry,
    FewestReady,
    FifoReady,
    ReadySet,
    RingReady,
    SkillReady,
    alive,
    clean_front,
    make_ready_set,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .slots import Group

_heappush = heapq.heappush
_heappop = heapq.heappop
_append = deque.append
_consume = deque[object](maxlen=0).extend   # runs an iterator to its end, in C
_repeat = repeat
_compress = compress
_not = not_


class AgentRt:
    """One agent's runtime record, or one slot of a multi-capacity agent (``group`` set)."""

    __slots__ = ("id", "profile", "state", "reason", "since", "workplace", "pending", "pending_reason",
                 "contact", "misses", "today", "projects", "queues", "entry", "personal", "wrap_tok",
                 "targets", "tidy", "skills", "dynamic", "rings", "heaps", "ticks",
                 "group", "only", "chan", "oseq", "retired")

    def __init__(self, profile: AgentProfile, now: float) -> None:
        self.id = profile.id
        self.profile = profile
        self.state = AgentState.LOGGED_OUT
        self.reason = ""
        self.since = now
        self.workplace: str | None = None
        self.pending: str | None = None        # "not_ready" | "logout"
        self.pending_reason = ""
        self.contact: ContactRt | None = None   # reserved, offered or answered
        self.misses = dict.fromkeys(MissKind, 0)
        self.today = 0                          # contacts answered since reset_day
        self.projects: set[ProjectRt] = set()   # eligible projects
        self.queues: list[Queue] = []           # eligible queues (projects × channels handled)
        self.personal: dict[ContactRt, None] = {}  # contacts held for him as preferred agent
        self.wrap_tok = 0
        self.entry: Entry | None = None         # the live READY entry, None when not indexed
        # what index() touches, precomputed by relist() (see there)
        self.targets: list[deque[Entry]] = []
        self.tidy: list[tuple[FifoReady | BucketReady, deque[Entry]]] = []
        self.skills: list[SkillReady] = []
        self.dynamic: list[FewestReady] = []
        self.ticks = 0
        self.rings: list[tuple[RingReady, int]] = []
        self.heaps: list[list[tuple[float, int, ContactRt]]] = []   # his queues' contact heaps
        # several contacts at once (see ctiserver.acd.slots); single-slot agents keep the defaults
        self.group: Group | None = None        # the agent's slots, when he has several
        self.only: Channel | None = None        # routable for this channel only (None: all he handles)
        self.chan: Channel | None = None        # channel of the contact held (kept through wrap-up)
        self.oseq = 0                           # when it was offered (orders an agent's contacts)
        self.retired = False                    # an extra slot the capacity no longer has: dropped when free

    @property
    def indexed(self) -> bool:
        """In the READY structure of every queue in ``queues``."""
        return self.entry is not None

    def routes(self, ch: Channel) -> bool:
        """May be routed contacts of ``ch`` now (among the channels his queues have)."""
        return self.only is None or ch is self.only

    def relist(self) -> None:
        """Call after ``queues``, ``only``, his profile or a queue's READY structure changed
        (membership is the caller's). Precomputes what :meth:`index` touches: the deques his entry
        is appended to (FIFO queues, and his bucket of each BEST_SKILL queue: its key is static),
        the FEWEST queues (key changes), his bit in each ring, the contact heaps of his queues.
        A ring he leaves loses his bit now: its lazy check (``entry is not None``) cannot tell a
        queue he left from one he is READY in."""
        old_rings = self.rings
        self.targets, self.tidy, self.skills, self.dynamic, self.rings = [], [], [], [], []
        only = self.only
        for q in self.queues:
            if only is not None and q.channel is not only:
                continue
            r = q.ready
            if type(r) is FifoReady:
                self.targets.append(r)
                self.tidy.append((r, r))
            elif type(r) is SkillReady:
                d = r.bucket(r.key(self))
                self.targets.append(d)
                self.tidy.append((r, d))
                self.skills.append(r)
            elif type(r) is FewestReady:
                self.dynamic.append(r)
            else:
                assert type(r) is RingReady
                self.rings.append((r, r.mask_of(self)))
        # a paused queue gives nothing
        self.heaps = [q.heap for q in self.queues if not q.paused and (only is None or q.channel is only)]
        if old_rings:
            kept = {g for g, _ in self.rings}
            for g, m in old_rings:
                if g not in kept:
                    g.bits &= ~m

    def index(self, seq: int) -> None:
        """Enter the READY structure of each of his queues: the hot loop of an agent becoming free
        with nothing waiting (~23 queues). The appends run in C. Then, at each deque he appended
        to, up to two dead entries are dropped at its front (and at the front of each best bucket):
        see :mod:`ctiserver.acd.ready` for why; every call does its share, so no call does much. One
        call in four also checks the sizes (a compaction is rare)."""
        e = [self]
        self.entry = e
        targets = self.targets
        _consume(map(_append, targets, _repeat(e)))
        for d in _compress(targets, map(_not, map(alive, map(alive, targets)))):   # dead fronts (C)
            d.popleft()
            if d[0][0] is None:
                d.popleft()
        for sk in self.skills:
            f = sk.buckets[sk.keys[0]]
            if f and f[0][0] is None:
                clean_front(f)
        self.ticks = ticks = self.ticks + 1
        if not ticks & 3:
            for r, d in self.tidy:
                if len(d) > r.limit:
                    r.compact()
        today = self.today
        for b in self.dynamic:
            d = b.buckets.get(today) or b.bucket(today)
            d.append(e)
            if not ticks & 3:
                b.tidy(d)
            elif d[0][0] is None:
                d.popleft()
        for g, m in self.rings:
            g.bits |= m

    def unindex(self) -> None:
        """Leave READY: O(1), his entry dies in all his queues at once."""
        e = self.entry
        assert e is not None
        e[0] = None
        self.entry = None


class ContactRt:
    """One live contact's runtime record (forgotten once terminal)."""

    __slots__ = ("contact", "id", "project", "queue", "state", "agent", "queued_at", "score", "hseq",
                 "held_for", "ring_tok", "wait_tok", "wait_deadline", "pref_tok", "ann_tok", "cb_tok")

    def __init__(self, contact: Contact, project: ProjectRt, now: float) -> None:
        self.contact = contact
        self.id = contact.id
        self.project = project
        self.queue = project.queues[contact.channel]
        self.state = ContactState.QUEUED
        self.agent: AgentRt | None = None
        self.queued_at = now
        self.score = 0.0
        self.hseq = -1                         # seq of its live heap entry, -1 when not in a heap
        self.held_for: AgentRt | None = None
        self.ring_tok = 0
        self.wait_tok = 0
        self.wait_deadline: float | None = None
        self.pref_tok = 0
        self.ann_tok = 0                       # the announcement timer (waiting rules)
        self.cb_tok = 0                        # the callback-offer timer


def score(contact: Contact, project: Project, ageing_seconds: float) -> float:
    """Dispatch order across projects: smaller first. Each priority step is worth
    ``ageing_seconds`` of waiting, so a low-priority contact that has waited long enough overtakes
    newer high-priority ones; nothing starves."""
    return contact.enqueued_at - (contact.priority + project.priority) * ageing_seconds


# ==== queues and projects =========================================================================

class Backlog:
    """Contacts waiting in all queues' heaps (shared by the queues of one engine): an agent who
    becomes free with nothing waiting anywhere skips looking at his ~23 heads."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class Queue:
    """Waiting contacts and READY agents of one (project, channel)."""

    __slots__ = ("project", "channel", "heap", "waiting", "ready", "backlog", "paused", "order", "lo")

    def __init__(self, project: ProjectRt, channel: Channel, backlog: Backlog) -> None:
        self.project = project
        self.channel = channel
        self.heap: list[tuple[float, int, ContactRt]] = []
        self.waiting = 0
        self.backlog = backlog
        self.ready: ReadySet = make_ready_set(project)
        self.paused = False   # its project or its channel is paused: contacts wait, none is offered
        # The keys (score, seq) of the live waiting contacts, sorted, from index ``lo`` on: a
        # contact's place in the queue is one bisect (announced to every caller who enqueues or
        # waits, so it must not cost a scan of thousands). Arrivals come mostly in key order (an
        # append) and leave mostly from the head (``lo`` moves; the dead prefix is cut in bulk).
        self.order: list[tuple[float, int]] = []
        self.lo = 0

    # The heap's top entry is always live (or the heap is empty): whoever could leave a dead entry
    # on top drops it at once. So an agent scanning ~23 heads reads ``heap[0]`` and compares,
    # without checking each head (one cache miss less per queue), and ``heap`` is non-empty
    # exactly when ``waiting`` > 0. The list is only ever changed in place: agents hold it.

    def push(self, c: ContactRt, seq: int) -> None:
        c.hseq = seq
        _heappush(self.heap, (c.score, seq, c))
        insort(self.order, (c.score, seq), self.lo)
        self.waiting += 1
        self.backlog.n += 1

    def pop_head(self) -> ContactRt:
        """Remove and return the head (the heap must not be empty)."""
        h = self.heap
        c = _heappop(h)[2]
        c.hseq = -1
        self.lo = lo = self.lo + 1     # the head is the smallest live key: order[lo - 1]
        if lo > 64 and 2 * lo > len(self.order):
            del self.order[:lo]
            self.lo = 0
        self.waiting -= 1
        self.backlog.n -= 1
        while h and h[0][2].hseq != h[0][1]:
            _heappop(h)
        return c

    def discard(self, c: ContactRt) -> None:
        """Take a waiting contact out from anywhere in the heap (lazily: its entry goes stale)."""
        o = self.order
        del o[bisect_left(o, (c.score, c.hseq), self.lo)]
        c.hseq = -1
        self.waiting -= 1
        self.backlog.n -= 1
        h = self.heap
        while h and h[0][2].hseq != h[0][1]:
            _heappop(h)
        if len(h) > 2 * self.waiting + 32:
            self.rebuild()

    def rebuild(self) -> None:
        """Drop stale entries and re-key live ones with their current score."""
        h = self.heap
        h[:] = [(e[2].score, e[1], e[2]) for e in h if e[2].hseq == e[1]]
        heapq.heapify(h)
        self.order = sorted(e[:2] for e in h)
        self.lo = 0

    def place(self, c: ContactRt) -> int:
        """1-based place of a contact waiting in this queue's heap."""
        return bisect_left(self.order, (c.score, c.hseq), self.lo) - self.lo + 1

    def live(self) -> Iterable[ContactRt]:
        return (e[2] for e in self.heap if e[2].hseq == e[1])


class ProjectRt:
    """One project's configuration, queues, eligible agents and counters."""

    __slots__ = ("cfg", "id", "queues", "agents", "held", "key_skill", "entered", "offered", "answered",
                 "answered_in_sl", "abandoned", "overflowed_out", "overflowed_in", "callbacks", "paused", "extra")

    def __init__(self, cfg: Project, backlog: Backlog) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.agents: set[AgentRt] = set()      # eligible agents (their first slot)
        self.extra = 0                         # extra slots of those agents (multi-capacity)
        self.held: dict[ContactRt, None] = {}    # contacts waiting for their preferred agent
        self.key_skill: str | None = None
        self.paused = False
        self.queues = {ch: Queue(self, ch, backlog) for ch in Channel}
        self.reset_counters()

    def set_limits(self) -> None:
        """Compaction thresholds of the READY structures, from the eligible agents' slots (at most
        one live entry each)."""
        limit = 3 * (len(self.agents) + self.extra) + 64
        for q in self.queues.values():
            q.ready.limit = limit

    def reset_counters(self) -> None:
        self.entered = self.offered = self.answered = self.answered_in_sl = 0
        self.abandoned = self.overflowed_out = self.overflowed_in = self.callbacks = 0


def eligible(profile: AgentProfile, project: Project) -> bool:
    """Qualifies for the project (skills at the minimum levels, the language); channels aside."""
    skills = profile.skills
    for r in project.required_skills:
        if skills.get(r.skill, -1) < r.min_level:
            return False
    return project.language is None or project.language in profile.languages
