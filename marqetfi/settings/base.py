"""Settings shared by every environment; everything that differs comes from the environment.

Nothing configured means the embedded defaults: SQLite under ``var/`` and a Redis that
``make run`` or the test session starts (it exports ``REDIS_URL`` before Django loads).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from celery.schedules import crontab

from marqetfi.core.api_tags import TAGS as API_TAGS
from marqetfi.core.dev_secrets import dev_fernet_key, dev_secret
from marqetfi.core.process_kind import WEB as _WEB
from marqetfi.core.process_kind import process_kind

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or dev_secret(VAR_DIR / "secret_key")
FIELD_ENCRYPTION_KEYS: list[str] = env.list("FIELD_ENCRYPTION_KEYS", default=[]) or [
    dev_fernet_key(VAR_DIR / "field_encryption_key")
]
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CORS_ALLOWED_ORIGINS: list[str] = env.list("CORS_ALLOWED_ORIGINS", default=[])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "backoffice.apps.OperatorsAdminConfig",  # django.contrib.admin, its site regrouped for operators
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "channels",
    "allauth",
    "allauth.account",
    "marqetfi.core",
    "accounts",
    "providers",
    "pricing",
    "trading",
    "ledger",
    "deposits",
    "webhooks",
    "backoffice",
    "demo",
    "streams",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "marqetfi.core.security_headers.SecurityHeadersMiddleware",
    "marqetfi.core.middleware.RequestIdMiddleware",
    "marqetfi.core.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "marqetfi.core.maintenance.MaintenanceModeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "marqetfi.urls"
ASGI_APPLICATION = "marqetfi.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Web process limits ----------------------------------------------------------------
# One web process runs one event loop on one core. Django runs each HTTP request's sync code
# in a thread of its own and, on PostgreSQL, each request holds a connection: requests beyond
# WEB_MAX_REQUESTS_IN_FLIGHT wait on the event loop (marqetfi/core/admission.py), which costs
# nothing, and one that waited WEB_QUEUE_TIMEOUT seconds is answered 503 ``server_busy``. 16:
# a request spends most of its time waiting on PostgreSQL or Redis, so a dozen or so keep the
# core busy; more only add threads fighting over the GIL and connections.
WEB_MAX_REQUESTS_IN_FLIGHT = env.int("WEB_MAX_REQUESTS_IN_FLIGHT", default=16)
WEB_QUEUE_TIMEOUT = env.float("WEB_QUEUE_TIMEOUT", default=10.0)
# Threads running the WebSocket consumers' database work (sign-in, symbol checks, snapshots,
# resume), per web process (streams/db.py).
STREAM_DB_THREADS = env.int("STREAM_DB_THREADS", default=4)
# The web process's PostgreSQL pool: requests in flight plus the socket threads, so neither
# waits for the other's connections; a few kept open between bursts.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=WEB_MAX_REQUESTS_IN_FLIGHT + STREAM_DB_THREADS)
DB_POOL_MIN_SIZE = env.int("DB_POOL_MIN_SIZE", default=2)
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=10.0)
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
DB_PREPARE_THRESHOLD = env.int("DB_PREPARE_THRESHOLD", default=5)
PROCESS_KIND = process_kind(sys.argv)
# The long-running processes that are neither web nor Celery (those have their own rules).
DAEMON_PROCESS_KINDS = frozenset({"pricefeed", "triggerfire", "venuefollow"})
DAEMON_CONN_MAX_AGE = env.int("DAEMON_CONN_MAX_AGE", default=300)

# --- Database -------------------------------------------------------------------------
DATABASES: dict[str, dict[str, Any]] = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL and immediate transactions avoid
    # "database is locked" under the light concurrency of a development machine.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    # Persistent connections misbehave under ASGI (a connection per thread that is never
    # closed), so the default is one connection per request; a pooler belongs in front.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # pg_stat_activity shows which kind of process holds each connection (marqetfi-web, ...).
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = env.str(
        "DB_APPLICATION_NAME", default=f"marqetfi-{PROCESS_KIND}"
    )[:63]
    if DB_PREPARED_STATEMENTS:
        # Parameters sent apart from the statement (server-side binding) and each statement
        # prepared on its connection once it has run DB_PREPARE_THRESHOLD times there: a
        # connection kept by the pool, a worker or a daemon then neither has its statements
        # parsed and planned again by PostgreSQL nor its parameters quoted into the text in
        # Python. On the order path that was a third of PostgreSQL's CPU per order and a tenth
        # of the web process's (BENCHMARKS.md). Off behind a pooler in transaction mode that
        # does not track prepared statements (PgBouncer before 1.21).
        DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = DB_PREPARE_THRESHOLD
    if PROCESS_KIND in DAEMON_PROCESS_KINDS:
        # The price feed's hook threads, the trigger consumers and the venue follower call
        # close_old_connections() after each tick, batch or round: at age 0 that is a new
        # PostgreSQL backend (a fork, authentication, the session set-up) several times a
        # second per thread, whose CPU lands on the cores serving requests. They keep their
        # connections instead, checked before reuse, renewed after DAEMON_CONN_MAX_AGE seconds.
        DATABASES["default"]["CONN_MAX_AGE"] = DAEMON_CONN_MAX_AGE
    if PROCESS_KIND == _WEB and DB_POOL_MAX_SIZE > 0:
        # A web process holds at most DB_POOL_MAX_SIZE connections, however many requests
        # and sockets it serves: a thread that finds them all taken waits up to
        # DB_POOL_TIMEOUT seconds for one (then its request fails), instead of opening more
        # until PostgreSQL refuses everyone. Django returns a request's connection to the pool
        # when the request ends (pooling requires CONN_MAX_AGE 0). Only the web processes
        # pool: a Celery worker's pool children (forked) keep one connection each for a minute
        # (WORKER_CONN_MAX_AGE, marqetfi/celery.py) and the other processes need one or two.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT,
        }

# --- Redis: cache, channel layer, Celery broker, throttle counters ---------------------
REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "REDIS_URL is not set. `make run` and `make test` start an embedded Redis and set it; "
        "when running manage.py directly, export REDIS_URL (e.g. redis://127.0.0.1:6379/0)."
    )

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "marqetfi",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}

# channels_redis receives with BZPOPMIN blocking for up to 5 s (``brpop_timeout``) while
# redis-py 8 reads with a 5 s socket timeout by default: an idle receive raced its own
# timeout. The read timeout must stay above the blocking time.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": "marqetfi:channels"},
    }
}

# --- WebSocket stream (streams/, README "WebSocket") -----------------------------------
# Pub/sub channels of the stream live under this prefix (one per symbol, one per user).
STREAM_CHANNEL_PREFIX = env.str("STREAM_CHANNEL_PREFIX", default="marqetfi:stream")
STREAM_HEARTBEAT_MS = env.int("STREAM_HEARTBEAT_MS", default=30_000)
STREAM_PONG_TIMEOUT_MS = env.int("STREAM_PONG_TIMEOUT_MS", default=10_000)
STREAM_PRICE_MAX_PER_SECOND = env.float("STREAM_PRICE_MAX_PER_SECOND", default=4.0)
STREAM_MAX_SUBSCRIPTIONS = env.int("STREAM_MAX_SUBSCRIPTIONS", default=100)
STREAM_MAX_MESSAGES_PER_SECOND = env.int("STREAM_MAX_MESSAGES_PER_SECOND", default=20)
STREAM_MAX_SOCKETS_PER_USER = env.int("STREAM_MAX_SOCKETS_PER_USER", default=10)
STREAM_MAX_MESSAGE_BYTES = env.int("STREAM_MAX_MESSAGE_BYTES", default=16_384)
STREAM_OUTBOUND_QUEUE_MAX = env.int("STREAM_OUTBOUND_QUEUE_MAX", default=1_000)
STREAM_OUTBOUND_BUFFER_MAX_BYTES = env.int("STREAM_OUTBOUND_BUFFER_MAX_BYTES", default=4 * 1024 * 1024)
# Webhooks: https only outside DEBUG; loopback / private / link-local / metadata targets are
# refused unless a host name or a network (CIDR) is listed here (webhooks/ssrf.py).
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=not DEBUG)
WEBHOOK_ALLOWED_HOSTS = env.list("WEBHOOK_ALLOWED_HOSTS", default=[])
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])
# After a secret rotation the previous secret keeps signing deliveries (alongside the new one)
# this long; and how many endpoints one user may register.
WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS = env.int("WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS", default=86_400)
WEBHOOK_MAX_ENDPOINTS_PER_USER = env.int("WEBHOOK_MAX_ENDPOINTS_PER_USER", default=20)
# Who resolves webhook hosts before each attempt (dotted path to ``(host, port) -> [address]``).
WEBHOOK_DNS_RESOLVER = env.str("WEBHOOK_DNS_RESOLVER", default="webhooks.ssrf.system_resolver")
# An endpoint whose every attempt failed for this long (no success since) is disabled.
WEBHOOK_DISABLE_AFTER_FAILING_SECONDS = env.int(
    "WEBHOOK_DISABLE_AFTER_FAILING_SECONDS", default=3 * 24 * 3600
)
# Seconds per unit of the retry policy's delays (1: the policy's seconds; tests shrink it).
WEBHOOK_RETRY_DELAY_SCALE = env.float("WEBHOOK_RETRY_DELAY_SCALE", default=1.0)
# A claimed attempt holds its delivery for the policy's timeout plus this margin; past it, a
# worker that died mid-attempt is taken to be gone and the due sweep schedules it again.
WEBHOOK_ATTEMPT_LEASE_MARGIN_SECONDS = env.float("WEBHOOK_ATTEMPT_LEASE_MARGIN_SECONDS", default=30.0)
# The due sweep reschedules pending deliveries overdue by more than this (their task was lost).
WEBHOOK_SWEEP_GRACE_SECONDS = env.float("WEBHOOK_SWEEP_GRACE_SECONDS", default=30.0)
# An ordered endpoint's delivery waiting behind an earlier one looks again after this long.
WEBHOOK_ORDERED_RECHECK_SECONDS = env.float("WEBHOOK_ORDERED_RECHECK_SECONDS", default=5.0)
# The web process's garbage collector (see marqetfi/core/gc_tuning.py): the young-generation
# threshold and the two multipliers of gc.set_threshold; empty keeps Python's (700, 10, 10).
WEB_GC_THRESHOLDS = env.list("WEB_GC_THRESHOLDS", cast=int, default=[50_000, 10, 10])

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="marqetfi")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Worker processes keep their database connection between tasks (opening one costs about
# as much as a webhook attempt's queries). marqetfi/celery.py applies this CONN_MAX_AGE in
# worker processes only (ASGI keeps CONN_MAX_AGE above) and, after each task, closes the
# connections that are obsolete or broken, as Django does after a request. Celery's own
# Django fixup would otherwise close them after every task; with reuse it still closes
# them every CELERY_DB_REUSE_MAX tasks. 0 restores a connection per task.
WORKER_CONN_MAX_AGE = env.int("WORKER_CONN_MAX_AGE", default=60)
CELERY_DB_REUSE_MAX = 1000 if WORKER_CONN_MAX_AGE > 0 else None
HEALTH_WORKER_PING_TIMEOUT = env.float("HEALTH_WORKER_PING_TIMEOUT", default=1.0)
# /api/v1/health runs its checks at most once per this many seconds per process; callers in
# between (and callers arriving while a run is under way) get that run's result.
HEALTH_CACHE_SECONDS = env.float("HEALTH_CACHE_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
EVENT_REDISPATCH_AFTER_SECONDS = env.int("EVENT_REDISPATCH_AFTER_SECONDS", default=30)
# Reconciliation (trading.services.reconciliation): how often every venue's book is compared
# with ours, and the share of a core a pass may use (it sleeps the rest, within half the
# interval; 1 runs it flat out). See marqetfi/core/pacing.py.
RECONCILIATION_INTERVAL_SECONDS = env.float("RECONCILIATION_INTERVAL_SECONDS", default=60.0)
RECONCILIATION_DUTY_CYCLE = env.float("RECONCILIATION_DUTY_CYCLE", default=0.25)

CELERY_BEAT_SCHEDULE = {
    "events-redispatch": {
        "task": "marqetfi.core.tasks.events_redispatch",
        "schedule": 15.0,
    },
    "providers-probe": {
        "task": "providers.tasks.providers_probe",
        "schedule": 15.0,
        # A probe that waited longer than its period is superseded by the next one.
        "options": {"expires": 15.0},
    },
    "pairs-sync": {
        "task": "pricing.tasks.pairs_sync_all",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
    # The trigger engine's safety net for ticks the feed never delivered and a lost index.
    "triggers-sweep": {
        "task": "trading.tasks.triggers_sweep",
        "schedule": 5.0,
        "options": {"expires": 5.0},
    },
    # Orders whose venue answer was lost: asked about by client id, never sent again.
    # Every 2 s: pending orders are polled at their ``next_poll_at`` (1 s, 2 s, 4 s ... backing
    # off), which a slower beat would round up; a run with nothing due is one indexed query.
    "orders-reconcile": {
        "task": "trading.tasks.orders_reconcile",
        "schedule": 2.0,
        "options": {"expires": 2.0},
    },
    # Positions a venue closed by itself at a stop it holds (native SL/TP, Ostium's keeper).
    "protective-native-poll": {
        "task": "trading.tasks.protective_native_poll",
        "schedule": 15.0,
        "options": {"expires": 15.0},
    },
    # The dashboard's daily rollups: yesterday (and the day before, statuses changed since)
    # computed again, any closed day of the last year not stored yet filled.
    "dashboard-daily-figures": {
        "task": "backoffice.tasks.daily_figures_roll",
        "schedule": crontab(hour=0, minute=5),
        "options": {"expires": 3600.0},
    },
    # Pending webhook deliveries whose task was lost (a worker killed mid-attempt, a lost message).
    "webhook-deliveries-due": {
        "task": "webhooks.tasks.webhook_deliveries_due",
        "schedule": 15.0,
        "options": {"expires": 15.0},
    },
    # Deposits: new transfers to users' addresses on every configured chain, then every deposit
    # whose next step (confirmations, quote, swap, LI-FI status poll with backoff) is due.
    "deposits-scan": {
        "task": "deposits.tasks.deposits_scan",
        "schedule": env.float("DEPOSIT_SCAN_INTERVAL_SECONDS", default=10.0),
        "options": {"expires": 10.0},
    },
    "deposits-advance-due": {
        "task": "deposits.tasks.deposits_advance_due",
        "schedule": env.float("DEPOSIT_ADVANCE_INTERVAL_SECONDS", default=3.0),
        "options": {"expires": 5.0},
    },
    # Reconciliation: every venue's positions and resting orders against ours (drifts, repairs).
    "reconciliation-run": {
        "task": "trading.tasks.reconciliation_run",
        "schedule": RECONCILIATION_INTERVAL_SECONDS,
        "options": {"expires": RECONCILIATION_INTERVAL_SECONDS},
    },
    "idempotent-requests-purge": {
        "task": "trading.tasks.idempotent_requests_purge",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
}
# Idempotency-Key records (trading.idempotency): how long a key replays its first answer
# (afterwards it may be used for a new request, and beat deletes the record), and how long a
# request may go without an answer before a retry takes it to have died and runs it again
# (above the slowest order placement, venue timeouts and fallbacks included).
IDEMPOTENCY_KEY_TTL_SECONDS = env.int("IDEMPOTENCY_KEY_TTL_SECONDS", default=24 * 3600)
IDEMPOTENCY_IN_PROGRESS_TIMEOUT_SECONDS = env.int("IDEMPOTENCY_IN_PROGRESS_TIMEOUT_SECONDS", default=60)
# Reconciliation (trading.services.reconciliation): an entry price further than this from the
# venue's is a drift; orders changed in the last grace seconds are left alone (the venue may
# still be answering); positions closed within the lookback are compared too (the venue may
# still hold them).
RECONCILIATION_PRICE_TOLERANCE_BPS = env.float("RECONCILIATION_PRICE_TOLERANCE_BPS", default=10.0)
RECONCILIATION_ORDER_GRACE_SECONDS = env.int("RECONCILIATION_ORDER_GRACE_SECONDS", default=30)
RECONCILIATION_LOOKBACK_HOURS = env.int("RECONCILIATION_LOOKBACK_HOURS", default=24)
# Trailing stops: at most one position.updated per position per interval (the last move of a
# burst follows with the next move or the next trigger sweep).
TRAILING_UPDATE_MIN_INTERVAL_MS = env.int("TRAILING_UPDATE_MIN_INTERVAL_MS", default=250)
# Triggers crossed by a tick are enqueued on this many partition streams (by position) and
# fired by `manage.py triggerfire` consumers, each partition by one consumer at a time.
TRIGGER_FIRE_PARTITIONS = env.int("TRIGGER_FIRE_PARTITIONS", default=4)
# Consumer threads of one `triggerfire` process, each draining its share of the partitions:
# one process fires this many partitions in parallel (no more than TRIGGER_FIRE_PARTITIONS).
TRIGGER_FIRE_CONCURRENCY = env.int("TRIGGER_FIRE_CONCURRENCY", default=4)
# How long a consumer's hold on a partition lasts unless renewed (a dead consumer's partitions
# pass to another after this).
TRIGGER_FIRE_LEASE_MS = env.int("TRIGGER_FIRE_LEASE_MS", default=10_000)
# The sweep leaves queued triggers to the consumers for this long, then fires them itself
# (consumers down): an outage, not the normal path.
TRIGGER_FIRE_QUEUED_GRACE_SECONDS = env.int("TRIGGER_FIRE_QUEUED_GRACE_SECONDS", default=600)
# Fire crossed triggers in the tick's own thread, as before the firing queue (benchmarks
# measure the old path with it; never in production: a crash then stalls the feed).
TRIGGER_FIRE_INLINE = env.bool("TRIGGER_FIRE_INLINE", default=False)

# --- Outbox ---------------------------------------------------------------------------
# Dotted paths of callables taking a batch of Events (one transaction's, in user and seq
# order); each must be idempotent (events can be handed over again by the sweeper after a
# crash).
EVENT_DISPATCHERS: list[str] = [
    "marqetfi.core.realtime.events_dispatch_to_user_stream",
    "webhooks.dispatch.events_dispatch_to_webhooks",
]

# What /api/v1/health lists under "providers" (breaker state and call figures, from Redis).
HEALTH_PROVIDER_REPORT = "providers.health.providers_health"

# Modules whose ``APP_SETTINGS`` tuple declares runtime settings (marqetfi.core.app_settings).
APP_SETTING_MODULES: list[str] = [
    "marqetfi.core.app_settings.platform",
    "pricing.app_settings",
    "trading.app_settings",
    "webhooks.app_settings",
    "deposits.app_settings",
]

# --- Auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# allauth renders mails outside a request (after commit, in workers): the site comes from here.
SITE_ID = 1

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# Email sign-in through allauth's account machinery (verification mails, confirmation keys).
ACCOUNT_ADAPTER = "accounts.allauth_adapter.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS = 3
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[MarqetFi] "
# Where the verification mail points: the app opens it and posts the key to /auth/email/verify.
EMAIL_VERIFICATION_URL = env.str("EMAIL_VERIFICATION_URL", default="marqetfi://verify-email")
# Password reset: the mail points here with ?key=, the app posts it to /auth/password/reset/confirm.
PASSWORD_RESET_URL = env.str("PASSWORD_RESET_URL", default="marqetfi://reset-password")
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT_SECONDS", default=3600)
ACCOUNT_PASSWORD_RESET_TOKEN_GENERATOR = "accounts.verification.password_reset.PasswordResetKeyGenerator"  # noqa: S105  # a dotted path

# Sign-in with an ID token from the native Google / Apple / Auth0 SDK: audiences are the
# client ids of our apps (iOS, Android and web ids differ, so each is a list).
AUTH0_DOMAIN = env.str("AUTH0_DOMAIN", default="")
PRIVY_APP_ID = env.str("PRIVY_APP_ID", default="")
DYNAMIC_ENVIRONMENT_ID = env.str("DYNAMIC_ENVIRONMENT_ID", default="")
OIDC_PROVIDERS: dict[str, dict[str, Any]] = {
    "google": {
        "issuers": ["https://accounts.google.com", "accounts.google.com"],
        "jwks_url": env.str("GOOGLE_JWKS_URL", default="https://www.googleapis.com/oauth2/v3/certs"),
        "audiences": env.list("GOOGLE_CLIENT_IDS", default=[]),
    },
    "apple": {
        "issuers": ["https://appleid.apple.com"],
        "jwks_url": env.str("APPLE_JWKS_URL", default="https://appleid.apple.com/auth/keys"),
        "audiences": env.list("APPLE_CLIENT_IDS", default=[]),
    },
    "auth0": {
        "issuers": [env.str("AUTH0_ISSUER", default=f"https://{AUTH0_DOMAIN}/" if AUTH0_DOMAIN else "")],
        "jwks_url": env.str(
            "AUTH0_JWKS_URL", default=f"https://{AUTH0_DOMAIN}/.well-known/jwks.json" if AUTH0_DOMAIN else ""
        ),
        "audiences": env.list("AUTH0_CLIENT_IDS", default=[]),
    },
    # Embedded-wallet providers: their access tokens are exchanged for ours.
    "privy": {
        "issuers": ["privy.io"],
        "verification_key": env.str("PRIVY_VERIFICATION_KEY", default="", multiline=True),
        "audiences": [PRIVY_APP_ID] if PRIVY_APP_ID else [],
        "algorithms": ["ES256"],
    },
    "dynamic": {
        "issuers": env.list(
            "DYNAMIC_ISSUERS",
            default=[
                f"app.dynamicauth.com/{DYNAMIC_ENVIRONMENT_ID}",
                f"app.dynamic.xyz/{DYNAMIC_ENVIRONMENT_ID}",
            ]
            if DYNAMIC_ENVIRONMENT_ID
            else [],
        ),
        "jwks_url": env.str(
            "DYNAMIC_JWKS_URL",
            default=f"https://app.dynamicauth.com/api/v0/sdk/{DYNAMIC_ENVIRONMENT_ID}/.well-known/jwks.json"
            if DYNAMIC_ENVIRONMENT_ID
            else "",
        ),
        # Dynamic puts the requesting origin in aud; empty means any.
        "audiences": env.list("DYNAMIC_AUDIENCES", default=[]),
    },
}
OIDC_LEEWAY_SECONDS = 60
OIDC_JWKS_CACHE_SECONDS = 3600
OIDC_HTTP_TIMEOUT_SECONDS = 5
OIDC_JWKS_REFETCH_COOLDOWN_SECONDS = 30

# Sign-In with Ethereum (EIP-4361): the message's domain must be one of SIWE_DOMAINS (host and
# port exactly) and its URI on one of SIWE_URI_ORIGINS (scheme, host and port exactly, any
# path). SIWE_URI_PREFIXES is the former name of the latter. Production refuses local ones.
SIWE_DOMAINS: list[str] = env.list(
    "SIWE_DOMAINS", default=["localhost:8000", "127.0.0.1:8000", "app.marqetfi.com"]
)
SIWE_URI_ORIGINS: list[str] = env.list(
    "SIWE_URI_ORIGINS",
    default=env.list(
        "SIWE_URI_PREFIXES",
        default=["http://localhost:8000", "http://127.0.0.1:8000", "https://app.marqetfi.com"],
    ),
)
SIWE_CHAIN_IDS: list[int] = [int(c) for c in env.list("SIWE_CHAIN_IDS", default=["1", "42161", "421614"])]
SIWE_NONCE_TTL_SECONDS = env.int("SIWE_NONCE_TTL_SECONDS", default=300)
SIWE_MAX_MESSAGE_AGE_SECONDS = env.int("SIWE_MAX_MESSAGE_AGE_SECONDS", default=600)

# Extra ledger invariants (dotted paths of callables returning a list of problems), run by
# ``manage.py check_ledger`` after the ledger's own.
LEDGER_CHECKS: list[str] = ["deposits.checks.deposits_ledger_check"]
# How many rows the platform's fees and realized-P&L accounts are each split into, so that
# fills of different traders do not queue on one row (ledger/services.py). Raising it is
# safe at any time; lowering it leaves the higher shards holding their balance (still
# summed everywhere a balance is read).
LEDGER_PLATFORM_SHARDS = env.int("LEDGER_PLATFORM_SHARDS", default=16)

# Supported EVM chains (balances, EIP-1271 checks, deposits), as JSON keyed by chain id:
# {"42161": {"name": "Arbitrum One", "rpc_url": "https://...", "confirmations": 20,
#            "scan_batch_blocks": 500, "deposits": true,
#            "tokens": {"USDC": {"address": "0x...", "decimals": 6}}}}
# This is the starting configuration of the ``chains`` provider; operators change it at runtime
# (a new provider configuration version), RPC URLs with keys under its secret ``rpc_urls``.
EVM_CHAINS: dict[str, dict[str, Any]] = env.json("EVM_CHAINS", default={})

# Deposits settle in this token on this chain (native USDC on Arbitrum One); swaps deliver to
# the collection address (empty: the user's own deposit wallet). Starting values of the
# runtime setting ``deposit_policy``, which operators change in the admin.
DEPOSIT_SETTLEMENT_CHAIN_ID = env.int("DEPOSIT_SETTLEMENT_CHAIN_ID", default=42161)
DEPOSIT_SETTLEMENT_TOKEN = env.str(
    "DEPOSIT_SETTLEMENT_TOKEN", default="0xaf88d065e77c8cC2239327C5EDb3A432268e5831"
)
DEPOSIT_COLLECTION_ADDRESS = env.str("DEPOSIT_COLLECTION_ADDRESS", default="")
# The scanner reads at most this many blocks per chain per run (each chain's own
# ``scan_batch_blocks`` bounds one request); the state machine advances this many deposits per run.
DEPOSIT_SCAN_MAX_BLOCKS_PER_RUN = env.int("DEPOSIT_SCAN_MAX_BLOCKS_PER_RUN", default=5000)
DEPOSIT_ADVANCE_BATCH = env.int("DEPOSIT_ADVANCE_BATCH", default=200)
# A deposit whose transaction has vanished (reorganised away) for this long is dropped.
DEPOSIT_DROP_AFTER_SECONDS = env.int("DEPOSIT_DROP_AFTER_SECONDS", default=600)
# How long one step may hold a deposit before another worker may take it over (a worker that
# died mid-step leaves it for this long); above the slowest step (provider timeouts and retries).
DEPOSIT_STEP_LEASE_SECONDS = env.int("DEPOSIT_STEP_LEASE_SECONDS", default=120)

# Wallet providers for MPC wallets: the default when the app does not name one.
MPC_WALLET_DEFAULT_PROVIDER = env.str("MPC_WALLET_DEFAULT_PROVIDER", default="local")

# Every provider the platform knows: kind, adapter class, default options and which options
# are secret. Operators override options at runtime with versioned ProviderConfig rows
# (admin); the values here, from the environment, are the starting point.
PROVIDERS: dict[str, dict[str, Any]] = {
    "chains": {
        "kind": "chain",
        "class": "providers.chains.evm.chains.EvmChains",
        "options": {"chains": EVM_CHAINS, "timeout": "10"},
        "secret_fields": ["rpc_urls", "gas_station_keys"],
        "validate": "providers.chains.evm.chains.chain_options_check",
    },
    "local": {
        "kind": "wallet",
        "class": "providers.wallets.local.adapter.LocalWalletProvider",
        "options": {},
        "secret_fields": [],
    },
    "privy": {
        "kind": "wallet",
        "class": "providers.wallets.privy.adapter.PrivyWalletProvider",
        "options": {
            "app_id": PRIVY_APP_ID,
            "app_secret": env.str("PRIVY_APP_SECRET", default=""),
            "base_url": env.str("PRIVY_API_URL", default="https://api.privy.io"),
        },
        "secret_fields": ["app_secret"],
    },
    "dynamic": {
        "kind": "wallet",
        "class": "providers.wallets.dynamic.adapter.DynamicWalletProvider",
        "options": {
            "environment_id": DYNAMIC_ENVIRONMENT_ID,
            "api_token": env.str("DYNAMIC_API_TOKEN", default=""),
            "base_url": env.str("DYNAMIC_API_URL", default="https://app.dynamicauth.com/api/v0"),
            # "waas" (POST .../waas/create) or "legacy" (POST .../embeddedWallets)
            "wallet_api": env.str("DYNAMIC_WALLET_API", default="waas"),
        },
        "secret_fields": ["api_token"],
        "validate": "providers.wallets.dynamic.adapter.dynamic_options_check",
    },
    # Venues. Each adapter's constructor takes exactly these options.
    "paper": {
        "kind": "venue",
        "class": "providers.venues.paper.adapter.PaperVenue",
        "options": {
            "spread_bps": "2",
            "slippage_bps": "1",
            "volatility_bps": "8",
            "mirror_venue": "",
            # "async": orders and closes answer pending, learnt by polling get_order.
            "answer_mode": env.str("PAPER_ANSWER_MODE", default="sync"),
            "answer_delay_seconds": "0",
            "drop_answers": "false",
        },
        "secret_fields": [],
    },
    "lighter": {
        "kind": "venue",
        "class": "providers.venues.lighter.adapter.LighterVenue",
        "options": {
            "base_url": env.str("LIGHTER_API_URL", default="https://mainnet.zklighter.elliot.ai"),
            "account_index": env.str("LIGHTER_ACCOUNT_INDEX", default=""),
            "api_key_index": env.str("LIGHTER_API_KEY_INDEX", default=""),
            "api_key_private_key": env.str("LIGHTER_API_KEY_PRIVATE_KEY", default=""),
            # Empty: the REST base URL with wss:// and /stream.
            "ws_url": env.str("LIGHTER_WS_URL", default=""),
            # Per-user sub-accounts under the master account (see providers/venues/lighter).
            "sub_accounts": env.str("LIGHTER_SUB_ACCOUNTS", default="false"),
            "l1_address": env.str("LIGHTER_L1_ADDRESS", default=""),
            "l1_private_key": env.str("LIGHTER_L1_PRIVATE_KEY", default=""),
            "api_key_public_key": env.str("LIGHTER_API_KEY_PUBLIC_KEY", default=""),
        },
        "secret_fields": ["api_key_private_key", "l1_private_key"],
    },
    "ostium": {
        "kind": "venue",
        "class": "providers.venues.ostium.adapter.OstiumVenue",
        "options": {
            # Arbitrum One; every default below is the mainnet entry of ostium-python-sdk 3.3.1
            # (config.py, price.py). The RPC is ours to choose (a provider URL with its key).
            "rpc_url": env.str("OSTIUM_RPC_URL", default=""),
            "chain_id": env.str("OSTIUM_CHAIN_ID", default="42161"),
            "price_url": env.str(
                "OSTIUM_PRICE_URL",
                default="https://metadata-backend.prod.bedrock.ostium.io/PricePublish/latest-prices",
            ),
            "subgraph_url": env.str(
                "OSTIUM_SUBGRAPH_URL",
                default="https://api.subgraph.ormilabs.com/api/public/"
                "67a599d5-c8d2-4cc4-9c4d-2975a97bc5d8/subgraphs/ost-prod/live/gn",
            ),
            "trading_contract": env.str(
                "OSTIUM_TRADING_CONTRACT", default="0x6D0bA1f9996DBD8885827e1b2e8f6593e7702411"
            ),
            "trading_storage_contract": env.str(
                "OSTIUM_TRADING_STORAGE_CONTRACT", default="0xcCd5891083A8acD2074690F65d3024E7D13d66E7"
            ),
            "usdc_address": env.str(
                "OSTIUM_USDC_ADDRESS", default="0xaf88d065e77c8cC2239327C5EDb3A432268e5831"
            ),
            # "day-trade": openTrade with isDayTrade (0x1365e4e4); "legacy": without it.
            "abi_version": env.str("OSTIUM_ABI_VERSION", default="day-trade"),
        },
        "secret_fields": [],
    },
    # Swaps. LI-FI works without an API key (lower rate limits, per IP).
    "lifi": {
        "kind": "swap",
        "class": "providers.swaps.lifi.adapter.LifiSwapProvider",
        "options": {
            "base_url": env.str("LIFI_API_URL", default="https://li.quest/v1"),
            "api_key": env.str("LIFI_API_KEY", default=""),
            "integrator": env.str("LIFI_INTEGRATOR", default="marqetfi"),
            "timeout": "10",
        },
        "secret_fields": ["api_key"],
    },
}
# Venues per category when no routing rule matches (primary first); operators add rules in the admin.
ROUTING_DEFAULTS: dict[str, list[str]] = {
    "crypto": ["lighter"],
    "forex": ["ostium"],
    "indices": ["ostium"],
    "commodities": ["ostium"],
}
# Options that may stay empty (an adapter works without them).
PROVIDER_OPTIONAL_OPTIONS = frozenset(
    {
        "rpc_urls",
        "gas_station_keys",
        "timeout",
        "max_attempts",
        "backoff_seconds",
        "mirror_venue",
        "ws_url",
        "stream_backoff_seconds",
        "stream_max_backoff_seconds",
        "stream_refresh_seconds",
        "api_key",
        # Lighter: needed only with sub_accounts on, and checked by the adapter then.
        "l1_address",
        "l1_private_key",
        "api_key_public_key",
        "sub_account_wait_seconds",
        "order_poll_seconds",
    }
)
# Circuit breaker per provider (providers.health): consecutive failures that open it, how long
# it stays open before one trial call may go through, and how long a trial may hold that slot.
PROVIDER_BREAKER_FAILURE_THRESHOLD = env.int("PROVIDER_BREAKER_FAILURE_THRESHOLD", default=5)
PROVIDER_BREAKER_OPEN_SECONDS = env.float("PROVIDER_BREAKER_OPEN_SECONDS", default=30.0)
PROVIDER_BREAKER_TRIAL_SECONDS = env.float("PROVIDER_BREAKER_TRIAL_SECONDS", default=60.0)
# Every enabled provider's health_check() runs at least this often (open breakers sooner).
PROVIDER_PROBE_INTERVAL_SECONDS = env.float("PROVIDER_PROBE_INTERVAL_SECONDS", default=60.0)
# Calls, error rate and latency are reported over this sliding window (per-minute buckets).
PROVIDER_STATS_WINDOW_SECONDS = env.int("PROVIDER_STATS_WINDOW_SECONDS", default=15 * 60)

# --- Prices (pricing.services.prices) ----------------------------------------------------
# Cache TTL and staleness limits are runtime app settings; these tune the fetch on a miss.
# How long one fetch may hold a symbol's single-flight lock: above a venue call's timeout,
# and the longest a crashed fetcher can block the symbol.
PRICE_FETCH_LOCK_MS = env.int("PRICE_FETCH_LOCK_MS", default=10_000)
# How long a request waits for another request's fetch of the same symbol before answering
# price_unavailable.
PRICE_FILL_WAIT_MS = env.int("PRICE_FILL_WAIT_MS", default=5_000)
# Venues asked in parallel by one bulk request.
PRICE_FETCH_MAX_WORKERS = env.int("PRICE_FETCH_MAX_WORKERS", default=8)
# Dotted paths of callables taking a pricing.services.prices.PriceTick, called on every tick
# ingested (after the cache write and the broadcast); a failing hook is logged and skipped.
PRICE_TICK_HOOKS: list[str] = [
    "providers.venues.paper.services.paper_tick_hook",
    "trading.triggers.engine.trigger_tick_hook",
]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_ACCESS_LIFETIME_SECONDS", default=600)),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env.int("JWT_REFRESH_LIFETIME_SECONDS", default=30 * 24 * 3600)
    ),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": SECRET_KEY,
    "USER_ID_FIELD": "id",
    # Clocks of different web machines differ a little: without leeway a token minted on one
    # whose clock is a second ahead is refused on another as issued in the future (PyJWT
    # checks ``iat``). The same seconds are allowed past ``exp`` (PyJWT has one leeway).
    "LEEWAY": env.int("JWT_LEEWAY_SECONDS", default=10),
}

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "marqetfi.core.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["marqetfi.core.api.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "marqetfi.core.api.CursorPagination",
    "DEFAULT_THROTTLE_CLASSES": [
        "marqetfi.core.throttling.AnonRateThrottle",
        "marqetfi.core.throttling.UserRateThrottle",
        "marqetfi.core.throttling.WriteRateThrottle",
    ],
    # Every API view has at least one of these (tests/core/test_throttle_coverage.py); the
    # README's "Rate limits" table lists which endpoints count against which.
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="120/min"),
        "user": env.str("THROTTLE_USER", default="600/min"),
        # Writes (orders, closes, wallets, webhooks...), per user, on top of "user".
        "write": env.str("THROTTLE_WRITE", default="240/min"),
        # Sign-in and registration, per client address: slows password guessing and sign-up spam.
        "auth": env.str("THROTTLE_AUTH", default="20/min"),
        # Password reset mails, per client address: each one sends a mail.
        "password_reset": env.str("THROTTLE_PASSWORD_RESET", default="5/hour"),
        # Staff endpoints (/api/v1/admin/, /metrics), per operator.
        "admin": env.str("THROTTLE_ADMIN", default="300/min"),
        # /api/v1/health, per client address (answered from a cache, HEALTH_CACHE_SECONDS).
        "health": env.str("THROTTLE_HEALTH", default="300/min"),
    },
    "EXCEPTION_HANDLER": "marqetfi.core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "marqetfi.core.schema.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "MarqetFi API",
    "DESCRIPTION": "One API over Lighter, Ostium and the paper venue: sign-in, wallets, "
    "deposits, orders, positions, streams and webhooks.\n\n"
    "The WebSocket protocol (`/ws`: ops, channels, message types, resume, close codes) is the "
    "AsyncAPI 3.0 document at [/api/asyncapi.yaml](/api/asyncapi.yaml) "
    "([JSON](/api/asyncapi.json)). The events sent to webhook endpoints, with their payloads and "
    "Standard Webhooks signing headers, are this schema's `webhooks`.\n\n"
    "Any operation may also answer, in the error shape: 429 `throttled`; 503 `server_busy`, "
    "`database_unavailable` or `redis_unavailable` (a dependency out of reach), each with "
    "`Retry-After` and `details.retry_after_seconds`: retry after that many seconds.",
    # Tags in the order of the areas; each operation gets one from its path (marqetfi.core.schema).
    "TAGS": [{"name": name, "description": text} for name, text in API_TAGS],
    "POSTPROCESSING_HOOKS": [
        # Before the enum hook, so the webhook payloads' enums are named like the rest.
        "streams.apidocs.schema_add_webhooks",
        "drf_spectacular.hooks.postprocess_schema_enums",
    ],
    "VERSION": "1.0.0",
    # 3.1: the events sent to webhook endpoints are the schema's "webhooks" (streams.apidocs).
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "WebhookDeliveryStatusEnum": "webhooks.models.WebhookDelivery.Status",
        "WebhookRecoveryStatusEnum": "webhooks.models.WebhookRecovery.Status",
        "WebhookDisabledReasonEnum": "webhooks.models.WebhookEndpoint.DisabledReason",
        "WebhookAttemptTriggerEnum": "webhooks.models.WebhookAttempt.Trigger",
        "DepositStatusEnum": "deposits.models.DepositStatus",
        "DepositSourceEnum": "deposits.models.DepositSource",
        "SwapStatusEnum": "deposits.models.SwapStatus",
        # Position's, also in the risk.* webhook payloads (which extend it).
        "PositionStatusEnum": ["open", "closing", "closed", "liquidated"],
    },
}

# --- HTTP, CORS, static ---------------------------------------------------------------
CORS_EXPOSE_HEADERS = ["X-Request-ID", "Retry-After", "Idempotent-Replayed"]
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "x-request-id",
]
REQUEST_ID_HEADER = "X-Request-ID"
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Security headers on every response, Django's and the ASGI answers in front of it alike
# (marqetfi/core/security_headers.py). HSTS is sent only over https and only outside DEBUG;
# production redirects plain http to https (SECURE_SSL_REDIRECT), except the health route
# a load balancer probes over plain http.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_HSTS_SECONDS = 0 if DEBUG else env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without a collectstatic run (tests, a fresh checkout) static files are found in the apps.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="MarqetFi <no-reply@marqetfi.local>")

PROMETHEUS_EXPORT_MIGRATIONS = False
# /metrics answers staff (a staff access token or admin session) and a scraper sending
# "Authorization: Bearer <METRICS_TOKEN>"; empty: staff only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Logging --------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "marqetfi.core.logging.RequestContextFilter"},
        "redact": {"()": "marqetfi.core.logging.RedactingFilter"},
    },
    "formatters": {
        "json": {"()": "marqetfi.core.logging.JsonFormatter"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["context", "redact"],
            "formatter": "json",
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        # httpx logs full URLs at INFO; our provider client logs calls without query strings.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

CSRF_FAILURE_VIEW = "marqetfi.core.api.csrf_failure"
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
REST_FRAMEWORK["NUM_PROXIES"] = NUM_PROXIES
