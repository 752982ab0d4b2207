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
from projections.status_view import StatusRow, evolve
from projections.views import StatusViews, ViewMovedError

log = structlog.get_logger(component="certd.projections")

# A catch-up this long changes the table enough to refresh its statistics.
ANALYZE_AFTER_EVENTS = 1_000


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
        notifications = self.store.recorder.select_notifications(
            start=start + 1, limit=self.batch_size, stop=stop
        )
        if not notifications:
            return 0
        rows = self._evolve(notifications)
        try:
            self.views.save(rows, start, notifications[-1].id)
        except ViewMovedError:
            log.info("views_moved_under_runner", table=self.views.table)
            return 0
        return len(notifications)

    def catch_up(self) -> int:
        """Project until the view reaches the store's last event as of now.

        A batch lost to another runner is not the end: the loop goes on
        from wherever that runner left the view.
        """
        target = self.store.recorder.max_notification_id() or 0
        total = 0
        while self.views.position() < target:
            total += self.run_once(stop=target)
        if total >= ANALYZE_AFTER_EVENTS:
            self.views.analyze()
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
                if not self.run_once():
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

    def _evolve(self, notifications: Sequence[Notification]) -> list[StatusRow]:
        events = [
            (self.store.mapper.to_domain_event(notification), notification.id)
            for notification in notifications
        ]
        rows = self.views.load({event.originator_id for event, _ in events})
        changed: dict[UUID, StatusRow] = {}
        for event, position in events:
            if not isinstance(event, Certification.Event):
                continue
            row = evolve(rows.get(event.originator_id), event, position, self.lead_days)
            rows[row.id] = changed[row.id] = row
        return list(changed.values())


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
