"""Which of the stack's processes this is, for settings that differ between them.

The web processes get a database connection pool (settings, "Database"); every process names
its PostgreSQL connections ``marqetfi-<kind>`` (``application_name``), so that
``pg_stat_activity`` shows who holds the connections. ``PROCESS_KIND`` in the environment
wins; otherwise the command line tells: daphne (``marqetfi.webserver``'s children, the e2e
tests' servers) is ``web``, ``celery ... worker`` / ``beat`` are ``worker`` / ``beat``,
``manage.py <command>`` is the command's name (``pricefeed``, ``venuefollow``, ``migrate``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

WEB = "web"
_WEB_SERVERS = ("daphne", "uvicorn", "gunicorn")
_SAFE = re.compile(r"[^a-z0-9_-]+")


def process_kind(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> str:
    """``web``, ``worker``, ``beat``, a management command's name, else the program's name."""
    configured = environ.get("PROCESS_KIND", "").strip()
    kind = configured or (_kind_from_argv(argv) if argv else "python")
    return _SAFE.sub("-", kind.lower()) or "python"


def _kind_from_argv(argv: Sequence[str]) -> str:
    parts = [part for part in argv[0].replace("\\", "/").split("/") if part]
    name = parts[-1] if parts else argv[0]
    if name == "__main__.py" and len(parts) >= 2:  # python -m <package>
        name = parts[-2]
    name = name.removesuffix(".py")
    if name in _WEB_SERVERS:
        return WEB
    if name == "celery":
        return next((kind for kind in ("worker", "beat", "flower") if kind in argv[1:]), "celery")
    if name in ("manage", "django-admin") and len(argv) > 1:
        return argv[1]
    return name
