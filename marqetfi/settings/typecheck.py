"""Loaded by mypy's Django plugin only: it needs settings, never a live Redis."""

import os

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")

from .base import *
