"""Call flows: the data model of an IVR script and its validation.

A flow is data: a TOML file for the demo, the same dictionary stored as JSON in PostgreSQL.
:func:`parse_flow` checks everything once, at load, so the interpreter (:mod:`.interp`) never meets
a dangling step name, a bad regular expression or an unknown template field. Every
:class:`FlowError` names the flow, the step and the field::

    flow demo: step 'menu': choices: '12' is not a single DTMF digit
    flow demo: step 'menu': next 'nowhere' is not a step

Top level: ``name`` (``[a-z0-9_-]{1,40}``), ``pilots`` (digit strings), ``start`` (a step),
``language`` ("en" or "cs"), ``timezone`` (for the ``holiday`` test; default Europe/Prague),
``[calendars.NAME]`` (:mod:`.calendar`) and ``[steps.NAME]`` (``[A-Za-z0-9_]{1,40}``), each with a
``type`` — see the ``*Step`` classes below for their keys and defaults. Every step must be
reachable from ``start``.

Prompts: where a prompt is allowed, a string or a list of strings. ``"tts:Text with {var}"`` is
text to speech; anything else is a prompt file name (``[A-Za-z0-9_./-]{1,80}``, no ``..``, no
leading ``/``), which the daemon resolves as ``<repo>/<language>/<name>.wav``.

Templates: ``{name}`` or ``{name.field}`` is replaced by the variable's value, a missing variable by
nothing; ``{{`` and ``}}`` are literal braces; no format specs or conversions. In a lookup URL every
value is percent-encoded, except a placeholder that opens the URL (the base address, e.g.
``{ehic_base}/Verify/{card}``), which is taken as it is.

Bounds (what an author can make the engine hold): 500 steps, 20 prompt items, 50 branch tests,
200 switch cases, 50 ``set``/``data`` entries, 1000 characters per template.
"""

from __future__ import annotations

import difflib
import json
import re
import string
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from .calendar import DEFAULT_TIMEZONE, Calendar, CalendarError, parse_calendars, zone

Prompt = tuple[str, ...]

DTMF_KEYS = "0123456789*#"
LANGUAGES = ("en", "cs")
# bounds on what an author can make the engine hold (see the module docstring)
MAX_STEPS, MAX_PROMPT_ITEMS, MAX_TESTS, MAX_CASES, MAX_ENTRIES, MAX_TEMPLATE = 500, 20, 50, 200, 50, 1000
RESERVED_DATA = ("ivr_flow", "ivr_stage", "ivr_path")

_FLOW_NAME = re.compile(r"[a-z0-9_-]{1,40}")
_STEP_NAME = re.compile(r"[A-Za-z0-9_]{1,40}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_VAR_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?")
_PROMPT_FILE = re.compile(r"[A-Za-z0-9_./-]{1,80}")
_PILOT = re.compile(r"[0-9]{1,32}")
_DATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,40}")


class FlowError(ValueError):
    """A flow definition is wrong; the message names the flow, the step and the field."""


# ---- templates ------------------------------------------------------------------------------------

@lru_cache(maxsize=2048)
def template_pieces(text: str) -> tuple[tuple[str, str | None], ...]:
    """``text`` as (literal, variable or None) pairs; ``ValueError`` names what is wrong."""
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in string.Formatter().parse(text):
        if name is not None:
            if spec or conversion:
                raise ValueError(f"placeholder {{{name}}} may not have a format spec or conversion")
            if not _VAR_REF.fullmatch(name):
                raise ValueError(f"placeholder {{{name}}} is not {{identifier}} or {{identifier.field}}")
        out.append((literal, name))
    return tuple(out)


# ---- the model ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlayStep:
    """Play ``prompt``, then go to ``next``."""
    name: str
    prompt: Prompt
    next: str
    TYPE: ClassVar[str] = "play"


@dataclass(frozen=True)
class MenuStep:
    """Play ``prompt`` and take one digit: ``choices`` maps it to a step."""
    name: str
    prompt: Prompt
    choices: dict[str, str]
    fail: str
    timeout: float = 5.0
    retries: int = 3
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    TYPE: ClassVar[str] = "menu"


