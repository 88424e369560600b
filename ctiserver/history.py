"""Batched writes of ACD state and history to the database, off the routing path.

The engine decides in microseconds; a database round trip takes a millisecond. So the service hands
every change to a :class:`HistoryWriter`, which writes them in one transaction every
``flush_interval`` seconds (0.05 by default: a batch of 0.25 s at 2,000 contacts/s took long enough to
encode to double the p99 offer latency of bench/acd_e2e.py), or sooner when many are waiting:

- history rows are written once, when they are complete (an agent's state interval when it ends,
  a contact when it leaves the system, an offer when it is answered, missed or cancelled): plain
  inserts, so their order does not matter;
- live state (agent sessions, contacts still in the system: what another node needs to resume) is
  coalesced per key: only the newest row of each agent and contact is written, or its deletion.

Nothing is dropped: if the database is unreachable the rows stay queued and the next flush retries;
past ``max_pending`` rows the writer logs an error on every flush (the operator must act), but still
keeps them. ``close()`` flushes what is left.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

log = logging.getLogger("ctiserver.history")

_AGENT_INTERVAL = """INSERT INTO cc.agent_state_history (account_id, state, reason, cause, started_at, ended_at)
                     VALUES ($1, $2, $3, $4, $5, $6)"""
_OFFER = """INSERT INTO cc.offer_history (contact, account_id, offered_at, ended_at, outcome)
            VALUES ($1, $2, $3, $4, $5)"""
_CONTACT = """INSERT INTO cc.contact_history (contact, project, channel, priority, enqueued_at, first_offer_at,
                                              answered_at, ended_at, outcome, agent, data)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
              ON CONFLICT (contact) DO UPDATE SET ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome"""
_SESSION_UPSERT = """INSERT INTO cc.agent_sessions (account_id, workplace, state, reason, since, node)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (account_id) DO UPDATE SET workplace = EXCLUDED.workplace, state = EXCLUDED.state,
                         reason = EXCLUDED.reason, since = EXCLUDED.since, node = EXCLUDED.node"""
_SESSION_DELETE = "DELETE FROM cc.agent_sessions WHERE account_id = $1"
_LIVE_UPSERT = """INSERT INTO cc.contacts_live (contact, project, channel, priority, enqueued_at, state, agent,
                                                preferred_agent, data, owner)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                  ON CONFLICT (contact) DO UPDATE SET project = EXCLUDED.project, state = EXCLUDED.state,
                      agent = EXCLUDED.agent, priority = EXCLUDED.priority"""
_LIVE_DELETE = "DELETE FROM cc.contacts_live WHERE contact = $1"
_CALL = """INSERT INTO cc.call_history (call, caller, pilot, agent, started_at, answered_at, ended_at, connected, cause)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (call) DO NOTHING"""
_LEG = """INSERT INTO cc.call_legs (leg, call, kind, agent, peer, started_at, ringing_at, answered_at, ended_at, status,
                                  cause)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (leg) DO NOTHING"""

# The same, for a whole batch, as ONE statement: each kind of row becomes a data-modifying CTE whose
# columns arrive as arrays (``unnest``). One round trip instead of ~10 (BEGIN, a statement per kind,
# COMMIT): on a busy event loop every await costs a loop iteration, and a single statement is atomic
# by itself. Empty arrays insert nothing. A batch the database refuses is retried row by row with the
# statements above, so one bad row cannot hold back the others.
_BATCH = """
WITH intervals AS (
    INSERT INTO cc.agent_state_history (account_id, state, reason, cause, started_at, ended_at)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])),
offers AS (
    INSERT INTO cc.offer_history (contact, account_id, offered_at, ended_at, outcome)
    SELECT * FROM unnest($7::text[], $8::bigint[], $9::timestamptz[], $10::timestamptz[], $11::text[])),
contacts AS (
    INSERT INTO cc.contact_history (contact, project, channel, priority, enqueued_at, first_offer_at, answered_at,
                                    ended_at, outcome, agent, data)
    SELECT c, p, ch, pr, e, f, a, en, o, ag, d::jsonb
    FROM unnest($12::text[], $13::text[], $14::text[], $15::smallint[], $16::timestamptz[], $17::timestamptz[],
                $18::timestamptz[], $19::timestamptz[], $20::text[], $21::bigint[], $22::text[])
         AS t(c, p, ch, pr, e, f, a, en, o, ag, d)
    ON CONFLICT (contact) DO UPDATE SET ended_at = EXCLUDED.ended_at, outcome = EXCLUDED.outcome),
