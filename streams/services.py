"""Cancel-on-disconnect: what happens once every opted-in socket of a user stayed away."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from accounts.models import User
from streams import presence
from trading.services.orders import orders_resting_cancel_for_user

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CancelOnDisconnectOutcome:
    cancelled: int = 0
    wait_ms: int = 0  # > 0: not due yet, ask again after this long


def cancel_on_disconnect_fire(*, user_id: Any, token: str) -> CancelOnDisconnectOutcome:
    """Cancel the user's resting orders if the arming ``token`` still stands and its deadline
    passed; nothing if an opted-in socket came back meanwhile. Protective orders stay armed."""
    due = presence.cod_due(user_id=user_id, token=token, now_ms=int(time.time() * 1000))
    if due < 0:
        return CancelOnDisconnectOutcome()
    if due > 0:
        return CancelOnDisconnectOutcome(wait_ms=due)
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return CancelOnDisconnectOutcome()
    cancelled = orders_resting_cancel_for_user(user=user)
    logger.info("cancel-on-disconnect cancelled %s resting orders of %s", cancelled, user_id)
    return CancelOnDisconnectOutcome(cancelled=cancelled)
