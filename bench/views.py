"""Status views: catch-up speed, command-to-view lag and list query latency.

Run from the repository root::

    .venv/bin/python -m bench.views [--stores sqlite,postgres] [--events N]
        [--rows N] [--batches 1000,5000] [--json]

For each store, three parts run one after the other, each on a fresh store of
its own (a new SQLite file, a new PostgreSQL database), removed afterwards:

``catch_up``
    N real stored events: :class:`~domain.certification.Certification`
    aggregates built in memory through a weighted mix of lifecycles (start,
    submit, fees, information rounds, decisions, annual fees, renewals,
    lapses, suspensions, withdrawals...), with fixed, computed times (no wall
    clock) and varied revenues, stored with ``service.save(*aggregates)``
    a few hundred aggregates at a time. Then, for each batch size, on empty
    views: ``raw``, the least any consumer of the log does (read the
    notifications with ``recorder.select_notifications`` a batch at a time,
    from position 1 to the end, and ``mapper.to_domain_event`` each of them),
    and ``projection``, ``ProjectionRunner.catch_up()`` with the same batch
    size. Both are reported in events/s; ``ratio`` is projection/raw.

``visibility``
    :func:`~service.composition.build_runtime` with the runner in its thread
    (:func:`projections.runner.start_in_thread`). Commands go through the
    service at a steady rate (start, submit, pay the submission fee, approve,
    pay the annual fee, again and again). A watcher thread reads
    ``views.position()`` every millisecond; a command's visibility lag is the
    time from its return to the first reading at or past its
    ``Outcome.position`` (0 when the view had it already).

``queries``
    R status rows written straight with ``StatusViews.save`` in batches, then
    ``views.search`` with a mix of filters (limit 50), some followed through
    ``next_cursor`` a few pages deep, and a few ``views.stats`` and
    ``views.registry_entries`` calls (the public registry's JSON, built by
    the database). Each call is timed on its own.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

import structlog

# The store helpers and the report helpers of the command benchmark.
from bench.commands import (
    STORES,
    fresh_store,
    machine,
    percentile,
    quiet_service_logs,
    store_list,
    verdict_lines,
)
from domain.actor import Actor
from domain.certification import Certification, Status
from domain.fees import FeeKind, RevenueTier, fees_for_revenue
from domain.forms import (
    ApplicationForm,
    DecisionForm,
    InfoRequestForm,
    InfoResponseForm,
    PaymentForm,
    SubmissionForm,
)
from projections.runner import ProjectionRunner, start_in_thread
from projections.status_view import Payment, StatusRow
from projections.views import SearchFilters, StatusViews
from service.application import CertificationService
from service.composition import build_runtime
from service.settings import Settings
from service.store import view_database
from tests.factories import application_body, submission_body

TARGET_RATIO = 0.5
TARGET_POSTGRES_EVENTS_PER_S = 5_000
TARGET_VISIBILITY_P99_MS = 100.0
TARGET_LIST_P99_MS = 20.0

APPLICANT = Actor(role="applicant", name="bench-applicant")
OPERATOR = Actor(role="operator", name="bench-operator")
BILLING = Actor(role="billing", name="bench-billing")
# The first application of the catch-up store; the others follow over 2 years.
FIRST_START = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
# "Today" of the query part; its rows were created over the 3 years before.
TODAY = date(2026, 6, 1)
LEAD_DAYS = Settings().reevaluation_lead_days
GRACE_DAYS = Settings().grace_days

Progress = Callable[[str], None]


def quiet_logs(level: str) -> None:
    """Log as ``certd serve`` does (JSON lines), but into /dev/null.

    ``service.logs`` writes the service's own events straight from structlog
    to stderr, and the rest through ``logging``: both go to /dev/null here.
    """
    quiet_service_logs(level)
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(sink))


# Names, revenues and forms shared by the parts.

NAME_FIRST = (
    "Acme", "Northwind", "Blue Heron", "Quill", "Meridian", "Cobalt", "Juniper",
    "Orbit", "Saffron", "Tidal", "Granite", "Lumen", "Vesper", "Atlas", "Kestrel",
)  # fmt: skip
NAME_SECOND = (
    "Neural", "Models", "Data", "Vision", "Language", "Robotics", "Analytics",
    "Cognition", "Systems", "Intelligence",
)  # fmt: skip
NAME_LAST = ("Ltd", "Labs", "Inc", "GmbH", "SA", "BV", "AB", "Oy")
COUNTRIES = ("GB", "DE", "FR", "NL", "SE", "FI", "US", "CA", "JP", "IE")
MODALITIES = ("text", "image", "audio", "code", "video")
# Revenue bands in USD and how often they come up (each tier is reached).
REVENUES = (40_000, 250_000, 1_200_000, 7_000_000, 30_000_000)
REVENUE_WEIGHTS = (30, 30, 25, 10, 5)


def organisation_name(rng: random.Random, number: int) -> str:
    return (
        f"{rng.choice(NAME_FIRST)} {rng.choice(NAME_SECOND)} "
        f"{number:06d} {rng.choice(NAME_LAST)}"
    )


def revenue(rng: random.Random) -> Decimal:
    band = rng.choices(REVENUES, REVENUE_WEIGHTS)[0]
    return Decimal(round(band * rng.uniform(0.8, 1.2))).quantize(Decimal("0.01"))


def application_form(rng: random.Random, number: int) -> ApplicationForm:
    name = organisation_name(rng, number)
    slug = name.split()[0].lower().replace(" ", "-")
    models = [
        {"name": f"{slug}-{index}-{number}", "modality": rng.choice(MODALITIES)}
        for index in range(rng.choice((1, 1, 1, 2, 3)))
    ]
    return ApplicationForm.model_validate(
        application_body(
            str(revenue(rng)),
            organisation={
                "name": name,
                "website": f"https://{slug}{number}.example",
                "country": rng.choice(COUNTRIES),
            },
            contact={"name": "Pat Example", "email": f"pat{number}@{slug}.example"},
            models=models,
        )
    )


def submission_forms() -> list[SubmissionForm]:
    """Submissions that screen clean, with an info, a warning or errors."""
    plain = submission_body()
    sources = plain["data_sources"]
    variants = [
        plain,
        submission_body(data_sources=[{**sources[0], "via_intermediary": True}]),
        submission_body(data_sources=[*sources, {**sources[1], "licence": "Home"}]),
        submission_body(
            data_sources=[{**sources[1], "licence": "CC-BY-NC-4.0"}],
            third_party_models=[
                {"name": "base-x", "provider": "Other", "role": "base_model"}
            ],
        ),
    ]
    return [SubmissionForm.model_validate(body) for body in variants]


# Part 1: catch-up.

CERTIFY = ("start", "submit", "pay_submission", "approve", "pay_annual")
CERTIFY_AFTER_INFO = (
    "start",
    "submit",
    "pay_submission",
    "request_info",
    "provide_info",
    "approve",
    "pay_annual",
)
# (name, weight, steps): one event per step.
LIFECYCLES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("applied", 4, ("start",)),
    ("submitted", 5, ("start", "submit")),
    ("in_review", 5, ("start", "submit", "pay_submission")),
    ("awaiting_info", 4, ("start", "submit", "pay_submission", "request_info")),
    ("rejected", 5, ("start", "submit", "pay_submission", "reject")),
    ("approved", 5, CERTIFY_AFTER_INFO[:-1]),
    ("certified", 28, CERTIFY),
    ("certified_after_info", 14, CERTIFY_AFTER_INFO),
    ("withdrawn", 3, ("start", "submit", "withdraw")),
    ("suspended", 3, (*CERTIFY, "suspend")),
    ("reinstated", 2, (*CERTIFY, "suspend", "reinstate")),
    ("revoked", 2, (*CERTIFY, "revoke")),
    ("reevaluation_due", 5, (*CERTIFY, "raise_due")),
    ("renewed", 10, (*CERTIFY, "raise_due", "resubmit", "approve", "pay_annual")),
    ("lapsed", 5, (*CERTIFY, "raise_due", "lapse")),
)


class Fleet:
    """Builds certifications in memory, each through one lifecycle of the mix.

    Every command of the aggregate runs with its rules, at a time computed
    from the certification's number (no wall clock), so a run with the same
    seed stores the same events.
    """

    def __init__(self, seed: int, expected: int) -> None:
        self.rng = random.Random(seed)
        self.number = 0
        self.spacing = timedelta(days=730) / max(1, expected)
        self.submissions = submission_forms()
        self.info_request = InfoRequestForm(
            questions=["Which agreement covers the news archive after 2025?"]
        )
        self.approval = DecisionForm(outcome="approved", reason="Meets each rule.")
        self.rejection = DecisionForm(outcome="rejected", reason="Unlicensed data.")
        self.lifecycles = [steps for _, _, steps in LIFECYCLES]
        self.weights = [weight for _, weight, _ in LIFECYCLES]

    def build(self, budget: int) -> Certification:
        """A certification with at most ``budget`` pending events."""
        rng = self.rng
        self.number += 1
        steps = rng.choices(self.lifecycles, self.weights)[0][:budget]
        at = FIRST_START + self.number * self.spacing
        cert: Certification | None = None
        for step in steps:
            at += timedelta(hours=rng.randint(2, 72))
            if step == "start":
                cert = Certification.start(
                    application_form(rng, self.number),
                    id=UUID(int=rng.getrandbits(128), version=4),
                    actor=APPLICANT,
                    at=at,
                )
                continue
            assert cert is not None
            at = self._step(cert, step, at)
        assert cert is not None
        return cert

    def _step(self, cert: Certification, step: str, at: datetime) -> datetime:
        rng = self.rng
        if step in {"submit", "resubmit"}:
            form = rng.choice(self.submissions)
            if step == "resubmit" and rng.random() < 0.3:
                form = form.model_copy(update={"annual_revenue_usd": revenue(rng)})
            cert.submit(form, actor=APPLICANT, at=at)
        elif step in {"pay_submission", "pay_annual"}:
            kind = (
                FeeKind.SUBMISSION_FEE
                if step == "pay_submission"
                else FeeKind.ANNUAL_FEE
            )
            payment = PaymentForm(
                kind=kind.value,
                amount_usd=cert.fees.fee(kind),
                reference=f"{kind.value[:3].upper()}-{self.number}-{cert.version}",
            )
            cert.pay(payment, actor=BILLING, at=at)
        elif step == "request_info":
            request_id = str(UUID(int=rng.getrandbits(128), version=4))
            cert.request_info(request_id, self.info_request, actor=OPERATOR, at=at)
        elif step == "provide_info":
            assert cert.open_info_request is not None
            answer = InfoResponseForm(
                request_id=cert.open_info_request["request_id"],
                answers=["AGR-2026-001 runs to 2028 and covers the archive."],
            )
            cert.provide_info(answer, actor=APPLICANT, at=at)
        elif step in {"approve", "reject"}:
            form = self.approval if step == "approve" else self.rejection
            cert.decide(form, actor=OPERATOR, at=at)
        elif step == "raise_due":
            assert cert.valid_until is not None
            day = cert.valid_until - timedelta(days=LEAD_DAYS - rng.randint(0, 20))
            at = datetime.combine(day, at.timetz())
            cert.raise_reevaluation_due(
                lead_days=LEAD_DAYS, grace_days=GRACE_DAYS, at=at
            )
        elif step == "lapse":
            assert cert.renew_by is not None
            at = datetime.combine(cert.renew_by + timedelta(days=1), at.timetz())
            cert.lapse(at=at)
        else:
            reason = f"Bench: {step}."
            getattr(cert, step)(reason, actor=OPERATOR, at=at)
        return at


@dataclass
class Filled:
    events: int
    aggregates: int
    build_s: float
    save_s: float
    statuses: Counter[str]


def fill_store(
    service: CertificationService, events: int, chunk_events: int = 2_000
) -> Filled:
    """Store ``events`` events of fleet aggregates, a chunk per ``save``."""
    fleet = Fleet(seed=20260601, expected=max(1, events // 6))
    clock = time.perf_counter
    stored = aggregates = 0
    build_s = save_s = 0.0
    statuses: Counter[str] = Counter()
    while stored < events:
        started = clock()
        chunk: list[Certification] = []
        pending = 0
        while pending < chunk_events and stored + pending < events:
            cert = fleet.build(events - stored - pending)
            chunk.append(cert)
            pending += len(cert.pending_events)
            statuses[cert.status.value] += 1
        built = clock()
        service.save(*chunk)
        save_s += clock() - built
        build_s += built - started
        stored += pending
        aggregates += len(chunk)
    return Filled(stored, aggregates, build_s, save_s, statuses)


def raw_read(service: CertificationService, batch: int) -> int:
    """Read and map every notification from position 1, a batch at a time."""
    recorder, mapper = service.recorder, service.mapper
    start = 1
    count = 0
    while notifications := recorder.select_notifications(start=start, limit=batch):
        for notification in notifications:
            mapper.to_domain_event(notification)
        count += len(notifications)
        start = notifications[-1].id + 1
    return count


def timed(action: Callable[[], int]) -> tuple[int, float]:
    gc.collect()
    started = time.perf_counter()
    count = action()
    return count, time.perf_counter() - started


def bench_catch_up(
    store: str, events: int, batches: Sequence[int], progress: Progress
) -> dict[str, Any]:
    with fresh_store(store) as url:
        runtime = build_runtime(Settings(database_url=url))
        try:
            service, views = runtime.service, runtime.views
            filled = fill_store(service, events)
            last = service.recorder.max_notification_id() or 0
            assert last == filled.events, (last, filled.events)
            progress(
                f"{store}: stored {filled.events} events of {filled.aggregates} "
                f"certifications in {filled.build_s + filled.save_s:.0f} s "
                f"(build {filled.build_s:.0f} s, save {filled.save_s:.0f} s)"
            )
            timed(lambda: raw_read(service, max(batches)))  # warm the caches
            runs = []
            for batch in batches:
                # The raw read runs before and after the projection, so a
                # slow or fast spell of the machine counts on both sides.
                read, before_s = timed(lambda batch=batch: raw_read(service, batch))
                views.drop()
                views.create()
                runner = ProjectionRunner(service, views, LEAD_DAYS, batch)
                projected, projection_s = timed(runner.catch_up)
                check_views(views, filled, last)
                _, after_s = timed(lambda batch=batch: raw_read(service, batch))
                assert read == projected == last, (read, projected, last)
                raw_rate = 2 * read / (before_s + after_s)
                run = {
                    "batch": batch,
                    "events": read,
                    "raw_s": [round(before_s, 2), round(after_s, 2)],
                    "raw_events_per_s": round(raw_rate),
                    "projection_s": round(projection_s, 2),
                    "projection_events_per_s": round(projected / projection_s),
                    "ratio": round(projected / projection_s / raw_rate, 3),
                }
                runs.append(run)
                progress(
                    f"{store}: batch {batch}: raw {run['raw_events_per_s']} ev/s, "
                    f"projection {run['projection_events_per_s']} ev/s, "
                    f"ratio {run['ratio']:.2f}"
                )
        finally:
            runtime.close()
    return {
        "events": filled.events,
        "certifications": filled.aggregates,
        "fill_s": round(filled.build_s + filled.save_s, 1),
        "fill_save_s": round(filled.save_s, 1),
        "final_statuses": dict(sorted(filled.statuses.items())),
        "runs": runs,
    }


def check_views(views: StatusViews, filled: Filled, last: int) -> None:
    """The projection saw every event: position, rows and statuses agree."""
    assert views.position() == last, (views.position(), last)
    counts: Counter[str] = Counter()
    for row in views.stats(TODAY):
        counts[row.status.value] += row.count
    assert counts == filled.statuses, (counts, filled.statuses)


# Part 2: command-to-view visibility.


class Watcher(threading.Thread):
    """Reads the view's position every ``interval`` s; keeps each advance."""

    def __init__(self, views: StatusViews, interval: float = 0.001) -> None:
        super().__init__(name="view-watcher", daemon=True)
        self.views = views
        self.interval = interval
        self.stopping = threading.Event()
        self.times: list[int] = []  # ns, when a position was first seen
        self.positions: list[int] = []

    def run(self) -> None:
        last = -1
        while not self.stopping.is_set():
            position = self.views.position()
            seen = time.perf_counter_ns()
            if position > last:
                self.times.append(seen)
                self.positions.append(position)
                last = position
            time.sleep(self.interval)

    def visible_after(self, position: int, returned: int) -> float | None:
        """ns from ``returned`` until ``position`` was seen, or None if never."""
        index = bisect.bisect_left(self.positions, position)
        if index == len(self.positions):
            return None
        return max(0, self.times[index] - returned)


