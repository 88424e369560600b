"""The EWT estimator (ctiserver/acd/ewt.py) with a fake clock: cold start, learning, decay, bounds,
shared agents; and its feed from the real engine's actions."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.acd.engine import Engine
from ctiserver.acd.ewt import EwtConfig, EwtEstimator, EwtFeed, Method, erlang_c
from ctiserver.acd.model import AgentProfile, Contact, MissKind, Project

P = "general"
CFG = EwtConfig()  # defaults: AHT 300 s, ring 5 s, patience 300 s, tau 900 s
PATIENT = EwtConfig(default_patience=1e9)  # callers who never hang up: no abandonment in the formula


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t


def exact(ring: float, r: float, h: float, ahead: int, *, hold: bool = False) -> float:
    """The model's sum without the midpoint rule: ring + sum over the steps of 1/(rate of the step)."""
    first = 0 if hold else 1
    return ring + sum(1.0 / (r + h * i) for i in range(first, first + ahead + 1))


def busy_project(est: EwtEstimator, clock: Clock, serving: int, waiting: int, project: str = P) -> None:
    est.agents(project, serving, 0, clock())
    for _ in range(waiting):
        est.enqueued(project, clock())


# -- cold start -----------------------------------------------------------------------------------

def test_cold_start_is_the_capacity_model_with_documented_defaults() -> None:
    clock = Clock()
    est = EwtEstimator()
    busy_project(est, clock, serving=10, waiting=4)
    r, h = 10 / 300, 1 / 300   # N / default AHT; 1 / default patience
    assert est.ewt_new(P, clock(), Method.CAPACITY) == pytest.approx(5 * 300 / 10 + 5)
    assert est.ewt(P, 1, clock(), Method.CAPACITY) == pytest.approx(300 / 10 + 5)
    assert est.ewt(P, 1, clock(), Method.RATE_HOLD) == pytest.approx(300 / 10 + 5)
    assert est.ewt_new(P, clock(), Method.RATE_HOLD) == pytest.approx(exact(5, r, h, 4, hold=True), rel=1e-3)
    assert est.ewt_new(P, clock()) == pytest.approx(exact(5, r, h, 4), rel=1e-3)
    # the callers ahead may hang up, so deeper positions wait less than the capacity model says
    assert est.ewt_new(P, clock()) < est.ewt_new(P, clock(), Method.RATE_HOLD) < 5 * 300 / 10 + 5


def test_without_abandonment_rate_is_the_capacity_model_at_cold_start() -> None:
    clock = Clock()
    est = EwtEstimator(PATIENT)
    busy_project(est, clock, serving=10, waiting=4)
    for k in (1, 3, 5):
        assert est.ewt(P, k, clock()) == pytest.approx(k * 300 / 10 + 5, rel=1e-6)


def test_unknown_project_and_no_agents_answer_max_ewt() -> None:
    est = EwtEstimator(EwtConfig(max_ewt=1800.0))
    assert est.ewt_new("never-heard-of", 0.0) == 1800.0
    assert est.ewt("never-heard-of", 5, 0.0) == 1800.0
    assert est.stats("never-heard-of", 0.0).ewt_new == 1800.0
    assert not est._projects  # queries do not create state: only events do
    est.enqueued("nobody-serves", 1.0)
    assert est.ewt("nobody-serves", 1, 2.0) == 1800.0


def test_free_agent_means_only_the_ring_time() -> None:
    clock = Clock()
    est = EwtEstimator()
    est.agents(P, 10, 3, clock())
    assert est.ewt_new(P, clock()) == pytest.approx(CFG.default_ring)
    assert est.ewt(P, 3, clock()) == pytest.approx(CFG.default_ring)  # 3 free agents for positions 1..3
    assert est.ewt(P, 4, clock()) > 20  # the fourth waits for someone to finish
    for _ in range(20):
        est.answered(P, waited=2.0, ring=2.0, now=clock.advance(1))
    assert est.ewt_new(P, clock()) == pytest.approx((20 * 2 + 5) / 21, rel=0.01)


# -- learning and decay ---------------------------------------------------------------------------

