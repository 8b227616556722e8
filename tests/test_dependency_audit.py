"""`make audit` (.ci/audit.py): pip-audit against a local OSV server answering as the real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer

AUDIT_SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "audit.py"

DJANGO_ADVISORY = {
    "id": "GHSA-test-0000-0000",
    "summary": "SQL injection in a test advisory",
    "aliases": ["CVE-2099-0001"],
    "affected": [
        {
            "package": {"name": "django", "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.2.20"}]}],
        }
    ],
}


def run_audit(tmp_path: Path, osv_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("django==5.2.19\n")
    return subprocess.run(  # our own script, with the interpreter running the tests
        [sys.executable, str(AUDIT_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "AUDIT_REQUIREMENTS": str(requirements),
            "AUDIT_SERVICES": "osv",
            "AUDIT_OSV_URL": osv_url,
            **env,
        },
    )


def osv_answers(httpserver: HTTPServer, answer: dict[str, Any]) -> str:
    httpserver.expect_request("/v1/query", method="POST").respond_with_json(answer)
    return httpserver.url_for("/v1/query")


def test_a_known_vulnerability_in_a_pinned_version_fails_the_audit(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    audit = run_audit(tmp_path, osv_answers(httpserver, {"vulns": [DJANGO_ADVISORY]}))

    assert audit.returncode == 1, audit.stderr
    assert "django==5.2.19: CVE-2099-0001 / GHSA-test-0000-0000 (fixed in 5.2.20)" in audit.stderr
    query = json.loads(httpserver.log[0][0].get_data())
    assert query["package"] == {"name": "django", "ecosystem": "PyPI"}
    assert query["version"] == "5.2.19"


def test_every_pinned_package_audited_and_clean_passes(httpserver: HTTPServer, tmp_path: Path) -> None:
    audit = run_audit(tmp_path, osv_answers(httpserver, {}))

    assert audit.returncode == 0, audit.stderr
    assert "1 pinned packages audited, none vulnerable" in audit.stdout
    assert "NOT" not in audit.stderr


def test_an_unreachable_service_is_reported_loudly_and_fails_only_when_required(tmp_path: Path) -> None:
    nowhere = "http://127.0.0.1:9/v1/query"  # the discard port: nothing listens there

    audit = run_audit(tmp_path, nowhere)
    required = run_audit(tmp_path, nowhere, AUDIT_REQUIRED="1")

    assert audit.returncode == 0
    assert "NOT (fully) AUDITED" in audit.stderr
    assert "osv: unreachable or failed" in audit.stderr
    assert "this is not a pass" in audit.stderr
    assert required.returncode == 2
