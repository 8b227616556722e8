"""Secrets for a machine where none is configured: made once, kept in ``var/`` (mode 0600).

Production settings refuse to start without the real ones; these only spare a developer
from inventing keys, and never live in the repository.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet


def dev_secret(path: Path, make: Callable[[], str] = lambda: secrets.token_urlsafe(50)) -> str:
    """Return the secret kept at ``path``, creating it atomically on first use."""
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
            with contextlib.suppress(FileExistsError):  # a concurrent creator won: use theirs
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def dev_fernet_key(path: Path) -> str:
    return dev_secret(path, make=lambda: Fernet.generate_key().decode())
