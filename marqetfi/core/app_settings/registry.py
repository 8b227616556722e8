"""Every runtime setting of the project, collected from the modules ``settings.APP_SETTING_MODULES`` names.

Each app declares its settings in its own ``app_settings.py`` as ``APP_SETTINGS``, a tuple of
``AppSettingDefinition``; the kernel imports them by dotted path at first use, so it knows
no app, as the outbox knows its dispatchers only through ``settings.EVENT_DISPATCHERS``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from importlib import import_module
from typing import Any

from django.conf import settings

from marqetfi.core.app_settings.definitions import AppSettingDefinition
from marqetfi.core.errors import UnknownSetting


@cache
def _collected(modules: tuple[str, ...]) -> dict[str, AppSettingDefinition[Any]]:
    definitions: dict[str, AppSettingDefinition[Any]] = {}
    for path in modules:
        for definition in import_module(path).APP_SETTINGS:
            if definition.key in definitions:
                raise ValueError(f"App setting {definition.key!r} is defined twice (again in {path})")
            definitions[definition.key] = definition
    return definitions


class _AppSettingRegistry(Mapping[str, AppSettingDefinition[Any]]):
    """Read-only mapping of key to definition, built from the settings on first access."""

    def _definitions(self) -> dict[str, AppSettingDefinition[Any]]:
        return _collected(tuple(settings.APP_SETTING_MODULES))

    def __getitem__(self, key: str) -> AppSettingDefinition[Any]:
        return self._definitions()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._definitions())

    def __len__(self) -> int:
        return len(self._definitions())


APP_SETTINGS: Mapping[str, AppSettingDefinition[Any]] = _AppSettingRegistry()


def app_setting_definition(key: str) -> AppSettingDefinition[Any]:
    definition = APP_SETTINGS.get(key)
    if definition is None:
        raise UnknownSetting(details={"key": key, "known": sorted(APP_SETTINGS)})
    return definition
