"""Garbage-collector settings for the web process, where a collection pause stalls every socket.

The event loop of a web process holds thousands of long-lived objects per thousand sockets
(protocol, consumer, tasks, queues). With Python's default thresholds, messages in flight keep
surviving young collections, the old generation grows by a quarter every minute or so, and a
full collection then walks the whole heap on the loop's thread: 300-450 ms at 2000 sockets,
during which no socket is written to (bench/websocket.py, BENCHMARKS.md). So, once at start:

- ``gc.freeze()`` moves everything loaded so far (Django, the URL conf, the app registry) out
  of every future collection; it is never garbage.
- a young-generation threshold far above the default 700, so a collection runs about once per
  tens of thousands of allocations: most message objects are gone by then and are never
  promoted, and the full collections they would have caused become rare. Each young
  collection walks at most that many objects (about 10 ms at 50,000).

Reference cycles are still collected; only the schedule changes.
"""

from __future__ import annotations

import gc

from django.conf import settings


def web_process_gc_tune() -> tuple[int, ...]:
    """Apply ``WEB_GC_THRESHOLDS`` after freezing what start-up loaded; returns the thresholds."""
    thresholds = tuple(settings.WEB_GC_THRESHOLDS)
    if not thresholds:
        return gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    return gc.get_threshold()
