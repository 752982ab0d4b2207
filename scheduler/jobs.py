"""The scheduler's timetable: a pass at start, then one every interval."""

from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.passes import SchedulerPass

log = structlog.get_logger(component="certd.scheduler")


def start_scheduler(
    scheduler_pass: SchedulerPass, interval_seconds: float
) -> BackgroundScheduler:
    """Run passes in a background thread; a pass never overlaps the next."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        _run_logged,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        args=[scheduler_pass],
        id="scheduler-pass",
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    log.info("scheduler_started", interval_seconds=interval_seconds)
    return scheduler


def _run_logged(scheduler_pass: SchedulerPass) -> None:
    try:
        scheduler_pass.run()
    except Exception:
        # The next pass retries whatever this one did not raise.
        log.exception("scheduler_pass_failed")
