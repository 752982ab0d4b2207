"""Bring the status views up to the store, and keep them there.

The runner reads the store's notification log from the view's own tracked
position, a batch at a time, evolves the rows the batch touches and writes
them with the new position in one transaction. A crash anywhere leaves the
view at the end of its last whole batch, and the next start resumes there.
On PostgreSQL it sleeps on the store's NOTIFY; SQLite has none, so it polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from uuid import UUID

import structlog
from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from domain.certification import Certification
from projections.collector import spared_for
from projections.status_view import Draft, advance, draft_of
from projections.views import StatusViews, ViewMovedError
from service.ledger import event_reader

log = structlog.get_logger(component="certd.projections")

# A catch-up this long changes the table enough to refresh its statistics.
ANALYZE_AFTER_EVENTS = 1_000
# A first catch-up this long loads the table without its secondary indexes.
BULK_LOAD_EVENTS = 10_000


class ProjectionRunner:
    def __init__(
        self,
        store: Application[UUID],
        views: StatusViews,
        lead_days: int,
        batch_size: int = 1_000,
    ) -> None:
        self.store = store
        self.views = views
        self.lead_days = lead_days
        self.batch_size = batch_size
        self._channel = str(getattr(store.recorder, "channel_name", ""))
        self._read_event = event_reader(store.mapper)

    def run_once(self, stop: int | None = None) -> int:
        """Project the next batch of events, up to ``stop`` when given;
        return how many there were."""
        start = self.views.position()
        notifications = self._next_batch(start + 1, stop)
        if not notifications or not self._project(notifications, start):
            return 0
        return len(notifications)

    def _project(self, notifications: Sequence[Notification], start: int) -> bool:
        """Write the rows of a batch read from ``start``; False if the view
        was no longer there (another runner or a swap moved it)."""
        drafts = self._evolve(notifications)
        try:
            self.views.save_drafts(drafts, start, notifications[-1].id)
        except ViewMovedError:
            log.info("views_moved_under_runner", table=self.views.table)
            return False
        return True

    def _next_batch(self, start: int, stop: int | None) -> Sequence[Notification]:
        """Read the next batch from ``start``, none past ``stop``.

        The upper bound is applied here, not in SQL: given both bounds,
        PostgreSQL's planner reads and sorts the whole range for every batch
        instead of walking the index for ``limit`` rows, which made each
        batch of a long catch-up slower than the last.
        """
        notifications = self.store.recorder.select_notifications(
            start=start, limit=self.batch_size
        )
        if stop is None or not notifications or notifications[-1].id <= stop:
            return notifications
        return [
            notification for notification in notifications if notification.id <= stop
        ]

    def catch_up(self, stopping: threading.Event | None = None) -> int:
        """Project until the view reaches the store's last event as of now,
        or until ``stopping`` is set, between two batches.

        A batch lost to another runner is not the end: the loop goes on from
        wherever that runner left the view. A first catch-up over a long
        history loads the table without its secondary indexes and builds
        them at the end, also when it is stopped early.

        Batches are read, evolved and written one after the other. Writing
        each in a second thread while the next was read overlapped little
        on two cores: the two threads took turns on the interpreter lock,
        and the catch-up ran at 0.75 of the speed it has in one thread.
        """
        target = self.store.recorder.max_notification_id() or 0
        start = self.views.position()
        is_bulk_load = start == 0 and target >= BULK_LOAD_EVENTS
        if is_bulk_load:
            self.views.drop_indexes()
        try:
            with spared_for(target - start):
                total = self._catch_up_to(target, stopping)
        finally:
            if is_bulk_load:
                self.views.restore_indexes()
        if total >= ANALYZE_AFTER_EVENTS:
            self.views.analyze()
        return total

    def _catch_up_to(self, target: int, stopping: threading.Event | None) -> int:
        total = 0
        start = self.views.position()
        while start < target and not (stopping and stopping.is_set()):
            notifications = self._next_batch(start + 1, target)
            if not notifications:
                break
            if self._project(notifications, start):
                total += len(notifications)
                start = notifications[-1].id
            else:
                start = self.views.position()  # wherever the other left it
        return total

    def run(
        self,
        stopping: threading.Event,
        idle_wait: float = 1.0,
        report_every: float = 30.0,
    ) -> None:
        """Keep projecting until ``stopping`` is set; a failed batch is retried.

        Logs the view's position and lag at start and every ``report_every``
        seconds, so a view falling behind shows in the logs.
        """
        log.info("projection_started", table=self.views.table, lag=self.lag())
        next_report = time.monotonic() + report_every
        while not stopping.is_set():
            try:
                projected = self.run_once()
                if projected >= self.batch_size:
                    self.catch_up(stopping)  # a backlog: project it to the end
                elif not projected:
                    self.views.db.wait_for_news(self._channel, idle_wait)
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + report_every
                    self._report()
            except Exception:
                log.exception("projection_batch_failed", table=self.views.table)
                stopping.wait(1.0)
        log.info("projection_stopped", table=self.views.table)

    def _report(self) -> None:
        self.views.analyze()
        log.info(
            "projection_position",
            table=self.views.table,
            position=self.views.position(),
            lag=self.lag(),
        )

    def lag(self) -> int:
        """How many store positions the view is behind."""
        last = self.store.recorder.max_notification_id() or 0
        return max(0, last - self.views.position())

    def _evolve(self, notifications: Sequence[Notification]) -> list[Draft]:
        """Return the rows a batch changes, as drafts, evolved from their
        stored state.

        Each event is decoded, applied and let go before the next: holding
        a whole batch of decoded events kept tens of thousands of objects
        alive, and the garbage collector's passes over them cost a catch-up
        more than evolving the rows. Rows are keyed by their id's number:
        hashing a UUID runs Python code, and a batch hashes ids a few times
        per event.
        """
        stored = self.views.load(_rows_to_load(notifications))
        drafts = {row.id.int: draft_of(row) for row in stored.values()}
        changed: set[int] = set()
        for notification in notifications:
            event = self._read_event(notification)
            if not isinstance(event, Certification.Event):
                continue
            key = event.originator_id.int
            drafts[key] = advance(
                drafts.get(key), event, notification.id, self.lead_days
            )
            changed.add(key)
        return [drafts[key] for key in changed]


def _rows_to_load(notifications: Sequence[Notification]) -> list[UUID]:
    """The certifications of a batch whose rows the view may hold already:
    all but those whose first event in the batch is their first event of
    all, which a long catch-up meets for most of them."""
    seen: set[int] = set()
    wanted: list[UUID] = []
    for notification in notifications:
        certification_id = notification.originator_id
        if not isinstance(certification_id, UUID) or certification_id.int in seen:
            continue
        seen.add(certification_id.int)
        if notification.originator_version > 1:
            wanted.append(certification_id)
    return wanted


def start_in_thread(
    runner: ProjectionRunner,
) -> tuple[threading.Thread, threading.Event]:
    """Run the runner in a daemon thread; return it and its stop event."""
    stopping = threading.Event()
    thread = threading.Thread(
        target=runner.run, args=(stopping,), name="projection-runner", daemon=True
    )
    thread.start()
    return thread, stopping
