"""Structured logging: one JSON object per line, secrets redacted.

`configure_logging` sends the "auction_engine", "gateway" and hypercorn loggers to a stream
through `JsonFormatter`; `log(logger, level, msg, **fields)` adds fields at the top level.
Fields named like a secret, and bearer tokens or JWTs in any text, become "[redacted]".
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

# what configure_logging sets up
LOGGERS = ("auction_engine", "gateway", "hypercorn.error", "hypercorn.access", "quart.app", "quart.serving")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"token|key|secret|authorization|password", re.IGNORECASE)  # field names to redact
SECRET_TEXT = re.compile(
    r"(?P<bearer>\b(?i:bearer)\s+)\S+"  # an Authorization header value: keep the word, drop the token
    r"|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # a JWT: three base64url segments
)
RESERVED = ("ts", "level", "logger", "msg", "exc", "stack")  # a field with one of these names gets a "_" suffix
MAX_DEPTH = 8  # nested field values deeper than this are logged with str()


def redact_text(text: str) -> str:
    """`text` with bearer tokens and JWTs replaced by "[redacted]"."""
    return SECRET_TEXT.sub(lambda m: (m.group("bearer") or "") + REDACTED, text)


def _clean(value: object, depth: int = 0) -> object:
    """`value` as JSON-ready data: secret-named keys and secret-looking text redacted, the rest str()."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return redact_text(value)
    if depth < MAX_DEPTH and isinstance(value, Mapping):
        return {str(k): REDACTED if SECRET_NAME.search(str(k)) else _clean(v, depth + 1) for k, v in value.items()}
    if depth < MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return redact_text(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, the record's `fields`, and exc / stack.

    `fields` comes from ``extra={"fields": {...}}``; it is merged at the top level, its values
    made JSON-ready (str() when nothing better), secret-named ones redacted.
    """

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out: dict[str, object] = {
            "ts": ts, "level": record.levelname.lower(), "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            cleaned = _clean(fields)
            assert isinstance(cleaned, dict)
            for key, value in cleaned.items():
                out[f"{key}_" if key in RESERVED else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = redact_text(record.exc_text)
        if record.stack_info:
            out["stack"] = redact_text(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False)


class _JsonHandler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs (recognised, and replaced, on the next call)."""


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send LOGGERS to `stream` (default sys.stderr) as JSON lines at `level`; calling again replaces."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    handler = _JsonHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _JsonHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(LEVELS[level.lower()])
        logger.propagate = False  # the root logger's handlers (if any) would print each line again


def log(logger: logging.Logger, level: int, msg: str, /, *, exc_info: bool = False, **fields: object) -> None:
    """Log `msg` with `fields` merged at the top level of the JSON line (and the traceback if exc_info)."""
    logger.log(level, msg, exc_info=exc_info, extra={"fields": fields}, stacklevel=2)
