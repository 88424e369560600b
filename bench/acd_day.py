"""A day of a contact centre through the real ACD engine on a simulated clock; measures the EWT.

Run ``.venv/bin/python bench/acd_day.py [--quick] [--seed N] [--load X] [--plot PATH]``. ONE JSON
object goes to stdout, progress to stderr, a PNG to ``bench/results/acd_day.png`` (``--plot ''``:
none). A full day takes about 2 s.

The centre is shaped like the handbook's (SPEC ARCH-9: up to 100 agents logged in at once, two
shifts): 100 agents, 60 in the early shift (logging in 6:50-7:10 for 8.5 h) and 40 in the late one
(8:50-9:10), each with two 10-minute breaks and a 30-minute lunch (NOT_READY) staggered over the
shift; five projects -- general questions, payments, EHIC cards, employers and a Slovak-language
line (the language is required) -- and skills to match (an agent takes one to three projects).
Calls arrive 7:00-17:30, Poisson with a rate that follows a daily profile (morning peak, lunch dip,
afternoon bump; ``--load`` scales it); talk times are lognormal per project, wrap-up lognormal (the
agent ends it; the project's 60 s wrap-up timer is the ceiling); every caller has an exponential
patience (mean 180 s) and hangs up when it runs out (``Engine.cancel``); an agent answers an offer
after 1-4 s or, 2 % of the time, not at all: the 15 s ring timeout re-offers the call.
``--quick`` simulates 9:00-11:00 only (the agents on shift then log in at 9:00).

A discrete-event loop drives :class:`ctiserver.acd.engine.Engine`: the next event is the earlier of
the simulation's own heap (arrivals, hang-ups, answers, call ends, breaks, shifts) and
``engine.next_deadline()`` (ring timeouts, wrap-up ceilings). Every action list the engine returns
goes through an :class:`~ctiserver.acd.ewt.EwtFeed` into the estimator, as it would in ctiserver.
When a call arrives, before it is queued, we note what the IVR would announce (``ewt_new``, every
method); when it is answered, its actual wait (arrival to answer, ringing included). Every minute
each waiting caller also gets a re-announcement from its position (``ewt(project, position)``),
compared later with the rest of its wait. Everything is seeded: the same seed gives the same JSON
(but ``elapsed_s``).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import math
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the repository's ctiserver, not some installed copy
    sys.path.insert(1, str(ROOT))

from ctiserver.acd.agents import AgentState  # noqa: E402
from ctiserver.acd.engine import Engine  # noqa: E402
from ctiserver.acd.events import AgentStateChanged, AutoLogout, CancelOffer, ContactStateChanged, Offer  # noqa: E402
from ctiserver.acd.ewt import EwtEstimator, EwtFeed, Method  # noqa: E402
from ctiserver.acd.model import AgentProfile, Contact, ContactState, Project, Strategy  # noqa: E402

H = 3600.0
SL_TARGET = 20.0        # s; every project's sl_target_seconds
GOAL_PCT = 20.0         # mean absolute EWT error, % of the mean actual wait (issue 3)
RING_TIMEOUT = 15.0
WRAP_CEILING = 60.0     # the projects' wrap_up_seconds: the engine ends wrap-up then at the latest
NO_ANSWER_P = 0.02
PATIENCE_MEAN = 180.0
RELOGIN_AFTER = 120.0   # s after an auto-logout
SAMPLE_EVERY = 60.0
METHODS = list(Method)


@dataclass(frozen=True)
class Spec:
    id: str
    share: float            # of the arrivals
    talk: float             # mean talk time, s (lognormal)
    talk_cv: float
    wrap: float             # mean wrap-up, s (lognormal, cut at WRAP_CEILING by the engine)
    skills: dict
    language: str | None = None
    strategy: Strategy = Strategy.LONGEST_IDLE


SPECS = [
    Spec("general", 0.45, 210.0, 0.7, 15.0, {"general": 1}),
    Spec("payments", 0.20, 300.0, 0.7, 25.0, {"payments": 1}, strategy=Strategy.BEST_SKILL),
    Spec("ehic", 0.13, 180.0, 0.6, 15.0, {"ehic": 1}),
    Spec("employers", 0.14, 360.0, 0.7, 30.0, {"employers": 1}, strategy=Strategy.FEWEST_CONTACTS),
    Spec("slovak", 0.08, 250.0, 0.7, 20.0, {"general": 1}, language="sk"),
]
# calls per hour at these times of day (hours), linear in between: morning peak, lunch dip, afternoon
PROFILE = [(7.0, 380), (8.0, 620), (9.0, 900), (10.0, 1040), (11.0, 980), (12.0, 800), (12.75, 800),
           (13.5, 920), (14.5, 920), (15.5, 520), (16.5, 420), (17.5, 320)]
DAY = (7 * H, 17.5 * H)
QUICK = (9 * H, 11 * H)
SHIFTS = [(60, 6 * H + 3000, 8.5 * H), (40, 8 * H + 3000, 8.5 * H)]  # (agents, first login, hours); logins over 20 min

# sim event kinds
ARRIVE, PATIENCE, ANSWER, TALK_END, WRAP_END, LOGIN, BREAK, BREAK_END, LOGOUT, SAMPLE = range(10)
SERVING = frozenset({AgentState.READY, AgentState.RESERVED, AgentState.OFFERED, AgentState.BUSY,
                     AgentState.WRAP_UP})
RINGING = (AgentState.RESERVED, AgentState.OFFERED)


def rate_at(t: float, load: float = 1.0) -> float:
    """Arrivals per second at time of day ``t`` (s), the profile times ``load``."""
    h = t / H
    for (h0, r0), (h1, r1) in zip(PROFILE, PROFILE[1:], strict=False):
        if h0 <= h < h1:
            return load * (r0 + (r1 - r0) * (h - h0) / (h1 - h0)) / H
    return 0.0


def lognormal(rng: random.Random, mean: float, cv: float) -> float:
    s2 = math.log(1.0 + cv * cv)
    return rng.lognormvariate(math.log(mean) - s2 / 2, math.sqrt(s2))


class Call:
    __slots__ = ("id", "project", "arrived", "offered", "answered", "left", "predicted", "announced", "floor")

    def __init__(self, cid: str, project: str, arrived: float, predicted: tuple[float, ...], floor: float) -> None:
        self.id, self.project, self.arrived, self.predicted, self.floor = cid, project, arrived, predicted, floor
        self.offered: float | None = None    # first offer
        self.answered: float | None = None
        self.left: float | None = None       # hung up before an answer
        self.announced: list[tuple[float, float]] = []   # (time, ewt from the position then)

    @property
    def wait(self) -> float:
        """Arrival to answer (ringing included); only for answered calls."""
        assert self.answered is not None
        return self.answered - self.arrived

    @property
    def queued(self) -> bool:
        """Waited in the queue: not offered at the instant it arrived."""
        return self.offered is not None and self.offered > self.arrived


class Agent:
    __slots__ = ("id", "profile", "projects", "state", "since", "shift_end", "offer_tok", "wrap_tok", "break_len",
                 "project", "t_avail", "t_busy")

    def __init__(self, profile: AgentProfile, projects: frozenset[str], shift_end: float) -> None:
        self.id, self.profile, self.projects, self.shift_end = profile.id, profile, projects, shift_end
        self.state, self.since = AgentState.LOGGED_OUT, 0.0
        self.offer_tok = self.wrap_tok = 0
        self.break_len: float | None = None
        self.project = ""
        self.t_avail = self.t_busy = 0.0   # ready or busy / busy (reserved, ringing, talking, wrap-up)


def make_agents(rng: random.Random) -> list[tuple[AgentProfile, float, float, list[tuple[float, str, float]]]]:
    """(profile, login, logout, breaks as (start, reason, minutes)) for the 100 agents."""
    out = []
    n = 0
    for count, first, length in SHIFTS:
        slovak = set(rng.sample(range(count), count // 8))
        for i in range(count):
            n += 1
            skills: dict[str, int] = {}
            languages = {"cs"}
            if i in slovak:
                languages.add("sk")
                skills["general"] = rng.randint(1, 3)
                if rng.random() < 0.4:
                    skills["payments"] = rng.randint(1, 3)
            else:
                if rng.random() < 0.8:
                    skills["general"] = rng.randint(1, 3)
                specials = rng.choices(["payments", "employers", "ehic"], weights=[0.4, 0.32, 0.28],
                                       k=1 if rng.random() < 0.8 else 2)
                for s in specials if skills else specials or ["payments"]:
                    skills[s] = rng.randint(1, 3)
            login = first + i * 1200 / count + rng.uniform(0, 60)
            logout = login + length
            breaks = [(login + rng.uniform(1.25, 2.75) * H, "break", 10.0),    # staggered, as a planner would
                      (login + rng.uniform(3.5, 5.0) * H, "lunch", 30.0),
                      (login + rng.uniform(6.0, 7.25) * H, "break", 10.0)]
            profile = AgentProfile(f"a{n:03d}", skills=skills, languages=frozenset(languages))
            out.append((profile, login, logout, breaks))
    return out


class Day:
    def __init__(self, seed: int, window: tuple[float, float], load: float = 1.0) -> None:
        self.window = window
        self.load = load
        self.rng_arr = random.Random(f"{seed}-arrivals")
        self.rng_call = random.Random(f"{seed}-calls")
        self.rng_agent = random.Random(f"{seed}-agents")
        self.engine = Engine(miss_limits=3, ageing_seconds=60.0)
        self.est = EwtEstimator()
        self.feed = EwtFeed(self.est, lambda aid: self.agents[aid].projects)
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.now = window[0]
        self.calls: dict[str, Call] = {}
        self.live: dict[str, Call] = {}         # not yet answered or gone
        self.agents: dict[str, Agent] = {}
        self.pending: deque = deque()
        self.draining = False
        self.auto_logouts = 0
        self.no_answers = 0
        self.samples: list[tuple[float, dict[str, int], int, int, int]] = []   # t, waiting, logged in, avail, busy
        self.handlers: dict[int, Callable[[Any], None]] = {
            ARRIVE: self.on_arrive, PATIENCE: self.on_patience, ANSWER: self.on_answer, TALK_END: self.on_talk_end,
            WRAP_END: self.on_wrap_end, LOGIN: self.on_login, BREAK: self.on_break, BREAK_END: self.on_break_end,
            LOGOUT: self.on_logout, SAMPLE: self.on_sample}
        for s in SPECS:
            self.engine.upsert_project(Project(s.id, name=s.id, required_skills=s.skills, language=s.language,
                                               strategy=s.strategy, sl_target_seconds=SL_TARGET,
                                               ring_timeout=RING_TIMEOUT, wrap_up_seconds=WRAP_CEILING), self.now)
        for profile, login, logout, breaks in make_agents(self.rng_agent):
            self.engine.upsert_agent(profile, self.now)
            projects = self.engine.agent(profile.id).projects
            end = min(logout, window[1] + 0.5 * H) if window != DAY else logout
            self.agents[profile.id] = Agent(profile, projects, end)
            if login < end and logout > window[0]:
                self.at(max(login, window[0]), LOGIN, profile.id)
                for start, reason, minutes in breaks:
                    if window[0] < start < end:
                        self.at(start, BREAK, (profile.id, reason, minutes * 60))
                self.at(end, LOGOUT, profile.id)
        self.at(self.next_arrival(window[0]), ARRIVE, None)
        self.at(window[0], SAMPLE, None)

    # ---- the loop ---------------------------------------------------------------------------------

    def at(self, t: float, kind: int, arg: Any) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, arg))

    def run(self) -> None:
        wall = time.monotonic()
        next_report = self.window[0] + H
        while True:
            deadline = self.engine.next_deadline()
            if self.heap and (deadline is None or self.heap[0][0] < deadline):
                t, _, kind, arg = heapq.heappop(self.heap)
                self.now = max(self.now, t)
                self.handlers[kind](arg)
            elif deadline is not None:
                self.now = max(self.now, deadline)
                self.apply(self.engine.on_timer(self.now))
            else:
                break
            if self.now >= next_report:
                print(f"acd_day: {clock(self.now)} {len(self.calls)} calls, {len(self.live)} unanswered, "
                      f"{time.monotonic() - wall:.1f} s", file=sys.stderr)
                next_report += H

    def apply(self, actions: list) -> None:
        """Feed the estimator, then act on the engine's actions in order (our reactions append)."""
        self.feed.observe(actions)
        self.pending.extend(actions)
        if self.draining:
            return
        self.draining = True
        try:
            while self.pending:
                a = self.pending.popleft()
                kind = type(a)
                if kind is ContactStateChanged:
                    self.on_contact(a)
                elif kind is AgentStateChanged:
                    self.on_agent(a)
                elif kind is Offer:
                    self.on_offer(a)
                elif kind is CancelOffer:
                    self.agents[a.agent_id].offer_tok += 1
                    self.no_answers += a.reason == "no_answer"
                elif kind is AutoLogout:
                    self.auto_logouts += 1
        finally:
            self.draining = False

    # ---- engine actions ---------------------------------------------------------------------------

    def on_contact(self, ev: ContactStateChanged) -> None:
        call = self.calls[ev.contact_id]
        if ev.new is ContactState.OFFERED and call.offered is None:
            call.offered = ev.at
        elif ev.new is ContactState.ANSWERED:
            call.answered = ev.at
            del self.live[call.id]
            spec = SPEC[call.project]
            self.agents[str(ev.agent_id)].project = call.project
            self.at(ev.at + lognormal(self.rng_call, spec.talk, spec.talk_cv), TALK_END, (ev.agent_id, call.id))
        elif ev.new is ContactState.ABANDONED:
            call.left = ev.at
            self.live.pop(call.id, None)

    def on_agent(self, ev: AgentStateChanged) -> None:
        ag = self.agents[ev.agent_id]
        spent = ev.at - ag.since
        if ag.state in SERVING:
            ag.t_avail += spent
            if ag.state is not AgentState.READY:
                ag.t_busy += spent
        ag.state, ag.since = ev.new, ev.at
        if ev.new is AgentState.WRAP_UP:
            ag.wrap_tok += 1
            wrap = lognormal(self.rng_agent, SPEC[ag.project].wrap, 0.6)
            if wrap < WRAP_CEILING:   # else the engine's wrap-up timer ends it
                self.at(ev.at + wrap, WRAP_END, (ag.id, ag.wrap_tok))
        elif ev.new is AgentState.NOT_READY and ag.break_len is not None and ev.reason in ("break", "lunch"):
            self.at(ev.at + ag.break_len, BREAK_END, ag.id)
            ag.break_len = None
        elif ev.new is AgentState.LOGGED_OUT and ev.reason.startswith("auto-logout"):
            self.at(ev.at + RELOGIN_AFTER, LOGIN, ag.id)

    def on_offer(self, offer: Offer) -> None:
        ag = self.agents[offer.agent_id]
        ag.offer_tok += 1
        self.apply(self.engine.ringing(offer.agent_id, offer.contact_id, self.now))
        if self.rng_agent.random() >= NO_ANSWER_P:   # else the ring timeout fires and re-offers
            delay = 1.0 + self.rng_agent.random() * 3.0
            self.at(self.now + delay, ANSWER, (ag.id, offer.contact_id, ag.offer_tok))

    # ---- simulation events ------------------------------------------------------------------------

    def next_arrival(self, t: float) -> float:
        """Thinning: candidates at the peak rate, each kept with probability rate(t) / peak."""
        peak = self.load * max(r for _, r in PROFILE) / H
        while t < self.window[1]:
            t += self.rng_arr.expovariate(peak)
            if self.rng_arr.random() * peak < rate_at(t, self.load):
                return t
        return math.inf

    def on_arrive(self, _: Any) -> None:
        now = self.now
        if now < self.window[1]:
            project = self.rng_arr.choices(PROJECT_IDS, weights=SHARES)[0]
            cid = f"c{len(self.calls) + 1}"
            predicted = tuple(self.est.ewt_new(project, now, m) for m in METHODS)   # what the IVR announces
            stats = self.est.stats(project, now)
            floor = noise_floor(predicted[0] - stats.ring, stats.waiting)
            call = self.calls[cid] = self.live[cid] = Call(cid, project, now, predicted, floor)
            self.apply(self.engine.enqueue(Contact(cid, project, enqueued_at=now), now))
            if call.answered is None:
                self.at(now + self.rng_call.expovariate(1.0 / PATIENCE_MEAN), PATIENCE, cid)
        nxt = self.next_arrival(now)
        if nxt < math.inf:
            self.at(nxt, ARRIVE, None)

    def on_patience(self, cid: str) -> None:
        if cid in self.live:   # the caller hangs up
            self.apply(self.engine.cancel(cid, self.now))

    def on_answer(self, arg: tuple[str, str, int]) -> None:
        aid, cid, tok = arg
        ag = self.agents[aid]
        if ag.offer_tok == tok and ag.state in RINGING and cid in self.live:
            self.apply(self.engine.accept(aid, cid, self.now))

    def on_talk_end(self, arg: tuple[str, str]) -> None:
        aid, cid = arg
        self.apply(self.engine.end_contact(aid, cid, self.now))

    def on_wrap_end(self, arg: tuple[str, int]) -> None:
        aid, tok = arg
        ag = self.agents[aid]
        if ag.state is AgentState.WRAP_UP and ag.wrap_tok == tok:
            self.apply(self.engine.end_wrap_up(aid, self.now))

    def on_login(self, aid: str) -> None:
        ag = self.agents[aid]
        if ag.state is AgentState.LOGGED_OUT and self.now < ag.shift_end:
            self.apply(self.engine.login(ag.id, self.now))
            self.apply(self.engine.ready(ag.id, self.now))

    def on_break(self, arg: tuple[str, str, float]) -> None:
        aid, reason, seconds = arg
        ag = self.agents[aid]
        if ag.state in RINGING:      # not in the middle of an offer: a little later
            self.at(self.now + 30.0, BREAK, arg)
        elif ag.state in (AgentState.READY, AgentState.BUSY, AgentState.WRAP_UP):
            ag.break_len = seconds
            self.apply(self.engine.not_ready(aid, self.now, reason))

    def on_break_end(self, aid: str) -> None:
        ag = self.agents[aid]
        if ag.state is AgentState.NOT_READY:
            self.apply(self.engine.ready(ag.id, self.now))

    def on_logout(self, aid: str) -> None:
        ag = self.agents[aid]
        if ag.state in RINGING:
            self.at(self.now + 30.0, LOGOUT, aid)
        elif ag.state is not AgentState.LOGGED_OUT:
            self.apply(self.engine.logout(ag.id, self.now, "end of shift"))

    def on_sample(self, _: Any) -> None:
        now = self.now
        waiting = {}
        for s in SPECS:
            ids = self.engine.waiting(s.id)
            waiting[s.id] = len(ids)
            for pos, cid in enumerate(ids, 1):   # the IVR's re-announcement, from the position
                self.calls[cid].announced.append((now, self.est.ewt(s.id, pos, now)))
        states = [a.state for a in self.agents.values()]
        logged = sum(s is not AgentState.LOGGED_OUT for s in states)
        avail = sum(s in SERVING for s in states)
        busy = sum(s in SERVING and s is not AgentState.READY for s in states)
        self.samples.append((now, waiting, logged, avail, busy))
        if now < self.window[1] or self.live:
            self.at(now + SAMPLE_EVERY, SAMPLE, None)


