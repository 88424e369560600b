"""Event topics: sequence numbers, a bounded replay buffer, and the resume decision.

Every topic numbers its events 1, 2, 3, ... within one server *epoch* (a random id chosen when the
server starts).  The last ``capacity`` encoded frames are kept, so a client that reconnects and says
"I have seen ``seq`` of epoch ``e``" gets exactly the events it missed, in order, once; when the gap
is older than the buffer, or the epoch changed (another node, or a restart), it gets a fresh snapshot
instead.  Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any

from .framing import encode_frame
from .messages import Kind


class ResumeMode(enum.Enum):
    LIVE = "live"          # resumed with nothing missed: live events from now on
    REPLAY = "replay"      # the missed events follow the answer, then live events
    SNAPSHOT = "snapshot"  # the gap cannot be replayed: the answer carries a snapshot


Entry = tuple[bytes, "frozenset[str] | None"]  # a frame and its audience (None: every subscriber)


class Topic:
    """One topic's sequence and replay buffer.

    A buffered event keeps its frame when one was encoded for live subscribers; an event nobody was
    subscribed to is kept unencoded and encoded only if a resuming client asks for it (most events
    of a quiet topic are never replayed). Event data must not be changed after it is published.
    """

    __slots__ = ("name", "seq", "_frames")

    def __init__(self, name: str, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("topic capacity must be at least 1")
        self.name = name
        self.seq = 0
        self._frames: deque[list] = deque(maxlen=capacity)  # [frame | None, audience, seq, event, data]

    def publish(self, event: str, data: Any, audience: frozenset[str] | None = None,
                encode: bool = True) -> bytes | None:
        """Number the event; return its frame (encoded once, for every subscriber), or None when
        ``encode`` is false (nobody to send it to now)."""
        self.seq += 1
        frame = encode_frame([Kind.EVENT, self.name, self.seq, event, data]) if encode else None
        self._frames.append([frame, audience, self.seq, event, data])
        return frame

    def _entry(self, item: list) -> Entry:
        if item[0] is None:
            item[0] = encode_frame([Kind.EVENT, self.name, item[2], item[3], item[4]])
        return item[0], item[1]

    @property
    def oldest(self) -> int:
        """Sequence number of the oldest event still buffered (seq + 1 when empty)."""
        return self.seq - len(self._frames) + 1

    def resume(self, epoch: str, after: int | None, client_epoch: str | None) -> tuple[ResumeMode, list[Entry]]:
        """Decide how a (re)subscribing client continues.

        ``after`` is the last sequence number the client has seen, ``None`` for a first subscribe.
        The caller filters the returned entries by their audience.
        """
        if after is None:
            return ResumeMode.SNAPSHOT, []
        if client_epoch != epoch or after > self.seq or after < self.oldest - 1:
            return ResumeMode.SNAPSHOT, []
        if after == self.seq:
            return ResumeMode.LIVE, []
        missed = self.seq - after
        return ResumeMode.REPLAY, [self._entry(item) for item in list(self._frames)[-missed:]]
