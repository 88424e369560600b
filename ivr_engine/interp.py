"""The call-flow interpreter: one caller's walk through a :class:`~.flow.Flow` — no I/O, no clock.

A :class:`Session` is sans-IO, in the aioquic manner: the daemon calls ``start(now)`` once, then
``step(event, now)`` for every event of the call and ``step(Tick(), now)`` when ``deadline`` is
reached; each returns the actions to perform, in order. ``now`` is wall-clock epoch seconds
(calendars need the date). Semantics:

* branch, hours, switch and set run at once; a chain of them is followed within one call. More than
  ``MAX_HOPS`` (100) steps in one call is a loop without media: ``HangUp`` + ``Finished("error")``.
* play: ``Play``; ``PlayDone`` → ``next``. Digits meanwhile are type-ahead (at most ``MAX_BUFFER``)
  for the next menu or collect.
* menu: a type-ahead digit is the choice at once (no prompt); else ``Play(prompt)``, and a digit
  barges in (``StopPlay``; it is the choice). After ``PlayDone`` the ``timeout`` runs. A valid digit
  → its step; an invalid one or the timeout plays ``invalid_prompt`` / ``timeout_prompt`` (if set;
  digits barge in) and the prompt again, ``retries`` times at most; one failure more → ``fail``.
  A failure flushes the type-ahead.
* collect: type-ahead digits are taken first (then no prompt), else the first digit stops the
  prompt. ``first_timeout`` runs from the end of the prompt, ``digit_timeout`` after each digit. The
  terminator, the ``max``-th digit or a timeout ends the input: ``min``..``max`` digits set ``var``
  → ``next``; anything else is a failure as in a menu (then ``fail``).
* lookup: ``Lookup(url)`` (values percent-encoded, see :func:`render`). ``LookupDone(ok)`` with a
  JSON object sets ``var.Field`` per top-level field (strings as they are, numbers ``str()``,
  true/false, null as "", objects and lists as JSON; older ``var.*`` are dropped) → ``next``; not ok,
  not an object, or no answer by the guard deadline ``timeout + 1`` s → ``error``.
* enqueue: ``Enqueue`` (data rendered, plus ``ivr_flow``, ``ivr_stage``, ``ivr_path``); refused →
  ``error``. Queued: ``music`` loops; every ``message_interval`` s the ``message`` interrupts it
  (skipped while an announcement or offer plays), then the music resumes; ``Waiting("announce")``
  plays ``announce`` with ``{position}``, ``{ewt}`` (s), ``{ewt_min}`` (minutes rounded up, ≥ 1);
  ``Waiting("callback_offer")`` plays ``callback_prompt`` and from then on digit 1 sends
  ``Callback()`` once; ``CallbackDone(ok)`` leaves the queue → ``callback`` (not ok: keep waiting).
  Other digits, and notices of other kinds, are ignored while queued.
* transfer: ``Transfer(number)``; ``TransferDone(ok)`` ends the session "transferred" (no HangUp:
  the call moved on); not ok → ``error``.
* hangup: the prompt, if any, then ``HangUp`` + ``Finished("completed")``. ``Hangup(reason)`` at
  any time: ``Finished`` only (the call is gone): "bridged" (to an agent), "ended" (by ctiserver),
  else "abandoned_queued" (the caller left while queued) or "abandoned".
* ``Finished`` comes exactly once; after it every event gives ``[]``. Events the state does not
  expect (``PlayDone`` while nothing plays, a late ``LookupDone``, an early ``Tick``) are ignored.

Contract with the media adapter: ``PlayDone`` reports that the latest ``Play`` ended by itself; a
playback ended by ``StopPlay`` reports nothing (a new ``Play`` or step is preceded by ``StopPlay``
while something plays). The state table (waiting state × event → handler) is :data:`TABLE`.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from urllib.parse import quote

from . import flow as fl
from .calendar import is_holiday, is_open
from .flow import Condition, Flow, Prompt, Step, template_pieces

MAX_HOPS = 100      # steps entered within one call before the session is declared looping
MAX_PATH = 100      # steps kept in ``path``
MAX_BUFFER = 32     # type-ahead digits kept
MAX_VALUE = 4096    # characters kept of a variable's value
MAX_FIELDS = 100    # fields of a lookup answer turned into variables
DIGITS = "0123456789*#ABCD"


def render(template: str, variables: Mapping[str, str], *, url: bool = False) -> str:
    """Fill ``template`` from ``variables`` (a missing one renders empty). With ``url``, values are
    percent-encoded, except one that opens the template (the base address)."""
    out: list[str] = []
    for index, (literal, name) in enumerate(template_pieces(template)):
        out.append(literal)
        if name is not None:
            value = variables.get(name, "")
            out.append(quote(value, safe="") if url and (index or literal) else value)
    return "".join(out)


# ---- events (in) ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlayDone:
    """The latest Play ended by itself."""


@dataclass(frozen=True, slots=True)
class Digit:
    digit: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in DIGITS:
            raise ValueError(f"{self.digit!r} is not a DTMF digit")


@dataclass(frozen=True, slots=True)
class Tick:
    """The deadline passed."""


@dataclass(frozen=True, slots=True)
class LookupDone:
    ok: bool
    data: dict[str, Any] | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Enqueued:
    ok: bool
    error: str = ""
    contact: str = ""


@dataclass(frozen=True, slots=True)
class Waiting:
    kind: str          # "announce" or "callback_offer"
    position: int
    ewt: float         # seconds; a notice of another kind is ignored


@dataclass(frozen=True, slots=True)
class CallbackDone:
    ok: bool
    error: str = ""


@dataclass(frozen=True, slots=True)
class TransferDone:
    ok: bool
    status: int = 0


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str        # "caller", "bridged" or "ended"


Event = PlayDone | Digit | Tick | LookupDone | Enqueued | Waiting | CallbackDone | TransferDone | Hangup


# ---- actions (out) ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PromptRef:
    name: str          # a prompt file: <repo>/<language>/<name>.wav


@dataclass(frozen=True, slots=True)
class Speak:
    text: str          # text to speech, already rendered


@dataclass(frozen=True, slots=True)
class Play:
    items: tuple[PromptRef | Speak, ...]
    loop: bool = False


@dataclass(frozen=True, slots=True)
class StopPlay:
    pass


@dataclass(frozen=True, slots=True)
class Lookup:
    url: str
    timeout: float


@dataclass(frozen=True, slots=True)
class Enqueue:
    project: str
    priority: int
    data: dict[str, str]


@dataclass(frozen=True, slots=True)
class Callback:
    pass


@dataclass(frozen=True, slots=True)
class Transfer:
    number: str


@dataclass(frozen=True, slots=True)
class HangUp:
    pass


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: str       # completed, transferred, bridged, abandoned, abandoned_queued, ended, error
    stage: str


Action = Play | StopPlay | Lookup | Enqueue | Callback | Transfer | HangUp | Finished


class Wait(enum.Enum):
    """What the session waits for."""
    IDLE = "idle"                  # not started
    PLAY = "play"                  # a play step's prompt
    MENU_PROMPT = "menu_prompt"
    MENU_INPUT = "menu_input"      # the prompt ended; the timeout runs
    MENU_NOTICE = "menu_notice"    # invalid_prompt / timeout_prompt
    COLLECT_PROMPT = "collect_prompt"
    COLLECT_INPUT = "collect_input"
    COLLECT_NOTICE = "collect_notice"
    LOOKUP = "lookup"
    ENQUEUING = "enqueuing"        # Enqueue sent, no answer yet
    QUEUED = "queued"
    TRANSFER = "transfer"
    GOODBYE = "goodbye"            # a hangup step's prompt
    DONE = "done"


S = TypeVar("S", fl.PlayStep, fl.MenuStep, fl.CollectStep, fl.LookupStep, fl.EnqueueStep, fl.TransferStep)


def _text(value: Any) -> str:
    """A lookup field as a variable's value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


