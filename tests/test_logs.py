"""Structured logs: JSON lines, fields merged at the top level, secrets redacted, idempotent setup."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from gateway.logs import LOGGERS, JsonFormatter, configure_logging, log

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiaWRkZXIifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in LOGGERS}
    out = io.StringIO()
    configure_logging("debug", out)
    yield out
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_fields_merged(stream: io.StringIO) -> None:
    logger = logging.getLogger("gateway.room")
    log(logger, logging.INFO, "bid accepted", auction_id="A1", connection_id=7, bidder="B-3F", status=200,
        duration_ms=1.25, when=object, nested={"a": [1, (2, 3)], "n": float("nan")})
    logging.getLogger("auction_engine.engine").warning("100%% %s", "done")
    first, second = lines(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(first["ts"]))
    assert first["level"] == "info" and first["logger"] == "gateway.room" and first["msg"] == "bid accepted"
    assert (first["auction_id"], first["connection_id"], first["bidder"]) == ("A1", 7, "B-3F")
    assert (first["status"], first["duration_ms"]) == (200, 1.25)
    assert first["when"] == str(object) and first["nested"] == {"a": [1, [2, 3]], "n": "nan"}
    assert second == {"ts": second["ts"], "level": "warning", "logger": "auction_engine.engine", "msg": "100% done"}


def test_reserved_names_do_not_overwrite(stream: io.StringIO) -> None:
    log(logging.getLogger("gateway"), logging.INFO, "real", msg="fake", level="fake")
    (line,) = lines(stream)
    assert (line["msg"], line["level"], line["msg_"], line["level_"]) == ("real", "info", "fake", "fake")


def test_exception_traceback(stream: io.StringIO) -> None:
    try:
        raise RuntimeError(f"boom Bearer {JWT}")
    except RuntimeError:
        log(logging.getLogger("gateway"), logging.ERROR, "failed", exc_info=True, auction_id="A1")
        logging.getLogger("gateway").exception("again")
    first, second = lines(stream)
    for line in (first, second):
        assert line["level"] == "error" and "RuntimeError: boom" in str(line["exc"])
        assert JWT not in str(line["exc"])
    assert first["auction_id"] == "A1" and "exc_info" not in first


def test_secret_fields_redacted(stream: io.StringIO) -> None:
    log(logging.getLogger("gateway"), logging.INFO, "auth", token="t0k3n", api_key="k", Authorization="Bearer x",
        client_secret="s", PASSWORD="p", user="alice", headers={"x-api-key": "k2", "accept": "json"})
    (line,) = lines(stream)
    for name in ("token", "api_key", "Authorization", "client_secret", "PASSWORD"):
        assert line[name] == "[redacted]"
    assert line["user"] == "alice" and line["headers"] == {"x-api-key": "[redacted]", "accept": "json"}
    for secret in ("t0k3n", '"k"', "Bearer x", '"s"', '"p"', "k2"):
        assert secret not in stream.getvalue()


def test_bearer_and_jwt_redacted_in_text(stream: io.StringIO) -> None:
    logger = logging.getLogger("gateway.rpc")
    logger.info("header Authorization: Bearer abc.def-123 from %s", "10.0.0.1")
    logger.info("token in url ?t=%s&x=1", JWT)
    log(logger, logging.INFO, "lower bearer zzz", note=f"sent {JWT}")
    first, second, third = lines(stream)
    assert first["msg"] == "header Authorization: Bearer [redacted] from 10.0.0.1"
    assert second["msg"] == "token in url ?t=[redacted]&x=1"
    assert third["msg"] == "lower bearer [redacted]" and third["note"] == "sent [redacted]"
    assert "abc.def-123" not in stream.getvalue() and JWT not in stream.getvalue()


def test_plain_text_left_alone(stream: io.StringIO) -> None:
    logging.getLogger("gateway").info("lot L1 closed at 2026-03-02T09:00:00Z; eyJ alone, a.b.c")
    assert lines(stream)[0]["msg"] == "lot L1 closed at 2026-03-02T09:00:00Z; eyJ alone, a.b.c"


def test_configure_is_idempotent_and_levels_apply(stream: io.StringIO) -> None:
    other = io.StringIO()
    configure_logging("warning", other)
    configure_logging("warning", other)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        assert len([h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]) == 1
        assert logger.level == logging.WARNING and not logger.propagate
    logging.getLogger("gateway").info("dropped")
    logging.getLogger("hypercorn.error").warning("kept")
    assert stream.getvalue() == ""
    assert [line["msg"] for line in lines(other)] == ["kept"]


def test_bad_level_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", io.StringIO())


def test_formatter_alone() -> None:
    record = logging.LogRecord("x", logging.DEBUG, __file__, 1, "m %d", (1,), None)
    record.fields = {"secret_thing": 1, "ok": {1, 2} - {1, 2}}
    assert json.loads(JsonFormatter().format(record))["secret_thing"] == "[redacted]"
    assert json.loads(JsonFormatter().format(record))["ok"] == []
