"""Runtime settings: defined here in code, overridden by operators with ``AppSetting`` rows.

Each setting is one ``AppSettingDefinition``: its key, a description, a default (computed
at read time, so a default taken from Django settings follows them), a validator that
turns JSON into its normalised stored form, and a builder that turns that into the typed
value callers get from ``app_setting()``. Writes go through
``providers.services.app_settings``.

Reads cost no database query: every process keeps the stored rows it last loaded together
with the ``Generation("app_settings")`` they were loaded at, and reloads only when a
writer has moved the generation (looked up in Redis at most once a second). A change
therefore reaches every web, worker, beat and feed process within about a second of its
next read, without a restart. If the database or Redis cannot be reached, the last
loaded values (the defaults before the first load) keep serving and the load is retried a
second later: a settings outage must never take the request path down with it.

Object-shaped settings (``throttle_rates``, ``price_staleness_limit_ms``,
``risk_defaults``, ``webhook_retry_policy``, ``maintenance_mode``) are read as the default
with the stored entries laid over it, so an entry added in code later still has a value.

Some settings act on the process itself rather than being read by a caller (the root
log level): their ``apply`` hook runs in each process when the value in effect there
changes, at the next reload. ``app_settings_connect_signals()`` (called from an
``AppConfig.ready()``) hooks the reload onto the paths that run often: every HTTP request,
every task a worker receives and runs, every task beat or web publishes; and it lets
django-cors-headers grant the origins of ``cors_allowed_origins``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar, overload
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from rest_framework.settings import api_settings

from marqetfi.core.errors import ApplicationError, NotFoundError
from marqetfi.core.formats import canonical_decimal, decimal_digits
from marqetfi.core.runtime import Generation

logger = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

CATEGORIES = ("crypto", "forex", "indices", "commodities")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
RELOAD_RETRY_SECONDS = 1.0
MAX_SETTING_DIGITS = 36

app_settings_generation = Generation("app_settings")


class InvalidSetting(ApplicationError):
    code = "invalid_setting"
    status_code = 400
    default_message = "The value is not valid for this setting."


class UnknownSetting(NotFoundError):
    code = "unknown_setting"
    default_message = "No such setting."


# --- Validators: JSON in, normalised JSON out ----------------------------------------


class _Invalid(Exception):
    """Validation errors keyed by the path of the offending entry (``""`` for the whole value)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


Validator = Callable[[Any], Any]


def _fail(message: str) -> _Invalid:
    return _Invalid({"": [message]})


