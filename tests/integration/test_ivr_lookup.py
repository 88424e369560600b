"""The EHIC check (IVR-3) through the real engine and a real HTTP server: the demo flow's lookup
against the register stand-in (ivr_engine/ehic_mock.py) on loopback, one card number per answer:
each validity code A, N, P, Y, X, the negative codes, a timeout, malformed JSON and an HTTP error."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from ctiserver.settings import IvrSettings
from ivr_engine import ehic_mock
from ivr_engine.engine import IvrEngine, Run
from ivr_engine.flow import load_flow_file
from ivr_engine.interp import Digit, Session
from ivr_engine.sip_side import IvrCall

DEMO = load_flow_file(Path(__file__).resolve().parents[2] / "flows" / "demo.toml")


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    runner, port = await ehic_mock.serve("127.0.0.1", 0)
    settings = IvrSettings(prompts=str(tmp_path / "no-prompts"), tts="", variables=(
        "demo_project=general", "demo_always_open=1", f"ehic_base=http://127.0.0.1:{port}{ehic_mock.BASE}"))
    eng = IvrEngine(settings, "unused")
    eng.http = aiohttp.ClientSession()
    yield eng, runner
    await eng.http.close()
    await runner.cleanup()


async def walk_to_the_answer(eng: IvrEngine, card: str) -> list[str]:
    """A caller at the demo flow presses 2, types ``card`` and #; the steps he went through until
    the flow rests after the check. (No media here: a prompt that cannot be loaded counts as played.)"""
    call = cast(IvrCall, type("Call", (), {"id": f"k{card}", "caller": "420271004245", "pilot": "100"})())
    run = Run(call, DEMO, None, 0)
    run.session = Session(DEMO, caller=call.caller, pilot="100", call_id=call.id, variables=eng.variables)
    eng.runs[call.id] = run
    eng._perform(run, run.session.start(time.time()))

    async def rest_at(stage: str, timeout: float = 8.0) -> None:
        for _ in range(int(timeout / 0.01)):
            assert run.session is not None
            if run.session.stage == stage and not run.session._playing:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"not at {stage}: {run.session.path if run.session else None}")

    await rest_at("menu")
    eng._event(run, Digit("2"))
    await rest_at("ehic_card")
    for d in card + "#":
        eng._event(run, Digit(d))
    await rest_at("after_ehic")
    assert run.session is not None
    return run.session.path


@pytest.mark.parametrize(("card", "answer"), [
    ("123456780", "ehic_a"), ("123456789", "ehic_a"), ("123456781", "ehic_n"), ("123456782", "ehic_p"),
    ("123456783", "ehic_y"), ("123456784", "ehic_x"),
    ("123456785", "ehic_error"),   # Priznak -1: technical error
    ("000123450", "ehic_error"),   # Priznak -2: bad input
    ("123456787", "ehic_error"),   # malformed JSON
    ("123456788", "ehic_error"),   # HTTP 500
])
async def test_each_answer_of_the_register_plays_its_prompt(engine: Any, card: str, answer: str) -> None:
    eng, runner = engine
    path = await walk_to_the_answer(eng, card)
    assert path[-2:] == [answer, "after_ehic"], path
    assert runner.app[ehic_mock.SEEN] == [card]
    assert eng.stats["lookups"] == 1


async def test_a_register_that_does_not_answer_in_time_plays_the_error_prompt(engine: Any) -> None:
    eng, _ = engine
    started = time.monotonic()
    path = await walk_to_the_answer(eng, "123456786")   # the stand-in sleeps 30 s; the flow waits 3 s
    assert path[-2:] == ["ehic_error", "after_ehic"] and "ehic_lookup" in path
    assert 2.9 < time.monotonic() - started < 6.0
