"""Time, injected: expiry and re-evaluation depend on it, so tests set it."""

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told to, for tests and rehearsals."""

    def __init__(self, start: datetime) -> None:
        self._now = require_aware(start)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = require_aware(instant)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def require_aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        msg = f"a time needs a timezone, got the naive {instant.isoformat()}"
        raise ValueError(msg)
    return instant