def position_of(command: Callable[..., Any], *args: Any) -> int | None:
    position: int | None = command(*args).position
    return position


def command_cycles(
    service: CertificationService, seed: int
) -> Iterator[Callable[[], int | None]]:
    """Start, submit, pay, approve, pay the annual fee; again and again.

    Each command is yielded once the one before it has run, so a cycle's
    commands can use the id its start returned.
    """
    rng = random.Random(seed)
    submission = submission_forms()[0]
    approval = DecisionForm(outcome="approved", reason="Meets each rule.")
    started: list[UUID] = []

    def start(form: ApplicationForm) -> int | None:
        outcome = service.start_application(form, APPLICANT)
        started.append(outcome.certification.id)
        return outcome.position

    for number in itertools.count(1):
        form = application_form(rng, number)
        fees = fees_for_revenue(form.annual_revenue_usd)
        yield partial(start, form)
        cid = started[-1]
        yield partial(position_of, service.submit, cid, submission, APPLICANT)
        submission_fee = PaymentForm(
            kind="submission_fee",
            amount_usd=fees.submission_fee,
            reference=f"SUB-{number}",
        )
        yield partial(position_of, service.record_payment, cid, submission_fee, BILLING)
        yield partial(position_of, service.decide, cid, approval, OPERATOR)
        annual_fee = PaymentForm(
            kind="annual_fee", amount_usd=fees.annual_fee, reference=f"ANN-{number}"
        )
        yield partial(position_of, service.record_payment, cid, annual_fee, BILLING)


