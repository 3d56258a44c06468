"""Logging on stderr, as text for people or JSON lines for machines."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def setup_logging(level: str = "info", fmt: str = "text", verbosity: int = 0) -> None:
    levels = ["debug", "info", "warning", "error"]
    index = max(0, min(len(levels) - 1, levels.index(level) - verbosity))
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(levels[index].upper())
    # Third-party chatter (APScheduler's per-run lines, waitress) only when asked.
    for noisy in ("apscheduler", "waitress", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # waitress warns "Task queue depth is N" whenever a request waits for a
    # thread: under load that floods the log without saying anything useful.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
