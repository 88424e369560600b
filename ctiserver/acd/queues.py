"""The engine's runtime records and routing structures (internal to :mod:`ctiserver.acd`).

A *queue* is one (project, channel) pair; a contact waits in exactly one, and an agent is indexed
in every queue whose project he qualifies for and whose channel he handles (~23 in the bench).

Waiting contacts: a binary heap of ``(score, seq, contact)`` per queue. ``score`` is static while
the contact stays in the project (see :func:`score`), so the head of every queue can be compared
with any other queue's head: an agent who becomes free takes the smallest head over his queues.
Deletion is lazy: a contact that leaves other than from the head (cancel, overflow) only marks
itself (``hseq = -1``); stale entries are dropped when they surface at the head, and the heap is
rebuilt when they outnumber the live ones. ``waiting`` counts the live entries exactly.

READY agents: per queue, ordered by the project's strategy. An agent who becomes READY makes ONE
shared entry ``[agent]``; leaving READY kills it (``entry[0] = None``) in all his queues at once.
Measured in the bench (10,000 agents, ~23 queues each): deleting an agent eagerly from 23 dicts
costs ~4-7 µs of cache misses per state change; killing the entry costs ~0.1 µs.

* :class:`FifoReady` — longest idle (the default; also the fallback order of PREFERRED_AGENT): a
  deque of entries in the order agents became READY; the front live entry is the agent READY the
  longest. Dead entries gather at the front (the longest READY are the likeliest to be taken by
  another queue), so every append also drops up to two dead entries there: the cleaning is spread
  over the producers instead of landing on the next contact (without it: up to 100 dead entries
  per contact, 16 µs at p99). A deque holding more than 3 entries per eligible agent (at most one
  is live each) is compacted, filtered at C speed.
* :class:`BucketReady` — BEST_SKILL (key: minus the skill sum, :class:`SkillReady`) and
  FEWEST_CONTACTS (key: contacts answered today, :class:`FewestReady`): a lazy FIFO deque per key,
  smallest key first; every add drops up to two dead entries at the front of the best bucket,
  where agents are taken. (Measured and rejected: a heap of (key, seq, entry) pops each dead entry
  in O(log n), up to 100 µs per contact; exact dicts cost ~1 µs per add plus a removal.)
* :class:`RingReady` — round robin: every agent who ever qualified gets a rank; READY agents are
  bits of an int; ``first`` is the next set bit after the last agent chosen, wrapping around; a bit
  of an agent found not READY any more is cleared then (rarely more than 3 per contact).

When a READY agent stops qualifying for a queue (a configuration change), his entry there is
purged (O(n), rare).
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING

from .agents import AgentState
from .model import AgentProfile, Channel, Contact, ContactState, MissKind, Project, Strategy

if TYPE_CHECKING:
    from collections.abc import Iterable

_heappush = heapq.heappush
_heappop = heapq.heappop
_alive = itemgetter(0)      # an entry [agent] is alive while entry[0] is the agent, dead when None
Entry = list  # [AgentRt | None]


class AgentRt:
    """One agent's runtime record."""

    __slots__ = ("id", "profile", "state", "reason", "since", "workplace", "pending", "pending_reason",
                 "contact", "misses", "today", "projects", "queues", "entry", "personal", "wrap_tok",
                 "fifo", "keyed", "rings", "heaps")

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
        # the READY structures of ``queues`` by kind, for speed
        self.fifo: list[FifoReady] = []
        self.keyed: list[tuple[BucketReady, int | None]] = []   # (structure, static key or None)
        self.rings: list[tuple[RingReady, int]] = []            # (structure, his bit)
        self.heaps: list[list[tuple[float, int, ContactRt]]] = []   # his queues' contact heaps

    @property
    def indexed(self) -> bool:
        """In the READY structure of every queue in ``queues``."""
        return self.entry is not None

    def relist(self) -> None:
        """Call after ``queues``, his profile or a queue's READY structure changed (membership is
        the caller's). Precomputes what :meth:`index` needs: static keys, ring bits."""
        self.fifo = [q.ready for q in self.queues if type(q.ready) is FifoReady]  # type: ignore[misc]
        self.keyed = [(q.ready, q.ready.static_key(self)) for q in self.queues if isinstance(q.ready, BucketReady)]
        self.rings = [(q.ready, q.ready.mask_of(self)) for q in self.queues if type(q.ready) is RingReady]
        self.heaps = [q.heap for q in self.queues]

    def index(self, seq: int) -> None:
        """Enter the READY structure of each of his queues. The hot loop of an agent becoming free
        with nothing waiting (~23 queues): the common paths of the structures' ``add`` inlined."""
        e = [self]
        self.entry = e
        if seq & 3:
            for dq in self.fifo:
                dq.append(e)
                if len(dq) > dq.limit:
                    dq.compact()
        else:
            # Dead entries gather at the front (the longest READY are the likeliest to be taken
            # elsewhere); one index in four drops up to 8 there in each queue, so the cleaning is
            # spread over the producers and a contact seldom finds a run of them.
            for dq in self.fifo:
                dq.append(e)
                n = 8
                while n and dq[0][0] is None:
                    dq.popleft()
                    n -= 1
                if len(dq) > dq.limit:
                    dq.compact()
        today = self.today
        for b, k in self.keyed:
            d = b.buckets.get(today if k is None else k)
            if d is None:
                b.add(e, seq)
                continue
            d.append(e)
            b.n += 1
            f = b.best
            if f and f[0][0] is None:
                b.clean_front()   # (as above, where agents are taken)
            if b.n > b.limit:
                b.compact()
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
                 "held_for", "ring_tok", "wait_tok", "wait_deadline", "pref_tok")

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


