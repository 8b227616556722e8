"""Audit the pinned requirements for known vulnerabilities with pip-audit.

pip-audit asks an advisory service about each pinned version: PyPI's JSON API first, then
OSV. The outcome is one of three:

* a vulnerability is known for a pinned version: exit 1 with the list (CI goes red);
* every pinned package was audited and none is vulnerable: exit 0;
* the advisory services could not be asked (unreachable, or they do not know the pinned
  versions, as behind a mirror that serves only the simple index): a loud NOT AUDITED
  banner on stderr naming the packages, and exit 0, so CI does not go red for a network it
  cannot change. Set AUDIT_REQUIRED=1 where the services are reachable to make it exit 2.

AUDIT_REQUIREMENTS (paths, space-separated), AUDIT_SERVICES ("pypi osv") and AUDIT_OSV_URL
point it elsewhere (the tests use a local OSV server).

pip-audit itself prints "No known vulnerabilities found" even when it skipped every
package, so its exit code alone is not trusted: the JSON report's skip reasons are read.
"""

# ruff: noqa: T201 - a command-line report: printing is its output

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = os.environ.get("AUDIT_REQUIREMENTS", "requirements.txt requirements-dev.txt").split()
SERVICES = os.environ.get("AUDIT_SERVICES", "pypi osv").split()
OSV_URL = os.environ.get("AUDIT_OSV_URL", "")
TIMEOUT_SECONDS = "15"


@dataclass
class ServiceAudit:
    service: str
    audited: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # package -> why
    vulnerabilities: list[str] = field(default_factory=list)
    error: str = ""


def audit_with(service: str) -> ServiceAudit:
    result = ServiceAudit(service)
    with tempfile.TemporaryDirectory() as workdir:
        report = Path(workdir) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "--vulnerability-service", service]
        if service == "osv" and OSV_URL:
            command += ["--osv-url", OSV_URL]
        for requirements in REQUIREMENTS:
            command += ["--requirement", str(ROOT / requirements)]
        # Every requirement is pinned: no resolution, the pinned versions are what is audited.
        command += ["--no-deps", "--disable-pip", "--format", "json", "--output", str(report)]
        command += ["--progress-spinner", "off", "--timeout", TIMEOUT_SECONDS]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if not report.exists():
            lines = (completed.stderr or completed.stdout).strip().splitlines()
            result.error = lines[-1] if lines else f"pip-audit exited {completed.returncode}"
            return result
        for dependency in json.loads(report.read_text())["dependencies"]:
            name = f"{dependency['name']}=={dependency.get('version', '?')}"
            if "skip_reason" in dependency:
                result.skipped[dependency["name"]] = dependency["skip_reason"]
                continue
            result.audited.append(name)
            for vulnerability in dependency.get("vulns", []):
                fixed = ", ".join(vulnerability.get("fix_versions") or []) or "no fix yet"
                ids = " / ".join([vulnerability["id"], *vulnerability.get("aliases", [])])
                result.vulnerabilities.append(f"{name}: {ids} (fixed in {fixed})")
    return result


def banner(lines: list[str]) -> None:
    rule = "!" * 78
    print("\n".join([rule, *(f"!! {line}" for line in lines), rule]), file=sys.stderr)


def main() -> int:
    audits: list[ServiceAudit] = []
    for service in SERVICES:
        audit = audit_with(service)
        audits.append(audit)
        if audit.vulnerabilities:
            print(f"pip-audit ({service}): known vulnerabilities in pinned requirements:", file=sys.stderr)
            print("\n".join(f"  {line}" for line in audit.vulnerabilities), file=sys.stderr)
            return 1
        if audit.audited and not audit.skipped:
            print(f"pip-audit ({service}): {len(audit.audited)} pinned packages audited, none vulnerable.")
            return 0

    best = max(audits, key=lambda audit: len(audit.audited))
    lines = ["pip-audit: the pinned requirements were NOT (fully) AUDITED."]
    for audit in audits:
        if audit.error:
            lines.append(f"{audit.service}: unreachable or failed: {audit.error[:200]}")
        else:
            lines.append(
                f"{audit.service}: {len(audit.audited)} audited, {len(audit.skipped)} skipped "
                f"(e.g. {next(iter(audit.skipped.values()), '')[:120]})"
            )
    not_audited = sorted(best.skipped) if not best.error else ["every package"]
    shown = ", ".join(not_audited[:12]) + (
        f" and {len(not_audited) - 12} more" if len(not_audited) > 12 else ""
    )
    lines.append(f"Not audited ({best.service}): {shown}")
    lines.append("No vulnerability was found among what could be asked; this is not a pass.")
    banner(lines)
    return 2 if os.environ.get("AUDIT_REQUIRED") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
