"""Login throttling: failures per key (account name, source address) in a sliding window.

After ``max_failures`` failures within ``window`` seconds the key is locked for ``lockout``
seconds; every attempt during a lockout is refused without checking the password, so guessing
costs the attacker time, not us CPU.  A success clears the account key (not the address key, so
one valid account cannot be used to launder guesses against others).  Pure: ``now`` is passed in.
The number of keys tracked is bounded; the oldest are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class LoginThrottle:
    def __init__(self, max_failures: int, window: float, lockout: float, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: dict[str, float] = {}

    def retry_after(self, keys: list[str], now: float) -> float:
        """Seconds until these keys may try again; 0 when an attempt is allowed."""
        wait = 0.0
        for key in keys:
            until = self._locked_until.get(key)
            if until is not None:
                if until > now:
                    wait = max(wait, until - now)
                else:
                    del self._locked_until[key]
        return wait

    def failure(self, keys: list[str], now: float) -> None:
        for key in keys:
            times = self._failures.get(key)
            if times is None:
                times = self._failures[key] = deque()
                if len(self._failures) > self.max_keys:
                    old, _ = self._failures.popitem(last=False)
                    self._locked_until.pop(old, None)
            else:
                self._failures.move_to_end(key)
            times.append(now)
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.max_failures:
                self._locked_until[key] = now + self.lockout
                times.clear()

    def success(self, key: str) -> None:
        self._failures.pop(key, None)
        self._locked_until.pop(key, None)