def score(contact: Contact, project: Project, ageing_seconds: float) -> float:
    """Dispatch order across projects: smaller first. Each priority step is worth
    ``ageing_seconds`` of waiting, so a low-priority contact that has waited long enough overtakes
    newer high-priority ones; nothing starves."""
    return contact.enqueued_at - (contact.priority + project.priority) * ageing_seconds


# ==== READY structures ===========================================================================
# Common interface: add(entry, seq) (entry alive), first() -> the agent to offer to or None,
# purge(agent) (he no longer qualifies), live() -> the READY agents (for queries), ``limit``
# (compaction threshold, set from the project's eligible agents).

class FifoReady(deque):
    """Longest idle: entries in the order agents became READY. A deque subclass carrying its own
    ``limit``, so the hot loop touches one object per queue."""

    __slots__ = ("limit",)

    def __init__(self) -> None:
        super().__init__()
        self.limit = 64

    def add(self, e: Entry, seq: int) -> None:
        self.append(e)
        self.clean_front(8)
        if len(self) > self.limit:
            self.compact()

    def clean_front(self, n: int) -> None:
        while n and self and self[0][0] is None:
            self.popleft()
            n -= 1

    def first(self) -> AgentRt | None:
        while self:
            a = self[0][0]
            if a is not None:
                return a
            self.popleft()
        return None

    def compact(self) -> None:
        live = list(filter(_alive, self))
        self.clear()
        self.extend(live)

    def purge(self, a: AgentRt) -> None:
        live = [e for e in self if e[0] is not None and e[0] is not a]
        self.clear()
        self.extend(live)

    def live(self) -> Iterator[AgentRt]:
        return iter(dict.fromkeys(e[0] for e in self if e[0] is not None))