SPEC = {s.id: s for s in SPECS}
PROJECT_IDS = [s.id for s in SPECS]
SHARES = [s.share for s in SPECS]


# ==== results =====================================================================================

def noise_floor(queue_part: float, ahead: int) -> float:
    """The mean absolute error that even an exact predictor of the mean has, if the time to the
    answer is the sum of ahead+1 exponential steps (Gamma(a = ahead+1)) of mean ``queue_part``:
    E|G - mean| = mean * 2 a^(a-1) e^-a / Gamma(a). Ring-time noise left out: a lower bound."""
    if queue_part <= 0:
        return 0.0
    a = ahead + 1
    return queue_part * math.exp(math.log(2.0) + (a - 1) * math.log(a) - a - math.lgamma(a))


def clock(t: float) -> str:
    return f"{int(t // H):02d}:{int(t % H // 60):02d}"


def pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(0.9 * len(s)) - 1)]   # nearest rank


def rnd(x: float | None, n: int = 1) -> float | None:
    return None if x is None else round(x, n)


def ewt_error(pairs: list[tuple[float, float]]) -> dict:
    """Error of (predicted, actual) pairs, seconds."""
    if not pairs:
        return {"n": 0}
    n = len(pairs)
    mean_actual = sum(a for _, a in pairs) / n
    abs_err = [abs(p - a) for p, a in pairs]
    mae = sum(abs_err) / n
    return {"n": n, "mae_s": rnd(mae), "mae_pct_of_mean_wait": pct(mae, mean_actual), "mean_actual_s": rnd(mean_actual),
            "mean_predicted_s": rnd(sum(p for p, _ in pairs) / n), "bias_s": rnd(sum(p - a for p, a in pairs) / n),
            "abs_error_p90_s": rnd(p90(abs_err))}