def bench_visibility(
    store: str, rate: float, seconds: float, warmup: float, progress: Progress
) -> dict[str, Any]:
    with fresh_store(store) as url:
        runtime = build_runtime(Settings(database_url=url))
        thread, stopping = start_in_thread(runtime.runner)
        watcher = Watcher(runtime.views)
        watcher.start()
        try:
            sent = drive(runtime.service, rate, warmup + seconds)
            last = max(position for _, _, position, _ in sent)
            deadline = time.monotonic() + 30
            while runtime.views.position() < last and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.01)
        finally:
            watcher.stopping.set()
            watcher.join()
            stopping.set()
            thread.join(timeout=10)
            runtime.close()
    measured = [entry for entry in sent if entry[0] >= warmup * 1e9]
    lags = []
    unseen = 0
    for _, returned, position, _ in measured:
        lag = watcher.visible_after(position, returned)
        if lag is None:
            unseen += 1
        else:
            lags.append(int(lag))
    lags.sort()
    durations = sorted(duration for *_, duration in measured)
    span_s = (measured[-1][1] - measured[0][1]) / 1e9 if len(measured) > 1 else 1
    result = {
        "commands": len(measured),
        "target_rate": rate,
        "achieved_rate": round((len(measured) - 1) / span_s, 1),
        "seconds": seconds,
        "warmup_s": warmup,
        "unseen": unseen,
        "lag_p50_ms": round(percentile(lags, 50) / 1e6, 2),
        "lag_p99_ms": round(percentile(lags, 99) / 1e6, 2),
        "lag_max_ms": round(lags[-1] / 1e6, 2),
        "lag_mean_ms": round(statistics.fmean(lags) / 1e6, 2),
        "command_p50_ms": round(percentile(durations, 50) / 1e6, 2),
        "command_p99_ms": round(percentile(durations, 99) / 1e6, 2),
    }
    progress(
        f"{store}: visibility p50 {result['lag_p50_ms']} ms, "
        f"p99 {result['lag_p99_ms']} ms, max {result['lag_max_ms']} ms "
        f"over {result['commands']} commands at {result['achieved_rate']}/s"
    )
    return result


