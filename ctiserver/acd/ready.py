"""The READY structures of the queues (internal to :mod:`ctiserver.acd`).

One per queue, ordered by the project's strategy, with lazy deletion. An agent who
becomes READY makes ONE shared entry ``[agent]`` and appends it to his queues' structures (the
appends run in C); leaving READY kills it (``entry[0] = None``) in all his queues at once, O(1).
Measured in the bench (10,000 agents, ~23 queues each): deleting an agent eagerly from 23 dicts
cost ~4-7 µs of cache misses per state change; killing the entry costs ~0.1 µs.

Dead entries gather at the FRONT of a structure: the agents READY the longest are the likeliest to
be taken by another of their queues. Whoever pops them pays ~0.1 µs each. Popping them on the
next contact put up to 100 of them on one decision (16 µs at p99); doing it in one call in four
made that call 4x dearer. So every agent who becomes READY drops up to two dead entries at the
front of each structure he appended to: every call does its share. A structure holding more than
``limit`` entries (3 per eligible agent + 64; at most one per agent is live) is compacted at C
speed, so memory stays O(eligible agents).

* :class:`FifoReady` — longest idle (the default; also the fallback order of PREFERRED_AGENT): a
  deque of entries in the order agents became READY; the front live entry is the agent READY the
  longest.
* :class:`BucketReady` — BEST_SKILL (key: minus the skill sum, :class:`SkillReady`) and
  FEWEST_CONTACTS (key: contacts answered today, :class:`FewestReady`): a FIFO deque per key,
  smallest key first; the best bucket's front is cleaned too. A BEST_SKILL key is fixed while the
  agent qualifies, so he appends to his bucket directly. (Measured and rejected: a heap of
  (key, seq, entry) pops each dead entry in O(log n), up to 100 µs per contact; exact dicts cost
  ~1 µs per add plus a removal.)
* :class:`RingReady` — round robin: every agent who ever qualified gets a rank; READY agents are
  bits of an int; ``first`` is the next set bit after the last agent chosen, wrapping around; a bit
  of an agent found not READY any more is cleared then (rarely more than 3 per contact).

When a READY agent stops qualifying for a queue (a configuration change), his entries there are
purged (O(n), rare).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING

from .model import AgentProfile, Project, Strategy

if TYPE_CHECKING:
    from .queues import AgentRt, ProjectRt

Entry = list  # [AgentRt | None]: alive while entry[0] is the agent, dead when None
alive = itemgetter(0)


# Common interface: add(entry, seq) (entry alive), first() -> the agent to offer to or None,
# purge(agent) (he no longer qualifies), live() -> the READY agents (for queries), ``limit``
# (compaction threshold, set from the project's eligible agents).

class FifoReady(deque):
    """Longest idle: entries in the order agents became READY. A deque subclass carrying its own
    ``limit``: agents append to it directly."""

    __slots__ = ("limit",)

    def __init__(self) -> None:
        super().__init__()
        self.limit = 64

    def add(self, e: Entry, seq: int) -> None:
        self.append(e)
        self.tidy(self)

    def tidy(self, d: deque[Entry]) -> None:
        """Drop up to 8 dead entries at the front; compact when too big."""
        clean_front(self)
        if len(self) > self.limit:
            self.compact()

    def first(self) -> AgentRt | None:
        while self:
            a = self[0][0]
            if a is not None:
                return a
            self.popleft()
        return None

    def compact(self) -> None:
        live = list(filter(alive, self))
        self.clear()
        self.extend(live)

    def purge(self, a: AgentRt) -> None:
        live = [e for e in self if e[0] is not None and e[0] is not a]
        self.clear()
        self.extend(live)

    def live(self) -> Iterator[AgentRt]:
        return iter(dict.fromkeys(e[0] for e in self if e[0] is not None))


def clean_front(d: deque[Entry]) -> None:
    """Drop up to 8 dead entries at the front of ``d``."""
    n = 8
    while n and d and d[0][0] is None:
        d.popleft()
        n -= 1


class BucketReady(ABC):
    """Keyed READY structure: a FIFO deque of entries per key, smaller keys first, so equal keys go
    longest idle first. Lazy like :class:`FifoReady`: dead entries gather at the fronts of the
    buckets, above all the best one (where agents are taken); ``tidy`` drops some there.
    Subclasses define ``key`` (fixed while the agent is READY) and ``static``: whether an agent's
    key is fixed while he qualifies, so that he may hold his bucket (never deleted then)."""

    __slots__ = ("buckets", "keys", "limit")
    static = False

    def __init__(self) -> None:
        self.buckets: dict[int, deque[Entry]] = {}
        self.keys: list[int] = []            # sorted keys of the buckets
        self.limit = 64

    @abstractmethod
    def key(self, a: AgentRt) -> int:
        """The agent's bucket key (fixed while he is READY); each strategy's subclass defines it."""

    def bucket(self, k: int) -> deque[Entry]:
        d = self.buckets.get(k)
        if d is None:
            d = self.buckets[k] = deque()
            insort(self.keys, k)
        return d

    def add(self, e: Entry, seq: int) -> None:
        d = self.bucket(self.key(e[0]))   # type: ignore[arg-type]
        d.append(e)
        self.tidy(d)

    def tidy(self, d: deque[Entry]) -> None:
        """After appending to bucket ``d``: drop dead entries at its front and the best bucket's;
        compact when ``d`` holds more than ``limit`` (so at most ``limit`` per bucket)."""
        clean_front(d)
        clean_front(self.buckets[self.keys[0]])
        if len(d) > self.limit:
            self.compact()

    def first(self) -> AgentRt | None:
        keys = self.keys
        buckets = self.buckets
        i = 0
        while i < len(keys):
            d = buckets[keys[i]]
            while d:
                a = d[0][0]
                if a is not None:
                    return a
                d.popleft()
            if self.static:
                i += 1                      # agents hold their buckets: keep it
            else:
                del buckets[keys.pop(i)]    # empty: drop it (the next add of that key re-creates it)
        return None

    def _filter(self, keep: Callable[[Entry], object]) -> None:
        for k in list(self.keys):
            d = self.buckets[k]
            live = list(filter(keep, d))
            d.clear()
            d.extend(live)
            if not live and not self.static:
                del self.buckets[k]
                self.keys.remove(k)

    def compact(self) -> None:
        self._filter(alive)

    def purge(self, a: AgentRt) -> None:
        self._filter(lambda e: e[0] is not None and e[0] is not a)

    def live(self) -> Iterator[AgentRt]:
        return iter(dict.fromkeys(e[0] for k in self.keys for e in self.buckets[k] if e[0] is not None))


class SkillReady(BucketReady):
    """BEST_SKILL: minus the sum of the agent's levels in the project's required skills."""

    __slots__ = ("project",)
    static = True   # his profile and the project's configuration: both re-list him when they change

    def __init__(self, project: ProjectRt) -> None:
        super().__init__()
        self.project = project

    def key(self, a: AgentRt) -> int:
        return -skill_sum(a.profile, self.project.cfg)


class FewestReady(BucketReady):
    """FEWEST_CONTACTS: contacts answered today (it only changes while he is not READY)."""

    __slots__ = ()

    def key(self, a: AgentRt) -> int:
        return a.today

    def rekey(self) -> None:
        """A new day: every READY agent's key changed; rebuild in READY order."""
        entries = sorted((e for d in self.buckets.values() for e in d if e[0] is not None), key=lambda e: e[0].since)
        self.buckets, self.keys = {}, []
        for e in entries:
            self.add(e, 1)


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
