"""The ivr-engine daemon: SIP legs from the core, each running a call-flow script (ARCH-5, IVR-1..4).

Wiring (docs/ivr.md): :class:`~ivr_engine.sip_side.IvrSip` answers the core's INVITE and opens a
:class:`~rtpmedia.leg.MediaLeg` on a port of ``ivr.rtp_port_min..max``; once the ACK is in, a
pure :class:`~ivr_engine.interp.Session` of the flow for the dialled pilot starts. Everything that
happens to the call becomes an interpreter event — digits (RFC 4733 or in-band) and the end of a
prompt from the media leg, timers, answers of the core (SimProt ``ivr.route``, ``ivr.transfer``,
``contact.callback``), the core's ``contact.waiting`` notices (position and EWT, callback offer),
HTTP lookups, the BYE — and the actions it returns are performed here: play prompts (files from
the IVR repository folder or text-to-speech), stop, look up, queue, transfer, hang up. When the
session ends it is reported to the core (``ivr.session``) with the stage the caller reached.

The flows and the holidays come from the core (``ivr.config``) at start and every
``ivr.config_refresh`` seconds; a flow whose prompt files are missing is refused at load with an
error naming the file, and keeps its previous version if it had one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from ctiserver.settings import IvrSettings
from rtpmedia.leg import MediaLeg, encode_cached, open_rtcp
from rtpmedia.prompts import PromptCache, PromptError
from simprot.client import SimProtClient
from simprot.errors import ConnectionClosed, RequestError

from .flow import Flow, FlowError, parse_flow
from .interp import Callback as CallbackAction
from .interp import (
    CallbackDone,
    Enqueue,
    Enqueued,
    Event,
    Finished,
    HangUp,
    Hangup,
    Lookup,
    LookupDone,
    Play,
    PlayDone,
    PromptRef,
    Session,
    Speak,
    StopPlay,
    Tick,
    Transfer,
    TransferDone,
    Waiting,
)
from .interp import Digit as DigitEvent
from .sip_side import IvrCall, IvrSip
from .tts import Speaker, TtsError

log = logging.getLogger("ivr_engine")

TERMINAL = {"ended", "abandoned", "overflowed", "callback"}
MAX_LOOKUP_BYTES = 64 * 1024


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class PromptSource:
    """Prompt items to audio: ``<folder>/<language>/<name>.wav`` through a cache, or speech."""

    def __init__(self, folder: str, speaker: Speaker, cache: PromptCache | None = None) -> None:
        self.folder = Path(folder)
        self.speaker = speaker
        self.cache = cache or PromptCache()
        self._joined: OrderedDict[tuple, tuple[list[np.ndarray], np.ndarray]] = OrderedDict()

    def path(self, name: str, language: str) -> Path:
        return self.folder / language / f"{name}.wav"

    def check(self, flow: Flow) -> None:
        """Every prompt file the flow names exists and loads (FlowError naming the file)."""
        for name in sorted(flow.prompt_names()):
            try:
                self.cache.get(self.path(name, flow.language))
            except PromptError as exc:
                raise FlowError(f"flow {flow.name}: prompt {name!r}: {exc}") from None

    async def samples(self, items: tuple[PromptRef | Speak, ...], language: str) -> np.ndarray:
        """The items' audio, one array; the same items give the same array object while it is
        remembered (so its G.711 encoding is made once for every leg that plays it)."""
        key = (items, language)
        got = self._joined.get(key)
        parts = []
        for item in items:
            if isinstance(item, Speak):
                parts.append(self.cache.get(await self.speaker.wav(item.text, language)))
            else:
                parts.append(self.cache.get(self.path(item.name, language)))
        if got is not None and all(a is b for a, b in zip(got[0], parts, strict=True)):   # (same items: same count)
            self._joined.move_to_end(key)
            return got[1]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.int16)
        self._joined[key] = (parts, joined)
        while len(self._joined) > 256:
            self._joined.popitem(last=False)
        return joined


@dataclass(eq=False)
class Run:
    """One IVR call in progress: the SIP call, its media, its session, its timer and tasks."""

    call: IvrCall
    flow: Flow
    sock: socket.socket | None   # the RTP port reserved at the INVITE, until the leg takes it
    port: int
    rtcp_sock: socket.socket | None = None   # and its RTCP port (port + 1)
    leg: MediaLeg | None = None
    session: Session | None = None
    started: float = field(default_factory=time.time)
    timer: asyncio.TimerHandle | None = None
    play: asyncio.Task | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)
    queued: bool = False
    transferring: bool = False
    bye: str = ""     # why the SIP side ended, once it did


class IvrEngine:
    def __init__(self, settings: IvrSettings, password: str | None, *, client: SimProtClient | None = None) -> None:
        self.settings = settings
        self.client = client or SimProtClient(list(settings.core), user=settings.user, password=password,
                                              client_name="ivr-engine")
        self.speaker = Speaker(settings.tts, settings.tts_cache)
        self.prompts = PromptSource(settings.prompts, self.speaker)
        self.variables = dict(v.split("=", 1) for v in settings.variables)
        self.flows: dict[str, Flow] = {}      # by pilot
        self.holidays: frozenset[dt.date] = frozenset()
        self.runs: dict[str, Run] = {}
        self.sip = IvrSip(host=settings.host, port=settings.port, advertise=settings.advertise,
                          peers=settings.trunk_peers, max_calls=settings.max_legs,
                          on_invite=self._on_invite, on_call=self._on_call, on_end=self._on_end)
        self.http: aiohttp.ClientSession | None = None
        self._next_port = settings.rtp_port_min
        self._refresh: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.sip_port = 0
        self.stats = {"calls": 0, "finished": 0, "lookups": 0, "routed": 0}

    # ---- life -------------------------------------------------------------------------------------
    async def start(self, connect_wait: float = 30.0) -> int:
        """Connect to the core (retrying for ``connect_wait`` seconds: it may be starting too, and
        at the demo's first start it writes our password file), load the flows, listen for SIP."""
        deadline = time.monotonic() + connect_wait
        while True:
            try:
                if self.client.password is None:
                    self.client.password = read_password(self.settings.password_file)
                await self.client.connect()
                break
            except (OSError, ConnectionClosed, TimeoutError, PasswordMissing) as exc:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"the core at {', '.join(self.settings.core)}: {exc}") from None
                log.info("ivr.waiting_for_core", extra={"reason": str(exc)})
                await asyncio.sleep(0.5)
        await self.client.subscribe("contacts", self._on_contact_event)
        await self.load_config()
        self.http = aiohttp.ClientSession(headers={"Accept": "application/json"})
        self.sip_port = await self.sip.start()
        self._refresh = asyncio.get_running_loop().create_task(self._refresh_loop())
        log.info("ivr.ready", extra={"sip": f"{self.settings.host}:{self.sip_port}",
                                     "flows": sorted({f.name for f in self.flows.values()})})
        return self.sip_port

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        await self.sip.close()
        for run in list(self.runs.values()):
            self._release(run)
        if self._tasks:   # the last session reports reach the core before we hang up on it
            await asyncio.wait(list(self._tasks), timeout=2.0)
        if self.http is not None:
            await self.http.close()
        await self.client.close()

    async def load_config(self) -> None:
        """Flows and holidays from the core; a flow that fails to load keeps its previous version."""
        got = await self.client.request("ivr.config", {})
        flows: dict[str, Flow] = {}
        for doc in got.get("flows", []):
            flow: Flow | None = None
            try:
                flow = parse_flow(doc)
                self.prompts.check(flow)
            except FlowError as exc:
                log.error("ivr.flow_refused", extra={"flow": doc.get("name"), "reason": str(exc)})
                flow = next((f for f in self.flows.values() if f.name == doc.get("name")), None)
            if flow is None:
                continue
            for pilot in flow.pilots:
                flows[pilot] = flow
        self.flows = flows
        self.holidays = frozenset(dt.date.fromisoformat(d) for d in got.get("holidays", []))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.config_refresh)
            try:
                await self.load_config()
            except (RequestError, ConnectionClosed, OSError, TimeoutError) as exc:
                log.warning("ivr.config_failed", extra={"reason": str(exc)})

    # ---- SIP side -----------------------------------------------------------------------------------
    async def _on_invite(self, call: IvrCall) -> int:
        """Pick the flow for the pilot and reserve an RTP port (the media leg opens on it once the
        offer is answered and the ACK is in)."""
        flow = self.flows.get(call.pilot)
        if flow is None:
            raise Refused(404, f"no flow for pilot {call.pilot!r}")
        span = (self.settings.rtp_port_max - self.settings.rtp_port_min) // 2 + 1
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        for _ in range(min(span, 256)):
            port = self._next_port
            self._next_port = port + 2 if port + 3 <= self.settings.rtp_port_max else self.settings.rtp_port_min
            pair = []
            for p in (port, port + 1):   # RTP on the even port, RTCP on the next (RFC 3550 §11)
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.bind((self.settings.host, p))
                except OSError:
                    sock.close()
                    break
                sock.setblocking(False)
                pair.append(sock)
            if len(pair) < 2:
                for sock in pair:
                    sock.close()
                continue
            self.runs[call.id] = Run(call, flow, pair[0], port, rtcp_sock=pair[1])
            return port
        raise Refused(503, "no free RTP port")

    def _on_call(self, call: IvrCall) -> None:
        run = self.runs.get(call.id)
        if run is None or call.negotiated is None or run.sock is None:
            self.sip.hangup(call, "no_media")
            return
        self._spawn(run, self._start(run, call.negotiated))

    async def _start(self, run: Run, neg: Any) -> None:
        sock, run.sock = run.sock, None
        assert sock is not None
        loop = asyncio.get_running_loop()
        _, run.leg = await loop.create_datagram_endpoint(
            lambda: MediaLeg((neg.remote_address, neg.remote_port), payload_type=neg.payload_type,
                             event_pt=neg.telephone_event_pt,
                             on_digit=lambda digit, source: self._event(run, DigitEvent(digit)),
                             on_played=lambda: self._event(run, PlayDone())), sock=sock)
        if run.rtcp_sock is not None:
            rtcp_sock, run.rtcp_sock = run.rtcp_sock, None
            await open_rtcp(run.leg, sock=rtcp_sock, remote=(neg.remote_rtcp_address, neg.remote_rtcp_port),
                            cname=f"ivr-{run.call.id}@{self.sip.sent_by}")
        if run.call.ended:   # the caller left while the leg opened
            self._release(run)
            return
        call = run.call
        run.session = Session(run.flow, caller=call.caller, pilot=call.pilot, call_id=call.id,
                              variables=self.variables, holidays=self.holidays)
        self.stats["calls"] += 1
        log.info("ivr.call", extra={"call": call.id, "caller": call.caller, "pilot": call.pilot,
                                    "flow": run.flow.name, "rtp": run.port})
        self._perform(run, run.session.start(time.time()))

    def _on_end(self, call: IvrCall, why: str) -> None:
        run = self.runs.get(call.id)
        if run is None:
            return
        run.bye = why
        if run.session is None or run.session.done:   # (not started yet: the ACK never came)
            self._release(run)
        elif why == "shutdown":   # we are going away: the core takes the caller back
            self._event(run, Hangup("ended"))
        elif why != "bye":      # our own hangup, no ACK, cancelled: the session is over
            self._event(run, Hangup("caller"))
        elif run.transferring:  # the core moved the caller to the transfer target
            self._event(run, TransferDone(True, 200))
        elif run.queued:        # bridged to an agent, or the caller left: the core knows which
            self._spawn(run, self._why_gone(run))
        else:
            self._event(run, Hangup("caller"))

    async def _why_gone(self, run: Run) -> None:
        try:
            status = await self.client.request("contact.status", {"contact": run.call.id}, timeout=5.0)
            reason = "bridged" if status.get("state") in ("answered", "offered") else "caller"
        except (RequestError, ConnectionClosed, TimeoutError):
            reason = "caller"   # the contact is over: abandoned
        self._event(run, Hangup(reason))

    # ---- the core's notices ---------------------------------------------------------------------------
    def _on_contact_event(self, topic: str, seq: int, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        run = self.runs.get(str(data.get("contact")))
        if run is None or run.session is None or run.session.done:
            return
        if name == "contact.waiting":
            self._event(run, Waiting(str(data.get("kind")), int(data.get("position") or 0),
                                     float(data.get("ewt") or 0.0)))
        elif name == "contact.state" and data.get("new") in TERMINAL and run.queued and data.get("new") != "callback":
            # the queue let go of the caller. If he hung up, our BYE is on its way and decides; else
            # (overflowed with nowhere to go, cancelled by a supervisor) he is still with us: we end
            # the session and hang up
            run.queued = False
            asyncio.get_running_loop().call_later(1.0, self._let_go, run, str(data.get("new")))

    def _let_go(self, run: Run, state: str) -> None:
        if run.bye or run.session is None or run.session.done:
            return
        self._event(run, Hangup("ended"))
        self.sip.hangup(run.call, "acd_" + state)

    # ---- the interpreter ------------------------------------------------------------------------------
    def _event(self, run: Run, event: Event) -> None:
        if run.session is None or run.session.done:
            return
        self._perform(run, run.session.step(event, time.time()))

    def _perform(self, run: Run, actions: list[Any]) -> None:
        session = run.session
        assert session is not None
        for a in actions:
            if isinstance(a, Play):
                self._stop_play(run)
                run.play = self._spawn(run, self._play(run, a))
            elif isinstance(a, StopPlay):
                self._stop_play(run)
            elif isinstance(a, Lookup):
                self._spawn(run, self._lookup(run, a))
            elif isinstance(a, Enqueue):
                run.queued = True   # from now on a BYE may mean "bridged": the answer can come after it
                self._spawn(run, self._route(run, a))
            elif isinstance(a, CallbackAction):
                self._spawn(run, self._callback(run))
            elif isinstance(a, Transfer):
                run.transferring = True
                self._spawn(run, self._transfer(run, a))
            elif isinstance(a, HangUp):
                self.sip.hangup(run.call, "flow")
            elif isinstance(a, Finished):
                self._finished(run, a)
        self._arm(run)

    def _arm(self, run: Run) -> None:
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        session = run.session
        if session is not None and not session.done and session.deadline is not None:
            delay = max(0.0, session.deadline - time.time())
            run.timer = asyncio.get_running_loop().call_later(delay, self._event, run, Tick())

    def _stop_play(self, run: Run) -> None:
        if run.play is not None and not run.play.done():
            run.play.cancel()
        run.play = None
        if run.leg is not None:
            run.leg.stop()

    async def _play(self, run: Run, a: Play) -> None:
        try:
            audio = await self.prompts.samples(a.items, run.flow.language)
        except (PromptError, TtsError) as exc:   # a prompt we cannot play must not stall the caller
            log.error("ivr.prompt_failed", extra={"call": run.call.id, "reason": str(exc)})
            self._event(run, PlayDone())
            return
        if len(audio) == 0 or run.leg is None:
            self._event(run, PlayDone())
            return
        run.leg.play(encode_cached(audio, run.leg.payload_type), loop=a.loop)

    async def _lookup(self, run: Run, a: Lookup) -> None:
        self.stats["lookups"] += 1
        assert self.http is not None
        try:
            async with self.http.get(a.url, timeout=aiohttp.ClientTimeout(total=a.timeout),
                                     allow_redirects=False) as resp:
                body = await resp.content.read(MAX_LOOKUP_BYTES + 1)
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                if len(body) > MAX_LOOKUP_BYTES:
                    raise ValueError("answer too large")
                data = json.loads(body)
                if not isinstance(data, dict):
                    raise ValueError("the answer is not a JSON object")
        except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as exc:
            why = "timeout" if isinstance(exc, TimeoutError) else str(exc)[:200] or type(exc).__name__
            log.warning("ivr.lookup_failed", extra={"call": run.call.id, "url": a.url, "reason": why})
            self._event(run, LookupDone(False, None, why))
            return
        log.info("ivr.lookup", extra={"call": run.call.id, "url": a.url, "status": 200})
        self._event(run, LookupDone(True, data))

    async def _route(self, run: Run, a: Enqueue) -> None:
        try:
            got = await self.client.request("ivr.route", {"contact": run.call.id, "project": a.project,
                                                          "priority": a.priority, "data": dict(a.data)})
        except (RequestError, ConnectionClosed, TimeoutError) as exc:
            log.warning("ivr.route_failed", extra={"call": run.call.id, "project": a.project, "reason": str(exc)})
            run.queued = False
            self._event(run, Enqueued(False, str(exc)[:200]))
            return
        self.stats["routed"] += 1
        log.info("ivr.routed", extra={"call": run.call.id, "project": a.project, "position": got.get("position")})
        self._event(run, Enqueued(True, "", run.call.id))

    async def _callback(self, run: Run) -> None:
        try:
            await self.client.request("contact.callback", {"contact": run.call.id})
        except (RequestError, ConnectionClosed, TimeoutError) as exc:
            self._event(run, CallbackDone(False, str(exc)[:200]))
            return
        run.queued = False
        self._event(run, CallbackDone(True))

    async def _transfer(self, run: Run, a: Transfer) -> None:
        try:
            await self.client.request("ivr.transfer", {"contact": run.call.id, "number": a.number}, timeout=70.0)
        except (RequestError, ConnectionClosed, TimeoutError) as exc:
            run.transferring = False
            status = exc.details.get("status", 0) if isinstance(exc, RequestError) and exc.details else 0
            self._event(run, TransferDone(False, int(status or 0)))
            return
        self._event(run, TransferDone(True, 200))

    def _finished(self, run: Run, a: Finished) -> None:
        session = run.session
        assert session is not None
        self.stats["finished"] += 1
        media = {}
        if run.leg is not None:   # the caller's view of our stream, from his RTCP receiver reports
            st = run.leg.rtcp_stats
            media = {"rtp_sent": run.leg.sent, "rtp_received": run.leg.received, "late_frames": run.leg.late_frames,
                     "peer_lost": st.cumulative_lost, "peer_jitter_ms": round(st.jitter_ms, 2),
                     "rtt_ms": None if st.rtt_ms is None else round(st.rtt_ms, 2)}
        log.info("ivr.finished", extra={"call": run.call.id, "flow": run.flow.name, "outcome": a.outcome,
                                        "stage": a.stage, **media})
        report = {"contact": run.call.id, "flow": run.flow.name, "caller": run.call.caller[:64],
                  "pilot": run.call.pilot[:20], "started": run.started, "ended": time.time(), "stage": a.stage,
                  "path": ">".join(session.path)[-4400:], "outcome": a.outcome}
        task = asyncio.get_running_loop().create_task(self._report(report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if run.bye:   # else the call is still up (a transfer answered before its BYE): _on_end releases
            self._release(run)

    async def _report(self, report: dict) -> None:
        try:
            await self.client.request("ivr.session", report)
        except (RequestError, ConnectionClosed, TimeoutError) as exc:
            log.warning("ivr.report_failed", extra={"call": report["contact"], "reason": str(exc)})

    # ---- helpers ----------------------------------------------------------------------------------
    def _spawn(self, run: Run, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        run.tasks.add(task)
        task.add_done_callback(run.tasks.discard)
        return task

    def _release(self, run: Run) -> None:
        if self.runs.get(run.call.id) is run:
            del self.runs[run.call.id]
        if run.timer is not None:
            run.timer.cancel()
        for task in list(run.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        for sock in (run.sock, run.rtcp_sock):
            if sock is not None:
                sock.close()
        run.sock = run.rtcp_sock = None
        if run.leg is not None:
            run.leg.close()


class PasswordMissing(Exception):
    pass


def read_password(path: str) -> str:
    """The service account's password from ``ivr.password_file`` (its first line)."""
    try:
        lines = Path(path).read_text().strip().splitlines()
    except OSError as exc:
        raise PasswordMissing(f"ivr.password_file: cannot read {path!r} ({exc.strerror}); "
                              "the demo bootstrap of ctiserver writes it") from None
    if not lines or not lines[0].strip():
        raise PasswordMissing(f"ivr.password_file: {path!r} is empty")
    return lines[0].strip()
