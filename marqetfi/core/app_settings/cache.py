"""Reading runtime settings: the per-process cache and ``app_setting()``.

Reads cost no database query: every process keeps the stored rows it last loaded together
with the ``Generation("app_settings")`` they were loaded at, and reloads only when a
writer has moved the generation (looked up in Redis at most once a second). A change
therefore reaches every web, worker, beat and feed process within about a second of its
next read, without a restart. If the database or Redis cannot be reached, the last
loaded values (the defaults before the first load) keep serving and the load is retried a
second later: a settings outage must never take the request path down with it.

Object-shaped settings are read as the default with the stored entries laid over it, so
an entry added in code later still has a value. Some settings act on the process itself
rather than being read by a caller (the root log level): their ``apply`` hook runs in each
process when the value in effect there changes, at the next reload.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, TypeVar, overload

from marqetfi.core.app_settings.definitions import AppSettingDefinition
from marqetfi.core.app_settings.registry import APP_SETTINGS, app_setting_definition
from marqetfi.core.errors import InvalidSetting
from marqetfi.core.models import AppSetting
from marqetfi.core.runtime import Generation

logger = logging.getLogger(__name__)

T = TypeVar("T")

RELOAD_RETRY_SECONDS = 1.0

app_settings_generation = Generation("app_settings")


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
