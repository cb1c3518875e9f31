"""Immutable records returned by the public API."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReceiverStatistics:
    """What a receiver (or a loop's own wakeup receiver) has seen.

    ``posted == notifications + coalesced + suppressed``: every accepted post
    either sent the one notification, found one outstanding (ON), or found
    notifications suppressed (SN). ``refused`` counts posts after close.
    ``delivered`` counts vectors handed over (handler calls for a Receiver,
    recognised vectors for a loop); ``spurious`` counts notifications that
    found nothing pending. For a loop, ``busy_polls`` counts the spins it
    made before blocking (``busy_poll`` set, or the adaptive wakeup
    expecting a post), ``busy_poll_hits`` those that saw a post arrive and
    so did not block, and ``busy_poll_time`` the seconds spent spinning.
    """

    mode: str
    posted: int
    notifications: int
    coalesced: int
    suppressed: int
    refused: int
    delivered: int
    spurious: int
    busy_polls: int = 0
    busy_poll_hits: int = 0
    busy_poll_time: float = 0.0