def drive(
    service: CertificationService, rate: float, seconds: float
) -> list[tuple[int, int, int, int]]:
    """Issue commands on a fixed schedule (open loop) for ``seconds``.

    Returns (ns since start when due, ns when it returned, its position,
    its duration in ns) of each command.
    """
    clock = time.perf_counter_ns
    interval = int(1e9 / rate)
    total = int(seconds * rate)
    commands = command_cycles(service, seed=7)
    sent = []
    begin = clock()
    for number, command in zip(range(total), commands, strict=False):
        due = begin + number * interval
        wait = due - clock()
        if wait > 0:
            time.sleep(wait / 1e9)
        started = clock()
        position = command()
        returned = clock()
        assert position is not None
        sent.append((due - begin, returned, position, returned - started))
    return sent


# Part 3: list queries.

STATUS_WEIGHTS = {
    Status.APPLIED: 5,
    Status.SUBMITTED: 5,
    Status.IN_REVIEW: 8,
    Status.AWAITING_INFO: 4,
    Status.APPROVED: 4,
    Status.REJECTED: 5,
    Status.CERTIFIED: 45,
    Status.REEVALUATION_DUE: 6,
    Status.LAPSED: 7,
    Status.SUSPENDED: 3,
    Status.REVOKED: 2,
    Status.WITHDRAWN: 6,
}
PAID_SUBMISSION = frozenset(Status) - {Status.APPLIED, Status.SUBMITTED}
EVER_CERTIFIED = frozenset(
    {
        Status.CERTIFIED,
        Status.REEVALUATION_DUE,
        Status.LAPSED,
        Status.SUSPENDED,
        Status.REVOKED,
    }
)


