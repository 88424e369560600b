"""Security at the SIP edge: who may call the pilots, how fast anyone may send, where agents may dial.

* :class:`TrunkPeers` — the trunk peers are admitted by source address (addresses or CIDR
  networks from ``sip.trunk_peers``). Anything else that sends an INVITE to a pilot gets 403 and is
  never routed; the answer is the same whatever the number dialled, so a scanner learns nothing
  (RFC 3261 leaves 403 vs 404 to us: we never say 404 to a stranger).
* :class:`RateLimiter` — a token bucket per source address (``sip.rate_limit`` requests per
  second, bursts of twice that). The table of sources is bounded: when it is full the bucket that
  was idle longest is dropped (it would be full again anyway).
* :class:`DialPlan` — outbound numbers an agent may dial (OUT-4): national numbers by default;
  international (``00`` or ``+``) and premium-rate prefixes only when configured.

All pure: ``now`` is passed in.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Iterable


class TrunkPeers:
    def __init__(self, entries: Iterable[str], max_cached: int = 10_000) -> None:
        self._nets = [ipaddress.ip_network(e, strict=False) for e in entries]
        self._seen: dict[str, bool] = {}   # source address -> admitted (parsing one costs microseconds)
        self._max = max_cached

    def admits(self, host: str) -> bool:
        ok = self._seen.get(host)
        if ok is None:
            try:
                addr = ipaddress.ip_address(host)
                ok = any(addr in net for net in self._nets if net.version == addr.version)
            except ValueError:
                ok = False
            if len(self._seen) >= self._max:
                self._seen.clear()
            self._seen[host] = ok
        return ok


class RateLimiter:
    """``allow(source, now)``: True while the source's bucket has a token."""

    def __init__(self, rate: float, burst: float | None = None, max_sources: int = 100_000) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.burst = burst if burst is not None else 2 * rate
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()   # source -> [tokens, last]
        self.refused = 0

    def allow(self, source: str, now: float) -> bool:
        b = self._buckets.get(source)
        if b is None:
            if len(self._buckets) >= self.max_sources:
                self._buckets.popitem(last=False)
            b = self._buckets[source] = [self.burst, now]
        else:
            self._buckets.move_to_end(source)
            b[0] = min(self.burst, b[0] + (now - b[1]) * self.rate)
            b[1] = now
        if b[0] >= 1.0:
            b[0] -= 1.0
            return True
        self.refused += 1
        return False


# Czech premium-rate and shared-cost ranges (900, 906, 908, 909, 976) and international prefixes.
_PREMIUM = re.compile(r"^(?:\+?420)?9(?:0[0-9]|76)")
_INTERNATIONAL = re.compile(r"^(?:\+|00)(?!420)")


class DialPlan:
    """Which numbers an agent may dial out through the trunk."""

    def __init__(self, *, international: bool = False, premium: bool = False, max_digits: int = 20) -> None:
        self.international, self.premium, self.max_digits = international, premium, max_digits

    def check(self, number: str) -> str | None:
        """None when allowed, else why not (for the SimProt error and the log)."""
        digits = number.replace(" ", "")
        if not (3 <= len(digits.lstrip("+")) <= self.max_digits and re.fullmatch(r"\+?[0-9]+", digits)):
            return "not a phone number"
        if _INTERNATIONAL.match(digits) and not self.international:
            return "international numbers are not allowed"
        if _PREMIUM.match(digits) and not self.premium:
            return "premium-rate numbers are not allowed"
        return None
