"""Spare the garbage collector the objects alive before a long run of work.

A full pass of Python's collector visits every object the process tracks.
The service's own (modules, models, settings, clients) are over a hundred
thousand, none of them garbage that reading the log makes, and the passes
over them cost a long catch-up of the views or the publisher a tenth to a
fifth of its time (bench/README.md). Frozen, they are left out of the passes
until the work ends, then handed back to the collector, which frees any of
them that became garbage meanwhile. Freezing is process-wide: two workers of
one process freezing at once only hand the objects back sooner.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

# A run of work over this many events is long enough to be worth it.
LONG_RUN_EVENTS = 10_000


@contextmanager
def collector_spared() -> Iterator[None]:
    """Leave the objects alive now out of the collector's passes in the block."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def spared_for(events: int) -> AbstractContextManager[None]:
    """``collector_spared`` for a run of ``events`` events, when it is long."""
    return collector_spared() if events >= LONG_RUN_EVENTS else nullcontext()
