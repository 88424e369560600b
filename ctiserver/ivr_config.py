"""The IVR's configuration in the core: call flows and holidays (IVR-1, IVR-2), and the record of
each IVR session (docs/ivr.md).

The core owns the database; the ivr-engine talks only SIP and SimProt (ARCHITECTURE.md). So the
flows live in ``cc.ivr_flows`` and are changed here (``ivr.flow.put``, validated by
:func:`ivr_engine.flow.parse_flow`, whose errors name the step and field), the IVR fetches them
with the holidays (``ivr.config``) at start and every ``ivr.config_refresh`` seconds, and reports
each session when it ends (``ivr.session``), so a caller who hung up is on record with the stage
he reached.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import asyncpg

from ivr_engine.flow import FlowError, load_flow_file, parse_flow
from simprot.errors import ErrorCode, RequestError
from simprot.server import Connection, Operation

log = logging.getLogger("ctiserver.ivr")

DEMO_FLOWS = Path(__file__).resolve().parent.parent / "flows"
OUTCOMES = frozenset({"bridged", "abandoned", "abandoned_queued", "transferred", "completed", "ended", "error",
                      "callback"})


def _text(args: dict, name: str, limit: int = 200, required: bool = True) -> str:
    value = args.get(name, "" if not required else None)
    if type(value) is not str or (required and not value) or len(value) > limit:
        raise RequestError(ErrorCode.INVALID_ARGUMENT, f"{name}: text of 1..{limit} characters", {"field": name})
    return value


def _day(args: dict) -> dt.date:
    try:
        return dt.date.fromisoformat(_text(args, "day", 10))
    except ValueError:
        raise RequestError(ErrorCode.INVALID_ARGUMENT, "day: expected YYYY-MM-DD", {"field": "day"}) from None


def _time(args: dict, name: str) -> dt.datetime:
    value = args.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 2**33:
        raise RequestError(ErrorCode.INVALID_ARGUMENT, f"{name}: unix time in seconds", {"field": name})
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


class IvrConfig:
    def __init__(self, pool: asyncpg.Pool, node: str = "") -> None:
        self.pool = pool
        self.node = node

    def operations(self) -> list[Operation]:
        return [Operation("ivr.config", self.op_config, "contacts.enqueue"),
                Operation("ivr.session", self.op_session, "contacts.enqueue"),
                Operation("ivr.sessions", self.op_sessions, "acd.supervise"),
                Operation("ivr.flows", self.op_flows, "ivr.configure"),
                Operation("ivr.flow.get", self.op_flow_get, "ivr.configure"),
                Operation("ivr.flow.put", self.op_flow_put, "ivr.configure"),
                Operation("ivr.flow.delete", self.op_flow_delete, "ivr.configure"),
                Operation("ivr.holidays", self.op_holidays, "ivr.configure"),
                Operation("ivr.holiday.put", self.op_holiday_put, "ivr.configure"),
                Operation("ivr.holiday.delete", self.op_holiday_delete, "ivr.configure")]

    # ---- what the IVR reads and reports -----------------------------------------------------------
    async def op_config(self, conn: Connection, args: dict) -> dict:
        flows = await self.pool.fetch("SELECT definition FROM cc.ivr_flows ORDER BY name")
        days = await self.pool.fetch("SELECT day FROM cc.holidays ORDER BY day")
        return {"flows": [json.loads(r["definition"]) for r in flows],
                "holidays": [r["day"].isoformat() for r in days]}

    async def op_session(self, conn: Connection, args: dict) -> dict:
        outcome = _text(args, "outcome", 40)
        if outcome not in OUTCOMES:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, f"outcome: one of {', '.join(sorted(OUTCOMES))}",
                               {"field": "outcome"})
        row = (_text(args, "contact", 64), _text(args, "flow", 40), _text(args, "caller", 64, False),
               _text(args, "pilot", 20, False), _time(args, "started"), _time(args, "ended"),
               _text(args, "stage", 40), _text(args, "path", 4400, False), outcome, self.node)
        await self.pool.execute("""INSERT INTO cc.ivr_sessions (contact, flow, caller, pilot, started, ended, stage,
                                   path, outcome, node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""", *row)
        return {"contact": row[0], "recorded": True}

    async def op_sessions(self, conn: Connection, args: dict) -> dict:
        """The latest IVR sessions (newest first) and, over the last ``hours``, how many ended how,
        per flow: where callers give up, how many reach an agent."""
        limit = args.get("limit", 20)
        hours = args.get("hours", 24)
        if type(limit) is not int or not 0 <= limit <= 1000:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "limit: 0..1000", {"field": "limit"})
        if not isinstance(hours, int | float) or isinstance(hours, bool) or not 0 < hours <= 24 * 366:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "hours: more than 0, at most a year", {"field": "hours"})
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=float(hours))
        rows = await self.pool.fetch("""SELECT contact, flow, caller, pilot, started, ended, stage, outcome
                                        FROM cc.ivr_sessions ORDER BY ended DESC, id DESC LIMIT $1""", limit)
        counts = await self.pool.fetch("""SELECT flow, outcome, count(*) AS n FROM cc.ivr_sessions WHERE ended >= $1
                                          GROUP BY flow, outcome ORDER BY flow, outcome""", since)
        return {"sessions": [{**dict(r), "started": r["started"].timestamp(), "ended": r["ended"].timestamp(),
                              "seconds": round((r["ended"] - r["started"]).total_seconds(), 1)} for r in rows],
                "outcomes": [dict(r) for r in counts], "hours": hours}

    # ---- administration ------------------------------------------------------------------------------
    async def op_flows(self, conn: Connection, args: dict) -> dict:
        rows = await self.pool.fetch("SELECT name, definition, updated_at, updated_by FROM cc.ivr_flows ORDER BY name")
        return {"flows": [{"name": r["name"], "pilots": json.loads(r["definition"]).get("pilots", []),
                           "steps": len(json.loads(r["definition"]).get("steps", {})),
                           "updated_at": r["updated_at"].timestamp(), "updated_by": r["updated_by"]} for r in rows]}

    async def op_flow_get(self, conn: Connection, args: dict) -> dict:
        row = await self.pool.fetchrow("SELECT definition FROM cc.ivr_flows WHERE name = $1", _text(args, "name", 40))
        if row is None:
            raise RequestError(ErrorCode.NOT_FOUND, "name: no such flow", {"field": "name"})
        return {"flow": json.loads(row["definition"])}

    async def op_flow_put(self, conn: Connection, args: dict) -> dict:
        doc = args.get("flow")
        if not isinstance(doc, dict):
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "flow: a map (the flow's definition)", {"field": "flow"})
        try:
            flow = parse_flow(doc)
        except FlowError as exc:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, f"flow: {exc}", {"field": "flow"}) from None
        await self.store(flow.to_doc(), conn.principal.username)
        return {"name": flow.name, "pilots": list(flow.pilots), "steps": len(flow.steps)}

    async def store(self, doc: dict, by: str) -> None:
        """Insert or replace a flow that passed validation; a pilot may belong to one flow only."""
        async with self.pool.acquire() as c, c.transaction():
            others = await c.fetch("SELECT name, definition FROM cc.ivr_flows WHERE name <> $1", doc["name"])
            for r in others:
                taken = set(json.loads(r["definition"]).get("pilots", [])) & set(doc.get("pilots", []))
                if taken:
                    raise RequestError(ErrorCode.CONFLICT, f"flow: pilot {min(taken)} belongs to flow {r['name']}",
                                       {"field": "flow"})
            await c.execute("""INSERT INTO cc.ivr_flows (name, definition, updated_by) VALUES ($1, $2, $3)
                               ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition,
                               updated_at = now(), updated_by = EXCLUDED.updated_by""",
                            doc["name"], json.dumps(doc), by)
        log.info("ivr.flow_stored", extra={"flow": doc["name"], "by": by})

    async def op_flow_delete(self, conn: Connection, args: dict) -> dict:
        name = _text(args, "name", 40)
        if await self.pool.execute("DELETE FROM cc.ivr_flows WHERE name = $1", name) == "DELETE 0":
            raise RequestError(ErrorCode.NOT_FOUND, "name: no such flow", {"field": "name"})
        return {"name": name, "deleted": True}

    async def op_holidays(self, conn: Connection, args: dict) -> dict:
        rows = await self.pool.fetch("SELECT day, name FROM cc.holidays ORDER BY day")
        return {"holidays": [{"day": r["day"].isoformat(), "name": r["name"]} for r in rows]}

    async def op_holiday_put(self, conn: Connection, args: dict) -> dict:
        day, name = _day(args), _text(args, "name", 100, False)
        await self.pool.execute("""INSERT INTO cc.holidays (day, name) VALUES ($1, $2)
                                   ON CONFLICT (day) DO UPDATE SET name = EXCLUDED.name""", day, name)
        return {"day": day.isoformat(), "name": name}

    async def op_holiday_delete(self, conn: Connection, args: dict) -> dict:
        day = _day(args)
        if await self.pool.execute("DELETE FROM cc.holidays WHERE day = $1", day) == "DELETE 0":
            raise RequestError(ErrorCode.NOT_FOUND, "day: not a holiday", {"field": "day"})
        return {"day": day.isoformat(), "deleted": True}

    # ---- the demo -------------------------------------------------------------------------------------
    async def demo(self) -> None:
        """The demo flows from flows/*.toml (English on 100, Czech on 101): stored when missing, and
        replaced when the file changed unless an admin changed the stored flow since. On an empty
        holiday table, the Czech public holidays of this year and the next."""
        names = []
        for path in sorted(DEMO_FLOWS.glob("*.toml")):
            doc = load_flow_file(path).to_doc()
            row = await self.pool.fetchrow("SELECT definition, updated_by FROM cc.ivr_flows WHERE name = $1",
                                           doc["name"])
            if row is None or (row["updated_by"] == "bootstrap" and json.loads(row["definition"]) != doc):
                await self.store(doc, "bootstrap")
                names.append(doc["name"])
        if names:
            log.warning("bootstrap.demo_ivr", extra={"flows": names})
        if await self.pool.fetchval("SELECT count(*) FROM cc.holidays"):
            return
        year = dt.date.today().year
        fixed = [(1, 1, "New Year"), (5, 1, "Labour Day"), (5, 8, "Liberation Day"), (7, 5, "Cyril and Methodius"),
                 (7, 6, "Jan Hus"), (9, 28, "Statehood Day"), (10, 28, "Independence Day"),
                 (11, 17, "Freedom and Democracy Day"), (12, 24, "Christmas Eve"), (12, 25, "Christmas Day"),
                 (12, 26, "St Stephen's Day")]
        await self.pool.executemany("INSERT INTO cc.holidays (day, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                                    [(dt.date(y, m, d), n) for y in (year, year + 1) for m, d, n in fixed])
