"""Soak: a steady command load on one ``certd serve`` for minutes on end.

Run from the repository root, by hand (it is not part of ``make test``)::

    .venv/bin/python -m bench.soak [--minutes 10] [--workers 4] [--json]

The service is the installed ``certd serve`` on a fresh PostgreSQL database
(``CERTD_TEST_POSTGRES_URL``, by default the server at 127.0.0.1:5432) with
the bundled tansu broker, so its API, views, publisher, payment consumer and
scheduler all run. ``--workers`` clients take certifications from application
to certified over HTTP (``tests/reliability/load.py``), each command timed.

Each minute it prints the commands answered per second, the p99 latency of
that minute, the errors (5xx, or no answer) and the RSS of the service
process. The reads each worker makes after a lifecycle are not counted as
commands, though their errors are. At the end it waits for the views and the
topic to catch up and checks them and every answer against the store:
``lost`` is the count of anything that does not agree, and must be 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from service.embedded_broker import TansuBroker
from tests.databases import fresh_postgres_database
from tests.reliability.agreement import (
    judge,
    topic_disagreements,
    wait_until_caught_up,
)
from tests.reliability.deployment import Deployment
from tests.reliability.load import Answer, Load

MIB = 1024 * 1024


@dataclass(frozen=True)
class Minute:
    minute: int
    commands_per_second: float
    p99_ms: float
    errors: int
    rss_mib: float


@dataclass(frozen=True)
class Report:
    minutes: list[Minute]
    commands: int
    commands_per_second: float
    p99_ms: float
    errors_per_minute: float
    rss_start_mib: float
    rss_end_mib: float
    rss_growth_mib: float
    lost: int


def p99_ms(answers: list[Answer]) -> float:
    """The nearest-rank 99th percentile of the answers' latencies."""
    if not answers:
        return 0.0
    ordered = sorted(answer.seconds for answer in answers)
    return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def commands_of(answers: list[Answer]) -> list[Answer]:
    """The commands among the answers; the reads after each lifecycle aside."""
    return [answer for answer in answers if answer.command != "read"]


def is_error(answer: Answer) -> bool:
    return answer.status == 0 or answer.status >= 500


def soak(minutes: float, workers: int, workdir: Path) -> Report:
    broker = TansuBroker.start(log_dir=workdir)
    try:
        with fresh_postgres_database("certd_soak") as url:
            return _soak_on(url, broker.bootstrap, minutes, workers, workdir)
    finally:
        broker.stop()


def _soak_on(
    url: str, bootstrap: str, minutes: float, workers: int, workdir: Path
) -> Report:
    deployment = Deployment(url, bootstrap, workdir)
    with deployment:
        service = psutil.Process(deployment.servers[0].pid)
        rss_start = service.memory_info().rss / MIB
        started = time.monotonic()
        with Load(deployment.targets(), workers=workers) as load:
            samples = _sample(load, service, minutes)
        elapsed = time.monotonic() - started
        rss_end = service.memory_info().rss / MIB
        wait_until_caught_up(deployment.servers[0].base_url, timeout=300)
        lost = _disagreements(url, bootstrap, deployment.topic, load)
    answers = commands_of(load.tally.answers)
    return Report(
        minutes=samples,
        commands=len(answers),
        commands_per_second=round(len(answers) / elapsed, 1),
        p99_ms=round(p99_ms(answers), 1),
        errors_per_minute=round(
            sum(map(is_error, load.tally.answers)) / (elapsed / 60), 2
        ),
        rss_start_mib=round(rss_start, 1),
        rss_end_mib=round(rss_end, 1),
        rss_growth_mib=round(rss_end - rss_start, 1),
        lost=lost,
    )


def _sample(load: Load, service: psutil.Process, minutes: float) -> list[Minute]:
    """Print and keep one line a minute (or part of one) until time is up."""
    samples: list[Minute] = []
    end = time.monotonic() + minutes * 60
    seen = 0
    while time.monotonic() < end:
        window_start = time.monotonic()
        time.sleep(min(60.0, end - window_start))
        with load.tally.lock:
            answered = load.tally.answers[seen:]
            seen += len(answered)
        window = commands_of(answered)
        sample = Minute(
            minute=len(samples) + 1,
            commands_per_second=round(
                len(window) / (time.monotonic() - window_start), 1
            ),
            p99_ms=round(p99_ms(window), 1),
            errors=sum(map(is_error, answered)),
            rss_mib=round(service.memory_info().rss / MIB, 1),
        )
        samples.append(sample)
        print(json.dumps(asdict(sample)), file=sys.stderr, flush=True)
    return samples


def _disagreements(url: str, bootstrap: str, topic: str, load: Load) -> int:
    verdict = judge(url, load.tally)
    return (
        len(verdict.problems)
        + len(topic_disagreements(verdict.stored, bootstrap, topic))
        + len(load.tally.failures)
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="certd-soak-") as folder:
        report = soak(args.minutes, args.workers, Path(folder))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(
            f"{report.commands} commands in {len(report.minutes)} minute(s): "
            f"{report.commands_per_second}/s, p99 {report.p99_ms} ms, "
            f"{report.errors_per_minute} errors/minute, RSS "
            f"{report.rss_start_mib} -> {report.rss_end_mib} MiB "
            f"(+{report.rss_growth_mib}), lost {report.lost}"
        )
    return 1 if report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
