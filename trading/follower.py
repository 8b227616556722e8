"""The venue follower: one thread per venue account with something pending there, each
following the venue's push of order outcomes (``OrderFollowing.follow_orders``: Lighter's
account stream, with REST polling while it is down) and recording every outcome through the
trading services (``trading.services.following``).

A supervising loop looks every ``interval`` seconds for accounts to follow (orders pending
or unknown, closes pending, armed native stops), starts a thread for a new one, restarts one
whose stream ended (the adapter was rebuilt after a configuration change), and stops one
that has had nothing to follow for ``linger`` seconds. Run by ``manage.py venuefollow``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import partial

from django import db

from providers import registry
from providers.base import OrderFollowing, VenueOrder
from trading.services.following import (
    FollowKey,
    venue_follow_client_ids,
    venue_follow_plan,
    venue_order_update_record,
)

logger = logging.getLogger(__name__)


@dataclass
class _Following:
    thread: threading.Thread
    stop: threading.Event
    wanted_at: float


class VenueFollower:
    def __init__(self, *, interval: float = 1.0, linger: float = 30.0) -> None:
        self.interval = interval
        self.linger = linger
        self.stop_event = threading.Event()
        self._following: dict[FollowKey, _Following] = {}

    @property
    def accounts(self) -> set[FollowKey]:
        """The accounts followed now (a live thread each)."""
        return {key for key, f in self._following.items() if f.thread.is_alive()}

    def run_once(self) -> set[FollowKey]:
        """One supervising round; returns the accounts that have something to follow."""
        db.close_old_connections()
        wanted = set(venue_follow_plan())
        now = time.monotonic()
        for key in wanted:
            current = self._following.get(key)
            if current is not None and current.thread.is_alive():
                current.wanted_at = now
                continue
            self._start(key, now)
        for key, current in list(self._following.items()):
            if key in wanted:
                continue
            if not current.thread.is_alive() or now - current.wanted_at >= self.linger:
                current.stop.set()
                del self._following[key]
        return wanted

    def run_forever(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    self.run_once()
                except Exception:
                    logger.exception("venue follower round failed; trying again")
                self.stop_event.wait(self.interval)
        finally:
            self.close()
            db.connection.close()

    def close(self) -> None:
        """Stop every thread and wait for them (each returns once told)."""
        for current in self._following.values():
            current.stop.set()
        for current in self._following.values():
            current.thread.join(timeout=10)
        self._following.clear()

    def _start(self, key: FollowKey, now: float) -> None:
        stop = threading.Event()
        provider, account_ref = key
        thread = threading.Thread(
            target=self._follow,
            args=(provider, account_ref, stop),
            name=f"follow-{provider}-{account_ref or 'main'}",
            daemon=True,
        )
        self._following[key] = _Following(thread=thread, stop=stop, wanted_at=now)
        thread.start()
        logger.info("following %s account %r", provider, account_ref)

    def _follow(self, provider: str, account_ref: str, stop: threading.Event) -> None:
        try:
            venue = registry.venue(provider)
            if not isinstance(venue, OrderFollowing):
                return
            venue.follow_orders(
                account_ref=account_ref,
                client_order_ids=partial(venue_follow_client_ids, provider=provider, account_ref=account_ref),
                on_order=partial(self._record, provider),
                stop=stop,
                on_live=partial(self._live, provider, account_ref),
            )
        except Exception:
            logger.exception(
                "following %s account %r stopped; the next round restarts it", provider, account_ref
            )
        finally:
            db.connection.close()

    @staticmethod
    def _record(provider: str, venue_order: VenueOrder) -> None:
        try:
            venue_order_update_record(provider=provider, venue_order=venue_order)
        except Exception:  # left for the next update, or for polling
            logger.exception("%s order %s not recorded; polling will", provider, venue_order.client_order_id)

    @staticmethod
    def _live(provider: str, account_ref: str, live: bool) -> None:
        logger.info(
            "%s account %r followed by %s", provider, account_ref, "its stream" if live else "polling"
        )
