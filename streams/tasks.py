from __future__ import annotations

import time
import uuid
from typing import Any

from celery import shared_task

from streams import presence
from streams.services import cancel_on_disconnect_fire


@shared_task(name="streams.tasks.cancel_on_disconnect", ignore_result=True)
def cancel_on_disconnect(user_id: str, token: str) -> int:
    """Scheduled for the deadline when a user's last opted-in socket closed."""
    outcome = cancel_on_disconnect_fire(user_id=user_id, token=token)
    if outcome.wait_ms:
        cancel_on_disconnect.apply_async(args=(user_id, token), countdown=outcome.wait_ms / 1000)
    return outcome.cancelled


def cancel_on_disconnect_schedule(*, user_id: Any, session_id: str) -> bool:
    """An opted-in socket closed: when it was the user's last, schedule the cancel at the deadline."""
    token = uuid.uuid4().hex
    now_ms = int(time.time() * 1000)
    deadline = presence.cod_socket_gone(user_id=user_id, session_id=session_id, now_ms=now_ms, token=token)
    if deadline is None:
        return False
    cancel_on_disconnect.apply_async(args=(str(user_id), token), countdown=max(0, deadline - now_ms) / 1000)
    return True