def test_handle_time_is_learned_and_decays_back_to_the_default() -> None:
    clock = Clock()
    est = EwtEstimator()
    busy_project(est, clock, serving=20, waiting=0)
    for _ in range(200):
        est.handled(P, 120.0, clock.advance(2))
    assert est.stats(P, clock()).aht == pytest.approx(120.0, rel=0.02)
    assert est.ewt(P, 1, clock(), Method.CAPACITY) == pytest.approx(120 / 20 + 5, rel=0.02)
    # a quiet night: ten time constants later the prior is back in charge
    clock.advance(10 * CFG.tau)
    assert est.stats(P, clock()).aht == pytest.approx(300.0, rel=0.02)


def test_one_time_constant_weighs_one_over_e() -> None:
    clock = Clock()
    est = EwtEstimator(EwtConfig(aht_prior=1e-9))
    est.handled(P, 100.0, clock())
    clock.advance(CFG.tau)
    est.handled(P, 200.0, clock())
    w = math.exp(-1)
    assert est.stats(P, clock()).aht == pytest.approx((100 * w + 200) / (w + 1), rel=1e-6)


def test_observed_service_rate_overrides_the_capacity_model() -> None:
    """10 agents with a 300 s AHT should give 1 contact / 30 s; they give 1 / 10 s (short calls
    not yet reflected in the AHT): after an hour of backlog the estimate follows the observation."""
    clock = Clock()
    est = EwtEstimator(PATIENT)
    busy_project(est, clock, serving=10, waiting=5)
    for _ in range(360):
        est.offered(P, clock.advance(10))
        est.enqueued(P, clock())  # the queue stays at 5
    stats = est.stats(P, clock())
    # decayed offers and agent-seconds of the hour, shrunk towards 5 offers per 5 x 300 agent-seconds
    span = CFG.tau * (1 - math.exp(-3600 / CFG.tau))
    rate = 10 * (0.1 * span + 5) / (10 * span + 5 * 300)
    assert stats.service_rate == pytest.approx(rate, rel=0.01)
    assert 0.09 < rate < 0.1
    assert est.ewt(P, 1, clock()) == pytest.approx(1 / rate + 5, rel=0.01)
    assert est.ewt_new(P, clock()) == pytest.approx(6 / rate + 5, rel=0.01)
    assert est.ewt_new(P, clock(), Method.CAPACITY) == pytest.approx(6 * 30 + 5)


def test_shared_agents_serve_each_project_at_the_observed_share() -> None:
    """20 agents serve two projects; 'general' gets 3 of every 4 offers. Per-agent capacity 1/100 s."""
    clock = Clock()
    est = EwtEstimator(EwtConfig(default_aht=100.0, default_patience=1e9))
    for project in ("general", "payments"):
        busy_project(est, clock, serving=20, waiting=10, project=project)
    rng = random.Random(7)
    for _ in range(2000):  # total rate 20/100 = 0.2/s, one offer every 5 s
        project = "general" if rng.random() < 0.75 else "payments"
        est.offered(project, clock.advance(rng.expovariate(0.2)))
        est.enqueued(project, clock())
    general, payments = est.stats("general", clock()), est.stats("payments", clock())
    assert general.service_rate == pytest.approx(0.15, rel=0.1)
    assert payments.service_rate == pytest.approx(0.05, rel=0.15)
    # the capacity model would promise both 11 * 100 / 20 + 5 = 60 s
    assert est.ewt_new("general", clock(), Method.CAPACITY) == pytest.approx(60.0)
    assert est.ewt_new("general", clock()) == pytest.approx(11 / 0.15 + 5, rel=0.1)
    assert est.ewt_new("payments", clock()) == pytest.approx(11 / 0.05 + 5, rel=0.15)


def test_agents_logging_in_scale_the_estimate_at_once() -> None:
    clock = Clock()
    est = EwtEstimator(PATIENT)
    busy_project(est, clock, serving=10, waiting=5)
    for _ in range(100):
        est.offered(P, clock.advance(10))
        est.enqueued(P, clock())
    before = est.ewt(P, 5, clock())
    est.agents(P, 20, 0, clock())  # the second shift arrives
    assert est.ewt(P, 5, clock()) == pytest.approx(5 + (before - 5) / 2, rel=1e-6)


