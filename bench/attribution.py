"""How much of the service's gap to the baseline is its command log.

Run from the repository root::

    .venv/bin/python -m bench.attribution [--store sqlite] [--certifications N]
        [--repeats R]

Four subjects take turns one certification at a time, each on a fresh store of
its own, as in :mod:`bench.commands`:

``baseline``          bare ``eventsourcing``, as in :mod:`bench.commands`;
``service``           the service, logging as ``certd serve`` does (structlog
                      through the standard library's ``logging``, JSON lines);
``service_fastlog``   the service with a structlog-native logger instead
                      (``make_filtering_bound_logger`` + ``WriteLogger`` +
                      ``JSONRenderer``): the same JSON line, no ``logging``;
``service_nolog``     the service with its command log swapped for a no-op.

The two variants only swap ``service.application.log`` for this process; no
code of the service is changed. The difference between ``service`` and
``service_nolog`` is the cost of the command log; what remains between
``service_nolog`` and ``baseline`` is the rest of the service's own work.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
from contextlib import ExitStack
from typing import Any

import structlog

import service.application as service_module
from bench.commands import (
    STORES,
    Baseline,
    Service,
    fresh_store,
    quiet_service_logs,
)


class NoLog:
    def bind(self, **_: Any) -> NoLog:
        return self

    def info(self, *_: Any, **__: Any) -> None:
        return None


def native_logger() -> Any:
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    return structlog.wrap_logger(
        structlog.WriteLogger(sink),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind(logger="certd.commands")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attribution")
    parser.add_argument("--store", choices=STORES, default="sqlite")
    parser.add_argument("--certifications", type=int, default=300, metavar="N")
    parser.add_argument("--repeats", type=int, default=3, metavar="R")
    args = parser.parse_args(argv)
    quiet_service_logs("info")

    loggers: dict[str, Any] = {
        "baseline": None,
        "service": service_module.log,
        "service_fastlog": native_logger(),
        "service_nolog": NoLog(),
    }
    rates: dict[str, list[float]] = {subject: [] for subject in loggers}
    for round_number in range(args.repeats + 1):
        count = 50 if round_number == 0 else args.certifications
        with ExitStack() as stack:
            runners = {
                subject: (Baseline if logger is None else Service)(
                    stack.enter_context(fresh_store(args.store)), count
                )
                for subject, logger in loggers.items()
            }
            for runner in runners.values():
                stack.callback(runner.close)
            latencies = {subject: [[] for _ in range(7)] for subject in loggers}
            order = list(loggers)
            gc.collect()
            for number in range(count):
                for subject in order:
                    if loggers[subject] is not None:
                        service_module.log = loggers[subject]
                    runners[subject].run_one(number, latencies[subject])
                order = order[1:] + order[:1]
        if round_number == 0:
            continue  # warm-up
        for subject, measured in latencies.items():
            total_ns = sum(sum(step) for step in measured)
            rates[subject].append(7 * count / (total_ns / 1e9))
        print(
            f"round {round_number}: "
            + ", ".join(f"{s} {r[-1]:.0f} ops/s" for s, r in rates.items()),
            file=sys.stderr,
        )

    print(
        f"{args.store}: {args.certifications} certifications x 7 commands, "
        f"median of {args.repeats} interleaved rounds"
    )
    print(f"{'subject':16}  {'ops/s':>6}  {'us/op':>6}  {'ratio':>5}")
    for subject, subject_rates in rates.items():
        rate = statistics.median(subject_rates)
        ratio = statistics.median(
            a / b for a, b in zip(subject_rates, rates["baseline"], strict=True)
        )
        print(f"{subject:16}  {rate:6.0f}  {1e6 / rate:6.0f}  {ratio:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
