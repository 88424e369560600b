"""The ACD's configuration and input records, validated where they are built.

Projects (queues) and agent profiles come from the administration; contacts from whoever queues a
call, chat or e-mail (the IVR, later the asynchronous service). Each is a frozen dataclass that
checks itself in ``__post_init__`` and raises :class:`InvalidConfig` naming the offending field, so
nothing malformed ever reaches the engine. Mappings are copied into read-only views: a caller
cannot change a record after the engine has indexed it.

Also here: the small enums shared by the package and the root of its error hierarchy. Every error
carries ``hint``, the SimProt error-code name an adapter answers with (``ErrorCode[err.hint]``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Bounds on what configuration and peers may hand us (STYLE habit 7).
MAX_ID = 128            # characters in any id, skill or language tag
MAX_LEVEL = 100         # skill levels and minimum levels are 0..MAX_LEVEL
MAX_PRIORITY = 100      # project and contact priorities are -MAX_PRIORITY..MAX_PRIORITY
MAX_SKILLS = 256        # skills per agent, required skills per project
MAX_CAPACITY = 100      # contacts of one channel an agent may hold (voice: at most 1)
MAX_DATA_KEYS = 64      # keys in a contact's data map
MAX_SECONDS = 7 * 86400.0


class AcdError(Exception):
    """Root of the ACD's errors; ``hint`` is the SimProt error-code name for the answer."""

    hint = "INTERNAL_ERROR"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class InvalidConfig(AcdError, ValueError):
    """A record failed validation; ``field`` names the offending field."""

    hint = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class EngineError(AcdError):
    """A request the engine cannot honour (unknown id, wrong contact, duplicate); nothing changed."""

    hint = "INVALID_STATE"


class NotFound(EngineError):
    hint = "NOT_FOUND"