class Session:
    """One caller in one flow. See the module docstring for the semantics."""

    def __init__(self, flow: Flow, *, caller: str, pilot: str, call_id: str,
                 variables: dict[str, str] | None = None, holidays: frozenset[date] = frozenset()) -> None:
        self.flow = flow
        self.caller, self.holidays = caller, holidays
        self.variables: dict[str, str] = dict(variables or {})
        self.variables.update(caller=caller, pilot=pilot, call_id=call_id)
        self.deadline: float | None = None
        self.stage = ""
        self.path: list[str] = []
        self.done = False
        self.outcome: str | None = None
        self.wait = Wait.IDLE
        self._out: list[Action] = []
        self._next: str | None = None      # the step to enter next (a trampoline, not recursion)
        self._playing = False              # a Play was sent and has neither ended nor been stopped
        self._buffer = ""                  # type-ahead
        self._tries = 0                    # failures in the current menu / collect
        self._digits = ""                  # collected so far
        self._queued = False               # an Enqueue is out and the caller has not left the queue
        self._treatment = ""               # what plays while queued: "", music, message, announce, offer
        self._offered = False              # a callback was offered
        self._callback_sent = False        # Callback() sent, no CallbackDone yet

    # ---- the interface ----------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Enter the flow's start step (once)."""
        if self.wait is not Wait.IDLE:
            return []
        self._next = self.flow.start
        return self._run(now)

    def step(self, event: Event, now: float) -> list[Action]:
        """Feed one event; returns the actions to perform."""
        if self.wait in (Wait.IDLE, Wait.DONE):
            return []
        if isinstance(event, Hangup):
            outcome = {"bridged": "bridged", "ended": "ended"}.get(
                event.reason, "abandoned_queued" if self._queued else "abandoned")
            self._finish(outcome, hangup=False)
            return self._take()
        if isinstance(event, Tick):
            if self.deadline is None or now < self.deadline:
                return []
            self.deadline = None
        if isinstance(event, PlayDone):
            if not self._playing:
                return []
            self._playing = False
        handler = TABLE.get((self.wait, type(event)))
        if handler is not None:
            handler(self, event, now)
        return self._run(now)

    # ---- machinery --------------------------------------------------------------------------------

    def _take(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _run(self, now: float) -> list[Action]:
        hops = 0
        while self._next is not None and not self.done:
            name, self._next = self._next, None
            hops += 1
            if hops > MAX_HOPS:
                self._finish("error", hangup=True)
                break
            self._enter(name, now)
        return self._take()

    def _enter(self, name: str, now: float) -> None:
        self._stop()
        self.stage = name
        self.path.append(name)
        del self.path[:-MAX_PATH]
        self.deadline = None
        self._tries = 0
        step = self.flow.steps[name]
        ENTER[type(step)](self, step, now)

    def _cur(self, cls: type[S]) -> S:
        step = self.flow.steps[self.stage]
        assert isinstance(step, cls)
        return step

    def _finish(self, outcome: str, *, hangup: bool) -> None:
        if hangup:
            self._out.append(HangUp())
        self._out.append(Finished(outcome, self.stage))
        self.done, self.outcome, self.wait = True, outcome, Wait.DONE
        self.deadline, self._next, self._playing = None, None, False

    def _play(self, prompt: Prompt, wait: Wait, *, loop: bool = False,
              extra: Mapping[str, str] | None = None) -> None:
        self._stop()
        variables = {**self.variables, **extra} if extra else self.variables
        items = tuple(Speak(render(item[4:], variables)) if item.startswith("tts:") else PromptRef(item)
                      for item in prompt)
        self._out.append(Play(items, loop))
        self._playing = True
        self.wait = wait

    def _stop(self) -> None:
        if self._playing:
            self._out.append(StopPlay())
            self._playing = False

    def _keep_digit(self, event: Digit, now: float) -> None:
        if len(self._buffer) < MAX_BUFFER:
            self._buffer += event.digit

    def _set(self, name: str, value: str) -> None:
        self.variables[name] = value[:MAX_VALUE]

    # ---- steps without media ----------------------------------------------------------------------

    def _enter_branch(self, step: fl.BranchStep, now: float) -> None:
        self._next = next((test.then for test in step.when if self._holds(test, now)), step.else_)

    def _holds(self, test: Condition, now: float) -> bool:
        value = self.variables.get(test.var, "")
        if test.kind == "equals":
            return value == test.value
        if test.kind == "in":
            return isinstance(test.value, tuple) and value in test.value
        if test.kind in ("matches", "caller_matches"):
            subject = self.caller if test.kind == "caller_matches" else value
            return re.search(str(test.value), subject) is not None
        if test.kind in ("less", "greater"):
            try:
                number = float(value)
            except ValueError:
                return False
            limit = test.value if isinstance(test.value, float) else 0.0
            return number < limit if test.kind == "less" else number > limit
        if test.kind == "open":
            return is_open(self.flow.calendars[str(test.value)], now, self.holidays)
        return is_holiday(self.flow.timezone, now, self.holidays) == test.value   # holiday

    def _enter_hours(self, step: fl.HoursStep, now: float) -> None:
        self._next = step.open if is_open(self.flow.calendars[step.calendar], now, self.holidays) else step.closed

    def _enter_switch(self, step: fl.SwitchStep, now: float) -> None:
        self._next = step.cases.get(self.variables.get(step.var, ""), step.default)

    def _enter_set(self, step: fl.SetStep, now: float) -> None:
        values = {name: render(template, self.variables) for name, template in step.vars.items()}
        for name, value in values.items():
            self._set(name, value)
        self._next = step.next

    # ---- play, hangup -----------------------------------------------------------------------------

    def _enter_play(self, step: fl.PlayStep, now: float) -> None:
        self._play(step.prompt, Wait.PLAY)

    def _play_done(self, event: PlayDone, now: float) -> None:
        self._next = self._cur(fl.PlayStep).next

    def _enter_hangup(self, step: fl.HangupStep, now: float) -> None:
        if step.prompt:
            self._play(step.prompt, Wait.GOODBYE)
        else:
            self._finish("completed", hangup=True)

    def _goodbye_done(self, event: PlayDone, now: float) -> None:
        self._finish("completed", hangup=True)

    # ---- menu -------------------------------------------------------------------------------------

    def _enter_menu(self, step: fl.MenuStep, now: float) -> None:
        if self._buffer:
            digit, self._buffer = self._buffer[0], self._buffer[1:]
            self._menu_choice(step, digit, now)
        else:
            self._play(step.prompt, Wait.MENU_PROMPT)

    def _menu_digit(self, event: Digit, now: float) -> None:
        self._menu_choice(self._cur(fl.MenuStep), event.digit, now)

    def _menu_choice(self, step: fl.MenuStep, digit: str, now: float) -> None:
        self._stop()
        self.deadline = None
        target = step.choices.get(digit)
        if target is not None:
            self._next = target
        else:
            self._menu_failed(step, step.invalid_prompt)

    def _menu_failed(self, step: fl.MenuStep, notice: Prompt | None) -> None:
        self._buffer = ""
        self._tries += 1
        if self._tries > step.retries:
            self._next = step.fail
        elif notice:
            self._play(notice, Wait.MENU_NOTICE)
        else:
            self._play(step.prompt, Wait.MENU_PROMPT)

    def _menu_prompt_done(self, event: PlayDone, now: float) -> None:
        self.deadline = now + self._cur(fl.MenuStep).timeout
        self.wait = Wait.MENU_INPUT

    def _menu_timeout(self, event: Tick, now: float) -> None:
        step = self._cur(fl.MenuStep)
        self._menu_failed(step, step.timeout_prompt)

    def _menu_notice_done(self, event: PlayDone, now: float) -> None:
        self._play(self._cur(fl.MenuStep).prompt, Wait.MENU_PROMPT)

    # ---- collect ----------------------------------------------------------------------------------

    def _enter_collect(self, step: fl.CollectStep, now: float) -> None:
        self._digits = ""
        for index, digit in enumerate(self._buffer):
            if self._collect_add(step, digit):
                self._buffer = self._buffer[index + 1:]     # the rest is type-ahead for what follows
                self._collect_end(step)
                return
        self._buffer = ""
        if self._digits:
            self.wait, self.deadline = Wait.COLLECT_INPUT, now + step.digit_timeout
        else:
            self._play(step.prompt, Wait.COLLECT_PROMPT)

    def _collect_add(self, step: fl.CollectStep, digit: str) -> bool:
        """Take one digit; True when the input is complete."""
        if step.terminator and digit == step.terminator:
            return True
        self._digits += digit
        return len(self._digits) >= step.max

    def _collect_digit(self, event: Digit, now: float) -> None:
        step = self._cur(fl.CollectStep)
        self._stop()
        if self._collect_add(step, event.digit):
            self._collect_end(step)
        else:
            self.wait, self.deadline = Wait.COLLECT_INPUT, now + step.digit_timeout

    def _collect_prompt_done(self, event: PlayDone, now: float) -> None:
        self.wait, self.deadline = Wait.COLLECT_INPUT, now + self._cur(fl.CollectStep).first_timeout

    def _collect_timeout(self, event: Tick, now: float) -> None:
        self._collect_end(self._cur(fl.CollectStep))

    def _collect_end(self, step: fl.CollectStep) -> None:
        self.deadline = None
        value, self._digits = self._digits, ""
        if step.min <= len(value) <= step.max:
            self._set(step.var, value)
            self._next = step.next
            return
        self._buffer = ""
        self._tries += 1
        if self._tries > step.retries:
            self._next = step.fail
        else:
            self._play(step.invalid_prompt or step.prompt,
                       Wait.COLLECT_NOTICE if step.invalid_prompt else Wait.COLLECT_PROMPT)

    def _collect_notice_done(self, event: PlayDone, now: float) -> None:
        self._play(self._cur(fl.CollectStep).prompt, Wait.COLLECT_PROMPT)

    # ---- lookup -----------------------------------------------------------------------------------

    def _enter_lookup(self, step: fl.LookupStep, now: float) -> None:
        self._out.append(Lookup(render(step.url, self.variables, url=True), step.timeout))
        self.wait, self.deadline = Wait.LOOKUP, now + step.timeout + 1.0

    def _lookup_done(self, event: LookupDone, now: float) -> None:
        step = self._cur(fl.LookupStep)
        self.deadline = None
        data = event.data if event.data is not None else {}
        if not event.ok or not isinstance(data, dict):
            self._next = step.error
            return
        prefix = step.var + "."
        for name in [name for name in self.variables if name.startswith(prefix)]:
            del self.variables[name]
        for key, value in list(data.items())[:MAX_FIELDS]:
            self._set(prefix + str(key), _text(value))
        self._next = step.next

    def _lookup_timeout(self, event: Tick, now: float) -> None:
        self._next = self._cur(fl.LookupStep).error

    # ---- enqueue ----------------------------------------------------------------------------------

    def _enter_enqueue(self, step: fl.EnqueueStep, now: float) -> None:
        data = {key: render(template, self.variables)[:MAX_VALUE] for key, template in step.data.items()}
        data.update(ivr_flow=self.flow.name, ivr_stage=step.name, ivr_path=">".join(self.path))
        self._out.append(Enqueue(render(step.project, self.variables), step.priority, data))
        self._queued, self._offered, self._callback_sent = True, False, False
        self.wait = Wait.ENQUEUING

    def _enqueued(self, event: Enqueued, now: float) -> None:
        step = self._cur(fl.EnqueueStep)
        if not event.ok:
            self._queued = False
            self._next = step.error
            return
        self.wait = Wait.QUEUED
        self._music(step)
        if step.message:
            self.deadline = now + step.message_interval

    def _music(self, step: fl.EnqueueStep) -> None:
        if step.music:
            self._play(step.music, Wait.QUEUED, loop=True)
            self._treatment = "music"
        else:
            self._treatment = ""

    def _queued_play_done(self, event: PlayDone, now: float) -> None:
        if self._treatment == "music":     # the music ended by itself (a broken file?): stay silent
            self._treatment = ""
        else:
            self._music(self._cur(fl.EnqueueStep))

    def _message_due(self, event: Tick, now: float) -> None:
        step = self._cur(fl.EnqueueStep)
        if step.message and self._treatment in ("", "music"):
            self._play(step.message, Wait.QUEUED)
            self._treatment = "message"
        self.deadline = now + step.message_interval

    def _waiting(self, event: Waiting, now: float) -> None:
        step = self._cur(fl.EnqueueStep)
        if event.kind == "announce" and step.announce:
            ewt = event.ewt if math.isfinite(event.ewt) and event.ewt > 0 else 0.0
            extra = {"position": str(max(0, event.position)), "ewt": str(round(ewt)),
                     "ewt_min": str(max(1, math.ceil(ewt / 60)))}
            self._play(step.announce, Wait.QUEUED, extra=extra)
            self._treatment = "announce"
        elif event.kind == "callback_offer" and step.callback_prompt and not self._callback_sent:
            self._play(step.callback_prompt, Wait.QUEUED)
            self._treatment, self._offered = "offer", True

    def _queued_digit(self, event: Digit, now: float) -> None:
        if event.digit == "1" and self._offered and not self._callback_sent:
            self._out.append(Callback())
            self._callback_sent = True
            if self._treatment == "offer":     # the offer is answered: back to the music
                self._stop()
                self._music(self._cur(fl.EnqueueStep))

    def _callback_done(self, event: CallbackDone, now: float) -> None:
        if not self._callback_sent:
            return
        self._callback_sent = False
        if event.ok:
            self._queued = False
            self._next = self._cur(fl.EnqueueStep).callback
        else:
            self._offered = False

    # ---- transfer ---------------------------------------------------------------------------------

    def _enter_transfer(self, step: fl.TransferStep, now: float) -> None:
        self._out.append(Transfer(render(step.number, self.variables)))
        self.wait = Wait.TRANSFER

    def _transfer_done(self, event: TransferDone, now: float) -> None:
        if event.ok:
            self._finish("transferred", hangup=False)
        else:
            self._next = self._cur(fl.TransferStep).error


Handler = Callable[[Session, Any, float], None]

ENTER: dict[type[Step], Handler] = {
    fl.PlayStep: Session._enter_play, fl.MenuStep: Session._enter_menu, fl.CollectStep: Session._enter_collect,
    fl.BranchStep: Session._enter_branch, fl.HoursStep: Session._enter_hours, fl.SwitchStep: Session._enter_switch,
    fl.LookupStep: Session._enter_lookup, fl.SetStep: Session._enter_set, fl.EnqueueStep: Session._enter_enqueue,
    fl.TransferStep: Session._enter_transfer, fl.HangupStep: Session._enter_hangup,
}

TABLE: dict[tuple[Wait, type[Event]], Handler] = {
    (Wait.PLAY, PlayDone): Session._play_done,
    (Wait.PLAY, Digit): Session._keep_digit,
    (Wait.MENU_PROMPT, Digit): Session._menu_digit,
    (Wait.MENU_PROMPT, PlayDone): Session._menu_prompt_done,
    (Wait.MENU_INPUT, Digit): Session._menu_digit,
    (Wait.MENU_INPUT, Tick): Session._menu_timeout,
    (Wait.MENU_NOTICE, Digit): Session._menu_digit,
    (Wait.MENU_NOTICE, PlayDone): Session._menu_notice_done,
    (Wait.COLLECT_PROMPT, Digit): Session._collect_digit,
    (Wait.COLLECT_PROMPT, PlayDone): Session._collect_prompt_done,
    (Wait.COLLECT_INPUT, Digit): Session._collect_digit,
    (Wait.COLLECT_INPUT, Tick): Session._collect_timeout,
    (Wait.COLLECT_NOTICE, Digit): Session._collect_digit,
    (Wait.COLLECT_NOTICE, PlayDone): Session._collect_notice_done,
    (Wait.LOOKUP, LookupDone): Session._lookup_done,
    (Wait.LOOKUP, Tick): Session._lookup_timeout,
    (Wait.LOOKUP, Digit): Session._keep_digit,
    (Wait.ENQUEUING, Enqueued): Session._enqueued,
    (Wait.ENQUEUING, Digit): Session._keep_digit,
    (Wait.QUEUED, PlayDone): Session._queued_play_done,
    (Wait.QUEUED, Tick): Session._message_due,
    (Wait.QUEUED, Waiting): Session._waiting,
    (Wait.QUEUED, Digit): Session._queued_digit,
    (Wait.QUEUED, CallbackDone): Session._callback_done,
    (Wait.TRANSFER, TransferDone): Session._transfer_done,
    (Wait.TRANSFER, Digit): Session._keep_digit,
    (Wait.GOODBYE, PlayDone): Session._goodbye_done,
}
