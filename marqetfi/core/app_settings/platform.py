"""The kernel's own runtime settings: CORS, throttle rates, log level, maintenance mode."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from rest_framework.settings import api_settings

from marqetfi.core.app_settings.definitions import (
    AppSettingDefinition,
    boolean,
    choice,
    list_of,
    mapping_of,
    origin,
    rate,
    record,
    scope,
    text,
)

logger = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class MaintenanceMode:
    enabled: bool
    message: str


def _log_level_apply(level: str) -> None:
    """The root logger's level in this process; loggers with their own level keep it."""
    logger.warning("Log level set to %s by the log_level app setting", level)
    logging.getLogger().setLevel(level)


CORS_ALLOWED_ORIGINS: AppSettingDefinition[tuple[str, ...]] = AppSettingDefinition(
    key="cors_allowed_origins",
    description=(
        "Browser origins granted CORS, in addition to the CORS_ALLOWED_ORIGINS of the environment "
        "(which stay granted whatever this holds)."
    ),
    default=lambda: [origin.lower() for origin in settings.CORS_ALLOWED_ORIGINS],
    validate=list_of(origin, max_items=100),
    build=tuple,
)

THROTTLE_RATES: AppSettingDefinition[dict[str, str | None]] = AppSettingDefinition(
    key="throttle_rates",
    description=(
        'Request rates per throttle scope ("anon", "user", "auth", ...), like "120/min"; null turns a '
        "scope's limit off. Scopes not listed keep REST_FRAMEWORK's DEFAULT_THROTTLE_RATES."
    ),
    default=lambda: dict(api_settings.DEFAULT_THROTTLE_RATES),
    validate=mapping_of(scope, rate),
    build=dict,
    merge=True,
)

LOG_LEVEL: AppSettingDefinition[str] = AppSettingDefinition(
    key="log_level",
    description="Level of the root logger in every process (DEBUG, INFO, WARNING, ERROR).",
    default=lambda: str(settings.LOG_LEVEL).upper(),
    validate=choice(LOG_LEVELS),
    build=str,
    apply=_log_level_apply,
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
    validate=record({"enabled": boolean, "message": text(500)}),
    build=lambda value: MaintenanceMode(**value),
    merge=True,
)

APP_SETTINGS = (CORS_ALLOWED_ORIGINS, THROTTLE_RATES, LOG_LEVEL, MAINTENANCE_MODE)
