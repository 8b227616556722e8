"""The import contracts of pyproject.toml hold, and a forbidden import breaks them (``make lint``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# The packages the contracts cover, as pyproject.toml names them: the copy must hold all of them.
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project's packages and pyproject.toml in a scratch folder, to break on purpose."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_on_the_project() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("marqetfi/core/api.py", "import trading.models", "The kernel (marqetfi.core) imports no app"),
        ("providers/base.py", "import pricing.models", "Providers import no domain app"),
        ("ledger/services.py", "from trading import models", "The ledger imports no trading"),
        ("accounts/services/users.py", "import ledger.services", "Accounts imports neither trading"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    project_copy: Path, module: str, statement: str, contract: str
) -> None:
    target = project_copy / module
    # Inside a function, as a dodged cycle would be: it counts all the same.
    target.write_text(target.read_text() + f"\n\ndef _sneaky() -> None:\n    {statement}  # noqa\n")

    result = _lint_imports(project_copy)

    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
