"""Estimated wait time (EWT) per project and per queue position: a pure, O(1) estimator.

What it answers. ``ewt(project, position, now)`` is the expected time, in seconds, until an agent
answers the contact at ``position`` in the project's queue (1 = the head, as
:meth:`Engine.position` counts); ``ewt_new(project, now)`` the same for a contact arriving now (it
goes behind everyone who waits). The IVR announces these to callers; supervisors see them with the
rolling measurements behind them (``stats``).

What feeds it. Events with ``now`` passed in, per project: contacts joining and leaving the queue
(``enqueued``, ``offered``, ``requeued``, ``abandoned``, ``overflowed``), answers (``answered``: the
wait and the ring time), handle times (``handled``: talk + wrap-up of an answered contact) and the
agents serving the project (``agents``: logged in, eligible, READY or busy -- reserved, ringing,
talking, wrap-up -- and not about to leave for a break; how many of them are READY). Nothing here
reads a clock or keeps a contact: a few numbers per project. :class:`EwtFeed` derives all of these
from the engine's actions: pass it every action list the engine returns.

The model (``Method.RATE``, the default). A contact is answered once the k contacts ahead of it
have left the queue and one more agent has taken it. Contacts leave to agents at the project's
*observed service rate* r: offers per second, counted only while the queue is not empty (while
agents idle, contacts reach them at the arrival rate, which says nothing about capacity), measured
per serving agent (offers per agent-second of queue) and multiplied by the agents serving now. So a
shift change or a wave of breaks moves the estimate at once, while the share of a multi-skilled
agent that other projects take (the engine gives a free agent the oldest head among his queues) is
in the measured per-agent rate -- for a project whose agents also serve a big one, that rate is far
below 1/AHT. Contacts ahead also leave by hanging up, each at the measured abandonment hazard h
(abandonments per second of waiting). With j contacts ahead, the position moves at rate r + h*j;
each step is exponential, so the expected time from k ahead is a sum, which the midpoint rule makes
O(1) (error < 0.1 % while h < r/10):

    EWT(k) = R + 1/r' + sum_{j=1..k} 1/(r' + h*j)  ~  R + 1/r' + ln(1 + h*k / (r' + h/2)) / h,   r' = r + h

R is the rolling mean ring time (offer to answer); with a READY agent free for us and everyone
ahead (idle > k) EWT is just R. r' = r + h puts the caller's own hazard in every step: that makes
EWT the mean wait of the callers who *are* answered -- the ones whose wait turns out long hang up
more often -- which is what supervisors' reports and the actual waits show. ``Method.RATE_HOLD``
uses r' = r: the potential wait of a caller who would hold however long it takes, ~10 % longer at
typical patience. bench/acd_day.py measured both, and
the baselines, against the actual waits of a simulated day (see docs/acd.md); RATE was best.

Rolling windows. Measurements decay exponentially with time constant ``tau`` (900 s; abandonment:
``patience_tau``, 3600 s, patience changes slowly and abandonments are rare): a sample ``tau`` old
weighs 1/e of a fresh one; rates are decayed counts over decayed time. Each is shrunk towards a
prior, so a cold start (no history) and a quiet spell give the textbook answer and measurements take
over as they accumulate:

- AHT: ``default_aht`` (300 s) with the weight of ``aht_prior`` (2) contacts;
- per-agent service rate: 1/AHT with the weight of ``rate_prior`` (5) offers -- so before any queue
  was seen, EWT(k) = R + (k+1) * AHT / N, the capacity model;
- ring time: ``default_ring`` (5 s) with the weight of one answer;
- abandonment: a mean patience of ``default_patience`` (300 s) with the weight of
  ``patience_prior`` (3) abandonments.

Nobody serving the project (or a project never heard of): ``max_ewt`` (3600 s); every answer is
clamped to [0, max_ewt]. Queries never create state: only events do, and only for the projects the
engine reports.

Baselines, kept for comparison: ``CAPACITY`` = R + (k+1) * AHT / N (nothing measured but AHT);
``ERLANG_C`` = the stationary mean wait (ASA) of an M/M/N queue with the measured arrival rate and
AHT, blind to the queue of the moment, O(N); ``RECENT`` = the rolling mean wait of answered contacts.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from .agents import AgentState
from .events import Action, AgentPending, AgentStateChanged, ContactStateChanged, Overflowed
from .model import ContactState

__all__ = ["EwtConfig", "EwtEstimator", "EwtFeed", "EwtStats", "Method", "erlang_c"]


class Method(enum.Enum):
    RATE = "rate"            # observed service rate x agents serving, abandonment; callers who get an answer
    RATE_HOLD = "rate_hold"  # the same for a caller who holds however long it takes (the potential wait)
    CAPACITY = "capacity"    # (k+1) * AHT / N
    ERLANG_C = "erlang_c"    # stationary M/M/N mean wait, ignores the queue
    RECENT = "recent"        # rolling mean of actual waits, ignores the queue


@dataclass(frozen=True, slots=True)
class EwtConfig:
    tau: float = 900.0          # s, time constant of every rolling measurement
    default_aht: float = 300.0  # s, handle time (talk + wrap-up) assumed before any is measured
    aht_prior: float = 2.0      # weight of default_aht, in contacts
    rate_prior: float = 5.0     # weight of the 1/AHT per-agent service rate, in offers
    default_ring: float = 5.0   # s, offer-to-answer time assumed before any is measured
    patience_tau: float = 3600.0  # s, time constant of the abandonment measurements (patience changes slowly)
    default_patience: float = 300.0  # s, mean patience of a waiting caller assumed before any is measured
    patience_prior: float = 3.0  # weight of default_patience, in abandonments
    max_ewt: float = 3600.0     # s, the answer when nobody serves the project; the upper clamp

    def __post_init__(self) -> None:
        for name in ("tau", "default_aht", "aht_prior", "rate_prior", "patience_tau", "default_patience",
                     "patience_prior", "max_ewt"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"EwtConfig.{name} must be a positive number, not {value!r}")
        if not (math.isfinite(self.default_ring) and self.default_ring >= 0):
            raise ValueError(f"EwtConfig.default_ring must be >= 0, not {self.default_ring!r}")


@dataclass(frozen=True, slots=True)
class EwtStats:
    """One project's rolling measurements, for supervisors' views and wallboards."""

    waiting: int            # contacts in the queue
    serving: int            # agents logged in, eligible, ready or busy
    idle: int               # of those, ready and free
    aht: float              # s, rolling handle time (talk + wrap-up)
    ring: float             # s, rolling offer-to-answer time
    arrival_rate: float     # contacts per second (rolling)
    service_rate: float     # offers per second the serving agents give this project while it has a queue
    abandon_hazard: float   # abandonments per second of waiting, per waiting contact
    abandon_ratio: float    # abandoned / arrived (rolling)
    mean_wait: float        # s, rolling mean wait of answered contacts
    ewt_new: float          # s, what a contact arriving now is told


class _Project:
    """The numbers kept per project. Sums are exponentially decayed to the time ``t``."""

    __slots__ = ("t", "waiting", "serving", "idle", "backlog_since", "offers", "agent_time", "wait_time",
                 "abandons", "arrivals", "observed", "aht_sum", "aht_n", "ring_sum", "ring_n",
                 "wait_sum", "wait_n", "lost")

    def __init__(self, now: float) -> None:
        self.t = now
        self.waiting = 0
        self.serving = 0
        self.idle = 0
        self.backlog_since = now   # when the queue last went from empty to non-empty
        self.offers = 0.0          # offers made while the queue had been non-empty
        self.agent_time = 0.0      # integral of serving agents over time with a queue
        self.wait_time = 0.0       # integral of waiting contacts over time
        self.abandons = 0.0        # contacts that left the queue without an agent (hung up, overflowed)
        self.arrivals = 0.0        # new contacts
        self.lost = 0.0            # abandonments, for the abandon ratio (same decay as arrivals)
        self.observed = 0.0        # decayed length of the observation
        self.aht_sum = self.aht_n = 0.0
        self.ring_sum = self.ring_n = 0.0
        self.wait_sum = self.wait_n = 0.0


class EwtEstimator:
    """Rolling EWT per project; see the module docstring. Every method is O(1) (``ERLANG_C``: O(N))."""

    def __init__(self, config: EwtConfig | None = None) -> None:
        self.config = config or EwtConfig()
        self._projects: dict[Hashable, _Project] = {}

    # -- events (call with the engine's ``now``; time never runs backwards here) ---------------

    def agents(self, project: Hashable, serving: int, idle: int, now: float) -> None:
        """Agents serving the project now: logged in, eligible, ready or busy; ``idle`` of them free."""
        if serving < 0 or not 0 <= idle <= serving:
            raise ValueError(f"agents: need 0 <= idle <= serving, got serving={serving} idle={idle}")
        p = self._advance(project, now)
        p.serving, p.idle = serving, idle

    def enqueued(self, project: Hashable, now: float) -> None:
        """A new contact joined the project's queue (an arrival)."""
        p = self._advance(project, now)
        p.arrivals += 1.0
        self._join(p, now)

    def requeued(self, project: Hashable, now: float) -> None:
        """An offered contact came back to the queue (no answer, rejected): takes back its offer."""
        p = self._advance(project, now)
        p.offers = max(0.0, p.offers - 1.0)
        self._join(p, now)

    def offered(self, project: Hashable, now: float) -> None:
        """A contact left the queue to an agent (the agent's phone rings)."""
        p = self._advance(project, now)
        if p.waiting > 0 and p.backlog_since < now:
            p.offers += 1.0  # capacity-limited departure; an offer at the same instant as the arrival is not
        p.waiting = max(0, p.waiting - 1)

    def abandoned(self, project: Hashable, now: float, queued: bool = True) -> None:
        """The customer hung up before an agent answered: from the queue, or (``queued=False``) while
        an agent's phone rang."""
        p = self._advance(project, now)
        p.lost += 1.0
        if queued:
            self._leave(p)

    def overflowed(self, project: Hashable, now: float) -> None:
        """A contact left the queue for another project (max wait): it no longer stands ahead."""
        self._leave(self._advance(project, now))

    def answered(self, project: Hashable, waited: float, ring: float, now: float) -> None:
        """An agent answered: ``waited`` s since the contact joined the queue, ``ring`` s of it ringing."""
        p = self._advance(project, now)
        p.ring_sum += max(0.0, ring)
        p.ring_n += 1.0
        p.wait_sum += max(0.0, waited)
        p.wait_n += 1.0

    def handled(self, project: Hashable, seconds: float, now: float) -> None:
        """An answered contact is done: ``seconds`` of talk plus wrap-up."""
        p = self._advance(project, now)
        p.aht_sum += max(0.0, seconds)
        p.aht_n += 1.0

    def forget(self, project: Hashable) -> None:
        """Drop a deleted project's measurements."""
        self._projects.pop(project, None)

    # -- queries ---------------------------------------------------------------------------------

    def ewt(self, project: Hashable, position: int, now: float, method: Method = Method.RATE) -> float:
        """Expected seconds until an agent answers the contact at ``position`` (1 = the head)."""
        if position < 1:
            raise ValueError(f"position must be >= 1, got {position}")
        return self._estimate(self._peek(project, now), position - 1, method)

    def ewt_new(self, project: Hashable, now: float, method: Method = Method.RATE) -> float:
        """Expected seconds until an agent answers a contact that joins the queue now."""
        p = self._peek(project, now)
        return self._estimate(p, p.waiting, method)

    def stats(self, project: Hashable, now: float) -> EwtStats:
        p = self._peek(project, now)
        aht = self._aht(p)
        c = self.config
        return EwtStats(
            waiting=p.waiting, serving=p.serving, idle=p.idle, aht=aht, ring=self._ring(p),
            arrival_rate=p.arrivals / p.observed if p.observed > 0 else 0.0,
            service_rate=self._agent_rate(p, aht) * p.serving,
            abandon_hazard=self._hazard(p),
            abandon_ratio=p.lost / p.arrivals if p.arrivals > 0 else 0.0,
            mean_wait=p.wait_sum / p.wait_n if p.wait_n > 0 else 0.0,
            ewt_new=self._estimate(p, p.waiting, Method.RATE) if p.serving else c.max_ewt,
        )

    # -- internals -------------------------------------------------------------------------------

    def _peek(self, project: Hashable, now: float) -> _Project:
        """For queries: the project brought to ``now``, or a blank one that is not kept."""
        if project in self._projects:
            return self._advance(project, now)
        return _Project(now)

    def _advance(self, project: Hashable, now: float) -> _Project:
        """Decay the project's sums from its last event to ``now`` and add the time-integrals."""
        p = self._projects.get(project)
        if p is None:
            p = self._projects[project] = _Project(now)
            return p
        dt = now - p.t
        if dt <= 0.0:  # same instant, or a clock that stepped back: nothing elapsed
            return p
        tau = self.config.tau
        f = math.exp(-dt / tau)
        span = tau * (1.0 - f)  # the decayed length of (t, now]: integral of exp(-(now - s)/tau) ds
        p.offers *= f
        p.agent_time = p.agent_time * f + (p.serving * span if p.waiting > 0 else 0.0)
        g = math.exp(-dt / self.config.patience_tau)
        p.wait_time = p.wait_time * g + p.waiting * self.config.patience_tau * (1.0 - g)
        p.abandons *= g
        p.arrivals *= f
        p.lost *= f
        p.observed = p.observed * f + span
        p.aht_sum *= f
        p.aht_n *= f
        p.ring_sum *= f
        p.ring_n *= f
        p.wait_sum *= f
        p.wait_n *= f
        p.t = now
        return p

    @staticmethod
    def _join(p: _Project, now: float) -> None:
        if p.waiting == 0:
            p.backlog_since = now
        p.waiting += 1

    @staticmethod
    def _leave(p: _Project) -> None:
        if p.waiting > 0:
            p.abandons += 1.0  # for the hazard: a contact ahead that left without an agent
            p.waiting -= 1

    def _aht(self, p: _Project) -> float:
        c = self.config
        return (p.aht_sum + c.default_aht * c.aht_prior) / (p.aht_n + c.aht_prior)

    def _ring(self, p: _Project) -> float:
        return (p.ring_sum + self.config.default_ring) / (p.ring_n + 1.0)

    def _agent_rate(self, p: _Project, aht: float) -> float:
        """Offers per serving agent per second while the project has a queue, shrunk towards 1/AHT."""
        prior = self.config.rate_prior
        return (p.offers + prior) / (p.agent_time + prior * aht)

    def _hazard(self, p: _Project) -> float:
        c = self.config
        return (p.abandons + c.patience_prior) / (p.wait_time + c.patience_prior * c.default_patience)

    def _estimate(self, p: _Project, k: int, method: Method) -> float:
        c = self.config
        ring = self._ring(p)
        if method is Method.RECENT:
            value = (p.wait_sum + ring) / (p.wait_n + 1.0)
        elif p.serving == 0:
            return c.max_ewt
        elif method is Method.ERLANG_C:
            aht = self._aht(p)
            load = aht * p.arrivals / p.observed if p.observed > 0 else 0.0
            value = ring + erlang_c(p.serving, load) * aht / max(p.serving - load, 1e-9)
        elif p.idle > k:
            value = ring  # a free agent for us and everyone ahead
        elif method is Method.CAPACITY:
            value = ring + (k + 1) * self._aht(p) / p.serving
        else:
            r = self._agent_rate(p, self._aht(p)) * p.serving
            h = self._hazard(p)
            if method is Method.RATE:
                r += h   # the caller's own hazard in every step: the wait of those answered
            # 1/r + sum_{j=1..k} 1/(r + h j), the sum by the midpoint rule (plain k/r when h is negligible)
            value = ring + 1.0 / r
            if k:
                x = h / r
                value += k / r if x < 1e-9 else math.log1p(x * k / (1.0 + 0.5 * x)) / h
        return min(max(value, 0.0), c.max_ewt)


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/``servers`` queue offered ``load`` erlangs.

    Computed through the Erlang B recursion B(n) = A B(n-1) / (n + A B(n-1)), stable for any size;
    1.0 when the load reaches the servers (the queue grows without bound).
    """
    if servers <= 0 or load >= servers:
        return 1.0
    if load <= 0:
        return 0.0
    b = 1.0
    for n in range(1, servers + 1):
        b = load * b / (n + load * b)
    return servers * b / (servers - load * (1.0 - b))


# ==== the feed: engine actions -> estimator events ================================================

_SERVING = frozenset({AgentState.READY, AgentState.RESERVED, AgentState.OFFERED, AgentState.BUSY,
                      AgentState.WRAP_UP})
_WORKING = frozenset({AgentState.BUSY, AgentState.WRAP_UP})
_CQ, _CO, _CA = ContactState.QUEUED, ContactState.OFFERED, ContactState.ANSWERED


class EwtFeed:
    """Feeds an :class:`EwtEstimator` from the engine's actions; pass it every list the engine returns.

    ``projects_of(agent_id)`` names the projects an agent is eligible for (``engine.agent(id).projects``);
    it is asked when the agent starts serving (login + ready, back from a break), so a change of his
    skills counts from his next start. A busy agent with a not-ready or logout pending (he finishes
    this call, then leaves for a break) no longer counts as serving: he takes nobody else. Keeps,
    per live contact, its project and the times it entered and was last offered, and per agent his
    state, the projects he is counted in and his answered contact: bounded by the live contacts and
    the agents. Contacts held for a preferred agent count in their project's queue, as the engine
    lists them.
    """

    def __init__(self, estimator: EwtEstimator, projects_of: Callable[[str], Iterable[str]]) -> None:
        self.estimator = estimator
        self._projects_of = projects_of
        self._contacts: dict[str, list] = {}          # id -> [project, entered at, offered at]
        self._counted: dict[str, tuple[frozenset[str], bool]] = {}  # agent -> (projects, idle)
        self._counts: dict[str, list[int]] = {}         # project -> [serving, idle]
        self._work: dict[str, tuple[str, float]] = {}   # agent -> (project, answered at)
        self._state: dict[str, AgentState] = {}          # logged-in agents
        self._pending: set[str] = set()                  # busy agents with a not-ready or logout pending

    def observe(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if type(action) is ContactStateChanged:
                self._contact(action)
            elif type(action) is AgentStateChanged:
                self._agent(action)
            elif type(action) is AgentPending:
                self._pend(action)
            elif type(action) is Overflowed:
                est, at = self.estimator, action.at
                est.overflowed(action.from_project, at)
                rec = self._contacts.get(action.contact_id)
                if action.to_project is not None and rec is not None:
                    rec[0] = action.to_project
                    est.enqueued(action.to_project, at)

    def _contact(self, ev: ContactStateChanged) -> None:
        est, at, old, new = self.estimator, ev.at, ev.old, ev.new
        rec = self._contacts.get(ev.contact_id)
        if old is None:
            self._contacts[ev.contact_id] = [ev.project_id, at, at]
            est.enqueued(ev.project_id, at)
            return
        if rec is None:
            return  # entered before the feed started
        project = rec[0]
        if new is _CO:
            rec[2] = at
            est.offered(project, at)
        elif new is _CQ:
            est.requeued(project, at)
        elif new is _CA:
            est.answered(project, at - rec[1], at - rec[2], at)
            if ev.agent_id is not None:
                self._work[ev.agent_id] = (project, at)
        elif new is ContactState.ABANDONED:
            est.abandoned(project, at, queued=old is _CQ)
        if new not in (_CQ, _CO, _CA):   # terminal: the overflow itself came as Overflowed
            del self._contacts[ev.contact_id]

    def _agent(self, ev: AgentStateChanged) -> None:
        aid = ev.agent_id
        if ev.old is AgentState.WRAP_UP:
            work = self._work.pop(aid, None)
            if work is not None:
                self.estimator.handled(work[0], ev.at - work[1], ev.at)
        if ev.new is AgentState.LOGGED_OUT:
            self._state.pop(aid, None)
        else:
            self._state[aid] = ev.new
        if ev.new not in _WORKING:
            self._pending.discard(aid)  # a pending wish ends with the work (the engine clears it)
        self._recount(aid, ev.at)

    def _pend(self, ev: AgentPending) -> None:
        if ev.pending is None:
            self._pending.discard(ev.agent_id)
        else:
            self._pending.add(ev.agent_id)
        self._recount(ev.agent_id, ev.at)

    def _recount(self, aid: str, at: float) -> None:
        """Move the agent between the serving/idle counts of his projects if his state asks for it."""
        state = self._state.get(aid)
        serving = state in _SERVING and aid not in self._pending   # going on a break: serves nobody else
        idle = state is AgentState.READY
        was = self._counted.get(aid)
        if was is None and not serving or was is not None and serving and was[1] == idle:
            return
        touched: set[str] = set()
        if was is not None:
            for p in was[0]:
                c = self._counts[p]
                c[0] -= 1
                c[1] -= was[1]
            touched.update(was[0])
            del self._counted[aid]
        if serving:
            projects = was[0] if was is not None else frozenset(self._projects_of(aid))
            for p in projects:
                c = self._counts.setdefault(p, [0, 0])
                c[0] += 1
                c[1] += idle
            touched.update(projects)
            self._counted[aid] = (projects, idle)
        for p in touched:
            serving_n, idle_n = self._counts[p]
            self.estimator.agents(p, serving_n, idle_n, at)
