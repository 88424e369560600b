"""Structured logging: one line per event, the event name as the message, ids as fields.

Code logs ``log.info("conn.open", extra={"conn": "c12", "peer": "127.0.0.1:50412"})``; the
formatter writes either one JSON object per line (journald and log shippers) or ``key=value`` text
for a terminal.  Every field value is sanitised: control characters escaped, long values cut, so a
peer cannot forge log lines or flood them.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
MAX_FIELD = 256


def sanitize(value: object) -> object:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = str(value)
    if len(text) > MAX_FIELD:
        text = text[:MAX_FIELD] + "…"
    if text.isprintable():
        return text
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: sanitize(v) for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 6), "level": record.levelname.lower(),
            "logger": record.name, "event": sanitize(record.getMessage()),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        parts = [ts, f"{record.levelname:<7}", f"{record.name}:", str(sanitize(record.getMessage()))]
        parts += [f"{k}={v}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