@dataclass(frozen=True)
class CollectStep:
    """Play ``prompt`` and collect ``min``..``max`` digits into the variable ``var``."""
    name: str
    prompt: Prompt
    var: str
    next: str
    fail: str
    min: int = 1
    max: int = 20
    terminator: str = "#"
    first_timeout: float = 5.0
    digit_timeout: float = 3.0
    retries: int = 3
    invalid_prompt: Prompt | None = None
    TYPE: ClassVar[str] = "collect"


@dataclass(frozen=True)
class Condition:
    """One test of a branch. ``kind`` is equals, in, matches, less, greater (on the variable
    ``var``), caller_matches, open (``value`` = a calendar) or holiday (``value`` = True/False)."""
    kind: str
    then: str
    var: str = ""
    value: str | tuple[str, ...] | float | bool = ""


@dataclass(frozen=True)
class BranchStep:
    """The first test that holds picks the step; none does: ``else``."""
    name: str
    when: tuple[Condition, ...]
    else_: str
    TYPE: ClassVar[str] = "branch"


@dataclass(frozen=True)
class HoursStep:
    name: str
    calendar: str
    open: str
    closed: str
    TYPE: ClassVar[str] = "hours"


@dataclass(frozen=True)
class SwitchStep:
    name: str
    var: str
    cases: dict[str, str]
    default: str
    TYPE: ClassVar[str] = "switch"


@dataclass(frozen=True)
class LookupStep:
    """GET ``url`` (a template); the JSON object's fields become the variables ``var.Field``."""
    name: str
    url: str
    var: str
    next: str
    error: str
    timeout: float = 3.0
    TYPE: ClassVar[str] = "lookup"


@dataclass(frozen=True)
class SetStep:
    name: str
    vars: dict[str, str]
    next: str
    TYPE: ClassVar[str] = "set"


@dataclass(frozen=True)
class EnqueueStep:
    """Queue the call in ``project`` and give the caller the waiting treatment."""
    name: str
    project: str
    error: str
    priority: int = 0
    data: dict[str, str] = field(default_factory=dict)
    music: Prompt | None = None
    message: Prompt | None = None
    message_interval: float = 30.0
    announce: Prompt | None = None
    callback_prompt: Prompt | None = None
    callback: str | None = None
    TYPE: ClassVar[str] = "enqueue"


@dataclass(frozen=True)
class TransferStep:
    name: str
    number: str
    error: str
    TYPE: ClassVar[str] = "transfer"


@dataclass(frozen=True)
class HangupStep:
    name: str
    prompt: Prompt | None = None
    TYPE: ClassVar[str] = "hangup"


Step = (PlayStep | MenuStep | CollectStep | BranchStep | HoursStep | SwitchStep | LookupStep | SetStep
        | EnqueueStep | TransferStep | HangupStep)
STEP_TYPES: dict[str, type[Any]] = {cls.TYPE: cls for cls in (
    PlayStep, MenuStep, CollectStep, BranchStep, HoursStep, SwitchStep, LookupStep, SetStep,
    EnqueueStep, TransferStep, HangupStep)}
_PROMPT_FIELDS = ("prompt", "invalid_prompt", "timeout_prompt", "music", "message", "announce",
                  "callback_prompt")


def step_targets(step: Step) -> list[tuple[str, str]]:
    """(field, step name) of every step that ``step`` can go to, in the order of its fields."""
    out: list[tuple[str, str]] = []
    for key in ("next", "fail", "open", "closed", "default", "error", "callback", "else_"):
        target = getattr(step, key, None)
        if target is not None:
            out.append((_doc_key(key), target))
    if isinstance(step, MenuStep):
        out += [(f"choices.{digit}", target) for digit, target in step.choices.items()]
    elif isinstance(step, SwitchStep):
        out += [(f"cases.{value}", target) for value, target in step.cases.items()]
    elif isinstance(step, BranchStep):
        out += [(f"when[{i}].then", test.then) for i, test in enumerate(step.when)]
    return out


