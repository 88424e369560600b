"""Entry rules (SPEC ACD-2): which project a new contact goes to.

Rules are tried in ascending ``position``; the first whose conditions all hold decides. A condition
left as None matches anything: the dialled pilot number, a prefix of the caller's number, one value
collected by the IVR (``data_key`` = ``data_value``), and a local time window (``time_from`` <=
time < ``time_to``; a window that wraps midnight, e.g. 22:00–06:00, is allowed). Pure: the local
time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import time


@dataclass(frozen=True, slots=True)
class EntryRule:
    position: int
    project: str
    pilot: str | None = None
    caller_prefix: str | None = None
    data_key: str | None = None
    data_value: str | None = None
    time_from: time | None = None
    time_to: time | None = None

    def matches(self, pilot: str | None, caller: str | None, data: Mapping[str, object], at: time) -> bool:
        if self.pilot is not None and pilot != self.pilot:
            return False
        if self.caller_prefix is not None and not (caller or "").startswith(self.caller_prefix):
            return False
        if self.data_key is not None and str(data.get(self.data_key, "")) != (self.data_value or ""):
            return False
        if self.time_from is not None and self.time_to is not None:
            if self.time_from <= self.time_to:
                return self.time_from <= at < self.time_to
            return at >= self.time_from or at < self.time_to  # wraps midnight
        return True


def route_entry(rules: Iterable[EntryRule], pilot: str | None, caller: str | None,
                data: Mapping[str, object], at: time) -> str | None:
    """The project of the first matching rule (by position), or None when no rule matches."""
    for rule in sorted(rules, key=lambda r: r.position):
        if rule.matches(pilot, caller, data, at):
            return rule.project
    return None
