"""Structured log lines: JSON with the ids as fields, peer text sanitised."""

from __future__ import annotations

import json
import logging

from ctiserver.logs import JsonFormatter, TextFormatter, sanitize


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("simprot.server", logging.INFO, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_json_line_carries_ids() -> None:
    line = JsonFormatter().format(record("conn.open", conn="c7", peer="127.0.0.1:5000", account=12))
    assert "\n" not in line
    out = json.loads(line)
    assert out["event"] == "conn.open" and out["conn"] == "c7" and out["account"] == 12
    assert out["level"] == "info" and out["logger"] == "simprot.server"


def test_peer_text_cannot_forge_lines() -> None:
    evil = "bob\n{\"event\": \"login.ok\"}\x1b[31m"
    line = TextFormatter().format(record("login.failed", user=evil))
    assert "\n" not in line and "\x1b" not in line
    assert sanitize("x" * 1000).endswith("…") and len(sanitize("x" * 1000)) == 257  # type: ignore[arg-type]
    assert sanitize(5) == 5 and sanitize(None) is None
