import os
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish, task_postrun, task_prerun

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
