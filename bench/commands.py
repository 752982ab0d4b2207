"""Command throughput of the service against the bare ``eventsourcing`` library.

Run from the repository root::

    .venv/bin/python -m bench.commands [--certifications N]
        [--stores sqlite,postgres] [--repeats R] [--json]

For each store, two subjects run the same access pattern on a store of their
own, made fresh for every run:

``service``
    :class:`~service.application.CertificationService`, built by
    :func:`~service.composition.build_service`, drives N certifications through
    their first lifecycle: start, submit, pay the submission fee, request
    information, provide it, approve, pay the annual fee. That is seven
    commands, each one storing one event.

``baseline``
    A plain :class:`eventsourcing.application.Application` with the same
    persistence settings and a minimal aggregate: create and save once, then
    six times ``repository.get``, one ``@event`` method, ``save``. That is
    seven operations, each one storing one event.

Each operation is timed on its own with :func:`time.perf_counter_ns`; the rate
of a run is its operations divided by the sum of their times. The two subjects
run side by side, each on its own fresh store, and take turns one certification
at a time (who goes first flips every certification), so that a slow spell of
a busy 2-core machine (an fsync stall, a neighbour's burst) hits both alike.
After a discarded warm-up round come R measured rounds; the rate of a subject
is the median over its rounds and its latencies are pooled over them.
``ratio`` is the service's rate over the baseline's, taken round by round
(the two rates of a round were measured side by side) and then the median of
those per-round ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from domain.actor import Actor
from domain.certification import Status
from domain.fees import fees_for_revenue
from domain.forms import (
    ApplicationForm,
    DecisionForm,
    InfoRequestForm,
    InfoResponseForm,
    PaymentForm,
    SubmissionForm,
)
from service.composition import build_service
from service.logs import configure_logging
from service.settings import Settings
from service.store import persistence_env
from tests.databases import fresh_postgres_database
from tests.factories import application_body, submission_body

ADMIN_URL = os.environ.get(
    "CERTD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STORES = ("sqlite", "postgres")
TARGET_RATIO = 0.8
REVENUE = 250_000
ACTOR = Actor(role="operator", name="bench")


# Stores.


@contextmanager
def fresh_store(kind: str) -> Iterator[str]:
    """Yield the URL of an empty store of its own; remove it afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="certd-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        return
    with fresh_postgres_database("certd_bench", ADMIN_URL) as url:
        yield url


# Subjects: each drives one certification (seven timed operations) at a time.


