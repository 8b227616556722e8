"""A pytest plugin: every log line the suite produces is scanned for secrets.

The root logger gets a handler carrying the same filters and formatter as the product's
stdout handler (``settings.LOGGING``), so what is scanned is what the product would write.
The log files of the e2e processes are scanned too (``tests/e2e/conftest.py`` hands them
over before their directory goes). Two kinds of rule:

* shapes that cannot be anything else: a JWT, a PEM private key, a webhook secret, a
  bearer credential, 32 bytes of hex *next to a word naming a key* (a bare 0x + 64 hex is a
  transaction or block hash, which logs may carry), an email verification key in a link;
* the actual values tests create: the passwords they sign up with, and every key of the
  verification and reset mails sent during the test (``secret_register`` adds more).

Lines are checked at the end of each test, then dropped, so memory stays flat; a finding
names the test and fails the session.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from marqetfi.core.logging import JsonFormatter, RedactingFilter, RequestContextFilter

# Passwords the tests sign users up and in with (tests/accounts/factories.py, the browser
# and e2e suites); short throwaway ones ("x") would match ordinary words and are left out.
TEST_PASSWORDS = (
    "correct horse battery staple",
    "browser-test-Password-1",
    "trader-Password-123",
    "demo-Password-123",
)

LEAK_PATTERNS: dict[str, re.Pattern[str]] = {
    "jwt": re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    "pem private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "webhook secret": re.compile(r"\bwhsec_(?!\*\*\*)[A-Za-z0-9+/=]{8,}"),
    "bearer credential": re.compile(r"\b(?:Bearer|Basic|Token)\s+(?!\*\*\*)[A-Za-z0-9\-._~+/]{12,}=*"),
    "private key": re.compile(
        r"(?:private[_ -]?key|privkey|signing[_ -]?key|secret|mnemonic|seed)\W{0,6}(?:0x)?[0-9a-fA-F]{64}",
        re.IGNORECASE,
    ),
    "verification or reset link": re.compile(
        r"(?:verify|confirm|reset)[\w/-]*[?&/](?:key|token|code)=(?!\*\*\*)[A-Za-z0-9:_-]{12,}", re.IGNORECASE
    ),
}

_KEY_IN_LINK = re.compile(r"[?&](?:key|token|code)=([A-Za-z0-9:_-]{12,})")
_VERIFICATION_KEY_PATH = re.compile(r"/(?:verify|confirm|reset)[\w-]*/([A-Za-z0-9:_-]{12,})")


@dataclass(frozen=True)
class Leak:
    where: str
    rule: str
    line: str

    def __str__(self) -> str:
        return f"{self.where}: {self.rule}: {self.line[:300]}"


class LogScan:
    """Collects formatted log lines, checks them against the rules, keeps the findings."""

    def __init__(self) -> None:
        self.secrets: set[str] = set(TEST_PASSWORDS)
        self.leaks: list[Leak] = []
        self._lines: list[str] = []

    def secret_register(self, value: str) -> None:
        if len(value) >= 8:
            self.secrets.add(value)

    def collect(self, line: str) -> None:
        self._lines.append(line)

    def check(self, where: str) -> None:
        lines, self._lines = self._lines, []
        for line in lines:
            self.leaks.extend(Leak(where, rule, line) for rule in self.rules_broken(line))

    def rules_broken(self, line: str) -> Iterator[str]:
        for rule, pattern in LEAK_PATTERNS.items():
            if pattern.search(line):
                yield rule
        for secret in self.secrets:
            if secret in line:
                yield "a secret value a test created"

    def file_check(self, path: Path) -> None:
        for line in path.read_text(errors="replace").splitlines():
            self.collect(line)
        self.check(f"e2e process log {path.name}")


class ScanHandler(logging.Handler):
    """Formats each record as the product's stdout handler would, for the scan."""

    def __init__(self, scan: LogScan) -> None:
        super().__init__(level=logging.DEBUG)
        self.scan = scan
        self.addFilter(RequestContextFilter())
        self.addFilter(RedactingFilter())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.scan.collect(self.format(record))
        except Exception:  # noqa: BLE001 - a record the formatter cannot take is the product's bug, not a leak
            self.handleError(record)


log_scan = LogScan()
_handler = ScanHandler(log_scan)


def secret_register(value: str) -> None:
    """A secret a test or fixture created: no log line may contain it."""
    log_scan.secret_register(value)


def _handler_attach() -> None:
    # Django's dictConfig (and any test that reconfigures logging) replaces the root handlers.
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)


def mail_keys_register(scan: LogScan) -> None:
    """The keys of the verification and reset links mailed during the test (the test
    settings' locmem backend keeps them in ``mail.outbox`` until the next test starts)."""
    from django.core import mail

    for message in getattr(mail, "outbox", []):
        bodies = [str(message.body)] + [str(content) for content, _ in getattr(message, "alternatives", [])]
        for body in bodies:
            for pattern in (_KEY_IN_LINK, _VERIFICATION_KEY_PATH):
                for key in pattern.findall(body):
                    scan.secret_register(key)


def pytest_sessionstart(session: pytest.Session) -> None:
    _handler_attach()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    _handler_attach()
    yield
    mail_keys_register(log_scan)


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    log_scan.check(nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    log_scan.check("outside any test")
    logging.getLogger().removeHandler(_handler)
    if log_scan.leaks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not log_scan.leaks:
        return
    terminalreporter.section("secrets in the logs", sep="=", red=True, bold=True)
    for leak in log_scan.leaks[:50]:
        terminalreporter.line(str(leak), red=True)
    terminalreporter.line(f"{len(log_scan.leaks)} log line(s) carry a secret: redact them at the source.")
