"""Catch-up: the first pass after months without one raises everything that
fell due meanwhile, oldest first, re-evaluations and then lapses.

No runner runs beside these passes: the view is only as current as the pass
makes it, as after a restart.
"""

from datetime import date
from uuid import UUID

from domain.certification import Certification
from domain.clock import FixedClock
from service.application import CertificationService
from service.composition import Runtime
from tests.projections.steps import Steps
from tests.scheduler.checks import at, stored_facts, view_against_aggregates

# Each certification's annual fee is paid on its day, so it is valid until
# the same day a year later and due 60 days before that.
PAID_ON = {
    "january": date(2026, 1, 20),  # due 2026-11-21, renew by 2027-02-19
    "february": date(2026, 2, 14),  # due 2026-12-16, renew by 2027-03-16
    "march": date(2026, 3, 10),  # due 2027-01-09, renew by 2027-04-09
    "may": date(2026, 5, 5),  # due 2027-03-06, renew by 2027-06-04
    "august": date(2026, 8, 1),  # due 2027-06-02, renew by 2027-08-31
    "october": date(2026, 10, 1),  # due 2027-08-02
}
# The applications start in another order, so store order is not due order.
STARTED_IN_ORDER = ["october", "march", "january", "may", "february", "august"]
LAST_PASS = date(2026, 12, 1)
CATCH_UP = date(2027, 7, 1)


def certify_on_their_days(steps: Steps, clock: FixedClock) -> dict[str, UUID]:
    clock.set(at(date(2026, 1, 5), 9))
    ids: dict[str, UUID] = {}
    for name in STARTED_IN_ORDER:
        ids[name] = steps.in_review(f"{name.title()} Models Ltd")
        steps.approve(ids[name])
    for name, paid_on in PAID_ON.items():
        clock.set(at(paid_on, 9))
        steps.pay_due(ids[name])
    return ids


def stored_since(
    service: CertificationService, position: int
) -> list[tuple[UUID, str]]:
    """Each event stored after ``position``, in store order, by kind."""
    notes = service.recorder.select_notifications(start=position + 1, limit=100)
    return [
        (
            UUID(str(note.originator_id)),
            type(service.mapper.to_domain_event(note)).__name__,
        )
        for note in notes
    ]


def test_the_first_pass_after_months_raises_all_that_fell_due_oldest_first(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = certify_on_their_days(steps, clock)
    clock.set(at(LAST_PASS, 6))
    runtime.scheduler_pass.run()
    clock.set(at(CATCH_UP, 6))
    before = runtime.service.ping_store()

    report = runtime.scheduler_pass.run()

    expected = [
        (ids["february"], "ReevaluationDue"),
        (ids["march"], "ReevaluationDue"),
        (ids["may"], "ReevaluationDue"),
        (ids["august"], "ReevaluationDue"),
        (ids["january"], "CertificationLapsed"),
        (ids["february"], "CertificationLapsed"),
        (ids["march"], "CertificationLapsed"),
        (ids["may"], "CertificationLapsed"),
    ]
    assert report.raised == expected
    assert stored_since(runtime.service, before) == expected
    assert report.skipped == 0


def test_a_fact_raised_late_keeps_the_dates_of_its_own_cycle(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    ids = certify_on_their_days(steps, clock)
    clock.set(at(CATCH_UP, 6))

    runtime.scheduler_pass.run()

    (due,) = stored_facts(runtime.service, ids["august"], Certification.ReevaluationDue)
    assert (due.due_on, due.renew_by) == (date(2027, 6, 2), date(2027, 8, 31))
    assert due.timestamp == at(CATCH_UP, 6)
    (lapsed,) = stored_facts(
        runtime.service, ids["march"], Certification.CertificationLapsed
    )
    assert lapsed.renew_by == date(2027, 4, 9)
    october = stored_facts(
        runtime.service, ids["october"], Certification.ReevaluationDue
    )
    assert october == []
    compared = view_against_aggregates(runtime, list(ids.values()))
    assert {cert_id: found for cert_id, (_, found) in compared.items() if found} == {}


def test_a_second_pass_on_the_same_day_finds_nothing_left(
    runtime: Runtime, steps: Steps, clock: FixedClock
) -> None:
    certify_on_their_days(steps, clock)
    clock.set(at(CATCH_UP, 6))
    runtime.scheduler_pass.run()
    clock.set(at(CATCH_UP, 18))

    again = runtime.scheduler_pass.run()

    assert (again.raised, again.skipped) == ([], 0)