class BucketReady:
    """Keyed READY structure: a FIFO deque of entries per key, smaller keys first, so equal keys go
    longest idle first. Lazy like :class:`FifoReady`; the dead entries gather at the front of the
    BEST bucket (that is where agents are taken), so every add drops up to two there. Subclasses
    define ``key``; it must not change while the agent is READY."""

    __slots__ = ("buckets", "keys", "best", "n", "limit")

    def __init__(self) -> None:
        self.buckets: dict[int, deque[Entry]] = {}
        self.keys: list[int] = []            # sorted keys of the buckets
        self.best: deque[Entry] = deque()    # the bucket of keys[0] (an empty deque when none)
        self.n = 0                           # entries in all buckets, live or dead
        self.limit = 64

    def key(self, a: AgentRt) -> int:
        raise NotImplementedError

    def static_key(self, a: AgentRt) -> int | None:
        """The key if it cannot change while he qualifies (AgentRt.relist caches it), else None."""
        return None

    def add(self, e: Entry, seq: int) -> None:
        """(AgentRt.index inlines the case where the bucket exists.)"""
        k = self.key(e[0])
        b = self.buckets.get(k)
        if b is None:
            b = self.buckets[k] = deque()
            insort(self.keys, k)
            self.best = self.buckets[self.keys[0]]
        b.append(e)
        self.n += 1
        if self.best and self.best[0][0] is None:
            self.clean_front()
        if self.n > self.limit:
            self.compact()

    def clean_front(self) -> None:
        f = self.best
        for _ in range(2):
            if not f or f[0][0] is not None:
                return
            f.popleft()
            self.n -= 1

    def first(self) -> AgentRt | None:
        keys = self.keys
        buckets = self.buckets
        while keys:
            b = buckets[keys[0]]
            while b:
                a = b[0][0]
                if a is not None:
                    return a
                b.popleft()
                self.n -= 1
            del buckets[keys.pop(0)]   # empty: drop it (the next add of that key re-creates it)
            self.best = buckets[keys[0]] if keys else deque()
        return None

    def _filter(self, keep: Callable[[Entry], object]) -> None:
        n = 0
        for k in list(self.keys):
            b = self.buckets[k]
            live = list(filter(keep, b))
            if live:
                b.clear()
                b.extend(live)
                n += len(live)
            else:
                del self.buckets[k]
                self.keys.remove(k)
        self.n = n
        self.best = self.buckets[self.keys[0]] if self.keys else deque()

    def compact(self) -> None:
        self._filter(_alive)

    def purge(self, a: AgentRt) -> None:
        self._filter(lambda e: e[0] is not None and e[0] is not a)

    def live(self) -> Iterator[AgentRt]:
        return iter(dict.fromkeys(e[0] for k in self.keys for e in self.buckets[k] if e[0] is not None))


class SkillReady(BucketReady):
    """BEST_SKILL: minus the sum of the agent's levels in the project's required skills."""

    __slots__ = ("project",)

    def __init__(self, project: ProjectRt) -> None:
        super().__init__()
        self.project = project

    def key(self, a: AgentRt) -> int:
        return -skill_sum(a.profile, self.project.cfg)

    def static_key(self, a: AgentRt) -> int | None:
        return self.key(a)   # his profile and the project's configuration: both re-list him


class FewestReady(BucketReady):
    """FEWEST_CONTACTS: contacts answered today (it only changes while he is not READY)."""

    __slots__ = ()

    def key(self, a: AgentRt) -> int:
        return a.today

    def rekey(self) -> None:
        """A new day: every READY agent's key changed; rebuild in READY order."""
        entries = sorted((e for b in self.buckets.values() for e in b if e[0] is not None), key=lambda e: e[0].since)
        self.buckets, self.keys, self.best, self.n = {}, [], deque(), 0
        for e in entries:
            self.add(e, 0)


class RingReady:
    __slots__ = ("bits", "mask", "members", "last", "limit")

    def __init__(self) -> None:
        self.bits = 0                            # bit r set: the agent of rank r may be READY
        self.mask: dict[AgentRt, int] = {}       # agent -> 1 << his rank
        self.members: list[AgentRt] = []         # rank -> agent
        self.last = -1                           # rank of the agent chosen last
        self.limit = 0                           # (unused: the bits are bounded by the members)

    def mask_of(self, a: AgentRt) -> int:
        m = self.mask.get(a)
        if m is None:
            m = self.mask[a] = 1 << len(self.members)
            self.members.append(a)
        return m

    def add(self, e: Entry, seq: int) -> None:
        self.bits |= self.mask_of(e[0])

    def first(self) -> AgentRt | None:
        while self.bits:
            bits = self.bits
            after = bits >> (self.last + 1)
            r = self.last + (after & -after).bit_length() if after else (bits & -bits).bit_length() - 1
            a = self.members[r]
            if a.entry is not None:
                return a
            self.bits ^= 1 << r     # he left READY since: clear lazily
        return None

    def picked(self, a: AgentRt) -> None:
        self.last = self.mask_of(a).bit_length() - 1   # also when he took the contact himself

    def purge(self, a: AgentRt) -> None:
        self.bits &= ~self.mask_of(a)

    def live(self) -> Iterator[AgentRt]:
        bits = self.bits
        return (a for r, a in enumerate(self.members) if bits >> r & 1 and a.entry is not None)


