"""What production settings refuse: development mail, development secrets, demo credentials.

``marqetfi/settings/production.py`` raises ``ImproperlyConfigured`` with every problem found
here, so no production process (web, worker, beat, ``manage.py``) starts with them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

# Mail kept in the process (printed to the logs, held in memory, dropped or written to disk):
# a verification or reset link would never reach the user, and would land in the logs.
DEVELOPMENT_EMAIL_BACKENDS: Final = frozenset(
    {
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
        "django.core.mail.backends.dummy.EmailBackend",
        "django.core.mail.backends.filebased.EmailBackend",
    }
)
# Environment variables only the demo reads (``manage.py seed_demo``): a production
# environment that sets them is about to create accounts with a shared password.
DEMO_CREDENTIAL_VARIABLES: Final = ("DEMO_ADMIN_PASSWORD", "DEMO_TRADER_PASSWORD")
# Keys published in the Hardhat and Anvil documentation (account #0, the local chain's
# developer wallet): funds behind them are swept by bots within seconds on a real network.
PUBLIC_DEVELOPMENT_KEYS: Final = frozenset(
    {"ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"}
)
MIN_SECRET_KEY_LENGTH: Final = 50


def production_credentials_problems(
    *,
    email_backend: str,
    secret_key: str,
    field_encryption_keys: Iterable[str],
    environ: Mapping[str, str],
    var_dir: Path,
    provider_options: Any,
) -> list[str]:
    """Every reason these settings are not fit for production; empty when they are."""
    problems: list[str] = []
    if email_backend in DEVELOPMENT_EMAIL_BACKENDS:
        problems.append(
            f"EMAIL_BACKEND is {email_backend}, which never delivers mail (verification links "
            "would end up in logs or memory); configure a real backend (SMTP or a provider)"
        )
    if len(secret_key) < MIN_SECRET_KEY_LENGTH or secret_key.startswith("django-insecure-"):
        problems.append(f"SECRET_KEY must be a random value of at least {MIN_SECRET_KEY_LENGTH} characters")
    if _same_as_kept(var_dir / "secret_key", [secret_key]):
        problems.append("SECRET_KEY is the development key generated into var/secret_key")
    if _same_as_kept(var_dir / "field_encryption_key", field_encryption_keys):
        problems.append(
            "FIELD_ENCRYPTION_KEYS holds the development key generated into var/field_encryption_key"
        )
    problems += [
        f"{name} is set: demo accounts (manage.py seed_demo) have no place in production"
        for name in DEMO_CREDENTIAL_VARIABLES
        if environ.get(name)
    ]
    text = json.dumps(provider_options, default=str).lower()
    if any(key in text for key in PUBLIC_DEVELOPMENT_KEYS):
        problems.append(
            "a provider option holds the public Hardhat/Anvil development key (the local chain's wallet)"
        )
    return problems


def _same_as_kept(path: Path, values: Iterable[str]) -> bool:
    """Whether one of ``values`` is the development secret kept at ``path`` (if there is one)."""
    try:
        kept = path.read_text().strip()
    except OSError:
        return False
    return bool(kept) and kept in values