def step_to_doc(step: Step) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": step.TYPE}
    for f in fields(step):
        value = getattr(step, f.name)
        if f.name == "name" or value is None:
            continue
        if f.name in _PROMPT_FIELDS:
            value = list(value)
        elif f.name == "when":
            value = [_test_to_doc(test) for test in value]
        elif isinstance(value, dict):
            value = dict(value)
        doc[_doc_key(f.name)] = value
    return doc


def _test_to_doc(test: Condition) -> dict[str, Any]:
    doc: dict[str, Any] = {"var": test.var} if test.var else {}
    doc[test.kind] = list(test.value) if isinstance(test.value, tuple) else test.value
    doc["then"] = test.then
    return doc


def _doc_key(field_name: str) -> str:
    return "else" if field_name == "else_" else field_name


@dataclass(frozen=True)
class Flow:
    name: str
    pilots: tuple[str, ...]
    start: str
    steps: dict[str, Step]
    calendars: dict[str, Calendar] = field(default_factory=dict)
    language: str = "en"
    timezone: str = DEFAULT_TIMEZONE

    def prompt_names(self) -> set[str]:
        """Every prompt file the flow plays (not the text-to-speech items)."""
        names: set[str] = set()
        for step in self.steps.values():
            for key in _PROMPT_FIELDS:
                items = getattr(step, key, None)
                if items:
                    names.update(item for item in items if not item.startswith("tts:"))
        return names

    def to_doc(self) -> dict[str, Any]:
        """The flow as a JSON-serialisable dict; ``parse_flow(flow.to_doc()) == flow``."""
        return {"name": self.name, "pilots": list(self.pilots), "start": self.start,
                "language": self.language, "timezone": self.timezone,
                "calendars": {name: cal.to_doc() for name, cal in self.calendars.items()},
                "steps": {name: step_to_doc(step) for name, step in self.steps.items()}}


# ---- validation -----------------------------------------------------------------------------------

_TOP_KEYS = ("name", "pilots", "start", "language", "timezone", "calendars", "steps")
_TEST_KINDS = ("equals", "in", "matches", "less", "greater", "caller_matches", "open", "holiday")
_VAR_TESTS = ("equals", "in", "matches", "less", "greater")