def test_offers_without_a_queue_say_nothing_about_capacity() -> None:
    """Contacts answered at once by free agents leave at the arrival rate: not counted."""
    clock = Clock()
    est = EwtEstimator()
    est.agents(P, 10, 10, clock())
    for _ in range(500):
        est.enqueued(P, clock.advance(1))
        est.offered(P, clock())  # same instant: no backlog
    est.agents(P, 10, 0, clock())
    est.enqueued(P, clock())
    assert est.stats(P, clock()).service_rate == pytest.approx(10 / 300)


def test_requeue_takes_back_the_offer() -> None:
    clock = Clock()
    est = EwtEstimator()
    busy_project(est, clock, serving=10, waiting=3)
    est.offered(P, clock.advance(5))
    est.requeued(P, clock.advance(20))  # ring timeout: the contact is back, nobody took it
    assert est.stats(P, clock()).waiting == 3
    # no offer counted over 25 s of backlog: the rate can only have fallen below the prior
    assert est.stats(P, clock()).service_rate < 10 / 300


def test_abandonment_is_measured_and_shortens_deep_positions() -> None:
    clock = Clock()
    est = EwtEstimator()
    busy_project(est, clock, serving=10, waiting=30)
    for _ in range(10):  # 10 abandonments over 30 contacts x 100 s of waiting
        clock.advance(10)
        est.abandoned(P, clock())
        est.enqueued(P, clock())
    stats = est.stats(P, clock())
    waited = 30 * CFG.patience_tau * (1 - math.exp(-100 / CFG.patience_tau))
    assert stats.abandon_hazard == pytest.approx((10 + 3) / (waited + 3 * 300), rel=0.02)
    assert stats.abandon_hazard > 1 / 300  # callers here are less patient than the default
    after = est.ewt(P, 30, clock())
    r, h = stats.service_rate, stats.abandon_hazard
    assert after == pytest.approx(exact(5, r, h, 29), rel=1e-3)
    assert est.ewt(P, 30, clock(), Method.RATE_HOLD) == pytest.approx(exact(5, r, h, 29, hold=True), rel=1e-3)
    assert after < 5 + 30 / r  # what the same service rate gives if nobody ahead hangs up
    assert stats.abandon_ratio == pytest.approx(10 / 40, rel=0.05)


def test_hang_up_while_ringing_is_lost_but_was_not_waiting() -> None:
    clock = Clock()
    est = EwtEstimator()
    busy_project(est, clock, serving=5, waiting=2)
    est.offered(P, clock.advance(10))
    est.abandoned(P, clock.advance(3), queued=False)
    stats = est.stats(P, clock())
    assert stats.waiting == 1 and stats.abandon_ratio == pytest.approx(0.5, rel=0.03)  # 13 s of decay
    est.overflowed(P, clock.advance(1))
    assert est.stats(P, clock()).waiting == 0


# -- baselines ------------------------------------------------------------------------------------

def test_erlang_c_known_values() -> None:
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=1e-4)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_c(100, 90.0) == pytest.approx(0.2169, abs=1e-4)
    assert erlang_c(10, 10.0) == 1.0
    assert erlang_c(10, 0.0) == 0.0
    assert erlang_c(0, 1.0) == 1.0


def test_erlang_c_method_uses_measured_arrivals_and_aht() -> None:
    clock = Clock(0.0)
    est = EwtEstimator(EwtConfig(tau=1e9, default_aht=100.0))  # no decay: plain averages
    est.agents(P, 10, 0, clock())
    for _ in range(800):  # 8 / 100 s = 8 erlangs on 10 agents
        est.enqueued(P, clock.advance(12.5))
        est.offered(P, clock())
    expected = 5 + erlang_c(10, 8.0) * 100 / 2
    assert est.ewt_new(P, clock(), Method.ERLANG_C) == pytest.approx(expected, rel=0.01)


def test_recent_method_is_the_rolling_mean_wait() -> None:
    clock = Clock()
    est = EwtEstimator()
    est.agents(P, 5, 0, clock())
    for w in (10.0, 20.0, 30.0):
        est.answered(P, waited=w, ring=3.0, now=clock())
    ring = (9 + 5) / 4
    assert est.ewt_new(P, clock(), Method.RECENT) == pytest.approx((60 + ring) / 4)
    assert est.stats(P, clock()).mean_wait == pytest.approx(20.0)


