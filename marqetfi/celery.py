import os
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish, task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marqetfi.settings.base")

app = Celery("marqetfi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """A task enqueued while serving a request logs under that request's id."""
    from marqetfi.core.logging import current_request_id

    if headers is not None and (request_id := current_request_id()):
        headers.setdefault("request_id", request_id)


@task_prerun.connect
def _bind_task_log_context(task: Task | None = None, task_id: str | None = None, **kwargs: Any) -> None:
    from marqetfi.core.logging import bind_user, request_id_var

    request_id = getattr(task.request, "request_id", None) if task is not None else None
    request_id_var.set(request_id or task_id)
    bind_user(None)


@task_postrun.connect
def _clear_task_log_context(**kwargs: Any) -> None:
    from marqetfi.core.logging import bind_user, request_id_var

    request_id_var.set(None)
    bind_user(None)


_worker_reuses_connections = False


@worker_init.connect
def _worker_connection_reuse(**kwargs: Any) -> None:
    """In a worker (before the pool forks), database connections live WORKER_CONN_MAX_AGE
    seconds instead of the web's CONN_MAX_AGE; see the settings."""
    global _worker_reuses_connections  # noqa: PLW0603 - set once per worker process
    from django.conf import settings
    from django.db import connections

    max_age = settings.WORKER_CONN_MAX_AGE
    if max_age <= 0:
        return
    for alias in settings.DATABASES:
        settings.DATABASES[alias]["CONN_MAX_AGE"] = max_age
        connections[alias].settings_dict["CONN_MAX_AGE"] = max_age
    _worker_reuses_connections = True


@task_postrun.connect
def _close_obsolete_connections(task: Task | None = None, **kwargs: Any) -> None:
    """After a task, what Django does after a request: close connections past their age or
    left unusable by an error, keep the others for the next task."""
    if not _worker_reuses_connections or (task is not None and getattr(task.request, "is_eager", False)):
        return
    from django.db import close_old_connections

    close_old_connections()
