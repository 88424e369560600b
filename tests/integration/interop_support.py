"""Shared helpers of the interoperability tests (test_interop_*.py): an independent client
(tests/interop_client.py), written from docs/simprot.md alone, against the real server."""

from __future__ import annotations

import asyncio
import json
import re
import struct
from pathlib import Path

import pytest

from tests.interop_client import (
    ERROR_CODES,
    ConnectionEnded,
    SimProtClient,
    SimProtError,
)

ADMIN = ("admin", "admin-pass-1")
AGENT = ("agent1", "agent-pass-1")
SPEC = Path(__file__).resolve().parents[2] / "docs" / "simprot.md"
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def client(core, user=None, **kw) -> SimProtClient:
    c = SimProtClient(core.address, timeout=3.0, **kw)
    c.connect()
    if user is not None:
        c.login(*user)
    return c


def expect_error(code_name: str, fn, *args, **kw) -> SimProtError:
    with pytest.raises(SimProtError) as info:
        fn(*args, **kw)
    err = info.value
    assert (err.code, err.name) == (ERROR_CODES[code_name], code_name), err
    return err


def expect_connection_end(c: SimProtClient, code_name: str, timeout: float = 2.0) -> ConnectionEnded:
    """§10: an id-0 ERROR, then the server closes (EOF)."""
    err = c.wait_closed(timeout)
    assert err is not None, "connection closed without an id-0 ERROR"
    assert err.request_id == 0 and err.connection_level
    assert (err.code, err.name) == (ERROR_CODES[code_name], code_name), err
    assert c.eof
    return err


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def run(fn, *args):
    return asyncio.to_thread(fn, *args)

def _worked_example_frames() -> list[tuple[str, object, bytes, int]]:
    text = SPEC.read_text(encoding="utf-8")
    section = text[text.index("## 14. Worked example") : text.index("## 15.")]
    frames = []
    pattern = r"\*\*\d+\. (C→S|S→C)\*\*[^\n]*\n```\n(.*?)```"
    for direction, block in re.findall(pattern, section, re.S):
        lines = block.strip("\n").split("\n")
        value = json.loads(lines[0].removeprefix("value").strip())
        prefix = bytes.fromhex(lines[1].removeprefix("length").split("(")[0])
        declared = int(re.search(r"\(= (\d+)\)", lines[1]).group(1))
        body = bytes.fromhex("".join(line[8:] for line in lines[2:]))
        assert struct.unpack(">I", prefix)[0] == declared
        frames.append((direction, value, prefix + body, declared))
    return frames