ReadySet = FifoReady | BucketReady | RingReady


def skill_sum(profile: AgentProfile, project: Project) -> int:
    skills = profile.skills
    return sum(skills.get(r.skill, 0) for r in project.required_skills)


def make_ready_set(project: ProjectRt) -> ReadySet:
    strategy = project.cfg.strategy
    r: ReadySet
    if strategy is Strategy.BEST_SKILL:
        r = SkillReady(project)
    elif strategy is Strategy.FEWEST_CONTACTS:
        r = FewestReady()
    elif strategy is Strategy.ROUND_ROBIN:
        r = RingReady()
    else:
        r = FifoReady()
    r.limit = 3 * len(project.agents) + 64
    return r


# ==== queues and projects =========================================================================

class Queue:
    """Waiting contacts and READY agents of one (project, channel)."""

    __slots__ = ("project", "channel", "heap", "waiting", "ready")

    def __init__(self, project: ProjectRt, channel: Channel) -> None:
        self.project = project
        self.channel = channel
        self.heap: list[tuple[float, int, ContactRt]] = []
        self.waiting = 0
        self.ready: ReadySet = make_ready_set(project)

    # The heap's top entry is always live (or the heap is empty): whoever could leave a dead entry
    # on top drops it at once. So an agent scanning ~23 heads reads ``heap[0]`` and compares,
    # without checking each head (one cache miss less per queue), and ``heap`` is non-empty
    # exactly when ``waiting`` > 0. The list is only ever changed in place: agents hold it.

    def push(self, c: ContactRt, seq: int) -> None:
        c.hseq = seq
        _heappush(self.heap, (c.score, seq, c))
        self.waiting += 1

    def pop_head(self) -> ContactRt:
        """Remove and return the head (the heap must not be empty)."""
        h = self.heap
        c = _heappop(h)[2]
        c.hseq = -1
        self.waiting -= 1
        while h and h[0][2].hseq != h[0][1]:
            _heappop(h)
        return c

    def discard(self, c: ContactRt) -> None:
        """Take a waiting contact out from anywhere in the heap (lazily: its entry goes stale)."""
        c.hseq = -1
        self.waiting -= 1
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

    def live(self) -> Iterable[ContactRt]:
        return (e[2] for e in self.heap if e[2].hseq == e[1])


class ProjectRt:
    """One project's configuration, queues, eligible agents and counters."""

    __slots__ = ("cfg", "id", "queues", "agents", "held", "key_skill", "entered", "offered", "answered",
                 "answered_in_sl", "abandoned", "overflowed_out", "overflowed_in")

    def __init__(self, cfg: Project) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.agents: set[AgentRt] = set()
        self.held: dict[ContactRt, None] = {}    # contacts waiting for their preferred agent
        self.key_skill: str | None = None
        self.queues = {ch: Queue(self, ch) for ch in Channel}
        self.reset_counters()

    def set_limits(self) -> None:
        """Compaction thresholds of the READY structures, from the eligible agents (at most one
        live entry each)."""
        limit = 3 * len(self.agents) + 64
        for q in self.queues.values():
            q.ready.limit = limit

    def reset_counters(self) -> None:
        self.entered = self.offered = self.answered = self.answered_in_sl = 0
        self.abandoned = self.overflowed_out = self.overflowed_in = 0


def eligible(profile: AgentProfile, project: Project) -> bool:
    """Qualifies for the project (skills at the minimum levels, the language); channels aside."""
    skills = profile.skills
    for r in project.required_skills:
        if skills.get(r.skill, -1) < r.min_level:
            return False
    return project.language is None or project.language in profile.languages
