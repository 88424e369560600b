"""Reconnect and resume: missed events arrive exactly once and in order, or as a fresh snapshot."""

from __future__ import annotations

import asyncio
import dataclasses

from ctiserver.app import App
from simprot.client import SimProtClient
from tests.integration.conftest import ADMIN, ADMIN_PW, AGENT, AGENT_PW, Core


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def recorder() -> tuple[list, list, callable, callable]:
    events: list[tuple[int, str]] = []
    snapshots: list[dict] = []
    return (events, snapshots, lambda t, s, n, d: events.append((s, d["text"])),
            lambda t, snap: snapshots.append(snap))


async def test_reconnect_replays_missed_events_exactly_once(core: Core) -> None:
    events, snapshots, on_event, on_snapshot = recorder()
    agent = SimProtClient([core.address], user=AGENT, password=AGENT_PW, backoff_initial=0.6, backoff_max=0.6)
    await agent.connect()
    await agent.subscribe("messages", on_event, on_snapshot)
    sup = await core.connected()
    for i in range(3):
        await sup.request("messages.send", {"text": f"before-{i}"})
    await wait_for(lambda: len(events) == 3)
    agent._proto.transport.abort()  # type: ignore[union-attr]  # the network drops
    await wait_for(lambda: not agent.connected.is_set())
    for i in range(5):
        await sup.request("messages.send", {"text": f"missed-{i}"})
    await wait_for(lambda: agent.connected.is_set())
    for i in range(2):
        await sup.request("messages.send", {"text": f"after-{i}"})
    await wait_for(lambda: len(events) == 10)
    await asyncio.sleep(0.1)
    assert [s for s, _ in events] == list(range(1, 11))
    assert [t for _, t in events] == [f"before-{i}" for i in range(3)] + [f"missed-{i}" for i in range(5)] + [
        f"after-{i}" for i in range(2)]
    assert len(snapshots) == 1  # only the first subscribe; the resume was a replay
    assert agent.reconnects == 1
    await agent.close()
    await sup.close()


async def test_gap_older_than_the_buffer_gets_a_snapshot(core_factory) -> None:
    core = await core_factory(event_buffer=10)
    events, snapshots, on_event, on_snapshot = recorder()
    agent = SimProtClient([core.address], user=AGENT, password=AGENT_PW, backoff_initial=0.6, backoff_max=0.6)
    await agent.connect()
    await agent.subscribe("messages", on_event, on_snapshot)
    sup = await core.connected()
    agent._proto.transport.abort()  # type: ignore[union-attr]
    await wait_for(lambda: not agent.connected.is_set())
    await sup.request_many("messages.send", [{"text": f"m{i}"} for i in range(30)])
    await wait_for(lambda: len(snapshots) == 2)
    await sup.request("messages.send", {"text": "live"})
    await wait_for(lambda: len(events) == 1)
    assert events == [(31, "live")]
    assert [m["text"] for m in snapshots[1]["recent"]][-3:] == ["m27", "m28", "m29"]
    await agent.close()
    await sup.close()


async def test_server_restart_resumes_sessions_with_a_snapshot(core: Core) -> None:
    """A restarted server has a new epoch: the client logs in again with its token and gets snapshots."""
    events, snapshots, on_event, on_snapshot = recorder()
    agent = SimProtClient([core.address], user=AGENT, password=AGENT_PW, backoff_initial=0.1, backoff_max=0.3)
    await agent.connect()
    first_epoch = agent.hello["epoch"]
    await agent.subscribe("messages", on_event, on_snapshot)
    agent.password = None  # from now on only the token can log it in
    app = core.app
    port = app.simprot_address[1]
    await app.stop(grace=0.5)
    settings = dataclasses.replace(app.settings, simprot=dataclasses.replace(app.settings.simprot, port=port))
    again = App(settings, scrypt_n=2**10)
    await again.start()
    try:
        await wait_for(lambda: agent.connected.is_set() and agent.hello["epoch"] != first_epoch, timeout=10)
        assert len(snapshots) == 2
        sup = SimProtClient([f"127.0.0.1:{port}"], user=ADMIN, password=ADMIN_PW, reconnect=False)
        await sup.connect()
        await sup.request("messages.send", {"text": "after restart"})
        await wait_for(lambda: events == [(1, "after restart")])
        await sup.close()
        await agent.close()
    finally:
        await again.stop(grace=0.5)
