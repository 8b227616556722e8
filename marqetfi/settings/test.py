"""The suite: the same services as production (PostgreSQL and Redis when configured).

With no ``REDIS_URL`` the suite starts its own embedded Redis here, before the base
settings read the variable; subprocesses the tests start (daphne, a Celery worker)
inherit the exported URL, so every part talks to the same server.
"""

import os

if not os.environ.get("REDIS_URL"):
    from marqetfi.embedded import EmbeddedRedis

    os.environ["REDIS_URL"] = EmbeddedRedis().start()

from .base import *

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_DEFAULT_QUEUE = "marqetfi-test"
CACHES["default"]["KEY_PREFIX"] = "marqetfi-test"
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "marqetfi-test:channels"  # type: ignore[index]
# One prefix per session: suites sharing a Redis never see each other's ticks and events.
STREAM_CHANNEL_PREFIX = os.environ.get("STREAM_CHANNEL_PREFIX") or f"marqetfi-test:stream:{os.getpid()}"
HEALTH_WORKER_PING_TIMEOUT = 0.2  # no worker runs in most tests; e2e tests start a real one
HEALTH_CACHE_SECONDS = 0  # each call checks afresh; tests of the cache set their own window
METRICS_TOKEN = "metrics-scraper-token-of-the-test-suite"  # noqa: S105 - the suite's own
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so that e2e subprocesses can open it; one per session so that two
    # suites running at once on a machine never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
OIDC_JWKS_REFETCH_COOLDOWN_SECONDS = 0  # key rotation tests refetch at once
# The suite never reaches the real LI-FI (a beat probe in an e2e run would): nothing listens
# here, so a call fails at once; tests that talk to LI-FI start demo.lifi_simulator.
PROVIDERS["lifi"]["options"]["base_url"] = os.environ.get("LIFI_API_URL") or "http://127.0.0.1:9/v1"
