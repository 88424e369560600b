"""Distribution in the running core: the pure ACD engine wired to the database, SimProt and a timer.

The engine (ctiserver.acd) decides; this adapter
- loads the configuration (projects, skills, agent profiles) from the database and restores what
  was live when the previous process stopped (agent sessions, contacts still waiting);
- turns SimProt requests into engine inputs, with the caller's identity and permissions;
- performs the engine's actions: offers go to the agent (topic ``agent``, addressed to him),
  contact changes to the service that enqueued the contact (topic ``contacts``, addressed to it),
  everything to supervisors (topic ``acd``), and all of it to the history writer;
- arms the one timer the engine asks for, and feeds the EWT estimator.

Agent ids in the engine are account user names (unique, stable, readable in events and logs).
Time is wall-clock seconds (``time.time()``), so history and restored contacts keep their times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from simprot.errors import ErrorCode, RequestError
from simprot.server import Connection, Operation, SimProtServer

from .acd import (
    AcdError,
    Action,
    AgentPending,
    AgentProfile,
    AgentState,
    AgentStateChanged,
    AutoLogout,
    CancelOffer,
    Channel,
    Contact,
    ContactState,
    ContactStateChanged,
    Engine,
    MissKind,
    Offer,
    Overflowed,
    Project,
    WaitingNotice,
)
from .acd.entry import EntryRule, route_entry
from .acd.ewt import EwtEstimator, EwtFeed
from .history import HistoryWriter

if TYPE_CHECKING:
    from .calls.telephony import Telephony

log = logging.getLogger("ctiserver.acd")

TOPICS = {"acd": "acd.supervise", "agent": "acd.agent", "contacts": "contacts.enqueue"}
_TERMINAL = {ContactState.ENDED, ContactState.ABANDONED, ContactState.OVERFLOWED, ContactState.CALLBACK}


def _err(exc: AcdError) -> RequestError:
    code = ErrorCode.__members__.get(exc.hint, ErrorCode.INVALID_ARGUMENT)
    field = getattr(exc, "field", None)
    return RequestError(code, str(exc), {"field": field} if field else {})


def _arg(args: dict, name: str, typ: type | tuple[type, ...] = str, required: bool = True, default: Any = None) -> Any:
    value = args.get(name, default)
    if value is None and not required:
        return default
    if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool or (typ is str and not value):
        raise RequestError(ErrorCode.INVALID_ARGUMENT, f"{name}: missing or of the wrong type", {"field": name})
    return value


class Distribution:
    def __init__(self, pool: asyncpg.Pool, history: HistoryWriter, node: str = "",
                 clock: Callable[[], float] = time.time, miss_limit: int = 3) -> None:
        self.pool = pool
        self.history = history
        self.node = node
        self.clock = clock
        self.engine = Engine(miss_limits=miss_limit)
        self.ewt = EwtEstimator()
        self.feed = EwtFeed(self.ewt, self.engine.agent_projects)
        self.server: SimProtServer | None = None
        self.account_ids: dict[str, int] = {}              # user name -> account id
        self.contacts: dict[str, dict[str, Any]] = {}       # live contact records (history, owner)
        self.intervals: dict[str, tuple[str, str, float]] = {}  # agent -> (state, reason, since)
        self._timer: asyncio.TimerHandle | None = None
        self.entry_rules: list[EntryRule] = []
        self._projects_of: dict[str, list[str]] = {}   # agent -> eligible projects (cleared on any change)
        self.telephony: Telephony | None = None   # set when the SIP trunk runs: calls ring phones

    # ---- start-up ---------------------------------------------------------------------------
    async def load(self) -> None:
        """Configuration from the database, then what was live before a restart."""
        await self.load_config()
        await self.restore()

    async def load_config(self) -> None:
        """Projects and agent profiles from the database (at start, and on ``acd.reload``)."""
        self._projects_of.clear()
        async with self.pool.acquire() as conn:
            for r in await conn.fetch("""
                    SELECT p.*, coalesce(jsonb_object_agg(ps.skill, ps.min_level)
                           FILTER (WHERE ps.skill IS NOT NULL), '{}') AS skills
                    FROM cc.projects p LEFT JOIN cc.project_skills ps USING (project)
                    GROUP BY p.project ORDER BY p.overflow_project NULLS FIRST"""):
                self.engine.upsert_project(self._project(r))
            for r in await conn.fetch("""
                    SELECT a.account_id, acc.username, a.languages, a.capacity,
                           coalesce(jsonb_object_agg(s.skill, s.level) FILTER (WHERE s.skill IS NOT NULL), '{}')
                             AS skills
                    FROM cc.agents a JOIN cc.accounts acc ON acc.id = a.account_id
                    LEFT JOIN cc.agent_skills s USING (account_id)
                    GROUP BY a.account_id, acc.username"""):
                self._upsert_agent(r)

            # pauses are operational state kept in the database: a restart or a reload keeps them
            for r in await conn.fetch("SELECT project, paused FROM cc.projects"):
                if r["paused"] != self.engine.project_stats(r["project"]).paused:
                    self._apply((self.engine.pause if r["paused"] else self.engine.resume)(project=r["project"]),
                                "config")
            paused = {Channel(r["channel"]) for r in await conn.fetch("SELECT channel FROM cc.paused_channels")}
            for ch in Channel:
                if (ch in paused) != (ch in self.engine.paused_channels()):
                    self._apply((self.engine.pause if ch in paused else self.engine.resume)(channel=ch), "config")
            self.entry_rules = [EntryRule(r["position"], r["project"], r["pilot"], r["caller_prefix"], r["data_key"],
                                          r["data_value"], r["time_from"], r["time_to"])
                                for r in await conn.fetch("SELECT * FROM cc.entry_rules")]

    async def restore(self) -> None:
        """Agent sessions and contacts that were live when the previous process stopped."""
        async with self.pool.acquire() as conn:
            sessions = await conn.fetch("""SELECT s.*, acc.username FROM cc.agent_sessions s
                                           JOIN cc.accounts acc ON acc.id = s.account_id""")
            live = await conn.fetch("SELECT * FROM cc.contacts_live ORDER BY enqueued_at")
        now = self.clock()
        for s in sessions:  # agents stay logged in across a restart; whoever was working resumes not ready
            name = s["username"]
            if name not in self.account_ids:
                continue
            self._apply(self.engine.login(name, now, str(s["workplace"]) if s["workplace"] else None), "restore")
            if s["state"] == AgentState.READY.value:
                self._apply(self.engine.ready(name, now), "restore")
            elif s["state"] != AgentState.NOT_READY.value or s["reason"]:
                self._apply(self.engine.not_ready(name, now, s["reason"] or "restored"), "restore")
        for c in live:  # queued and offered contacts wait again, with their original enqueue time
            record = {"contact": c["contact"], "project": c["project"], "channel": c["channel"],
                      "priority": c["priority"], "enqueued_at": c["enqueued_at"].timestamp(),
                      "data": json.loads(c["data"]) if isinstance(c["data"], str) else dict(c["data"]),
                      "owner": c["owner"], "preferred_agent": None}
            if c["state"] == ContactState.ANSWERED.value:
                # the conversation itself lives in telephony; the engine no longer holds it
                record.update(outcome="interrupted", ended_at=now, agent=c["agent"])
                self.history.contact(record)
                self.history.live_contact(c["contact"], None)
                continue
            self._enqueue(record, now, "restore")
        log.info("acd.restored", extra={"agents": len(self.account_ids), "sessions": len(sessions),
                                        "contacts": len(live)})

    @staticmethod
    def _project(r: asyncpg.Record) -> Project:
        skills = r["skills"] if isinstance(r["skills"], dict) else json.loads(r["skills"])
        return Project(id=r["project"], name=r["name"], priority=r["priority"], required_skills=skills,
                       language=r["language"], strategy=r["strategy"], max_wait=r["max_wait"],
                       overflow_project=r["overflow_project"], sl_target_seconds=r["sl_seconds"],
                       sl_target_pct=r["sl_pct"], ring_timeout=r["ring_timeout"], wrap_up_seconds=r["wrap_up"],
                       preferred_fallback_seconds=r["preferred_fallback"], announce_interval=r["announce_interval"],
                       callback_offer_after=r["callback_offer_after"])

    def _upsert_agent(self, r: Any) -> None:
        self._projects_of.clear()
        skills = r["skills"] if isinstance(r["skills"], dict) else json.loads(r["skills"])
        capacity = r["capacity"] if isinstance(r["capacity"], dict) else json.loads(r["capacity"])
        self.account_ids[r["username"]] = r["account_id"]
        self._apply(self.engine.upsert_agent(AgentProfile(
            id=r["username"], skills=skills, languages=frozenset(r["languages"] or ()),
            capacity={Channel(k): v for k, v in capacity.items()})), "config")

    # ---- performing the engine's actions ------------------------------------------------------
    def _apply(self, actions: list[Action], cause: str) -> list[Action]:
        if not actions:
            return actions
        self.feed.observe(actions)
        publish = self.server.publish if self.server is not None else (lambda *a, **k: 0)
        delivered: list[Offer] = []
        for a in actions:
            if isinstance(a, Offer):
                c = self.contacts.get(a.contact_id, {})
                c.setdefault("first_offer_at", self.clock())
                c["offered_to"], c["offered_at"] = a.agent_id, self.clock()
                publish("agent", "offer", {"agent": a.agent_id, "contact": a.contact_id, "project": c.get("project"),
                                           "ring_timeout": a.ring_timeout, "data": c.get("data", {}),
                                           "call": bool(c.get("call"))},
                        frozenset((a.agent_id,)))
                if c.get("call") and self.telephony is not None:
                    self.telephony.acd_offer(a.contact_id, a.agent_id)   # his phone rings: ringing comes from it
                else:
                    delivered.append(a)
            elif isinstance(a, CancelOffer):
                self._offer_done(a.contact_id, a.agent_id, a.reason)
                if self.telephony is not None and self.contacts.get(a.contact_id, {}).get("call"):
                    self.telephony.acd_offer_cancelled(a.contact_id, a.agent_id)
                publish("agent", "offer.cancelled", {"agent": a.agent_id, "contact": a.contact_id,
                                                     "reason": a.reason}, frozenset((a.agent_id,)))
            elif isinstance(a, AgentStateChanged):
                self._agent_changed(a, cause)
                publish("acd", "agent.state", {"agent": a.agent_id, "old": a.old.value, "new": a.new.value,
                                               "reason": a.reason, "at": a.at, "cause": cause})
                publish("agent", "state", {"agent": a.agent_id, "state": a.new.value, "reason": a.reason},
                        frozenset((a.agent_id,)))
            elif isinstance(a, ContactStateChanged):
                self._contact_changed(a)
                data = {"contact": a.contact_id, "project": a.project_id, "old": a.old.value if a.old else None,
                        "new": a.new.value, "reason": a.reason, "agent": a.agent_id, "at": a.at}
                publish("acd", "contact.state", data)
                owner = self.contacts.get(a.contact_id, {}).get("owner")
                if owner:
                    publish("contacts", "contact.state", data, frozenset((owner,)))
                if a.new in _TERMINAL:
                    gone = self.contacts.pop(a.contact_id, None)
                    if gone and gone.get("call") and self.telephony is not None:
                        self.telephony.acd_ended(a.contact_id, a.new.value)
            elif isinstance(a, AutoLogout):
                log.warning("acd.auto_logout", extra={"agent": a.agent_id, "kind": a.kind.value, "misses": a.misses})
                publish("acd", "agent.auto_logout", {"agent": a.agent_id, "kind": a.kind.value,
                                                     "misses": a.misses, "at": a.at})
            elif isinstance(a, AgentPending):
                publish("acd", "agent.pending", {"agent": a.agent_id, "pending": a.pending, "reason": a.reason})
            elif isinstance(a, WaitingNotice):
                owner = self.contacts.get(a.contact_id, {}).get("owner")
                if owner:   # the IVR announces position and EWT, or offers the callback
                    pos = self.engine.position(a.contact_id)
                    publish("contacts", "contact.waiting", {
                        "contact": a.contact_id, "project": a.project_id, "kind": a.kind, "position": pos,
                        "ewt": round(self.ewt.ewt(a.project_id, pos, a.at), 1) if pos else 0.0,
                        "waited": round(a.waited, 1), "at": a.at}, frozenset((owner,)))
            elif isinstance(a, Overflowed):
                publish("acd", "contact.overflowed", {"contact": a.contact_id, "from": a.from_project,
                                                      "to": a.to_project, "at": a.at})
                moved = self.contacts.get(a.contact_id)
                if moved is not None and a.to_project is not None:
                    moved["project"] = a.to_project
        # Until telephony rings phones (the SIP issue), an offer is presented by the SimProt event
        # itself: the agent's desktop is the device, so the offer counts as ringing once sent.
        for a in delivered:
            try:
                self._apply(self.engine.ringing(a.agent_id, a.contact_id, self.clock()), "system:offer_sent")
            except AcdError:
                pass  # withdrawn meanwhile
        self._rearm()
        return actions

    def _agent_changed(self, a: AgentStateChanged, cause: str) -> None:
        aid = self.account_ids.get(a.agent_id)
        if aid is None:
            return
        prev = self.intervals.get(a.agent_id)
        if prev is not None:
            self.history.agent_interval(aid, prev[0], prev[1], cause, prev[2], a.at)
        if a.new is AgentState.LOGGED_OUT:
            self.intervals.pop(a.agent_id, None)
            self.history.session(aid, None)
        else:
            self.intervals[a.agent_id] = (a.new.value, a.reason, a.at)
            wp = self.engine.brief(a.agent_id)[5]
            self.history.session(aid, {"state": a.new.value, "reason": a.reason, "since": a.at, "node": self.node,
                                       "workplace": int(wp) if wp and wp.isdigit() else None})

    def _offer_done(self, contact: str, agent: str, outcome: str) -> None:
        c = self.contacts.get(contact)
        aid = self.account_ids.get(agent)
        if c is None or aid is None or c.get("offered_to") != agent:
            return
        self.history.offer(contact, aid, c.pop("offered_at"), self.clock(), outcome)
        c.pop("offered_to", None)

    def _contact_changed(self, a: ContactStateChanged) -> None:
        c = self.contacts.get(a.contact_id)
        if c is None:
            return
        c["project"] = a.project_id
        if a.new is ContactState.ANSWERED:
            self._offer_done(a.contact_id, a.agent_id or "", "answered")
            c["answered_at"], c["agent"] = a.at, self.account_ids.get(a.agent_id or "")
        elif a.old is ContactState.OFFERED and a.new is ContactState.QUEUED:
            self._offer_done(a.contact_id, c.get("offered_to", ""), a.reason or "no_answer")
        if a.new in _TERMINAL:
            if c.get("offered_to"):
                self._offer_done(a.contact_id, c["offered_to"], "cancelled")
            c.update(outcome=a.new.value if a.new is not ContactState.ENDED else "answered", ended_at=a.at)
            self.history.contact(c)
            self.history.live_contact(a.contact_id, None)
        else:
            self.history.live_contact(a.contact_id, {**c, "state": a.new.value,
                                                     "agent": self.account_ids.get(a.agent_id or "")})

    def _rearm(self) -> None:
        deadline = self.engine.next_deadline()
        if self._timer is not None:
            if deadline is not None and abs(self._timer.when() - self._loop_at(deadline)) < 0.001:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._loop_at(deadline), self._fire)

    def _loop_at(self, deadline: float) -> float:
        return asyncio.get_running_loop().time() + max(0.0, deadline - self.clock())

    def _fire(self) -> None:
        self._timer = None
        self._apply(self.engine.on_timer(self.clock()), "system:timer")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    # ---- calls (the SIP trunk) ------------------------------------------------------------------
    def enqueue_call(self, contact_id: str, pilot: str, caller: str, data: dict[str, Any], *,
                     project: str | None = None, owner: str = "", priority: int = 0) -> None:
        """A call from the trunk enters the ACD: into ``project`` (the IVR chose it; ``owner``, the
        IVR's account, gets its notices), else where the entry rules say from the pilot, the
        caller's number and the data. LookupError when no rule matches; AcdError if refused."""
        if project is None:
            project = route_entry(self.entry_rules, pilot, caller, data, datetime.now().time())
            if project is None:
                raise LookupError(f"no entry rule for pilot {pilot!r}")
        now = self.clock()
        self._enqueue({"contact": contact_id, "project": project, "channel": "voice", "priority": priority,
                       "enqueued_at": now, "data": {**data, "caller": caller, "pilot": pilot}, "owner": owner,
                       "preferred_agent": None, "call": True}, now, f"ivr:{owner}" if owner else "sip")

    def engine_input(self, fn: Callable[[Engine, float], list[Action]], cause: str) -> list[Action]:
        """Feed the engine an input from the telephony (a phone rang, answered, failed, hung up)."""
        return self._apply(fn(self.engine, self.clock()), cause)

    # ---- contacts -------------------------------------------------------------------------------
    def _enqueue(self, record: dict[str, Any], now: float, cause: str) -> list[Action]:
        contact = Contact(id=record["contact"], project=record["project"], channel=Channel(record["channel"]),
                          priority=record["priority"], enqueued_at=record["enqueued_at"],
                          preferred_agent=record.get("preferred_agent"), data=record.get("data") or {})
        record["data_json"] = json.dumps(record.get("data") or {})   # once, not at every state change
        self.contacts[contact.id] = record
        try:
            return self._apply(self.engine.enqueue(contact, now), cause)
        except AcdError:
            self.contacts.pop(contact.id, None)
            raise

    def snapshot(self) -> dict:
        now = self.clock()
        agents = [{"agent": v.agent_id, "state": v.state.value, "reason": v.reason, "since": v.since,
                   "contact": v.contact_id, "contacts": list(v.contact_ids), "pending": v.pending,
                   "contacts_today": v.contacts_today,
                   "misses": {k.value: n for k, n in v.misses.items()}} for v in self.engine.agents()]
        projects = []
        for pid in sorted({c for v in self.engine.agents() for c in v.projects} | self._project_ids()):
            st = self.engine.project_stats(pid)
            projects.append({"project": pid, "waiting": st.waiting, "ready_agents": st.ready_agents,
                             "eligible_agents": st.eligible_agents, "answered": st.answered,
                             "abandoned": st.abandoned, "service_level": st.service_level,
                             "oldest_wait": None if st.oldest_enqueued_at is None else now - st.oldest_enqueued_at,
                             "ewt": round(self.ewt.ewt_new(pid, now), 1), "paused": st.paused,
                             "callbacks": st.callbacks})
        contacts = []
        for cid, c in self.contacts.items():
            try:
                v = self.engine.contact(cid)
            except AcdError:
                continue
            contacts.append({"contact": cid, "project": v.project_id, "state": v.state.value, "agent": v.agent_id,
                             "position": self.engine.position(cid), "waited": round(now - v.enqueued_at, 1),
                             "owner": c.get("owner")})
        return {"agents": agents, "projects": projects, "contacts": contacts,
                "paused_channels": sorted(ch.value for ch in self.engine.paused_channels())}

    def agent_snapshot(self, name: str) -> dict:
        """What an agent's own topic starts from: his state and the offer ringing, if any."""
        try:
            return self._agent_view(name)
        except RequestError:
            return {"agent": name, "state": "no_profile"}

    def owner_snapshot(self, owner: str) -> dict:
        """The contacts a service enqueued that are still in the system."""
        return {"contacts": [self.op_contact_status(None, {"contact": cid})  # type: ignore[arg-type]
                             for cid, c in self.contacts.items() if c.get("owner") == owner]}

    def _project_ids(self) -> set[str]:
        return {c["project"] for c in self.contacts.values()} | set(getattr(self.engine, "_projects", {}))

    # ---- SimProt operations -----------------------------------------------------------------------
    def operations(self) -> list[Operation]:
        return [
            Operation("agent.login", self.op_login, "acd.agent"),
            Operation("agent.logout", self._agent_op(lambda e, a, now, args: e.logout(a, now, "logout")), "acd.agent"),
            Operation("agent.ready", self._agent_op(lambda e, a, now, args: e.ready(a, now)), "acd.agent"),
            Operation("agent.not_ready", self._agent_op(
                lambda e, a, now, args: e.not_ready(a, now, _arg(args, "reason"))), "acd.agent"),
            Operation("agent.accept", self._agent_op(
                lambda e, a, now, args: e.accept(a, self._not_a_call(args), now)), "acd.agent"),
            Operation("agent.reject", self._agent_op(
                lambda e, a, now, args: e.reject(a, self._not_a_call(args), now)), "acd.agent"),
            Operation("agent.end", self._agent_op(
                lambda e, a, now, args: e.end_contact(a, _arg(args, "contact"), now)), "acd.agent"),
            Operation("agent.end_wrap_up", self._agent_op(lambda e, a, now, args: e.end_wrap_up(a, now)), "acd.agent"),
            Operation("agent.status", lambda conn, args: self._agent_view(conn.principal.username), "acd.agent"),
            Operation("acd.snapshot", lambda conn, args: self.snapshot(), "acd.supervise"),
            Operation("acd.reload", self.op_reload, "acd.configure"),
            Operation("acd.agent.skills", self.op_skills, "acd.supervise"),
            Operation("acd.agent.force", self.op_force, "acd.supervise"),
            Operation("acd.pause", self.op_pause, "acd.supervise"),
            Operation("acd.resume", self.op_resume, "acd.supervise"),
            Operation("contact.enqueue", self.op_enqueue, "contacts.enqueue"),
            Operation("contact.status", self.op_contact_status, "contacts.enqueue"),
            Operation("contact.cancel", self.op_cancel, "contacts.enqueue"),
            Operation("contact.callback", self.op_callback, "contacts.enqueue"),
        ]

    def _not_a_call(self, args: dict) -> str:
        contact = _arg(args, "contact")
        if self.contacts.get(contact, {}).get("call"):
            raise RequestError(ErrorCode.INVALID_STATE, "contact: a phone call; answer or decline it on the phone",
                               {"field": "contact"})
        return contact

    def _agent_view(self, name: str) -> dict:
        try:
            state, reason, since, contact, pending, _ = self.engine.brief(name)
            projects = self._projects_of.get(name)
            if projects is None:   # cached: eligibility changes only with the configuration
                projects = self._projects_of[name] = self.engine.agent_projects(name)
        except AcdError as exc:
            raise _err(exc) from None
        return {"agent": name, "state": state.value, "reason": reason, "since": since, "contact": contact,
                "contacts": list(self.engine.contacts_of(name)), "pending": pending, "projects": projects}

    def _agent_op(self, fn: Callable[[Engine, str, float, dict], list[Action]]) -> Callable[[Connection, dict], dict]:
        def op(conn: Connection, args: dict) -> dict:
            name = conn.principal.username
            try:
                self._apply(fn(self.engine, name, self.clock(), args), "agent")
            except AcdError as exc:
                raise _err(exc) from None
            return self._agent_view(name)
        return op

    def op_login(self, conn: Connection, args: dict) -> dict:
        name = conn.principal.username
        if name not in self.account_ids:
            raise RequestError(ErrorCode.NOT_FOUND, f"{name} has no agent profile (skills)", {"field": "agent"})
        workplace = _arg(args, "workplace", (str, int), required=False)
        try:
            self._apply(self.engine.login(name, self.clock(), None if workplace is None else str(workplace)), "agent")
        except AcdError as exc:
            raise _err(exc) from None
        return self._agent_view(name)

    async def op_reload(self, conn: Connection, args: dict) -> dict:
        try:
            await self.load_config()
        except AcdError as exc:
            raise _err(exc) from None
        return {"agents": len(self.account_ids)}

    async def op_skills(self, conn: Connection, args: dict) -> dict:
        """Replace an agent's skills (ACD-1, MOD-2): stored, then effective for routing at once."""
        agent = _arg(args, "agent")
        skills = _arg(args, "skills", dict)
        if not all(type(k) is str and type(v) is int and 1 <= v <= 10 for k, v in skills.items()):
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "skills: a map of skill name to level 1..10",
                               {"field": "skills"})
        aid = self.account_ids.get(agent)
        if aid is None:
            raise RequestError(ErrorCode.NOT_FOUND, f"agent: no agent {agent!r}", {"field": "agent"})
        try:
            async with self.pool.acquire() as db, db.transaction():
                await db.execute("DELETE FROM cc.agent_skills WHERE account_id = $1", aid)
                await db.executemany("INSERT INTO cc.agent_skills (account_id, skill, level) VALUES ($1, $2, $3)",
                                     [(aid, k, v) for k, v in skills.items()])
                row = await db.fetchrow("SELECT account_id, languages, capacity FROM cc.agents WHERE account_id = $1",
                                        aid)
        except asyncpg.ForeignKeyViolationError:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "skills: unknown skill", {"field": "skills"}) from None
        try:
            self._upsert_agent({"account_id": aid, "username": agent, "languages": row["languages"],
                                "capacity": row["capacity"], "skills": skills})
        except AcdError as exc:
            raise _err(exc) from None
        self._apply([], f"supervisor:{conn.principal.username}")
        if self.server is not None:
            self.server.publish("acd", "agent.skills", {"agent": agent, "skills": skills,
                                                        "by": conn.principal.username})
        return self._agent_view(agent)

    def op_force(self, conn: Connection, args: dict) -> dict:
        agent = _arg(args, "agent")
        action = _arg(args, "action")
        now = self.clock()
        try:
            if action == "not_ready":
                actions = self.engine.not_ready(agent, now, _arg(args, "reason", required=False, default="supervisor"))
            elif action == "logout":
                actions = self.engine.logout(agent, now, f"forced by {conn.principal.username}")
            else:
                raise RequestError(ErrorCode.INVALID_ARGUMENT, "action: not_ready or logout", {"field": "action"})
            self._apply(actions, f"supervisor:{conn.principal.username}")
        except AcdError as exc:
            raise _err(exc) from None
        return self._agent_view(agent)

    async def op_pause(self, conn: Connection, args: dict) -> dict:
        """acd.pause {project} or {channel} (MOD-2): stored first, so a restart keeps it."""
        return await self._pause(conn, args, True)

    async def op_resume(self, conn: Connection, args: dict) -> dict:
        return await self._pause(conn, args, False)

    async def _pause(self, conn: Connection, args: dict, pause: bool) -> dict:
        project = _arg(args, "project", required=False)
        channel = _arg(args, "channel", required=False)
        if (project is None) == (channel is None):
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "project or channel: name exactly one",
                               {"field": "project"})
        by = conn.principal.username
        try:
            if project is not None:
                self.engine.project_stats(project)   # NotFound before touching the database
                await self.pool.execute("UPDATE cc.projects SET paused = $2 WHERE project = $1", project, pause)
                actions = (self.engine.pause if pause else self.engine.resume)(project=project, now=self.clock())
            else:
                ch = Channel(channel) if channel in {c.value for c in Channel} else None
                if ch is None:
                    raise RequestError(ErrorCode.INVALID_ARGUMENT, f"channel: unknown channel {channel!r}",
                                       {"field": "channel"})
                if pause:
                    await self.pool.execute("""INSERT INTO cc.paused_channels (channel, paused_by) VALUES ($1, $2)
                                               ON CONFLICT DO NOTHING""", ch.value, by)
                else:
                    await self.pool.execute("DELETE FROM cc.paused_channels WHERE channel = $1", ch.value)
                actions = (self.engine.pause if pause else self.engine.resume)(channel=ch, now=self.clock())
        except AcdError as exc:
            raise _err(exc) from None
        data = {"project": project, "channel": channel, "paused": pause, "by": by}
        log.warning("acd.paused" if pause else "acd.resumed",
                    extra={"project": project, "channel": channel, "user": by})
        if self.server is not None:
            self.server.publish("acd", "paused" if pause else "resumed", data)
        self._apply(actions, f"supervisor:{by}")
        return data

    async def op_enqueue(self, conn: Connection, args: dict) -> dict:
        """Enqueue, and answer only once the contact is committed: a crash after the answer loses nothing."""
        status = self._enqueue_now(conn, args)
        try:
            await self.history.durable()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise RequestError(ErrorCode.INTERNAL_ERROR, "the contact is queued but could not be saved yet; "
                               f"it will be retried ({str(exc)[:100]})") from None
        return status

    def _enqueue_now(self, conn: Connection, args: dict) -> dict:
        data = _arg(args, "data", dict, required=False, default={})
        project = _arg(args, "project", required=False)
        if project is None:  # no project named: the entry rules decide from pilot, caller, data and time
            pilot = _arg(args, "pilot", required=False)
            caller = _arg(args, "caller", required=False)
            project = route_entry(self.entry_rules, pilot, caller, data, datetime.now().time())
            if project is None:
                raise RequestError(ErrorCode.NOT_FOUND, f"project: no entry rule matches pilot {pilot!r}",
                                   {"field": "project"})
        now = self.clock()
        record = {"contact": _arg(args, "contact", required=False) or "k" + secrets.token_hex(8),
                  "project": project, "channel": _arg(args, "channel", required=False, default="voice"),
                  "priority": _arg(args, "priority", int, required=False, default=0),
                  "enqueued_at": float(_arg(args, "waiting_since", (int, float), required=False, default=now)),
                  "data": data, "owner": conn.principal.username,
                  "preferred_agent": _arg(args, "preferred_agent", required=False)}
        if record["contact"] in self.contacts:
            raise RequestError(ErrorCode.CONFLICT, "contact: already in the system", {"field": "contact"})
        try:
            self._enqueue(record, now, f"service:{conn.principal.username}")
        except (AcdError, ValueError) as exc:
            if isinstance(exc, AcdError):
                raise _err(exc) from None
            raise RequestError(ErrorCode.INVALID_ARGUMENT, str(exc)) from None
        return self.op_contact_status(conn, {"contact": record["contact"]})

    def op_contact_status(self, conn: Connection, args: dict) -> dict:
        cid = _arg(args, "contact")
        try:
            v = self.engine.contact(cid)
        except AcdError as exc:
            raise _err(exc) from None
        now = self.clock()
        pos = self.engine.position(cid)
        ewt = self.ewt.ewt(v.project_id, pos, now) if pos else 0.0
        return {"contact": cid, "project": v.project_id, "state": v.state.value, "agent": v.agent_id,
                "position": pos, "ewt": round(ewt, 1), "waited": round(now - v.enqueued_at, 1)}

    def op_cancel(self, conn: Connection, args: dict) -> dict:
        cid = _arg(args, "contact")
        try:
            self._apply(self.engine.cancel(cid, self.clock(), _arg(args, "reason", required=False,
                                                                    default="abandoned")), "service")
        except AcdError as exc:
            raise _err(exc) from None
        return {"contact": cid, "state": "abandoned"}

    def op_callback(self, conn: Connection, args: dict) -> dict:
        """The customer chose a callback (after a ``callback_offer`` notice, or at any time while
        waiting): the contact leaves the queue with outcome ``callback``, its data kept in history."""
        cid = _arg(args, "contact")
        try:
            self._apply(self.engine.callback(cid, self.clock()), "service")
        except AcdError as exc:
            raise _err(exc) from None
        return {"contact": cid, "state": "callback"}


__all__ = ["TOPICS", "Distribution", "MissKind"]