class Channel(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum.__hash__ is Python code
    VOICE = "voice"
    CHAT = "chat"
    EMAIL = "email"


class Strategy(enum.Enum):
    """How a project picks among its READY agents (see docs/acd.md)."""

    __hash__ = object.__hash__
    LONGEST_IDLE = "longest_idle"        # the agent READY the longest
    BEST_SKILL = "best_skill"            # highest sum of levels in the required skills, then longest idle
    ROUND_ROBIN = "round_robin"          # the next READY agent after the last one this project chose
    FEWEST_CONTACTS = "fewest_contacts"  # fewest contacts answered today, then longest idle
    PREFERRED_AGENT = "preferred_agent"  # the contact's preferred agent for a while, then longest idle


class MissKind(enum.Enum):
    """Why an offer was not answered; each kind has its own consecutive-miss counter."""

    __hash__ = object.__hash__
    NO_ANSWER = "no_answer"      # ring timeout, or the phone reported no answer
    REJECTED = "rejected"        # the agent declined
    UNREACHABLE = "unreachable"  # the workplace could not be reached (offline, busy, error)


class ContactState(enum.Enum):
    __hash__ = object.__hash__
    QUEUED = "queued"            # waiting in a project (possibly held for its preferred agent)
    OFFERED = "offered"          # reserved for one agent and offered to him
    ANSWERED = "answered"        # the agent accepted; he is working on it
    ENDED = "ended"              # terminal: done after being answered
    ABANDONED = "abandoned"      # terminal: cancelled before being answered
    OVERFLOWED = "overflowed"    # terminal: max wait passed and no overflow project took it
    CALLBACK = "callback"        # terminal: the customer chose to be called back instead of waiting


TERMINAL = frozenset({ContactState.ENDED, ContactState.ABANDONED, ContactState.OVERFLOWED, ContactState.CALLBACK})
MIN_ANNOUNCE = 5.0      # seconds: the shortest announcement interval (a waiting caller must hear the music)


# ==== validation helpers ==========================================================================

def _id(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if type(value) is not str or not value or len(value) > MAX_ID or not value.isprintable():
        raise InvalidConfig(name, f"must be a printable string of 1..{MAX_ID} characters, got {value!r}")


def _int(name: str, value: Any, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise InvalidConfig(name, f"must be an integer in {low}..{high}, got {value!r}")


def _seconds(name: str, value: Any, *, low: float = 0.0, optional: bool = False, strict: bool = False) -> float | None:
    if value is None and optional:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value > MAX_SECONDS:
        raise InvalidConfig(name, f"must be a finite number of seconds up to {MAX_SECONDS:g}, got {value!r}")
    if value < low or (strict and value == low):
        raise InvalidConfig(name, f"must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return float(value)


def _levels(name: str, value: Any) -> MappingProxyType:
    if not isinstance(value, Mapping):
        raise InvalidConfig(name, "must be a mapping of skill to level")
    if len(value) > MAX_SKILLS:
        raise InvalidConfig(name, f"at most {MAX_SKILLS} skills")
    for skill, level in value.items():
        _id(f"{name} key", skill)
        _int(f"{name}[{skill}]", level, 0, MAX_LEVEL)
    return MappingProxyType(dict(value))


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


# ==== records =====================================================================================

@dataclass(frozen=True, slots=True)
class SkillRequirement:
    """An agent qualifies when he has ``skill`` at ``min_level`` or above."""

    skill: str
    min_level: int = 1

    def __post_init__(self) -> None:
        _id("skill", self.skill)
        _int("min_level", self.min_level, 0, MAX_LEVEL)


@dataclass(frozen=True, slots=True)
class Project:
    """A queue: who may take its contacts, in what order, and what happens when nobody does.

    ``required_skills`` accepts ``{skill: min_level}`` or an iterable of :class:`SkillRequirement`
    and is kept as a tuple sorted by skill. ``max_wait`` None means no limit; when it passes, the
    contact moves to ``overflow_project``, or leaves the ACD as OVERFLOWED when there is none.

    Waiting rules (ACD-2): every ``announce_interval`` seconds a waiting contact's owner is told to
    announce position and EWT (None: never); once it has waited ``callback_offer_after`` seconds in
    the project, the owner is told to offer a callback (None: never). Both count from entering the
    project, so an overflow target's rules start afresh.
    """

    id: str
    name: str = ""
    priority: int = 0
    required_skills: Any = ()
    language: str | None = None
    strategy: Strategy = Strategy.LONGEST_IDLE
    max_wait: float | None = None
    overflow_project: str | None = None
    sl_target_seconds: float = 20.0
    sl_target_pct: float = 80.0
    ring_timeout: float = 20.0
    wrap_up_seconds: float = 10.0
    preferred_fallback_seconds: float = 30.0
    announce_interval: float | None = None
    callback_offer_after: float | None = None

    def __post_init__(self) -> None:
        _id("id", self.id)
        if type(self.name) is not str or len(self.name) > 256:
            raise InvalidConfig("name", "must be a string of at most 256 characters")
        _int("priority", self.priority, -MAX_PRIORITY, MAX_PRIORITY)
        _set(self, "required_skills", _requirements(self.required_skills))
        _id("language", self.language, optional=True)
        if not isinstance(self.strategy, Strategy):
            try:
                _set(self, "strategy", Strategy(self.strategy))
            except ValueError:
                raise InvalidConfig("strategy", f"unknown strategy {self.strategy!r}") from None
        _set(self, "max_wait", _seconds("max_wait", self.max_wait, optional=True, strict=True))
        _id("overflow_project", self.overflow_project, optional=True)
        if self.overflow_project == self.id:
            raise InvalidConfig("overflow_project", "a project cannot overflow into itself")
        _set(self, "sl_target_seconds", _seconds("sl_target_seconds", self.sl_target_seconds, strict=True))
        pct = self.sl_target_pct
        if type(pct) not in (int, float) or not 0 <= pct <= 100:
            raise InvalidConfig("sl_target_pct", f"must be a percentage 0..100, got {pct!r}")
        _set(self, "ring_timeout", _seconds("ring_timeout", self.ring_timeout, strict=True))
        _set(self, "wrap_up_seconds", _seconds("wrap_up_seconds", self.wrap_up_seconds))
        _set(self, "preferred_fallback_seconds",
             _seconds("preferred_fallback_seconds", self.preferred_fallback_seconds))
        _set(self, "announce_interval", _seconds("announce_interval", self.announce_interval,
                                                 low=MIN_ANNOUNCE, optional=True))
        _set(self, "callback_offer_after", _seconds("callback_offer_after", self.callback_offer_after, optional=True))

    @property
    def required(self) -> dict[str, int]:
        return {r.skill: r.min_level for r in self.required_skills}


def _requirements(value: Any) -> tuple[SkillRequirement, ...]:
    items: Iterable[Any]
    if isinstance(value, Mapping):
        for skill, level in value.items():
            _id("required_skills key", skill)
            _int(f"required_skills[{skill}]", level, 0, MAX_LEVEL)
        items = [SkillRequirement(s, lv) for s, lv in value.items()]
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidConfig("required_skills", "must be a mapping {skill: min_level} or SkillRequirements")
    else:
        items = value
    reqs = []
    for r in items:
        if not isinstance(r, SkillRequirement):
            raise InvalidConfig("required_skills", f"not a SkillRequirement: {r!r}")
        reqs.append(r)
    if len(reqs) > MAX_SKILLS or len({r.skill for r in reqs}) != len(reqs):
        raise InvalidConfig("required_skills", f"at most {MAX_SKILLS} skills, each once")
    return tuple(sorted(reqs, key=lambda r: r.skill))


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """What an agent can do. ``capacity`` maps each channel he handles to how many contacts of it he
    may hold at once (voice at most 1; a channel missing or 0 is one he does not handle)."""

    id: str
    skills: Mapping[str, int] = field(default_factory=dict, hash=False)
    languages: frozenset[str] = frozenset()
    capacity: Mapping[Channel, int] = field(default_factory=lambda: {Channel.VOICE: 1}, hash=False)
    name: str = ""

    def __post_init__(self) -> None:
        _id("id", self.id)
        _set(self, "skills", _levels("skills", self.skills))
        if isinstance(self.languages, str) or not isinstance(self.languages, Iterable):
            raise InvalidConfig("languages", "must be a set of language tags")
        langs = frozenset(self.languages)
        for lang in langs:
            _id("languages", lang)
        _set(self, "languages", langs)
        if not isinstance(self.capacity, Mapping):
            raise InvalidConfig("capacity", "must be a mapping of channel to count")
        cap = {}
        for ch, n in self.capacity.items():
            try:
                ch = Channel(ch)
            except ValueError:
                raise InvalidConfig("capacity", f"unknown channel {ch!r}") from None
            _int(f"capacity[{ch.value}]", n, 0, 1 if ch is Channel.VOICE else MAX_CAPACITY)
            cap[ch] = n
        _set(self, "capacity", MappingProxyType(cap))
        if type(self.name) is not str or len(self.name) > 256:
            raise InvalidConfig("name", "must be a string of at most 256 characters")

    def handles(self, channel: Channel) -> bool:
        return self.capacity.get(channel, 0) > 0


@dataclass(frozen=True, slots=True)
class Contact:
    """A call, chat or e-mail to be queued. ``enqueued_at`` is when the customer started waiting
    (it orders contacts, so time spent in the IVR or in an earlier project counts)."""

    id: str
    project: str
    channel: Channel = Channel.VOICE
    priority: int = 0
    enqueued_at: float = 0.0
    preferred_agent: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        _id("id", self.id)
        _id("project", self.project)
        if not isinstance(self.channel, Channel):
            try:
                _set(self, "channel", Channel(self.channel))
            except ValueError:
                raise InvalidConfig("channel", f"unknown channel {self.channel!r}") from None
        _int("priority", self.priority, -MAX_PRIORITY, MAX_PRIORITY)
        e = self.enqueued_at
        if type(e) not in (int, float) or not math.isfinite(e):
            raise InvalidConfig("enqueued_at", f"must be a finite time, got {e!r}")
        _set(self, "enqueued_at", float(e))
        _id("preferred_agent", self.preferred_agent, optional=True)
        if not isinstance(self.data, Mapping) or len(self.data) > MAX_DATA_KEYS:
            raise InvalidConfig("data", f"must be a mapping of at most {MAX_DATA_KEYS} keys")
        for k in self.data:
            _id("data key", k)
        _set(self, "data", MappingProxyType(dict(self.data)))
