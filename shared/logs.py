"""Logging for edge-agent and edge-hub: structlog, one line per event, console or JSON.

``console`` is ``time level message key=value ...``: greppable, and journald adds its own
metadata. ``json`` is one object per line for Loki/Elasticsearch/Vector. Values bound with
``structlog.contextvars`` (the hub's request id) appear on every line logged while bound.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["console", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


def _fmt(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text or '"' in text) else text


def render_console(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> str:
    ts = event.pop("timestamp", "")
    level = event.pop("level", "info")
    msg = event.pop("event", "")
    exc = event.pop("exception", None)
    fields = " ".join(f"{k}={_fmt(v)}" for k, v in event.items())
    line = f"{ts} {level:<7} {msg}" + (f" {fields}" if fields else "")
    return f"{line}\n{exc}" if exc else line


def configure_logging(level: LogLevel = "info", fmt: LogFormat = "console") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str) if fmt == "json" else render_console
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # paho/aiomqtt/httpx log through the stdlib; only their warnings are worth a line, and in
    # JSON mode they must be JSON too or a log shipper chokes on them.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "timestamp": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)