class Counter(Aggregate):
    """The baseline's aggregate: one small field, one small event."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @event("Incremented")
    def increment(self, by: int) -> None:
        self.count += by


class Baseline:
    steps = ("create", *(f"get_trigger_save_{n}" for n in range(1, 7)))

    def __init__(self, url: str, certifications: int) -> None:
        self.app: Application[UUID] = Application(env=persistence_env(url))

    def run_one(self, number: int, latencies: list[list[int]]) -> None:
        clock = time.perf_counter_ns
        app = self.app
        started = clock()
        counter = Counter(name=f"counter-{number}")
        app.save(counter)
        latencies[0].append(clock() - started)
        for step in range(1, len(self.steps)):
            started = clock()
            loaded: Counter = app.repository.get(counter.id)
            loaded.increment(by=1)
            app.save(loaded)
            latencies[step].append(clock() - started)
        assert loaded.version == len(self.steps)

    def close(self) -> None:
        self.app.close()


@dataclass(frozen=True)
class ServiceForms:
    """The command bodies, validated before the clock runs (as the API does)."""

    application: ApplicationForm
    submission: SubmissionForm
    info_request: InfoRequestForm
    approval: DecisionForm
    submission_fees: list[PaymentForm]
    annual_fees: list[PaymentForm]

    @classmethod
    def build(cls, certifications: int) -> ServiceForms:
        fees = fees_for_revenue(Decimal(REVENUE))
        return cls(
            application=ApplicationForm.model_validate(application_body(REVENUE)),
            submission=SubmissionForm.model_validate(submission_body()),
            info_request=InfoRequestForm(
                questions=["Which agreement covers the news archive after 2025?"]
            ),
            approval=DecisionForm(outcome="approved", reason="Meets every criterion."),
            submission_fees=[
                PaymentForm(
                    kind="submission_fee",
                    amount_usd=fees.submission_fee,
                    reference=f"SUB-{number:06d}",
                )
                for number in range(certifications)
            ],
            annual_fees=[
                PaymentForm(
                    kind="annual_fee",
                    amount_usd=fees.annual_fee,
                    reference=f"ANN-{number:06d}",
                )
                for number in range(certifications)
            ],
        )


class Service:
    steps = (
        "start",
        "submit",
        "pay_submission_fee",
        "request_info",
        "provide_info",
        "approve",
        "pay_annual_fee",
    )

    def __init__(self, url: str, certifications: int) -> None:
        self.forms = ServiceForms.build(certifications)
        self.service = build_service(Settings(database_url=url))

    def run_one(self, number: int, latencies: list[list[int]]) -> None:
        clock = time.perf_counter_ns
        service, forms, actor = self.service, self.forms, ACTOR

        started = clock()
        outcome = service.start_application(forms.application, actor)
        latencies[0].append(clock() - started)
        cid = outcome.certification.id

        started = clock()
        service.submit(cid, forms.submission, actor)
        latencies[1].append(clock() - started)

        started = clock()
        service.record_payment(cid, forms.submission_fees[number], actor)
        latencies[2].append(clock() - started)

        started = clock()
        _, request_id = service.request_info(cid, forms.info_request, actor)
        latencies[3].append(clock() - started)

        answer = InfoResponseForm(
            request_id=request_id,
            answers=["AGR-2026-001 runs to 2028 and covers the archive."],
        )
        started = clock()
        service.provide_info(cid, answer, actor)
        latencies[4].append(clock() - started)

        started = clock()
        service.decide(cid, forms.approval, actor)
        latencies[5].append(clock() - started)

        started = clock()
        paid = service.record_payment(cid, forms.annual_fees[number], actor)
        latencies[6].append(clock() - started)
        assert paid.certification.status is Status.CERTIFIED
        assert paid.certification.version == len(self.steps)

    def close(self) -> None:
        self.service.close()


SUBJECTS: dict[str, type[Baseline | Service]] = {
    "baseline": Baseline,
    "service": Service,
}


# Measurement.

Latencies = list[list[int]]  # nanoseconds, one list per step


@dataclass
class Result:
    store: str
    subject: str
    ops: int  # per run
    rates: list[float] = field(default_factory=list)  # ops/s of each run
    runs: list[Latencies] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    def pooled(self, step: int | None = None) -> list[int]:
        return sorted(
            latency
            for run in self.runs
            for index, latencies in enumerate(run)
            if step is None or index == step
            for latency in latencies
        )

    def as_dict(self) -> dict[str, Any]:
        pooled = self.pooled()
        return {
            "store": self.store,
            "subject": self.subject,
            "ops": self.ops,
            "ops_per_s": round(self.rate, 1),
            "p50_ms": round(percentile(pooled, 50) / 1e6, 3),
            "p99_ms": round(percentile(pooled, 99) / 1e6, 3),
            "mean_ms": round(statistics.fmean(pooled) / 1e6, 3),
            "runs_ops_per_s": [round(rate, 1) for rate in self.rates],
            "steps_p50_ms": {
                name: round(percentile(self.pooled(index), 50) / 1e6, 3)
                for index, name in enumerate(SUBJECTS[self.subject].steps)
            },
        }


def store_list(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The stores a comma-separated ``--stores`` names; an unknown one stops
    the benchmark with a usage error."""
    stores = [store.strip() for store in text.split(",") if store.strip()]
    unknown = sorted(set(stores) - set(STORES))
    if unknown or not stores:
        parser.error(f"unknown store(s): {', '.join(unknown) or '(none)'}")
    return stores


def verdict_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    """One line per target: the figure, and whether it meets the target."""
    return [
        f"{item['store']}: {item['what']} {item['value']:g} "
        f"{'meets' if item['met'] else 'MISSES'} the target {item['target']}"
        for item in verdicts
    ]


