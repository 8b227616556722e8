from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from marqetfi.core.logging import (
    JsonFormatter,
    RedactingFilter,
    RequestContextFilter,
    bind_user,
    request_id_var,
)

PRIVATE_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiNDIifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.fixture
def json_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger wired exactly like production's stdout handler, writing to a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_json_with_level_logger_time_request_and_user(json_lines):
    logger, stream = json_lines
    request_id_var.set("req-abc")
    bind_user("9b2f6c1e-0000-4000-8000-000000000001")
    try:
        logger.info("order %s placed", "o-1", extra={"symbol": "BTCUSD"})
    finally:
        request_id_var.set(None)
        bind_user(None)
    [line] = lines(stream)
    assert line["message"] == "order o-1 placed"
    assert line["level"] == "INFO"
    assert line["logger"] == "tests.redaction"
    assert line["request_id"] == "req-abc"
    assert line["user_id"] == "9b2f6c1e-0000-4000-8000-000000000001"
    assert line["symbol"] == "BTCUSD"
    assert "time" in line


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        (f"calling venue with Authorization: Bearer {JWT}", JWT),
        (f"refresh token {JWT} rotated", JWT),
        (f"signer private_key={PRIVATE_KEY}", PRIVATE_KEY),
        ('provider answered {"api_key": "sk_live_51HxYz", "ok": true}', "sk_live_51HxYz"),
        ("webhook secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw created", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("login with password=hunter2&email=a@b.c", "hunter2"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIO\n-----END EC PRIVATE KEY-----", "MHcCAQEEIO"),
    ],
)
def test_secrets_in_messages_are_masked(json_lines, message, secret):
    logger, stream = json_lines
    logger.info(message)
    assert secret not in stream.getvalue()
    assert "***" in stream.getvalue()


def test_secrets_in_arguments_and_extra_fields_are_masked(json_lines):
    logger, stream = json_lines
    logger.info(
        "payload %s",
        {"email": "a@example.com", "password": "hunter2", "nested": {"privateKey": PRIVATE_KEY}},
        extra={"headers": {"Authorization": f"Bearer {JWT}", "Accept": "json"}, "api_key": "k-123456"},
    )
    output = stream.getvalue()
    for secret in ("hunter2", PRIVATE_KEY, JWT, "k-123456"):
        assert secret not in output
    [line] = lines(stream)
    assert line["headers"] == {"Authorization": "***", "Accept": "json"}
    assert line["api_key"] == "***"
    assert "a@example.com" in line["message"]


def test_secrets_in_tracebacks_are_masked(json_lines):
    logger, stream = json_lines
    try:
        raise ValueError(f"could not decrypt, secret={PRIVATE_KEY}")
    except ValueError:
        logger.exception("decrypt failed")
    [line] = lines(stream)
    assert "ValueError" in line["exc_info"]
    assert PRIVATE_KEY not in stream.getvalue()


def test_ordinary_hex_such_as_transaction_hashes_stays_readable(json_lines):
    logger, stream = json_lines
    tx_hash = "0x" + "ab" * 32
    logger.info("deposit tx %s seen", tx_hash)
    assert lines(stream)[0]["message"] == f"deposit tx {tx_hash} seen"


def test_settings_attach_the_filters_to_the_stdout_handler():
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler))
    kinds = {type(f) for f in handler.filters}
    assert {RequestContextFilter, RedactingFilter} <= kinds
    assert isinstance(handler.formatter, JsonFormatter)