def _prefixed(errors: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {f"{prefix}.{path}" if path else prefix: messages for path, messages in errors.items()}


def _int_between(low: int, high: int) -> Validator:
    def validate(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail("Expected a whole number.")
        if not low <= value <= high:
            raise _fail(f"Expected a number from {low} to {high}.")
        return value

    return validate


def _decimal_between(low: Decimal, high: Decimal, *, places: int, exclusive: bool = False) -> Validator:
    """Decimal amounts travel as strings (whole numbers as JSON integers are accepted); never floats."""

    def validate(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _fail('Expected a decimal number as a string, e.g. "12.5".')
        text = str(value)
        if not canonical_decimal(text) or sum(decimal_digits(text)) > MAX_SETTING_DIGITS:
            raise _fail('Expected a decimal number as a string of digits, e.g. "12.5".')
        number = Decimal(text)
        if (low < number < high) if exclusive else (low <= number <= high):
            exponent = number.as_tuple().exponent
            if isinstance(exponent, int) and -exponent > places:
                raise _fail(f"Expected at most {places} decimal places.")
            return format(number.normalize(), "f")
        bounds = f"between {low} and {high}" if exclusive else f"from {low} to {high}"
        raise _fail(f"Expected a number {bounds}.")

    return validate


def _choice(choices: tuple[str, ...]) -> Validator:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or value.upper() not in choices:
            raise _fail(f"Expected one of {', '.join(choices)}.")
        return value.upper()

    return validate


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail("Expected true or false.")
    return value


def _text(max_length: int) -> Validator:
    def validate(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _fail("Expected a non-empty string.")
        if len(value) > max_length:
            raise _fail(f"Expected at most {max_length} characters.")
        return value.strip()

    return validate


def _origin(value: Any) -> str:
    """``scheme://host[:port]`` as browsers send it in ``Origin``; compared lower-cased."""
    message = 'Expected an origin like "https://app.example.com" (no path, no trailing slash).'
    if not isinstance(value, str):
        raise _fail(message)
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise _fail(message) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path
        or parts.query
        or parts.fragment
    ):
        raise _fail(message)
    return f"{parts.scheme}://{parts.netloc}".lower()


_RATE = re.compile(r"^[1-9][0-9]{0,6}/(s|sec|second|m|min|minute|h|hour|d|day)$")


def _rate(value: Any) -> str | None:
    """A DRF rate, ``<requests>/<period>``; null means the scope is not limited at all."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RATE.match(value.strip()):
        raise _fail(
            'Expected a rate like "120/min" (period s, sec, second, m, min, minute, h, hour, d, day).'
        )
    return value.strip()


_SCOPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def _scope(value: str) -> None:
    if not _SCOPE.match(value):
        raise _fail("Expected a throttle scope name: lower-case letters, digits, _ . -")


def _list_of(item: Validator, *, max_items: int) -> Validator:
    def validate(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _fail("Expected a list.")
        if len(value) > max_items:
            raise _fail(f"Expected at most {max_items} entries.")
        cleaned: list[Any] = []
        errors: dict[str, list[str]] = {}
        for index, entry in enumerate(value):
            try:
                normalised = item(entry)
            except _Invalid as exc:
                errors.update(_prefixed(exc.errors, str(index)))
            else:
                if normalised not in cleaned:
                    cleaned.append(normalised)
        if errors:
            raise _Invalid(errors)
        return cleaned

    return validate


def _mapping_of(check_key: Callable[[str], None], item: Validator) -> Validator:
    """An open object: any key that passes ``check_key``, every value checked by ``item``."""

    def validate(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail("Expected an object.")
        cleaned: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for key, entry in value.items():
            try:
                check_key(key)
                cleaned[key] = item(entry)
            except _Invalid as exc:
                errors.update(_prefixed(exc.errors, key))
        if errors:
            raise _Invalid(errors)
        return cleaned

    return validate


def _record(
    fields: Mapping[str, Validator], check: Callable[[dict[str, Any]], dict[str, list[str]]] | None = None
) -> Validator:
    """A closed object: exactly ``fields``; ``check`` adds rules across fields."""

    def validate(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail("Expected an object.")
        cleaned: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for key in value.keys() - fields.keys():
            errors[str(key)] = [f"Unknown field. Fields: {', '.join(fields)}."]
        for key, field_validator in fields.items():
            if key not in value:
                errors[key] = ["This field is required."]
                continue
            try:
                cleaned[key] = field_validator(value[key])
            except _Invalid as exc:
                errors.update(_prefixed(exc.errors, key))
        if not errors and check is not None:
            errors = check(cleaned)
        if errors:
            raise _Invalid(errors)
        return cleaned

    return validate


def _merged(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``, object by object; anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: _merged(base.get(key), value) for key, value in override.items()}}
    return override


def _picked(value: Any, entries: Any) -> Any:
    """The parts of ``value`` that ``entries`` names, object by object."""
    if isinstance(value, dict) and isinstance(entries, dict):
        return {key: _picked(value[key], entry) for key, entry in entries.items() if key in value}
    return value


# --- Definitions -------------------------------------------------------------------------


@dataclass(frozen=True)
class AppSettingDefinition(Generic[T_co]):
    """One runtime setting.

    ``default`` returns the JSON form and is called at read time. ``validate`` turns a
    complete JSON value into its stored form (raising ``_Invalid``); ``build`` turns the
    stored form into what ``app_setting()`` returns. With ``merge``, the setting is an
    object read as the default with the stored entries laid over it, and a write may send
    only the entries it changes. ``apply``, if set, acts on the running process whenever
    the value in effect there changes.
    """

    key: str
    description: str
    default: Callable[[], Any]
    validate: Validator
    build: Callable[[Any], T_co]
    merge: bool = False
    apply: Callable[[Any], None] | None = None

    def clean(self, value: Any, *, stored: Any = None) -> Any:
        """The stored form of ``value``; with ``merge``, of ``value`` laid over ``stored``.

        A merged setting stores only the entries an operator set, so the others keep
        following their default; the whole value in effect is what gets validated.
        """
        try:
            if self.merge and isinstance(value, dict):
                entries = _merged(stored or {}, value)
                return _picked(self.validate(_merged(self.default(), entries)), entries)
            return self.validate(value)
        except _Invalid as exc:
            errors = {path or "value": messages for path, messages in exc.errors.items()}
            raise InvalidSetting(
                f"Invalid value for {self.key}.", details={"key": self.key, "errors": errors}
            ) from None

    def effective_json(self, stored: Any = None) -> Any:
        """The JSON form in effect given the stored value (``None``: no row, the default)."""
        if stored is None:
            return self.default()
        return _merged(self.default(), stored) if self.merge else stored

    def value(self, stored: Any = None) -> T_co:
        return self.build(self.effective_json(stored))


@dataclass(frozen=True)
class RiskDefaults:
    """Platform-wide risk limits, before any per-pair or per-user override.

    ``margin_call_level`` and ``liquidation_level`` are the share of a position's initial
    collateral left after its unrealised loss: at 0.5 the user is warned, at 0.1 (a 90 %
    loss) the position is closed, leaving room for slippage before the collateral is gone.
    """

    max_leverage: Mapping[str, Decimal]
    max_position_collateral: Decimal
    margin_call_level: Decimal
    liquidation_level: Decimal


@dataclass(frozen=True)
class WebhookRetryPolicy:
    """Exponential backoff for failed deliveries: base * 2**attempt, capped at max_delay."""

    max_retries: int
    base_delay_seconds: int
    max_delay_seconds: int
    timeout_seconds: int

    def delay_seconds(self, attempt: int) -> int:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        return min(self.base_delay_seconds * 2 ** max(attempt - 1, 0), self.max_delay_seconds)


@dataclass(frozen=True)
class MaintenanceMode:
    enabled: bool
    message: str


def _risk_levels_ordered(value: dict[str, Any]) -> dict[str, list[str]]:
    if Decimal(value["liquidation_level"]) >= Decimal(value["margin_call_level"]):
        return {"liquidation_level": ["Must be below margin_call_level."]}
    return {}


def _delays_ordered(value: dict[str, Any]) -> dict[str, list[str]]:
    if value["max_delay_seconds"] < value["base_delay_seconds"]:
        return {"max_delay_seconds": ["Must not be below base_delay_seconds."]}
    return {}


def _log_level_apply(level: str) -> None:
    """The root logger's level in this process; loggers with their own level keep it."""
    logger.warning("Log level set to %s by the log_level app setting", level)
    logging.getLogger().setLevel(level)


def _per_category(item: Validator) -> Validator:
    return _record(dict.fromkeys(CATEGORIES, item))


CORS_ALLOWED_ORIGINS: AppSettingDefinition[tuple[str, ...]] = AppSettingDefinition(
    key="cors_allowed_origins",
    description=(
        "Browser origins granted CORS, in addition to the CORS_ALLOWED_ORIGINS of the environment "
        "(which stay granted whatever this holds)."
    ),
    default=lambda: [origin.lower() for origin in settings.CORS_ALLOWED_ORIGINS],
    validate=_list_of(_origin, max_items=100),
    build=tuple,
)

THROTTLE_RATES: AppSettingDefinition[dict[str, str | None]] = AppSettingDefinition(
    key="throttle_rates",
    description=(
        'Request rates per throttle scope ("anon", "user", "auth", ...), like "120/min"; null turns a '
        "scope's limit off. Scopes not listed keep REST_FRAMEWORK's DEFAULT_THROTTLE_RATES."
    ),
    default=lambda: dict(api_settings.DEFAULT_THROTTLE_RATES),
    validate=_mapping_of(_scope, _rate),
    build=dict,
    merge=True,
)

LOG_LEVEL: AppSettingDefinition[str] = AppSettingDefinition(
    key="log_level",
    description="Level of the root logger in every process (DEBUG, INFO, WARNING, ERROR).",
    default=lambda: str(settings.LOG_LEVEL).upper(),
    validate=_choice(LOG_LEVELS),
    build=str,
    apply=_log_level_apply,
)

PRICE_CACHE_TTL_SECONDS: AppSettingDefinition[int] = AppSettingDefinition(
    key="price_cache_ttl_seconds",
    description="How long a fetched price stays in the cache, in seconds (1 to 3600).",
    default=lambda: 30,
    validate=_int_between(1, 3600),
    build=int,
)

PRICE_STALENESS_LIMIT_MS: AppSettingDefinition[dict[str, int]] = AppSettingDefinition(
    key="price_staleness_limit_ms",
    description="Age in milliseconds past which a price of the category is too old to trade on.",
    default=lambda: {"crypto": 5000, "forex": 15000, "indices": 15000, "commodities": 15000},
    validate=_per_category(_int_between(100, 600_000)),
    build=dict,
    merge=True,
)

RISK_DEFAULTS: AppSettingDefinition[RiskDefaults] = AppSettingDefinition(
    key="risk_defaults",
    description=(
        "Maximum leverage per category, maximum collateral of one position (USDC), and the "
        "margin-call and liquidation levels as the share of a position's collateral left."
    ),
    default=lambda: {
        "max_leverage": {"crypto": "20", "forex": "50", "indices": "25", "commodities": "25"},
        "max_position_collateral": "100000",
        "margin_call_level": "0.5",
        "liquidation_level": "0.1",
    },
    validate=_record(
        {
            "max_leverage": _per_category(_decimal_between(Decimal(1), Decimal(1000), places=2)),
            "max_position_collateral": _decimal_between(Decimal(1), Decimal(10) ** 12, places=6),
            "margin_call_level": _decimal_between(Decimal(0), Decimal(1), places=4, exclusive=True),
            "liquidation_level": _decimal_between(Decimal(0), Decimal(1), places=4, exclusive=True),
        },
        check=_risk_levels_ordered,
    ),
    build=lambda value: RiskDefaults(
        max_leverage={category: Decimal(limit) for category, limit in value["max_leverage"].items()},
        max_position_collateral=Decimal(value["max_position_collateral"]),
        margin_call_level=Decimal(value["margin_call_level"]),
        liquidation_level=Decimal(value["liquidation_level"]),
    ),
    merge=True,
)

WEBHOOK_RETRY_POLICY: AppSettingDefinition[WebhookRetryPolicy] = AppSettingDefinition(
    key="webhook_retry_policy",
    description="Retries of a failed webhook delivery, their backoff and the timeout of one attempt.",
    default=lambda: {
        "max_retries": 3,
        "base_delay_seconds": 30,
        "max_delay_seconds": 3600,
        "timeout_seconds": 10,
    },
    validate=_record(
        {
            "max_retries": _int_between(0, 20),
            "base_delay_seconds": _int_between(1, 3600),
            "max_delay_seconds": _int_between(1, 86_400),
            "timeout_seconds": _int_between(1, 60),
        },
        check=_delays_ordered,
    ),
    build=lambda value: WebhookRetryPolicy(**value),
    merge=True,
)

MAINTENANCE_MODE: AppSettingDefinition[MaintenanceMode] = AppSettingDefinition(
    key="maintenance_mode",
    description=(
        "When enabled, the public API answers 503 with this message; health and the admin API stay up."
    ),
    default=lambda: {
        "enabled": False,
        "message": "MarqetFi is down for maintenance. Please try again shortly.",
    },
    validate=_record({"enabled": _boolean, "message": _text(500)}),
    build=lambda value: MaintenanceMode(**value),
    merge=True,
)

TRADING_FEE_RATE: AppSettingDefinition[Decimal] = AppSettingDefinition(
    key="trading_fee_rate",
    description=(
        "The platform's trading fee as a share of each fill's notional (size x price), charged "
        'on opening and on closing, e.g. "0.0005" for 5 basis points.'
    ),
    default=lambda: "0.0005",
    validate=_decimal_between(Decimal(0), Decimal("0.05"), places=6),
    build=Decimal,
)

APP_SETTINGS: Mapping[str, AppSettingDefinition[Any]] = {
    definition.key: definition
    for definition in (
        CORS_ALLOWED_ORIGINS,
        THROTTLE_RATES,
        LOG_LEVEL,
        PRICE_CACHE_TTL_SECONDS,
        PRICE_STALENESS_LIMIT_MS,
        RISK_DEFAULTS,
        TRADING_FEE_RATE,
        WEBHOOK_RETRY_POLICY,
        MAINTENANCE_MODE,
    )
}


def app_setting_definition(key: str) -> AppSettingDefinition[Any]:
    definition = APP_SETTINGS.get(key)
    if definition is None:
        raise UnknownSetting(details={"key": key, "known": sorted(APP_SETTINGS)})
    return definition


# --- The per-process cache -----------------------------------------------------------


class AppSettingsCache:
    """The stored values this process loaded, and the generation it loaded them at."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self._lock = threading.Lock()
        self._apply_lock = threading.Lock()
        self._stored: dict[str, Any] = {}
        self._loaded_generation: int | None = None
        self._retry_at = 0.0
        self._applied: dict[str, Any] = {}

    def stored(self) -> Mapping[str, Any]:
        """The stored (validated) values, reloaded first if the generation moved."""
        if self._retry_at > time.monotonic() or _in_event_loop():
            return self._stored
        try:
            generation = self.generation.current()
        except Exception:  # Redis down: keep serving what was loaded
            logger.warning(
                "Cannot read the app settings generation; keeping the loaded values", exc_info=True
            )
            self._retry_at = time.monotonic() + RELOAD_RETRY_SECONDS
            return self._stored
        if generation != self._loaded_generation:
            self._reload(generation)
        return self._stored

    def clear(self) -> None:
        """Forget what was loaded (tests: after a rollback removed rows without a bump)."""
        with self._lock:
            self._stored = {}
            self._loaded_generation = None
            self._retry_at = 0.0

    def _reload(self, generation: int) -> None:
        from providers.models import AppSetting

        with self._lock:
            if generation == self._loaded_generation:
                return
            try:
                rows = dict(AppSetting.objects.values_list("key", "value"))
            except Exception:  # database down: keep serving what was loaded
                logger.warning("Cannot load app settings; keeping the loaded values", exc_info=True)
                self._retry_at = time.monotonic() + RELOAD_RETRY_SECONDS
                return
            self._stored = _valid_rows(rows)
            self._loaded_generation = generation
        self._apply_changes()

    def _apply_changes(self) -> None:
        """Run the ``apply`` hook of every setting whose value in effect moved since it last ran.

        Before the first run the default counts as applied: the process started with it.
        """
        with self._apply_lock:
            for key, definition in APP_SETTINGS.items():
                if definition.apply is None:
                    continue
                value = definition.value(self._stored.get(key))
                if value != self._applied.get(key, definition.value()):
                    definition.apply(value)
                self._applied[key] = value


def _in_event_loop() -> bool:
    """True in an event loop thread, where Django refuses database queries."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _valid_rows(rows: Mapping[str, Any]) -> dict[str, Any]:
    """Rows of known settings that still validate; the others fall back to the default, loudly."""
    valid: dict[str, Any] = {}
    for key, raw in rows.items():
        definition = APP_SETTINGS.get(key)
        if definition is None:
            continue
        try:
            valid[key] = definition.clean(raw)
        except InvalidSetting as exc:
            logger.error(
                "Ignoring the stored app setting %s, which no longer validates: %s", key, exc.details
            )
    return valid


app_settings_cache = AppSettingsCache(app_settings_generation)


@overload
def app_setting(key: AppSettingDefinition[T]) -> T: ...


@overload
def app_setting(key: str) -> Any: ...


def app_setting(key: AppSettingDefinition[Any] | str) -> Any:
    """The typed value in effect: the stored one if an operator set it, else the default."""
    definition = key if isinstance(key, AppSettingDefinition) else app_setting_definition(key)
    return definition.value(app_settings_cache.stored().get(definition.key))


def app_settings_refresh(**kwargs: Any) -> None:
    """Reload if the generation moved and apply what changed; a signal receiver too."""
    app_settings_cache.stored()


def cors_origin_allowed(sender: Any = None, request: HttpRequest | None = None, **kwargs: Any) -> bool:
    """django-cors-headers' ``check_request_enabled`` receiver: grants ``cors_allowed_origins``."""
    origin = request.headers.get("origin", "") if request is not None else ""
    return bool(origin) and origin.lower() in app_setting(CORS_ALLOWED_ORIGINS)


def app_settings_connect_signals() -> None:
    """Connect the receivers; call once from an ``AppConfig.ready()`` (connecting twice is harmless).

    Where the generation is checked (a reload follows only if it moved): in a worker when
    it receives a task (main process) and before it runs one (pool process); in beat when
    it publishes a scheduled task; in web processes at the start of every request.
    """
    from celery import signals as celery_signals
    from corsheaders.signals import check_request_enabled
    from django.core.signals import request_started

    check_request_enabled.connect(cors_origin_allowed, dispatch_uid="app_settings.cors")
    request_started.connect(app_settings_refresh, dispatch_uid="app_settings.request_started")
    celery_signals.task_received.connect(app_settings_refresh, dispatch_uid="app_settings.task_received")
    celery_signals.task_prerun.connect(app_settings_refresh, dispatch_uid="app_settings.task_prerun")
    celery_signals.before_task_publish.connect(app_settings_refresh, dispatch_uid="app_settings.task_publish")