# -- bounds and robustness ------------------------------------------------------------------------

def test_bad_arguments_are_refused() -> None:
    est = EwtEstimator()
    with pytest.raises(ValueError):
        est.ewt(P, 0, 0.0)  # positions count from 1, as Engine.position does
    with pytest.raises(ValueError):
        est.agents(P, 3, 4, 0.0)
    with pytest.raises(ValueError):
        EwtConfig(tau=0.0)
    with pytest.raises(ValueError):
        EwtConfig(default_ring=-1.0)
    with pytest.raises(ValueError):
        EwtConfig(default_patience=math.inf)


def test_clock_stepping_back_counts_as_no_time() -> None:
    est = EwtEstimator()
    est.agents(P, 10, 0, 100.0)
    est.enqueued(P, 100.0)
    before = est.stats(P, 100.0)
    est.enqueued(P, 50.0)  # behind the last event
    after = est.stats(P, 100.0)
    assert after.waiting == 2 and after.arrival_rate == before.arrival_rate
    assert est.ewt(P, 1, 50.0) == est.ewt(P, 1, 100.0)


def test_queue_never_goes_negative_and_forget_resets() -> None:
    est = EwtEstimator()
    est.agents(P, 1, 0, 0.0)
    est.offered(P, 1.0)
    est.abandoned(P, 2.0)
    assert est.stats(P, 3.0).waiting == 0
    est.handled(P, 10.0, 3.0)
    est.forget(P)
    assert est.stats(P, 4.0).aht == CFG.default_aht


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["agents", "enqueued", "requeued", "offered", "abandoned", "overflowed", "answered",
                         "handled"]),
        st.floats(0.0, 600.0),   # time step
        st.integers(0, 50),      # serving / seconds
        st.integers(0, 50),      # idle
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.sampled_from(list(Method)))
def test_any_event_sequence_gives_finite_bounded_monotone_answers(events, method) -> None:
    est = EwtEstimator()
    t = 0.0
    for name, dt, a, b in events:
        t += dt
        if name == "agents":
            est.agents(P, a, min(a, b), t)
        elif name == "answered":
            est.answered(P, float(a), float(b), t)
        elif name == "handled":
            est.handled(P, float(a) * 10, t)
        else:
            getattr(est, name)(P, t)
    values = [est.ewt(P, k, t, method) for k in (1, 2, 3, 6, 21, 101, 10_000)]
    assert all(math.isfinite(v) and 0.0 <= v <= CFG.max_ewt for v in values)
    assert values == sorted(values)  # never shorter further back
    assert 0.0 <= est.ewt_new(P, t, method) <= CFG.max_ewt
    assert est.stats(P, t).waiting >= 0


# -- the feed, driven by the real engine ----------------------------------------------------------

class Centre:
    """An engine with 'general' and 'payments'; a1 general, a2 both (shared), a3 payments."""

    def __init__(self) -> None:
        self.engine = Engine(miss_limits=0)
        self.est = EwtEstimator()
        self.feed = EwtFeed(self.est, lambda aid: self.engine.agent(aid).projects)
        self.engine.upsert_project(Project("general", required_skills={"general": 1}, wrap_up_seconds=30.0), 0.0)
        self.engine.upsert_project(Project("payments", required_skills={"payments": 1}, wrap_up_seconds=30.0), 0.0)
        for aid, skills in (("a1", {"general": 1}), ("a2", {"general": 1, "payments": 1}), ("a3", {"payments": 1})):
            self.engine.upsert_agent(AgentProfile(aid, skills=skills), 0.0)

    def do(self, actions: list) -> list:
        self.feed.observe(actions)
        return actions

    def counts(self, project: str, now: float) -> tuple[int, int, int]:
        s = self.est.stats(project, now)
        return s.serving, s.idle, s.waiting

    def start(self, now: float) -> None:
        for aid in ("a1", "a2", "a3"):
            self.do(self.engine.login(aid, now))
            self.do(self.engine.ready(aid, now))