def percentile(ordered: list[int], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, -(-len(ordered) * pct // 100))
    return float(ordered[int(rank) - 1])


def run_round(store: str, certifications: int) -> dict[str, Latencies]:
    """Run both subjects side by side, each on a fresh store of its own.

    They take turns one certification at a time, and who goes first flips
    every certification, so a slow spell of the machine hits both alike.
    """
    latencies = {
        subject: [[] for _ in kind.steps] for subject, kind in SUBJECTS.items()
    }
    with fresh_store(store) as first_url, fresh_store(store) as second_url:
        urls = dict(zip(SUBJECTS, (first_url, second_url), strict=True))
        runners = {
            subject: kind(urls[subject], certifications)
            for subject, kind in SUBJECTS.items()
        }
        try:
            gc.collect()
            order = list(SUBJECTS)
            for number in range(certifications):
                for subject in order:
                    runners[subject].run_one(number, latencies[subject])
                order.reverse()
        finally:
            for runner in runners.values():
                runner.close()
    return latencies


def bench_store(
    store: str, certifications: int, repeats: int, progress: Callable[[str], None]
) -> dict[str, Result]:
    results = {
        subject: Result(store, subject, certifications * len(kind.steps))
        for subject, kind in SUBJECTS.items()
    }
    run_round(store, max(1, min(certifications, 50)))
    progress(f"{store}: warmed up")
    for round_number in range(repeats):
        measured = run_round(store, certifications)
        for subject, latencies in measured.items():
            result = results[subject]
            result.runs.append(latencies)
            total_ns = sum(sum(step) for step in latencies)
            result.rates.append(result.ops / (total_ns / 1e9))
        progress(
            f"{store}: round {round_number + 1}/{repeats} "
            + ", ".join(
                f"{subject} {result.rates[-1]:.0f} ops/s"
                for subject, result in results.items()
            )
        )
    return results


# Report.


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        info["postgresql_server"] = row[0] if row else None
    except psycopg.Error:
        info["postgresql_server"] = None
    return info


def table(results: list[dict[str, Any]], ratios: dict[str, float]) -> str:
    header = ("store", "subject", "ops", "ops/s", "p50 ms", "p99 ms", "ratio")
    rows = [header]
    for item in results:
        ratio = ratios[item["store"]] if item["subject"] == "service" else None
        rows.append(
            (
                item["store"],
                item["subject"],
                str(item["ops"]),
                f"{item['ops_per_s']:.0f}",
                f"{item['p50_ms']:.3f}",
                f"{item['p99_ms']:.3f}",
                "" if ratio is None else f"{ratio:.2f}",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def quiet_service_logs(level: str) -> None:
    """Log as ``certd serve`` does (JSON lines), but into /dev/null."""
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    configure_logging(level, "json", stream=sink)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.commands",
        description="Command throughput of the service against bare eventsourcing.",
    )
    parser.add_argument("--certifications", type=int, default=300, metavar="N")
    parser.add_argument(
        "--stores",
        default=",".join(STORES),
        help="comma-separated, among: " + ", ".join(STORES),
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        metavar="R",
        help="measured rounds per store, after one warm-up round",
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
    if args.certifications < 1 or args.repeats < 1:
        parser.error("--certifications and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_service_logs(args.log_level)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    round_ratios: dict[str, list[float]] = {}
    for store in args.stores:
        measured = bench_store(store, args.certifications, args.repeats, progress)
        paired = [
            service / baseline
            for service, baseline in zip(
                measured["service"].rates, measured["baseline"].rates, strict=True
            )
        ]
        ratios[store] = statistics.median(paired)
        round_ratios[store] = [round(ratio, 3) for ratio in paired]
        results.extend(measured[subject].as_dict() for subject in SUBJECTS)

    if args.json:
        document = {
            "benchmark": "bench.commands",
            "certifications": args.certifications,
            "repeats": args.repeats,
            "log_level": args.log_level,
            "machine": machine(),
            "target_ratio": TARGET_RATIO,
            "results": results,
            "ratios": {store: round(ratio, 3) for store, ratio in ratios.items()},
            "round_ratios": round_ratios,
            "meets_target": {
                store: ratio >= TARGET_RATIO for store, ratio in ratios.items()
            },
        }
        print(json.dumps(document, indent=2))
        return 0
    info = machine()
    print(
        f"{args.certifications} certifications x 7 commands, median of "
        f"{args.repeats} interleaved rounds; nproc {info['nproc']}, "
        f"Python {info['python']}, PostgreSQL {info['postgresql_server']}"
    )
    print(table(results, ratios))
    print(
        f"service logs: JSON lines at level {args.log_level} into /dev/null; "
        "ratio: median over rounds of service ops/s / baseline ops/s"
    )
    for store, ratio in ratios.items():
        verdict = "meets" if ratio >= TARGET_RATIO else "misses"
        print(f"{store}: ratio {ratio:.2f} {verdict} the target of {TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
