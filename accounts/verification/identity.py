from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VerifiedIdentity:
    """What a sign-in proof established: who the method vouches for, and their email if any."""

    method: str
    subject: str
    email: str = ""
    email_verified: bool = False
    claims: dict[str, Any] = field(default_factory=dict)
