"""One scheduler pass: raise every re-evaluation and lapse that has fallen due.

Candidates come from indexed queries of the status view, oldest first; each
is confirmed by the aggregate before anything is raised, so a stale view can
delay a fact but never invent one. Several passes may run at once (replicas):
the aggregate refuses a second ReevaluationDue for a cycle and a second lapse,
and the store refuses a second write at the same version, so whichever pass
loses simply skips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

import structlog

from domain.certification import day_of
from domain.errors import RefusedError
from projections.runner import ProjectionRunner
from projections.views import StatusViews
from service.application import CertificationService

log = structlog.get_logger(component="certd.scheduler")


@dataclass
class PassReport:
    """What one pass raised, and what it found already done by another."""

    today: date
    raised: list[tuple[UUID, str]] = field(default_factory=list)
    skipped: int = 0


class SchedulerPass:
    def __init__(
        self,
        service: CertificationService,
        views: StatusViews,
        runner: ProjectionRunner,
    ) -> None:
        self.service = service
        self.views = views
        self.runner = runner

    def run(self) -> PassReport:
        """Raise what is due today, oldest first; a lapse after its due date."""
        self.runner.catch_up()
        report = PassReport(today=day_of(self.service.clock.now()))
        for certification_id in self.views.due_for_reevaluation(report.today):
            self._raise(report, certification_id, "ReevaluationDue")
        self.runner.catch_up()
        for certification_id in self.views.past_renewal_deadline(report.today):
            self._raise(report, certification_id, "CertificationLapsed")
        log.info(
            "scheduler_pass_done",
            today=report.today.isoformat(),
            raised=len(report.raised),
            skipped=report.skipped,
        )
        return report

    def _raise(self, report: PassReport, certification_id: UUID, fact: str) -> None:
        command = (
            self.service.raise_reevaluation_due
            if fact == "ReevaluationDue"
            else self.service.lapse
        )
        try:
            command(certification_id)
        except RefusedError as refusal:
            # Another pass raised it first, or the view was behind the
            # aggregate: nothing to do, and nothing wrong.
            report.skipped += 1
            log.info(
                "scheduler_skipped",
                certification_id=str(certification_id),
                fact=fact,
                reason=type(refusal).__name__,
            )
            return
        report.raised.append((certification_id, fact))
