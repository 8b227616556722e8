"""Hooks that keep every process's runtime settings current, and the CORS grant they drive.

Where the generation is checked (a reload follows only if it moved): in a worker when it
receives a task (main process) and before it runs one (pool process); in beat when it
publishes a scheduled task; in web processes at the start of every request.
"""

from __future__ import annotations

from typing import Any

from celery import signals as celery_signals
from corsheaders.signals import check_request_enabled
from django.core.signals import request_started
from django.http import HttpRequest

from marqetfi.core.app_settings.cache import app_setting, app_settings_refresh
from marqetfi.core.app_settings.platform import CORS_ALLOWED_ORIGINS


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
    check_request_enabled.connect(cors_origin_allowed, dispatch_uid="app_settings.cors")
    request_started.connect(app_settings_refresh, dispatch_uid="app_settings.request_started")
    celery_signals.task_received.connect(app_settings_refresh, dispatch_uid="app_settings.task_received")
    celery_signals.task_prerun.connect(app_settings_refresh, dispatch_uid="app_settings.task_prerun")
    celery_signals.before_task_publish.connect(app_settings_refresh, dispatch_uid="app_settings.task_publish")
