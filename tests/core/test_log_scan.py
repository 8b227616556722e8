"""The suite's log scan (tests/log_scan.py): what it flags, and what it must leave alone."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.core import mail

from tests.log_scan import LogScan, ScanHandler, mail_keys_register

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiYWJjIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
KEY_HEX = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
TX_HASH = "0x" + "ab" * 32


def scanned(*messages: str, **extra: object) -> LogScan:
    """Log each message through a scan handler, as a product module would, and check it."""
    scan = LogScan()
    logger = logging.getLogger("tests.log_scan.sample")
    handler = ScanHandler(scan)
    logger.addHandler(handler)
    logger.propagate = False  # these deliberate leaks are not the suite's
    try:
        for message in messages:
            logger.warning(message, extra=extra)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    scan.check("sample")
    return scan


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        (f"token {JWT}", "jwt"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----", "pem private key"),
        ("secret whsec_c2VjcmV0c2VjcmV0c2VjcmV0", "webhook secret"),
        ("sent Bearer abcdefghijklmnopqrstuvwxyz", "bearer credential"),
        (f'{{"private_key": "0x{KEY_HEX}"}}', "private key"),
        (
            "link https://app.example/auth/email/verify?key=MQ:1t5abc:signaturesig",
            "verification or reset link",
        ),
    ],
)
def test_secret_shapes_are_flagged_in_raw_lines(line: str, rule: str) -> None:
    assert rule in set(LogScan().rules_broken(line))


def test_hashes_and_masked_values_are_not_flagged() -> None:
    scan = LogScan()
    for line in (
        f'{{"message": "deposit seen", "tx_hash": "{TX_HASH}", "block_hash": "{TX_HASH}"}}',
        '{"authorization": "***", "message": "Bearer ***", "secret": "whsec_***"}',
        '{"message": "verify?key=***"}',
    ):
        assert list(scan.rules_broken(line)) == [], line


def test_the_product_redaction_runs_before_the_scan() -> None:
    """A secret under a sensitive key or in a known shape is masked by the product's filter,
    so the scan sees what the product would write, and finds nothing."""
    scan = scanned(f"calling venue with Authorization: Bearer {JWT}", private_key=f"0x{KEY_HEX}")
    assert scan.leaks == []


def test_a_secret_value_a_test_registered_is_flagged_wherever_it_appears() -> None:
    scan = LogScan()
    scan.secret_register("k3y-from-a-mail-abc")
    scan.collect('{"message": "resend for k3y-from-a-mail-abc"}')
    scan.check("test_x")
    assert [(leak.where, leak.rule) for leak in scan.leaks] == [("test_x", "a secret value a test created")]


def test_a_test_password_in_a_message_is_flagged() -> None:
    scan = scanned("login failed for trader1@example.com with correct horse battery staple")
    assert [leak.rule for leak in scan.leaks] == ["a secret value a test created"]


def test_e2e_process_log_files_are_scanned(tmp_path: Path) -> None:
    log_file = tmp_path / "daphne-1.log"
    log_file.write_text(f'{{"message": "ok"}}\n{{"message": "refresh {JWT}"}}\n')
    scan = LogScan()
    scan.file_check(log_file)
    assert [(leak.where, leak.rule) for leak in scan.leaks] == [("e2e process log daphne-1.log", "jwt")]


def test_the_keys_of_mailed_verification_links_become_secrets(mailoutbox: list[object]) -> None:
    mail.send_mail(
        "Confirm",
        "Open marqetfi://verify-email?key=MQ:1tAbCd:q1w2e3r4t5y6 to confirm.",
        "noreply@example.com",
        ["trader@example.com"],
    )
    scan = LogScan()

    mail_keys_register(scan)
    scan.collect('{"message": "confirmation MQ:1tAbCd:q1w2e3r4t5y6 checked"}')
    scan.check("test_x")

    assert "MQ:1tAbCd:q1w2e3r4t5y6" in scan.secrets
    assert [leak.rule for leak in scan.leaks] == ["a secret value a test created"]
