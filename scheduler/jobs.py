"""The scheduler's timetable: a pass at start, then one every interval."""

from datetime import UTC, datetime
from typing import Protocol

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.passes import PassReport, SchedulerPass

log = structlog.get_logger(component="certd.scheduler")


class PassObserver(Protocol):
    """Told how each pass went, beside its log line (the metrics)."""

    def pass_done(self, report: PassReport) -> None: ...
    def pass_failed(self) -> None: ...


def start_scheduler(
    scheduler_pass: SchedulerPass,
    interval_seconds: float,
    observer: PassObserver | None = None,
) -> BackgroundScheduler:
    """Run passes in a background thread; a pass never overlaps the next."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        run_pass,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        args=[scheduler_pass, observer],
        id="scheduler-pass",
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    log.info("scheduler_started", interval_seconds=interval_seconds)
    return scheduler


def run_pass(
    scheduler_pass: SchedulerPass, observer: PassObserver | None = None
) -> PassReport | None:
    """Run one pass and tell the observer; log a failure, return None for it."""
    try:
        report = scheduler_pass.run()
    except Exception:
        # The next pass retries whatever this one did not raise.
        log.exception("scheduler_pass_failed")
        if observer is not None:
            observer.pass_failed()
        return None
    if observer is not None:
        observer.pass_done(report)
    return report
