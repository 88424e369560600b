"""The history writer against the real database: rows land, live state coalesces, nothing is lost."""

from __future__ import annotations

import time

from ctiserver.accounts import AccountStore
from ctiserver.history import HistoryWriter


async def _agent(db) -> int:
    account = await AccountStore(db.pool, scrypt_n=2**10).create("agent7", "agent-pass-7", kind="agent")
    await db.pool.execute("INSERT INTO cc.agents (account_id) VALUES ($1)", account.id)
    await db.pool.execute("INSERT INTO cc.projects (project) VALUES ('general')")
    return account.id


async def test_rows_land_and_live_state_coalesces(db) -> None:
    aid = await _agent(db)
    w = HistoryWriter(db.pool)
    t = time.time()
    w.session(aid, {"state": "ready", "since": t})
    w.session(aid, {"state": "busy", "since": t + 1})  # only the newest is written
    w.live_contact("k1", {"project": "general", "channel": "voice", "priority": 0, "enqueued_at": t,
                          "state": "queued"})
    w.live_contact("k2", {"project": "general", "channel": "voice", "priority": 0, "enqueued_at": t,
                          "state": "queued"})
    w.live_contact("k2", None)  # left the system in the same batch
    w.agent_interval(aid, "ready", "", "agent", t, t + 1)
    w.offer("k2", aid, t, t + 0.5, "answered")
    w.contact({"contact": "k2", "project": "general", "channel": "voice", "priority": 0, "enqueued_at": t,
               "first_offer_at": t, "answered_at": t + 0.5, "ended_at": t + 30, "outcome": "answered",
               "agent": aid, "data": {"ivr": "1"}})
    await w.flush()
    assert w.pending == 0
    pool = db.pool
    assert await pool.fetchval("SELECT state FROM cc.agent_sessions WHERE account_id = $1", aid) == "busy"
    assert [r["contact"] for r in await pool.fetch("SELECT contact FROM cc.contacts_live")] == ["k1"]
    row = await pool.fetchrow("SELECT * FROM cc.contact_history WHERE contact = 'k2'")
    assert row["outcome"] == "answered" and row["agent"] == aid
    assert await pool.fetchval("SELECT outcome FROM cc.offer_history WHERE contact = 'k2'") == "answered"
    assert await pool.fetchval("SELECT count(*) FROM cc.agent_state_history WHERE account_id = $1", aid) == 1


async def test_a_failed_flush_keeps_everything(db) -> None:
    aid = await _agent(db)
    w = HistoryWriter(db.pool)
    t = time.time()
    w.agent_interval(aid, "ready", "", "agent", t, t + 1)
    w.session(aid, {"state": "ready", "since": t})
    await db.pool.execute("ALTER TABLE cc.agent_state_history RENAME TO ash_away")  # the write will fail
    await w.flush()
    assert w.failures == 1 and w.pending == 2
    w.session(aid, {"state": "not_ready", "since": t + 2, "reason": "break"})  # newer than the failed one
    await db.pool.execute("ALTER TABLE cc.ash_away RENAME TO agent_state_history")
    await w.flush()
    assert w.pending == 0
    assert await db.pool.fetchval("SELECT state FROM cc.agent_sessions WHERE account_id = $1", aid) == "not_ready"
    assert await db.pool.fetchval("SELECT count(*) FROM cc.agent_state_history") == 1


async def test_a_row_the_database_refuses_does_not_block_the_others(db, caplog) -> None:
    aid = await _agent(db)
    w = HistoryWriter(db.pool)
    t = time.time()
    w.live_contact("bad", {"project": "no-such-project", "channel": "voice", "priority": 0, "enqueued_at": t,
                           "state": "queued"})  # foreign key violation
    w.live_contact("good", {"project": "general", "channel": "voice", "priority": 0, "enqueued_at": t,
                            "state": "queued"})
    w.agent_interval(aid, "ready", "", "agent", t, t + 1)
    await w.flush()
    assert w.pending == 0
    assert [r["contact"] for r in await db.pool.fetch("SELECT contact FROM cc.contacts_live")] == ["good"]
    assert await db.pool.fetchval("SELECT count(*) FROM cc.agent_state_history") == 1
    assert any(r.msg == "history.row_rejected" and "bad" in r.row for r in caplog.records)  # type: ignore[attr-defined]


async def test_a_contact_id_ending_twice_in_one_batch_is_written_once(db) -> None:
    """Ids may be used again once a contact ended; one batch then holds two rows for one id."""
    aid = await _agent(db)
    w = HistoryWriter(db.pool)
    t = time.time()
    for n, outcome in enumerate(("abandoned", "answered")):
        w.contact({"contact": "k9", "project": "general", "channel": "voice", "priority": n, "enqueued_at": t + n,
                   "ended_at": t + 10 + n, "outcome": outcome, "agent": aid})
    w.contact({"contact": "k10", "project": "general", "channel": "chat", "priority": 0, "enqueued_at": t,
               "ended_at": t + 1, "outcome": "callback"})
    await w.flush()
    assert w.pending == 0
    rows = {r["contact"]: r for r in await db.pool.fetch("SELECT * FROM cc.contact_history")}
    assert set(rows) == {"k9", "k10"} and rows["k10"]["outcome"] == "callback"
    # as the row-by-row upsert does: the first row, with the last one's end and outcome
    assert rows["k9"]["priority"] == 0 and rows["k9"]["outcome"] == "answered"
    assert abs(rows["k9"]["ended_at"].timestamp() - (t + 11)) < 1e-3