def status_rows(count: int, seed: int) -> Iterator[StatusRow]:
    """Rows as the projection writes them, with varied fields."""
    rng = random.Random(seed)
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    first = datetime.combine(TODAY, datetime.min.time(), UTC) - timedelta(days=1095)
    for number in range(1, count + 1):
        status = rng.choices(statuses, weights)[0]
        created_at = first + timedelta(seconds=rng.randint(0, 1095 * 86_400))
        revenue_usd = revenue(rng)
        fees = fees_for_revenue(revenue_usd)
        payments = []
        if status in PAID_SUBMISSION and status is not Status.WITHDRAWN:
            payments.append((FeeKind.SUBMISSION_FEE, fees.submission_fee))
        valid_until = renew_by = certified_since = None
        if status in EVER_CERTIFIED:
            payments.append((FeeKind.ANNUAL_FEE, fees.annual_fee))
            valid_until = TODAY + timedelta(days=rng.randint(-30, 364))
            if status is Status.LAPSED:
                valid_until = TODAY - timedelta(days=rng.randint(31, 700))
            certified_since = min(
                valid_until - timedelta(days=365), created_at.date() + timedelta(30)
            )
        in_renewal = status is Status.REEVALUATION_DUE or (
            status in {Status.IN_REVIEW, Status.APPROVED} and rng.random() < 0.1
        )
        if in_renewal:
            valid_until = TODAY + timedelta(days=rng.randint(-30, LEAD_DAYS))
            renew_by = valid_until + timedelta(days=GRACE_DAYS)
            certified_since = created_at.date() + timedelta(days=30)
            payments.append((FeeKind.ANNUAL_FEE, fees.annual_fee))
        due_kind = {
            Status.SUBMITTED: FeeKind.SUBMISSION_FEE,
            Status.APPROVED: FeeKind.ANNUAL_FEE,
        }.get(status)
        due = fees.fee(due_kind) if due_kind else Decimal(0)
        paid = sum((amount for _, amount in payments), Decimal(0))
        name = organisation_name(rng, number)
        yield StatusRow(
            id=UUID(int=rng.getrandbits(128), version=4),
            organisation_name=name,
            organisation={"name": name, "website": None, "country": "GB"},
            models=[{"name": f"model-{number}", "modality": "text"}],
            status=status,
            in_renewal=in_renewal,
            annual_revenue_usd=revenue_usd,
            tier=fees.tier,
            payments=[
                Payment(
                    kind=kind,
                    amount_usd=amount,
                    reference=f"{kind.value}-{number}-{index}",
                    paid_at=created_at + timedelta(days=10 * (index + 1)),
                )
                for index, (kind, amount) in enumerate(payments)
            ],
            fees_invoiced_usd=paid + due,
            fees_paid_usd=paid,
            fee_due_kind=due_kind,
            fee_due_usd=due,
            certified_since=certified_since,
            valid_until=valid_until,
            reevaluation_due_on=(
                valid_until - timedelta(days=LEAD_DAYS)
                if valid_until and status is Status.CERTIFIED
                else None
            ),
            renew_by=renew_by,
            info_request_id=str(uuid.uuid4())
            if status is Status.AWAITING_INFO
            else None,
            info_respond_by=TODAY + timedelta(days=14)
            if status is Status.AWAITING_INFO
            else None,
            findings_error=rng.choice((0, 0, 0, 1, 2)),
            findings_warning=rng.choice((0, 0, 1)),
            findings_info=rng.choice((0, 1)),
            created_at=created_at,
            last_event_at=created_at + timedelta(days=40),
            version=len(payments) + 3,
            position=number,
        )