sessions AS (
    INSERT INTO cc.agent_sessions (account_id, workplace, state, reason, since, node)
    SELECT * FROM unnest($23::bigint[], $24::integer[], $25::text[], $26::text[], $27::timestamptz[], $28::text[])
    ON CONFLICT (account_id) DO UPDATE SET workplace = EXCLUDED.workplace, state = EXCLUDED.state,
        reason = EXCLUDED.reason, since = EXCLUDED.since, node = EXCLUDED.node),
sessions_gone AS (
    DELETE FROM cc.agent_sessions WHERE account_id = ANY($29::bigint[])),
live AS (
    INSERT INTO cc.contacts_live (contact, project, channel, priority, enqueued_at, state, agent, preferred_agent,
                                  data, owner)
    SELECT c, p, ch, pr, e, st, ag, pa, d::jsonb, o
    FROM unnest($30::text[], $31::text[], $32::text[], $33::smallint[], $34::timestamptz[], $35::text[],
                $36::bigint[], $37::bigint[], $38::text[], $39::text[]) AS t(c, p, ch, pr, e, st, ag, pa, d, o)
    ON CONFLICT (contact) DO UPDATE SET project = EXCLUDED.project, state = EXCLUDED.state, agent = EXCLUDED.agent,
        priority = EXCLUDED.priority),
live_gone AS (
    DELETE FROM cc.contacts_live WHERE contact = ANY($40::text[])),
calls AS (
    INSERT INTO cc.call_history (call, caller, pilot, agent, started_at, answered_at, ended_at, connected, cause)
    SELECT * FROM unnest($41::text[], $42::text[], $43::text[], $44::bigint[], $45::timestamptz[],
                         $46::timestamptz[], $47::timestamptz[], $48::boolean[], $49::text[])
    ON CONFLICT (call) DO NOTHING),
legs AS (
    INSERT INTO cc.call_legs (leg, call, kind, agent, peer, started_at, ringing_at, answered_at, ended_at, status,
                              cause)
    SELECT * FROM unnest($50::text[], $51::text[], $52::text[], $53::bigint[], $54::text[], $55::timestamptz[],
                         $56::timestamptz[], $57::timestamptz[], $58::timestamptz[], $59::integer[], $60::text[])
    ON CONFLICT (leg) DO NOTHING)
SELECT 1"""
_WIDTHS = (6, 5, 11, 6, 1, 10, 1, 9, 11)   # columns of each group, in the order of the parameters above


def _columns(groups: list[tuple[str, list]]) -> list[list]:
    """The batch statement's 40 arguments: each group's rows turned into column arrays."""
    args: list[list] = []
    for (_, rows), width in zip(groups, _WIDTHS, strict=True):
        args.extend(map(list, zip(*rows, strict=True)) if rows else ([] for _ in range(width)))
    return args


def _once_per_contact(rows: list[tuple]) -> list[tuple]:
    """One row per contact id (an id may end twice within one batch when it is used again): what
    the row-by-row upsert would leave — the first row, with the last one's end and outcome."""
    seen: dict[str, tuple] = {}
    for r in rows:
        first = seen.get(r[0])
        seen[r[0]] = r if first is None else (*first[:7], r[7], r[8], *first[9:])
    return list(seen.values()) if len(seen) < len(rows) else rows