def test_feed_counts_shared_agents_in_every_project_they_serve() -> None:
    c = Centre()
    c.start(0.0)
    assert c.counts("general", 0.0) == (2, 2, 0)
    assert c.counts("payments", 0.0) == (2, 2, 0)
    c.do(c.engine.not_ready("a2", 5.0, "break"))
    assert c.counts("general", 5.0) == (1, 1, 0) and c.counts("payments", 5.0) == (1, 1, 0)
    c.do(c.engine.ready("a2", 6.0))
    c.do(c.engine.logout("a3", 7.0))
    assert c.counts("general", 7.0) == (2, 2, 0) and c.counts("payments", 7.0) == (1, 1, 0)


def test_feed_measures_ring_handle_time_and_queue() -> None:
    c = Centre()
    c.start(0.0)
    offers = [a for a in c.do(c.engine.enqueue(Contact("c1", "general", enqueued_at=10.0), 10.0))
              if type(a).__name__ == "Offer"]
    agent = offers[0].agent_id
    assert c.counts("general", 10.0)[1:] == (1, 0)   # one agent reserved, the contact left the queue at once
    c.do(c.engine.accept(agent, "c1", 12.0))
    assert c.est.stats("general", 12.0).ring == pytest.approx((2.0 + 5.0) / 2)
    c.do(c.engine.end_contact(agent, "c1", 112.0))
    c.do(c.engine.end_wrap_up(agent, 122.0))
    assert c.est.stats("general", 122.0).aht == pytest.approx((110 + 2 * 300) / 3)
    assert c.counts("general", 122.0) == (2, 2, 0)


def test_feed_drops_an_agent_about_to_go_on_break() -> None:
    """A busy agent with a pending not-ready finishes his call but takes no other: not serving."""
    c = Centre()
    c.start(0.0)
    c.do(c.engine.not_ready("a1", 0.0, "break"))
    offer = next(a for a in c.do(c.engine.enqueue(Contact("c1", "general"), 1.0)) if type(a).__name__ == "Offer")
    assert offer.agent_id == "a2"
    c.do(c.engine.accept("a2", "c1", 2.0))
    assert c.counts("general", 2.0) == (1, 0, 0)
    c.do(c.engine.not_ready("a2", 3.0, "lunch"))   # pending until his work ends
    assert c.counts("general", 3.0) == (0, 0, 0) and c.counts("payments", 3.0) == (1, 1, 0)
    c.do(c.engine.ready("a2", 4.0))                # changed his mind: serving again
    assert c.counts("general", 4.0) == (1, 0, 0)
    c.do(c.engine.not_ready("a2", 5.0, "lunch"))
    c.do(c.engine.end_contact("a2", "c1", 6.0))
    c.do(c.engine.end_wrap_up("a2", 7.0))          # -> NOT_READY
    assert c.counts("general", 7.0) == (0, 0, 0) and c.counts("payments", 7.0) == (1, 1, 0)


def test_feed_follows_queue_abandonment_and_requeue() -> None:
    c = Centre()
    c.start(0.0)
    c.do(c.engine.not_ready("a1", 0.0, "break"))
    c.do(c.engine.not_ready("a2", 0.0, "break"))
    c.do(c.engine.enqueue(Contact("c1", "general"), 1.0))
    c.do(c.engine.enqueue(Contact("c2", "general"), 2.0))
    assert c.counts("general", 2.0) == (0, 0, 2)
    assert c.est.ewt_new("general", 2.0) == CFG.max_ewt    # nobody serves general now
    c.do(c.engine.cancel("c2", 30.0))
    assert c.counts("general", 30.0) == (0, 0, 1)
    c.do(c.engine.ready("a1", 40.0))                       # takes c1 at once
    assert c.counts("general", 40.0) == (1, 0, 0)
    c.do(c.engine.offer_failed("a1", "c1", 55.0, MissKind.NO_ANSWER))   # back in the queue, then a1 again
    assert c.counts("general", 55.0)[2] == 0
    c.do(c.engine.not_ready("a1", 56.0, "break"))          # withdraws the offer: c1 waits again
    assert c.counts("general", 56.0) == (0, 0, 1)
    stats = c.est.stats("general", 56.0)
    assert stats.abandon_ratio == pytest.approx(0.5, rel=0.05)