def fill_views(views: StatusViews, rows: int, batch: int = 5_000) -> list[str]:
    """Write ``rows`` rows in batches; return some organisation names."""
    names: list[str] = []
    position = 0
    source = status_rows(rows, seed=11)
    while chunk := list(itertools.islice(source, batch)):
        views.save(chunk, position, position + len(chunk))
        position += len(chunk)
        names.extend(row.organisation_name for row in chunk[:: max(1, batch // 20)])
    return names


@dataclass
class Timings:
    samples: dict[str, list[int]] = field(default_factory=dict)

    def time(self, kind: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter_ns()
        result = call()
        self.samples.setdefault(kind, []).append(time.perf_counter_ns() - started)
        return result

    def summary(self, kind: str) -> dict[str, Any]:
        ordered = sorted(self.samples[kind])
        return {
            "kind": kind,
            "calls": len(ordered),
            "p50_ms": round(percentile(ordered, 50) / 1e6, 2),
            "p99_ms": round(percentile(ordered, 99) / 1e6, 2),
            "max_ms": round(ordered[-1] / 1e6, 2),
        }


SEARCH_KINDS = (
    "none",
    "status",
    "tier",
    "certified",
    "not_certified",
    "due_before",
    "q_common",
    "q_one_name",
    "status_and_tier",
    "next_pages",
)


def query_plan(
    rng: random.Random, names: list[str], queries: int
) -> list[tuple[str, SearchFilters]]:
    """First pages to ask for: the same number of each kind, shuffled."""
    kinds: dict[str, Callable[[], SearchFilters]] = {
        "none": SearchFilters,
        "status": lambda: SearchFilters(status=rng.choice(list(Status))),
        "tier": lambda: SearchFilters(tier=rng.choice(list(RevenueTier))),
        "certified": lambda: SearchFilters(is_certified=True),
        "not_certified": lambda: SearchFilters(is_certified=False),
        "due_before": lambda: SearchFilters(
            due_before=TODAY + timedelta(days=rng.randint(0, 120))
        ),
        # A word one name in ten has, and a name's own number (one row).
        "q_common": lambda: SearchFilters(q=rng.choice(NAME_SECOND)),
        "q_one_name": lambda: SearchFilters(q=rng.choice(names).split()[-2]),
        "status_and_tier": lambda: SearchFilters(
            status=rng.choice((Status.CERTIFIED, Status.IN_REVIEW)),
            tier=rng.choice(list(RevenueTier)),
        ),
    }
    assert set(kinds) < set(SEARCH_KINDS)
    each = max(1, queries // len(kinds))
    plan = [(kind, make()) for kind, make in kinds.items() for _ in range(each)]
    rng.shuffle(plan)
    return plan


def bench_queries(
    store: str, rows: int, queries: int, progress: Progress
) -> dict[str, Any]:
    rng = random.Random(5)
    with fresh_store(store) as url:
        views = StatusViews(view_database(url))
        try:
            views.create()
            views.index_names_for_search()  # as build_runtime does
            started = time.perf_counter()
            names = fill_views(views, rows)
            fill_s = time.perf_counter() - started
            views.analyze()  # as the runner does after a long catch-up
            progress(f"{store}: wrote {rows} view rows in {fill_s:.0f} s")
            plan = query_plan(rng, names, queries)
            for _kind, filters in plan[:50]:  # warm-up, not timed
                views.search(filters, TODAY, 50)
            timings = Timings()
            gc.collect()
            for number, (kind, filters) in enumerate(plan):
                _, cursor = timings.time(
                    kind, lambda filters=filters: views.search(filters, TODAY, 50)
                )
                # One first page in five is followed up to 4 pages deeper.
                for _ in range(4 if number % 5 == 0 else 0):
                    if cursor is None:
                        break
                    _, cursor = timings.time(
                        "next_pages",
                        lambda f=filters, c=cursor: views.search(f, TODAY, 50, c),
                    )
            for _ in range(5):
                timings.time("stats", lambda: views.stats(TODAY))
            registered = 0
            for _ in range(3):
                entries = timings.time(
                    "registry", lambda: views.registry_entries(TODAY)
                )
                registered = len(json.loads(entries))
        finally:
            views.db.close()
    search_kinds = [k for k in SEARCH_KINDS if k in timings.samples]
    pooled = sorted(t for k in search_kinds for t in timings.samples[k])
    result = {
        "rows": rows,
        "fill_s": round(fill_s, 1),
        "registry_rows": registered,
        "searches": len(pooled),
        "search_p50_ms": round(percentile(pooled, 50) / 1e6, 2),
        "search_p99_ms": round(percentile(pooled, 99) / 1e6, 2),
        "kinds": [timings.summary(kind) for kind in (*search_kinds, "stats")]
        + [timings.summary("registry")],
    }
    progress(
        f"{store}: {result['searches']} searches, p50 {result['search_p50_ms']} "
        f"ms, p99 {result['search_p99_ms']} ms"
    )
    return result


# Report.


def source_state() -> dict[str, Any]:
    """The commit measured, and the files changed on top of it."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(  # noqa: S603
                ["git", *args],  # noqa: S607
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "domain", "projections", "service")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": [line.split(maxsplit=1)[-1] for line in changed.splitlines()],
    }


def render(rows: list[tuple[str, ...]], left: int = 1) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if column < left else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def verdicts(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []

    def check(store: str, what: str, value: float, target: float, low: bool) -> None:
        met = value <= target if low else value >= target
        checks.append(
            {
                "store": store,
                "what": what,
                "value": value,
                "target": ("<= " if low else ">= ") + f"{target:g}",
                "met": met,
            }
        )

    for store, parts in results.items():
        for run in parts.get("catch_up", {}).get("runs", []):
            batch = run["batch"]
            check(
                store,
                f"catch-up ratio, batch {batch}",
                run["ratio"],
                TARGET_RATIO,
                False,
            )
            if store == "postgres":
                check(
                    store,
                    f"catch-up events/s, batch {batch}",
                    run["projection_events_per_s"],
                    TARGET_POSTGRES_EVENTS_PER_S,
                    False,
                )
        if "visibility" in parts and store == "postgres":
            value = parts["visibility"]["lag_p99_ms"]
            check(store, "visibility p99 ms", value, TARGET_VISIBILITY_P99_MS, True)
        if "queries" in parts:
            value = parts["queries"]["search_p99_ms"]
            check(store, "list query p99 ms", value, TARGET_LIST_P99_MS, True)
    return checks


def report(document: dict[str, Any]) -> str:
    info = document["machine"]
    out = [
        f"bench.views: {document['events']} events, {document['rows']} view rows; "
        f"nproc {info['nproc']}, Python {info['python']}, "
        f"PostgreSQL {info['postgresql_server']}",
        f"load average (1, 5, 15 min) at start {document['load_average']['start']}, "
        f"at end {document['load_average']['end']}",
        f"source: commit {document['source']['commit']}, uncommitted changes in: "
        + (", ".join(document["source"]["uncommitted"]) or "none"),
    ]
    results = document["results"]
    rows: list[tuple[str, ...]] = [
        ("store", "batch", "events", "raw ev/s", "projection ev/s", "ratio")
    ]
    for store, parts in results.items():
        for run in parts.get("catch_up", {}).get("runs", []):
            rows.append(
                (
                    store,
                    str(run["batch"]),
                    str(run["events"]),
                    str(run["raw_events_per_s"]),
                    str(run["projection_events_per_s"]),
                    f"{run['ratio']:.2f}",
                )
            )
    if len(rows) > 1:
        out += ["", "1. Catch-up (events/s)", render(rows)]
    rows = [("store", "commands", "rate/s", "p50 ms", "p99 ms", "max ms", "cmd p50")]
    for store, parts in results.items():
        if "visibility" not in parts:
            continue
        vis = parts["visibility"]
        rows.append(
            (
                store,
                str(vis["commands"]),
                f"{vis['achieved_rate']:.1f}",
                f"{vis['lag_p50_ms']:.2f}",
                f"{vis['lag_p99_ms']:.2f}",
                f"{vis['lag_max_ms']:.2f}",
                f"{vis['command_p50_ms']:.2f}",
            )
        )
    if len(rows) > 1:
        out += ["", "2. Command-to-view visibility (lag after the command returns)"]
        out.append(render(rows))
    rows = [("store", "query", "calls", "p50 ms", "p99 ms", "max ms")]
    for store, parts in results.items():
        if "queries" not in parts:
            continue
        queries = parts["queries"]
        for kind in queries["kinds"]:
            label = kind["kind"]
            if label == "registry":
                label = f"registry ({queries['registry_rows']} rows)"
            rows.append(
                (
                    store,
                    label,
                    str(kind["calls"]),
                    f"{kind['p50_ms']:.2f}",
                    f"{kind['p99_ms']:.2f}",
                    f"{kind['max_ms']:.2f}",
                )
            )
        rows.append(
            (
                store,
                "all searches",
                str(queries["searches"]),
                f"{queries['search_p50_ms']:.2f}",
                f"{queries['search_p99_ms']:.2f}",
                "",
            )
        )
    if len(rows) > 1:
        out += ["", f"3. Queries on {document['rows']} rows (limit 50)"]
        out.append(render(rows, 2))
    out.append("")
    out += verdict_lines(document["verdicts"])
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.views",
        description="Catch-up, visibility and query latency of the status views.",
    )
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--events", type=int, default=200_000, metavar="N")
    parser.add_argument("--rows", type=int, default=100_000, metavar="N")
    parser.add_argument(
        "--batches", default="1000,5000", help="projection batch sizes to try"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="commands/s")
    parser.add_argument("--seconds", type=float, default=20.0, metavar="S")
    parser.add_argument("--queries", type=int, default=1_000, metavar="Q")
    parser.add_argument(
        "--parts",
        default="catch_up,visibility,queries",
        help="which parts to run (default all)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="level of the service's logs, written as JSON to /dev/null",
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    args.stores = store_list(parser, args.stores)
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(args.parts) - {"catch_up", "visibility", "queries"}:
        parser.error("--parts takes catch_up, visibility, queries")
    if min(args.events, args.rows, args.queries, *args.batches) < 1:
        parser.error("--events, --rows, --queries and --batches must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs(args.log_level)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    load_at_start = [round(load, 2) for load in os.getloadavg()]
    results: dict[str, dict[str, Any]] = {}
    durations: dict[str, float] = {}
    for store in args.stores:
        started = time.perf_counter()
        parts: dict[str, Any] = {}
        if "catch_up" in args.parts:
            parts["catch_up"] = bench_catch_up(
                store, args.events, args.batches, progress
            )
        if "visibility" in args.parts:
            parts["visibility"] = bench_visibility(
                store, args.rate, args.seconds, 2.0, progress
            )
        if "queries" in args.parts:
            parts["queries"] = bench_queries(store, args.rows, args.queries, progress)
        results[store] = parts
        durations[store] = round(time.perf_counter() - started, 1)
        progress(f"{store}: done in {durations[store]:.0f} s")

    document = {
        "benchmark": "bench.views",
        "events": args.events,
        "rows": args.rows,
        "batches": args.batches,
        "rate": args.rate,
        "seconds": args.seconds,
        "queries": args.queries,
        "log_level": args.log_level,
        "machine": machine(),
        "source": source_state(),
        "load_average": {
            "start": load_at_start,
            "end": [round(load, 2) for load in os.getloadavg()],
        },
        "targets": {
            "catch_up_ratio": TARGET_RATIO,
            "postgres_catch_up_events_per_s": TARGET_POSTGRES_EVENTS_PER_S,
            "postgres_visibility_p99_ms": TARGET_VISIBILITY_P99_MS,
            "list_query_p99_ms": TARGET_LIST_P99_MS,
        },
        "results": results,
        "durations_s": durations,
        "verdicts": verdicts(results),
    }
    print(json.dumps(document, indent=2) if args.json else report(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
