"""Bring the status views up to the store, and keep them there.

The runner reads the store's notification log from the view's own tracked
position, a batch at a time, evolves the rows the batch touches and writes
them with the new position in one transaction. A crash anywhere leaves the
view at the end of its last whole batch, and the next start resumes there.
On PostgreSQL it sleeps on the store's NOTIFY; SQLite has none, so it polls.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from uuid import UUID

import structlog
from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from domain.certification import Certification
from projections.status_view import Draft, StatusRow, advance, draft_of, finish
from projections.views import StatusViews, ViewMovedError

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
        rows = self._evolve(notifications)
        try:
            self.views.save(rows, start, notifications[-1].id)
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

    # TODO: a catch-up reaches 0.39 to 0.47 of the raw read of the log
    # (bench.views), short of half: the two threads' Python takes turns on
    # the interpreter lock. Splitting the certifications between two worker
    # processes, or serialising rows from the drafts without pydantic, would
    # close it (bench/README.md, "What would move it").
    def catch_up(self) -> int:
        """Project until the view reaches the store's last event as of now.

        Each batch is written by a second thread while the next one is read
        and evolved: a write mostly waits on the database, with Python's lock
        released, so the two overlap. The next batch starts from the rows the
        batch in flight writes, and is written only once that write is done,
        in order. A batch lost to another runner is not the end: the loop
        goes on from wherever that runner left the view. A first catch-up
        over a long history loads the table without its secondary indexes and
        builds them at the end.
        """
        target = self.store.recorder.max_notification_id() or 0
        is_bulk_load = self.views.position() == 0 and target >= BULK_LOAD_EVENTS
        if is_bulk_load:
            self.views.drop_indexes()
        try:
            total = self._catch_up_to(target)
        finally:
            if is_bulk_load:
                self.views.restore_indexes()
        if total >= ANALYZE_AFTER_EVENTS:
            self.views.analyze()
        return total

    def _catch_up_to(self, target: int) -> int:
        total = 0
        with ThreadPoolExecutor(1, thread_name_prefix="projection-write") as writer:
            start = self.views.position()
            writing: Future[int] | None = None
            in_flight: dict[int, StatusRow] = {}
            while start < target:
                notifications = self._next_batch(start + 1, target)
                if not notifications:
                    break
                rows = self._evolve(notifications, in_flight)
                try:
                    total += _written(writing)
                except ViewMovedError:
                    start, writing, in_flight = self.views.position(), None, {}
                    continue
                end = notifications[-1].id
                writing = writer.submit(
                    self._write, rows, start, end, len(notifications)
                )
                in_flight = {row.id.int: row for row in rows}
                start = end
            with contextlib.suppress(ViewMovedError):
                total += _written(writing)
        return total

    def _write(self, rows: list[StatusRow], start: int, end: int, events: int) -> int:
        try:
            self.views.save(rows, start, end)
        except ViewMovedError:
            log.info("views_moved_under_runner", table=self.views.table)
            raise
        return events

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
                    self.catch_up()  # a backlog: overlap reads and writes
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

    def _evolve(
        self,
        notifications: Sequence[Notification],
        in_flight: dict[int, StatusRow] | None = None,
    ) -> list[StatusRow]:
        """Return the rows a batch changes, evolved from their stored state,
        or from ``in_flight`` for rows a write not yet done will store.

        Rows are keyed by their id's number: hashing a UUID runs Python code,
        and a batch hashes ids a few times per event.
        """
        events = [
            (self.store.mapper.to_domain_event(notification), notification.id)
            for notification in notifications
        ]
        ids = {event.originator_id.int: event.originator_id for event, _ in events}
        drafts = self._drafts(ids, in_flight or {})
        changed: set[int] = set()
        for event, position in events:
            if not isinstance(event, Certification.Event):
                continue
            key = event.originator_id.int
            drafts[key] = advance(drafts.get(key), event, position, self.lead_days)
            changed.add(key)
        return [finish(drafts[key]) for key in changed]

    def _drafts(
        self, ids: dict[int, UUID], in_flight: dict[int, StatusRow]
    ) -> dict[int, Draft]:
        rows = {key: in_flight[key] for key in ids.keys() & in_flight.keys()}
        stored = self.views.load(ids[key] for key in ids.keys() - rows.keys())
        rows.update((row.id.int, row) for row in stored.values())
        return {key: draft_of(row) for key, row in rows.items()}


def _written(writing: Future[int] | None) -> int:
    """Wait for a batch's write; return its events, or 0 when there is none."""
    return 0 if writing is None else writing.result()


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