def _unknown(key: object, allowed: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(str(key), list(allowed), n=1)
    return f"unknown key {key!r}" + (f" (did you mean {near[0]!r}?)" if near else "")


def _kind(value: object) -> str:
    return type(value).__name__


class _Reader:
    """Typed access to one table of the document; every error names where it is and the field."""

    def __init__(self, where: str, doc: Mapping[str, Any], calendars: Mapping[str, Calendar]) -> None:
        self.where, self.doc, self.calendars = where, doc, calendars

    def fail(self, key: str, msg: str) -> NoReturn:
        raise FlowError(f"{self.where}: {key}: {msg}")

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.doc:
            if key not in allowed:
                raise FlowError(f"{self.where}: {_unknown(key, allowed)}")

    def raw(self, key: str, required: bool) -> Any:
        if key not in self.doc and required:
            self.fail(key, "required")
        return self.doc.get(key)

    def opt_str(self, key: str, default: str | None = None, pattern: re.Pattern[str] | None = None,
                what: str = "", *, required: bool = False, template: bool = False) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.fail(key, f"must be a string, not {_kind(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(key, f"{value!r} is not {what}")
        if template:
            self.check_template(key, value)
        return value

    def text(self, key: str, pattern: re.Pattern[str] | None = None, what: str = "", *,
            template: bool = False) -> str:
        return self.opt_str(key, "", pattern, what, required=True, template=template) or ""

    def ref(self, key: str) -> str:
        return self.text(key, _STEP_NAME, "a step name")

    def num(self, key: str, default: float, low: float, high: float) -> float:
        value = self.raw(key, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"must be a number, not {_kind(value)}")
        if not low <= value <= high:
            self.fail(key, f"{value} is out of range {low:g}..{high:g}")
        return float(value)

    def whole(self, key: str, default: int, low: int, high: int) -> int:
        value = self.raw(key, False)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(key, f"must be a whole number, not {_kind(value)}")
        return int(self.num(key, default, low, high))

    def check_template(self, key: str, value: str) -> None:
        if len(value) > MAX_TEMPLATE:
            self.fail(key, f"longer than {MAX_TEMPLATE} characters")
        try:
            template_pieces(value)
        except ValueError as exc:
            self.fail(key, f"bad template {value!r}: {exc}")

    def prompt(self, key: str, required: bool = False) -> Prompt | None:
        value = self.raw(key, required)
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            self.fail(key, "must be a prompt name or a non-empty list of them")
        if len(items) > MAX_PROMPT_ITEMS:
            self.fail(key, f"at most {MAX_PROMPT_ITEMS} items")
        for item in items:
            if not isinstance(item, str):
                self.fail(key, f"a prompt must be a string, not {_kind(item)}")
            if item.startswith("tts:"):
                if not item[4:].strip():
                    self.fail(key, f"{item!r} has no text")
                self.check_template(key, item[4:])
            elif not _PROMPT_FILE.fullmatch(item) or ".." in item or item.startswith("/"):
                self.fail(key, f"{item!r} is neither tts:text nor a prompt file name "
                               "([A-Za-z0-9_./-]{1,80}, no '..', no leading '/')")
        return tuple(items)

    def table(self, key: str, required: bool = True, limit: int = MAX_ENTRIES) -> dict[str, Any]:
        value = self.raw(key, required)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"must be a table, not {_kind(value)}")
        if required and not value:
            self.fail(key, "must not be empty")
        if len(value) > limit:
            self.fail(key, f"at most {limit} entries")
        return value

    def ref_table(self, key: str, limit: int) -> dict[str, str]:
        table = self.table(key, limit=limit)
        for name, target in table.items():
            if not isinstance(target, str) or not _STEP_NAME.fullmatch(target):
                self.fail(key, f"{name!r}: {target!r} is not a step name")
        return dict(table)

    def templates(self, key: str, keys: re.Pattern[str], what: str, required: bool) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.table(key, required).items():
            if not keys.fullmatch(name) or (key == "data" and name in RESERVED_DATA):
                self.fail(key, f"{name!r} is not {what}")
            if not isinstance(value, str):
                self.fail(f"{key}.{name}", f"must be a string template, not {_kind(value)}")
            self.check_template(f"{key}.{name}", value)
            out[name] = value
        return out


def _menu(r: _Reader, name: str) -> Step:
    choices = r.ref_table("choices", len(DTMF_KEYS))
    for digit in choices:
        if len(digit) != 1 or digit not in DTMF_KEYS:
            r.fail("choices", f"{digit!r} is not a single DTMF digit (0-9, *, #)")
    return MenuStep(name, r.prompt("prompt", True) or (), choices, r.ref("fail"),
                    timeout=r.num("timeout", 5.0, 1, 60), retries=r.whole("retries", 3, 0, 10),
                    invalid_prompt=r.prompt("invalid_prompt"), timeout_prompt=r.prompt("timeout_prompt"))


def _collect(r: _Reader, name: str) -> Step:
    low, high = r.whole("min", 1, 0, 40), r.whole("max", 20, 1, 40)
    if high < low:
        r.fail("max", f"{high} is less than min {low}")
    terminator = r.opt_str("terminator", "#")
    if terminator not in ("#", "*", ""):
        r.fail("terminator", f"{terminator!r} is not '#', '*' or '' (none)")
    return CollectStep(name, r.prompt("prompt", True) or (), r.text("var", _IDENT, "an identifier"),
                       r.ref("next"), r.ref("fail"), min=low, max=high, terminator=terminator or "",
                       first_timeout=r.num("first_timeout", 5.0, 1, 60),
                       digit_timeout=r.num("digit_timeout", 3.0, 1, 60),
                       retries=r.whole("retries", 3, 0, 10), invalid_prompt=r.prompt("invalid_prompt"))


def _branch(r: _Reader, name: str) -> Step:
    when = r.raw("when", True)
    if not isinstance(when, list) or not when:
        r.fail("when", "must be a non-empty list of tests")
    if len(when) > MAX_TESTS:
        r.fail("when", f"at most {MAX_TESTS} tests")
    tests: list[Condition] = []
    for i, doc in enumerate(when):
        if not isinstance(doc, dict):
            r.fail(f"when[{i}]", f"must be a table, not {_kind(doc)}")
        tests.append(_test(_Reader(f"{r.where}: when[{i}]", doc, r.calendars)))
    return BranchStep(name, tuple(tests), r.ref("else"))


def _test(r: _Reader) -> Condition:
    r.check_keys(("var", "then", *_TEST_KINDS))
    kinds = [key for key in r.doc if key in _TEST_KINDS]
    if len(kinds) != 1:
        r.fail("test", f"needs exactly one of {', '.join(_TEST_KINDS)}, has {kinds or 'none'}")
    kind = kinds[0]
    then = r.ref("then")
    if kind in _VAR_TESTS:
        var = r.text("var", _VAR_REF, "a variable name")
    elif "var" in r.doc:
        r.fail("var", f"not used by the test {kind!r}")
    else:
        var = ""
    value: str | tuple[str, ...] | float | bool
    if kind in ("equals", "open"):
        value = r.text(kind)
        if kind == "open" and value not in r.calendars:
            r.fail("open", f"{value!r} is not a calendar")
    elif kind == "in":
        items = r.raw("in", True)
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            r.fail("in", "must be a non-empty list of strings")
        value = tuple(items)
    elif kind in ("matches", "caller_matches"):
        value = r.text(kind)
        try:
            re.compile(value)
        except re.error as exc:
            r.fail(kind, f"bad regular expression {value!r}: {exc}")
    elif kind in ("less", "greater"):
        value = r.num(kind, 0.0, float("-inf"), float("inf"))
    else:
        value = r.raw("holiday", True)
        if not isinstance(value, bool):
            r.fail("holiday", f"must be true or false, not {_kind(value)}")
    return Condition(kind, then, var, value)


def _hours(r: _Reader, name: str) -> Step:
    calendar = r.text("calendar")
    if calendar not in r.calendars:
        r.fail("calendar", f"{calendar!r} is not a calendar")
    return HoursStep(name, calendar, r.ref("open"), r.ref("closed"))


def _switch(r: _Reader, name: str) -> Step:
    return SwitchStep(name, r.text("var", _VAR_REF, "a variable name"), r.ref_table("cases", MAX_CASES),
                      r.ref("default"))


def _lookup(r: _Reader, name: str) -> Step:
    url = r.text("url", template=True)
    if not url.startswith(("http://", "https://", "{")):
        r.fail("url", f"{url!r} must start with http://, https:// or a {{variable}}")
    return LookupStep(name, url, r.text("var", _IDENT, "an identifier"), r.ref("next"), r.ref("error"),
                      timeout=r.num("timeout", 3.0, 0.1, 30))


def _set(r: _Reader, name: str) -> Step:
    return SetStep(name, r.templates("vars", _IDENT, "an identifier", True), r.ref("next"))


def _enqueue(r: _Reader, name: str) -> Step:
    data = r.templates("data", _DATA_KEY, f"a data key ([A-Za-z0-9_.-]{{1,40}}, none of {RESERVED_DATA})",
                       False)
    callback_prompt = r.prompt("callback_prompt")
    callback = r.opt_str("callback", None, _STEP_NAME, "a step name")
    if (callback_prompt is None) != (callback is None):
        r.fail("callback" if callback is None else "callback_prompt",
               "callback and callback_prompt go together: give both or neither")
    project = r.text("project", template=True)
    if not project.strip():
        r.fail("project", "must not be empty")
    return EnqueueStep(name, project, r.ref("error"), priority=r.whole("priority", 0, -100, 100),
                       data=data, music=r.prompt("music"), message=r.prompt("message"),
                       message_interval=r.num("message_interval", 30.0, 5, 3600),
                       announce=r.prompt("announce"), callback_prompt=callback_prompt, callback=callback)


def _transfer(r: _Reader, name: str) -> Step:
    number = r.text("number", template=True)
    if not number.strip():
        r.fail("number", "must not be empty")
    return TransferStep(name, number, r.ref("error"))


_PARSERS: dict[str, Callable[[_Reader, str], Step]] = {
    "play": lambda r, name: PlayStep(name, r.prompt("prompt", True) or (), r.ref("next")),
    "menu": _menu, "collect": _collect, "branch": _branch, "hours": _hours, "switch": _switch,
    "lookup": _lookup, "set": _set, "enqueue": _enqueue, "transfer": _transfer,
    "hangup": lambda r, name: HangupStep(name, r.prompt("prompt"))}
# the keys a step of each type may have: its dataclass fields (``else_`` is spelled ``else``)
_STEP_KEYS = {kind: ("type", *(_doc_key(f.name) for f in fields(cls) if f.name != "name"))
              for kind, cls in STEP_TYPES.items()}


def _parse_step(r: _Reader, name: str) -> Step:
    if not isinstance(r.doc, dict):
        raise FlowError(f"{r.where}: a step must be a table, not {_kind(r.doc)}")
    kind = r.text("type")
    if kind not in _PARSERS:
        near = difflib.get_close_matches(kind, list(_PARSERS), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else f" (one of {', '.join(_PARSERS)})"
        r.fail("type", f"unknown step type {kind!r}{hint}")
    r.check_keys(_STEP_KEYS[kind])
    return _PARSERS[kind](r, name)


def parse_flow(doc: Mapping[str, Any], source: str = "") -> Flow:
    """Validate a flow document (the TOML/JSON dict); :class:`FlowError` says what is wrong."""
    prefix = f"{source}: " if source else ""
    if not isinstance(doc, Mapping):
        raise FlowError(f"{prefix}a flow must be a table, not {_kind(doc)}")
    shown = doc.get("name")
    shown = shown if isinstance(shown, str) and _FLOW_NAME.fullmatch(shown) else "?"
    calendars: dict[str, Calendar] = {}
    top = _Reader(f"{prefix}flow {shown}", doc, calendars)
    top.check_keys(_TOP_KEYS)
    name = top.text("name", _FLOW_NAME, "a flow name ([a-z0-9_-]{1,40})")
    pilots = top.raw("pilots", False) or []
    if not isinstance(pilots, list) or not all(isinstance(p, str) and _PILOT.fullmatch(p) for p in pilots):
        top.fail("pilots", f"must be a list of digit strings, not {pilots!r}")
    if len(set(pilots)) != len(pilots):
        top.fail("pilots", "a pilot is listed twice")
    language = top.opt_str("language", "en") or "en"
    if language not in LANGUAGES:
        top.fail("language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
    timezone = top.opt_str("timezone", DEFAULT_TIMEZONE) or DEFAULT_TIMEZONE
    try:
        zone(timezone)
    except ValueError as exc:
        top.fail("timezone", str(exc))
    try:
        calendars.update(parse_calendars(top.raw("calendars", False)))
    except CalendarError as exc:
        raise FlowError(f"{top.where}: {exc}") from None
    steps: dict[str, Step] = {}
    for step_name, step_doc in top.table("steps", limit=MAX_STEPS).items():
        if not _STEP_NAME.fullmatch(step_name):
            top.fail("steps", f"{step_name!r} is not a step name ([A-Za-z0-9_]{{1,40}})")
        where = f"{top.where}: step {step_name!r}"
        steps[step_name] = _parse_step(_Reader(where, step_doc, calendars), step_name)
    start = top.ref("start")
    if start not in steps:
        top.fail("start", f"{start!r} is not a step")
    _check_graph(top.where, start, steps)
    return Flow(name=name, pilots=tuple(pilots), start=start, steps=steps, calendars=calendars,
                language=language, timezone=timezone)


def _check_graph(where: str, start: str, steps: Mapping[str, Step]) -> None:
    for name, step in steps.items():
        for key, target in step_targets(step):
            if target not in steps:
                raise FlowError(f"{where}: step {name!r}: {key} {target!r} is not a step")
    seen, todo = {start}, [start]
    while todo:
        for _, target in step_targets(steps[todo.pop()]):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    for name in steps:
        if name not in seen:
            raise FlowError(f"{where}: step {name!r} is unreachable from start {start!r}")


def load_flow_file(path: str | Path) -> Flow:
    """Read and validate a ``.toml`` or ``.json`` flow; errors name the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise FlowError(f"{path}: a flow file must end with .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(f"{path}: cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise FlowError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
    return parse_flow(doc, source=str(path))