def ts(unix: float | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


class HistoryWriter:
    def __init__(self, pool: asyncpg.Pool, *, flush_interval: float = 0.05, max_pending: int = 1_000_000) -> None:
        self.pool = pool
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._intervals: list[tuple] = []
        self._offers: list[tuple] = []
        self._contacts: list[tuple] = []
        self._sessions: dict[int, tuple | None] = {}   # account -> newest session row, None = delete
        self._live: dict[str, tuple | None] = {}       # contact -> newest live row, None = delete
        self._calls: list[tuple] = []
        self._legs: list[tuple] = []
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task | None = None
        self.written = 0
        self.failures = 0

    # ---- what the service records ---------------------------------------------------------------
    def agent_interval(self, account_id: int, state: str, reason: str, cause: str,
                       started: float, ended: float) -> None:
        self._intervals.append((account_id, state, reason, cause, ts(started), ts(ended)))
        self._nudge()

    def offer(self, contact: str, account_id: int, offered: float, ended: float, outcome: str) -> None:
        self._offers.append((contact, account_id, ts(offered), ts(ended), outcome))
        self._nudge()

    def contact(self, c: Mapping[str, Any]) -> None:
        """A contact that left the system (answered and ended, abandoned, overflowed out, cancelled)."""
        self._contacts.append((c["contact"], c["project"], c["channel"], c["priority"], ts(c["enqueued_at"]),
                               ts(c.get("first_offer_at")), ts(c.get("answered_at")), ts(c.get("ended_at")),
                               c.get("outcome"), c.get("agent"), c.get("data_json") or json.dumps(c.get("data") or {})))
        self._nudge()

    def call(self, call: str, caller: str, pilot: str, agent: int | None, started: float, answered: float | None,
             ended: float, connected: bool, cause: str) -> None:
        """A telephone call that ended (cc.call_history)."""
        self._calls.append((call, caller, pilot, agent, ts(started), ts(answered), ts(ended), connected, cause))
        self._nudge()

    def leg(self, leg: str, call: str, kind: str, agent: int | None, peer: str, started: float,
            ringing: float | None, answered: float | None, ended: float, status: int | None, cause: str) -> None:
        """One leg of a call that ended (cc.call_legs)."""
        self._legs.append((leg, call, kind, agent, peer, ts(started), ts(ringing), ts(answered), ts(ended), status,
                           cause))
        self._nudge()

    def session(self, account_id: int, row: Mapping[str, Any] | None) -> None:
        self._sessions[account_id] = None if row is None else (
            account_id, row.get("workplace"), row["state"], row.get("reason", ""), ts(row["since"]),
            row.get("node", ""))
        self._nudge()

    def durable(self) -> asyncio.Future[None]:
        """A future that completes when everything recorded so far is committed (group commit:
        callers that must not answer before their row is safe, such as an enqueue, await it)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake.set()
        return fut

    def live_contact(self, contact: str, row: Mapping[str, Any] | None) -> None:
        self._live[contact] = None if row is None else (
            contact, row["project"], row["channel"], row["priority"], ts(row["enqueued_at"]), row["state"],
            row.get("agent"), row.get("preferred_agent"), row.get("data_json") or json.dumps(row.get("data") or {}),
            row.get("owner", ""))
        self._nudge()

    @property
    def pending(self) -> int:
        return (len(self._intervals) + len(self._offers) + len(self._contacts) + len(self._sessions) + len(self._live)
                + len(self._calls) + len(self._legs))

    def _nudge(self) -> None:
        if self.pending >= 5_000:
            self._wake.set()

    # ---- the writing task -----------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        waiters, self._waiters = self._waiters, []
        if not self.pending:
            self._release(waiters)
            return
        intervals, offers, contacts = self._intervals, self._offers, self._contacts
        sessions, live, calls, legs = self._sessions, self._live, self._calls, self._legs
        self._intervals, self._offers, self._contacts, self._sessions, self._live = [], [], [], {}, {}
        self._calls, self._legs = [], []
        groups = [
            (_AGENT_INTERVAL, intervals), (_OFFER, offers), (_CONTACT, _once_per_contact(contacts)),
            (_SESSION_UPSERT, [r for r in sessions.values() if r is not None]),
            (_SESSION_DELETE, [(k,) for k, r in sessions.items() if r is None]),
            (_LIVE_UPSERT, [r for r in live.values() if r is not None]),
            (_LIVE_DELETE, [(k,) for k, r in live.items() if r is None]),
            (_CALL, calls), (_LEG, legs),
        ]
        try:
            await self.pool.execute(_BATCH, *_columns(groups))
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            # a row the database will never take: write the others one by one, report the bad ones
            log.error("history.bad_rows", extra={"reason": str(exc)[:200]})
            await self._row_by_row(groups)
            self._release(waiters)
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            # keep everything for the next attempt, newer live rows winning over the ones we failed to write
            self.failures += 1
            self._intervals[:0], self._offers[:0], self._contacts[:0] = intervals, offers, contacts
            self._calls[:0], self._legs[:0] = calls, legs
            self._sessions = {**sessions, **self._sessions}
            self._live = {**live, **self._live}
            level = logging.ERROR if self.pending > self.max_pending else logging.WARNING
            log.log(level, "history.flush_failed", extra={"pending": self.pending, "reason": str(exc)[:200]})
            self._release(waiters, exc)
            return
        self.written += (len(intervals) + len(offers) + len(contacts) + len(sessions) + len(live) + len(calls)
                         + len(legs))
        self._release(waiters)

    @staticmethod
    def _release(waiters: list[asyncio.Future[None]], exc: BaseException | None = None) -> None:
        for fut in waiters:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

    async def _row_by_row(self, groups: list[tuple[str, list]]) -> None:
        async with self.pool.acquire() as conn:
            for sql, rows in groups:
                for row in rows:
                    try:
                        await conn.execute(sql, *row)
                        self.written += 1
                    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                        # not silently lost: the whole row goes to the log for an operator to replay
                        log.error("history.row_rejected", extra={"sql": sql.split("(")[0].strip(),
                                                                 "row": repr(row)[:1000], "reason": str(exc)[:200]})

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()
