"""What the engine returns: actions to perform and the views its queries answer.

Every call into the engine returns a list of actions, in the order they happened. They are typed
immutable records (``NamedTuple``: building one costs a third of a frozen dataclass, and three or
four are built per routing decision); the engine builds them from state it has already validated,
so they do not validate again. Compare them by type and fields, not with plain tuples. Few kinds:

* :class:`Offer` / :class:`CancelOffer` — telephony (or the chat service) must ring / stop ringing
  the agent's workplace.
* :class:`AgentStateChanged` / :class:`ContactStateChanged` — EVERY state change of an agent or a
  contact, with time and cause: the caller writes history from them and publishes them. A contact
  answered by an agent is ``ContactStateChanged(new=ANSWERED, agent_id=...)``.
* :class:`AgentPending` — a not-ready or logout chosen while busy is waiting for the work to end
  (or was cancelled: ``pending=None``).
* :class:`AutoLogout` — an agent reached a consecutive-miss limit (also recorded as the
  AgentStateChanged to LOGGED_OUT that follows it, whose reason names the kind and count).
* :class:`WaitingNotice` — a waiting rule is due for a QUEUED contact: ``announce`` (tell the
  customer position and EWT; every ``announce_interval``) or ``callback_offer`` (offer to call him
  back; once, after ``callback_offer_after``). Whoever owns the contact (the IVR) acts on it.
* :class:`Overflowed` — a contact waited ``max_wait`` and moved to another project
  (``to_project``), or left the ACD (``to_project=None``, then also ContactStateChanged to
  OVERFLOWED).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .agents import AgentState
from .model import Channel, ContactState, MissKind


class Offer(NamedTuple):
    agent_id: str
    contact_id: str
    ring_timeout: float


class CancelOffer(NamedTuple):
    agent_id: str
    contact_id: str
    reason: str  # "abandoned", "no_answer", "not_ready", "logout", ...


class AgentStateChanged(NamedTuple):
    agent_id: str
    old: AgentState
    new: AgentState
    reason: str
    at: float


class ContactStateChanged(NamedTuple):
    contact_id: str
    old: ContactState | None  # None: the contact just arrived
    new: ContactState
    reason: str               # for a re-queue after a miss: the MissKind value
    at: float
    agent_id: str | None
    project_id: str


class AgentPending(NamedTuple):
    agent_id: str
    pending: str | None  # "not_ready", "logout" or None (cancelled / taken effect)
    reason: str
    at: float


class AutoLogout(NamedTuple):
    agent_id: str
    kind: MissKind
    misses: int   # the consecutive misses of ``kind`` that reached the limit
    at: float


class Overflowed(NamedTuple):
    contact_id: str
    from_project: str
    to_project: str | None
    at: float


class WaitingNotice(NamedTuple):
    contact_id: str
    project_id: str
    kind: str       # "announce" | "callback_offer"
    waited: float   # seconds since it entered the project
    at: float


Action = (Offer | CancelOffer | AgentStateChanged | ContactStateChanged | AgentPending | AutoLogout | Overflowed
          | WaitingNotice)


# ==== query answers ===============================================================================

@dataclass(frozen=True, slots=True)
class AgentView:
    agent_id: str
    state: AgentState
    reason: str
    since: float
    workplace: str | None
    pending: str | None           # "not_ready" / "logout" waiting for the work to end
    pending_reason: str
    contact_id: str | None        # the contact reserved, offered or being worked on (the first of contact_ids)
    misses: dict[MissKind, int]   # consecutive misses per kind
    contacts_today: int
    projects: frozenset[str]      # projects he is eligible for (any channel he handles)
    contact_ids: tuple[str, ...] = ()   # every contact reserved, offered or being worked on, in order of offer


@dataclass(frozen=True, slots=True)
class ContactView:
    contact_id: str
    project_id: str
    channel: Channel
    state: ContactState
    agent_id: str | None          # offered to / answered by
    enqueued_at: float            # when the customer started waiting
    queued_at: float              # when it entered its current project
    held_for: str | None          # waiting for its preferred agent until the fallback


@dataclass(frozen=True, slots=True)
class ProjectStats:
    """Counters since the engine started or since :meth:`Engine.reset_day`.

    ``service_level`` = answered within ``sl_target_seconds`` of entering the project / contacts
    that left the project's queue (answered + abandoned + overflowed out + callbacks); None before
    the first.
    """

    project_id: str
    waiting: int
    held: int                     # of ``waiting``: held for a preferred agent
    oldest_enqueued_at: float | None
    ready_agents: int
    eligible_agents: int
    entered: int                  # contacts that entered (enqueued here or overflowed in)
    offered: int                  # offers made (a contact offered twice counts twice)
    answered: int
    answered_in_sl: int
    abandoned: int
    overflowed_out: int
    overflowed_in: int            # (also counted in ``entered``)
    callbacks: int                # left the queue choosing a callback
    paused: bool                  # the project is paused (a paused channel is the engine's paused_channels())
    service_level: float | None