def interval_error(answered: list[Call], i: int, slot: float = 900.0) -> dict:
    """Per 15 minutes of arrival: |mean announced - mean actual|, weighted by calls, over the mean wait."""
    slots: dict[int, list[Call]] = {}
    for c in answered:
        slots.setdefault(int(c.arrived // slot), []).append(c)
    if not answered:
        return {"intervals": 0}
    err = sum(abs(sum(c.predicted[i] - c.wait for c in v)) for v in slots.values()) / len(answered)
    mean = sum(c.wait for c in answered) / len(answered)
    return {"intervals": len(slots), "mae_s": rnd(err), "mae_pct_of_mean_wait": pct(err, mean)}


def noise_floor_pct(answered: list[Call]) -> float | None:
    """An estimate of the smallest mean absolute error any EWT could reach, % of the mean wait:
    calls answered at once -- the best one constant can do for their ring times (deviation from the
    median); calls that queued -- :func:`noise_floor` of their announced queue time."""
    at_once = sorted(c.wait for c in answered if not c.queued)
    median = at_once[len(at_once) // 2] if at_once else 0.0
    floor = sum(abs(w - median) for w in at_once) + sum(c.floor for c in answered if c.queued)
    return pct(floor, sum(c.wait for c in answered))


def numbers(calls: list[Call], agents: list[Agent]) -> dict:
    answered = [c for c in calls if c.answered is not None]
    waits = [c.wait for c in answered]
    abandoned = sum(c.left is not None for c in calls)
    return {
        "offered": len(calls), "answered": len(answered), "abandoned": abandoned,
        "unfinished": len(calls) - len(answered) - abandoned,
        "service_level_pct": pct(sum(w <= SL_TARGET for w in waits), len(calls)),
        "abandon_rate_pct": pct(abandoned, len(calls)),
        "wait_avg_s": rnd(sum(waits) / len(waits)) if waits else None, "wait_p90_s": rnd(p90(waits)),
        "occupancy_pct": pct(sum(a.t_busy for a in agents), sum(a.t_avail for a in agents)),
        "ewt": ewt_error([(c.predicted[0], c.wait) for c in answered]),
        "ewt_waited": ewt_error([(c.predicted[0], c.wait) for c in answered if c.queued]),
        "ewt_noise_floor_pct": noise_floor_pct(answered),
        "ewt_per_15min": interval_error(answered, 0),
    }


def results(day: Day, quick: bool, seed: int, load: float, elapsed: float, plot: str) -> dict:
    calls = list(day.calls.values())
    agents = list(day.agents.values())
    for a in agents:   # close the agents' time accounts at the end of the run
        if a.state in SERVING:
            a.t_avail += day.now - a.since
            if a.state is not AgentState.READY:
                a.t_busy += day.now - a.since
    answered = [c for c in calls if c.answered is not None]
    methods = {}
    for i, m in enumerate(METHODS):
        every = ewt_error([(c.predicted[i], c.wait) for c in answered])
        waited = ewt_error([(c.predicted[i], c.wait) for c in answered if c.queued])
        methods[m.value] = {"mae_pct": every["mae_pct_of_mean_wait"], "bias_s": every["bias_s"],
                            "waited_mae_pct": waited.get("mae_pct_of_mean_wait"), "waited_bias_s": waited.get("bias_s"),
                            "per_15min_mae_pct": interval_error(answered, i)["mae_pct_of_mean_wait"]}
    total = numbers(calls, agents)
    projects = {}
    for s in SPECS:
        eligible = [a for a in agents if s.id in a.projects]
        n = numbers([c for c in calls if c.project == s.id], eligible)
        n["eligible_agents"] = len(eligible)
        n["occupancy_of_eligible_agents_pct"] = n.pop("occupancy_pct")
        projects[s.id] = n
    mae_pct = total["ewt"]["mae_pct_of_mean_wait"]
    per_15 = total["ewt_per_15min"]["mae_pct_of_mean_wait"]
    return {
        "bench": "acd_day", "mode": "quick" if quick else "full", "seed": seed, "load": load,
        "simulated": {
            "from": clock(day.window[0]), "to": clock(day.window[1]), "ended": clock(day.now),
            "agents": len(agents), "peak_logged_in": max(s[2] for s in day.samples),
            "shifts": [{"agents": n, "first_login": clock(t), "hours": d / H} for n, t, d in SHIFTS],
            "projects": {s.id: {"share": s.share, "talk_mean_s": s.talk, "wrap_mean_s": s.wrap, "skills": s.skills,
                                "language": s.language, "strategy": s.strategy.value} for s in SPECS},
            "sl_target_s": SL_TARGET, "ring_timeout_s": RING_TIMEOUT, "no_answer_p": NO_ANSWER_P,
            "patience_mean_s": PATIENCE_MEAN, "no_answers": day.no_answers, "auto_logouts": day.auto_logouts,
        },
        "total": total,
        "projects": projects,
        "ewt_method": Method.RATE.value,
        "ewt_methods": methods,
        "ewt_reannouncements": ewt_error([(e, c.answered - t) for c in answered for t, e in c.announced
                                          if c.answered is not None]),
        "goal": {"ewt_mae_pct_of_mean_wait_max": GOAL_PCT,
                 "met_per_call": mae_pct is not None and mae_pct <= GOAL_PCT,
                 "met_per_15min": per_15 is not None and per_15 <= GOAL_PCT},
        "code": {"sha256_of_acd": code_hash()},
        "plot": plot or None,
        "elapsed_s": round(elapsed, 2),
    }


def code_hash() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "ctiserver" / "acd").glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


# ==== the plot ====================================================================================

def draw(day: Day, seed: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0, t1 = day.window
    t_end = max(day.now, t1)
    slot = 900.0
    nslots = math.ceil((t_end - t0) / slot)
    calls = list(day.calls.values())
    answered = [c for c in calls if c.answered is not None]
    hrs = list(range(int(t0 // H), math.ceil(t1 / H)))
    by_hour: dict[int, list[Call]] = {h: [] for h in hrs}
    for c in calls:
        by_hour.setdefault(int(c.arrived // H), []).append(c)
    fig, ax = plt.subplots(3, 2, figsize=(15, 12))
    fig.suptitle(f"ACD day through the engine (seed {seed}, load {day.load:g}): {len(calls)} calls, "
                 f"{len(day.agents)} agents")

    a = ax[0][0]
    arrivals = [0] * nslots
    for c in calls:
        arrivals[int((c.arrived - t0) // slot)] += 1
    xs = [(t0 + (i + 0.5) * slot) / H for i in range(nslots)]
    a.bar(xs, arrivals, width=slot / H * 0.9, color="#9ecae1", label="arrivals per 15 min")
    a.set_ylabel("calls per 15 min")
    b = a.twinx()
    st = [s[0] / H for s in day.samples]
    b.plot(st, [s[2] for s in day.samples], color="#d62728", label="agents logged in")
    b.plot(st, [s[3] for s in day.samples], color="#ff9896", label="ready or busy")
    b.set_ylabel("agents")
    a.set_title("arrivals and agents")
    a.legend(loc="upper left")
    b.legend(loc="upper right")

    a = ax[0][1]
    a.stackplot(st, [[s[1][p] for s in day.samples] for p in PROJECT_IDS], labels=PROJECT_IDS)
    a.set_title("waiting contacts (every minute)")
    a.legend(loc="upper left")

    a = ax[1][0]
    sl = [100 * sum(c.answered is not None and c.wait <= SL_TARGET for c in by_hour[h]) / max(1, len(by_hour[h]))
          for h in hrs]
    ab = [100 * sum(c.left is not None for c in by_hour[h]) / max(1, len(by_hour[h])) for h in hrs]
    a.bar([h + 0.3 for h in hrs], sl, width=0.4, label=f"service level (answered in {SL_TARGET:.0f} s / offered)")
    a.bar([h + 0.7 for h in hrs], ab, width=0.4, label="abandon rate")
    a.axhline(80, color="gray", ls="--", lw=1)
    a.set_ylim(0, 125)
    a.set_ylabel("% of the calls arriving in the hour")
    a.set_title("service level and abandon rate per hour")
    a.legend(loc="upper center", ncol=2, fontsize=8)

    a = ax[1][1]
    occ = [0.0] * nslots
    cnt = [0] * nslots
    for t, _, _, avail, busy in day.samples:
        i = int((t - t0) // slot)
        if 0 <= i < nslots and avail:
            occ[i] += 100 * busy / avail
            cnt[i] += 1
    a.plot(xs, [o / n if n else math.nan for o, n in zip(occ, cnt, strict=True)], marker=".")
    a.set_ylim(0, 105)
    a.set_ylabel("%")
    a.set_title("occupancy (busy / ready or busy) per 15 min")

    a = ax[2][0]
    for p in PROJECT_IDS:
        pc = [c for c in answered if c.project == p]
        a.scatter([c.wait for c in pc], [c.predicted[0] for c in pc], s=3, alpha=0.4, label=p)
    top = max([c.wait for c in answered] + [1.0])
    a.plot([0, top], [0, top], color="black", lw=1)
    a.set_xlabel("actual wait, s")
    a.set_ylabel("EWT announced at arrival, s")
    a.set_title(f"announced vs actual wait, each answered call (method {Method.RATE.value})")
    a.legend(loc="upper left", markerscale=4)

    a = ax[2][1]
    ans_by_hour = {h: [c for c in by_hour[h] if c.answered is not None] for h in hrs}
    mid = [h + 0.5 for h in hrs]
    for i, m in enumerate(METHODS):
        a.plot(mid, [sum(c.predicted[i] for c in v) / len(v) if v else math.nan for v in ans_by_hour.values()],
               marker=".", lw=1, label=f"announced: {m.value}")
    actual = [sum(c.wait for c in v) / len(v) if v else math.nan for v in ans_by_hour.values()]
    a.plot(mid, actual, color="black", lw=2.5, label="actual")
    a.plot(mid, [sum(abs(c.predicted[0] - c.wait) for c in v) / len(v) if v else math.nan
                 for v in ans_by_hour.values()], color="black", ls=":", label=f"mean |error| ({Method.RATE.value})")
    a.set_ylim(0, max([x for x in actual if x == x] + [1.0]) * 2.5)   # Erlang C runs off the top
    a.set_xlabel("hour of arrival")
    a.set_ylabel("s")
    a.set_title("mean wait per hour: announced (each method) vs actual")
    a.legend(loc="upper left", fontsize=8)

    for a in (ax[0][0], ax[0][1], ax[1][0], ax[1][1], ax[2][1]):
        a.set_xlim(t0 / H, t_end / H)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="simulate 9:00-11:00 only")
    ap.add_argument("--load", type=float, default=1.0, help="arrivals: the daily profile times this (default 1)")
    ap.add_argument("--plot", default=str(ROOT / "bench" / "results" / "acd_day.png"), help="PNG path; '' for none")
    args = ap.parse_args(argv)
    started = time.monotonic()
    if not 0 < args.load <= 3:
        ap.error("--load must be in (0, 3]")
    day = Day(args.seed, QUICK if args.quick else DAY, args.load)
    print(f"acd_day: seed {args.seed}, {clock(day.window[0])}-{clock(day.window[1])}, {len(day.agents)} agents",
          file=sys.stderr)
    day.run()
    elapsed = time.monotonic() - started
    if args.plot:
        draw(day, args.seed, Path(args.plot))
        print(f"acd_day: plot {args.plot}", file=sys.stderr)
    print(json.dumps(results(day, args.quick, args.seed, args.load, elapsed, args.plot), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
