"""``certd verify`` over a large store, beside the raw read of the same events.

Run from the repository root::

    .venv/bin/python -m bench.verify [--events N] [--stores sqlite,postgres]
        [--rounds R] [--json]

For each store a fresh one of its own (a new SQLite file, a new PostgreSQL
database), removed afterwards, is filled with N sealed events (default
1,000,000): the five events of a first certification (application,
submission, submission fee, approval, annual fee), made once by the real
aggregate and mapper, are sealed again for each new certification id, chained
as the service chains them, and written with ``recorder.insert_events`` in
batches of 2,500, certifications interleaved as commands would leave them.

Then, round after round: ``raw``, ``verify``, ``raw`` again (the raw rate is
taken over both reads, so a slow spell of the machine counts on both sides):

``raw``
    ``recorder.select_notifications`` from position 1 to the end, a page of
    ``service.audit.PAGE_SIZE`` at a time, and nothing else: no decoding.
``verify``
    ``service.audit.verify_store`` over ``service.audit_store.StoreRows``:
    the same events read as plain rows on a connection of its own, every
    hash recomputed, every chain and the running root checked; what
    ``certd verify`` does, without its progress bar.

Both in events/s; ``ratio`` = verify / raw of the same round. Before the
rounds, ``pages``: the two take turns page by page over one whole
verification (see :func:`measure_interleaved`); the verdicts use it, as the
measure a busy, shared machine skews least.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import StoredEvent

from bench.commands import (
    STORES,
    fresh_store,
    machine,
    quiet_service_logs,
    store_list,
    verdict_lines,
)
from bench.views import source_state
from domain.actor import Actor
from domain.certification import Certification
from domain.fees import fees_for_revenue
from domain.forms import ApplicationForm, DecisionForm, PaymentForm, SubmissionForm
from service.application import CertificationService
from service.audit import PAGE_SIZE, ChainVerifier, verify_store
from service.audit_store import StoreRows
from service.composition import build_service
from service.ledger import ZERO_HASH, seal, stated_hash
from service.settings import Settings
from tests.factories import application_body, submission_body

TARGET_RATIO = 0.5
TARGET_POSTGRES_EVENTS_PER_S = 20_000
# Events a fill insert carries. 10,000 (about 7 MB a statement) once left
# psycopg's pipeline and the server each waiting on the other, for minutes;
# 2,500 never did.
FILL_BATCH = 2_500
ACTOR = Actor(role="operator", name="bench")
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

Progress = Callable[[str], None]


def lifecycle_states(service: CertificationService) -> list[StoredEvent]:
    """The bare stored events of one certified certification (5 events)."""
    revenue = Decimal(250_000)
    fees = fees_for_revenue(revenue)
    cert = Certification.start(
        ApplicationForm.model_validate(application_body(revenue)),
        id=uuid.uuid4(),
        actor=ACTOR,
        at=AT,
    )
    cert.submit(SubmissionForm.model_validate(submission_body()), actor=ACTOR, at=AT)
    cert.pay(
        PaymentForm(
            kind="submission_fee", amount_usd=fees.submission_fee, reference="S-1"
        ),
        actor=ACTOR,
        at=AT,
    )
    cert.decide(DecisionForm(outcome="approved", reason="fine"), actor=ACTOR, at=AT)
    cert.pay(
        PaymentForm(kind="annual_fee", amount_usd=fees.annual_fee, reference="A-1"),
        actor=ACTOR,
        at=AT,
    )
    return [service.mapper.to_stored_event(event) for event in cert.collect_events()]


def sealed_batches(
    templates: list[StoredEvent], events: int
) -> Iterator[list[StoredEvent]]:
    """Yield batches of sealed events, certifications interleaved by version."""
    per_batch = FILL_BATCH // len(templates)
    made = 0
    while made < events:
        count = min(per_batch, -(-(events - made) // len(templates)))
        ids = [uuid.uuid4() for _ in range(count)]
        heads = dict.fromkeys(ids, ZERO_HASH)
        batch = []
        for template in templates:
            for cert_id in ids:
                if made + len(batch) >= events:
                    break
                bare = StoredEvent(
                    originator_id=cert_id,
                    originator_version=template.originator_version,
                    topic=template.topic,
                    state=template.state,
                )
                stored = seal(bare, heads[cert_id])
                heads[cert_id] = stated_hash(stored.state)
                batch.append(stored)
        made += len(batch)
        yield batch


def fill(service: CertificationService, events: int, progress: Progress) -> float:
    started = time.perf_counter()
    templates = lifecycle_states(service)
    written = 0
    for batch in sealed_batches(templates, events):
        service.recorder.insert_events(batch)
        written += len(batch)
        if written % 200_000 < len(batch):
            progress(f"  filled {written} events")
    return time.perf_counter() - started


def raw_read(service: CertificationService) -> int:
    """Read every notification a page at a time, and nothing else."""
    recorder = service.recorder
    start, count = 1, 0
    while page := recorder.select_notifications(start=start, limit=PAGE_SIZE):
        count += len(page)
        start = page[-1].id + 1
    return count


def store_rows(service: CertificationService, url: str) -> StoreRows:
    """The rows ``certd verify`` reads: its own connection to the store."""
    table: str = service.recorder.events_table_name  # type: ignore[attr-defined]
    return StoreRows(url, table)


def timed(action: Callable[[], int]) -> tuple[int, float]:
    gc.collect()
    started = time.perf_counter()
    count = action()
    return count, time.perf_counter() - started


def measure_interleaved(
    service: CertificationService, rows: StoreRows, events: int
) -> dict[str, Any]:
    """Raw read and verify, page by page, taking turns on each page.

    For each page the raw read (``select_notifications``) and the verify
    step (``certd verify``'s read of the same events, then
    ``ChainVerifier.feed_page``) run back to back,
    who goes first flipping every page, so both meet the same moment of a
    busy machine. The verifier sees every page in store order and finishes
    as ``verify_store`` does: it is a whole verification, timed in slices.
    """
    recorder, verifier = service.recorder, ChainVerifier()
    stop = rows.last_position()
    raw_ns = verify_ns = 0
    clock = time.perf_counter_ns
    after, flip = 0, False
    gc.collect()
    while True:
        for subject in ("verify", "raw") if flip else ("raw", "verify"):
            began = clock()
            if subject == "verify":
                page = rows.page(after, stop)
                verifier.feed_page(page)
                verify_ns += clock() - began
            else:
                recorder.select_notifications(start=after + 1, limit=PAGE_SIZE)
                raw_ns += clock() - began
        if not page:
            break
        after, flip = page[-1][0], not flip
    verifier.finish()
    if verifier.events != events:
        msg = f"verify read {verifier.events} events of {events}"
        raise RuntimeError(msg)
    raw_rate, verify_rate = events / raw_ns * 1e9, events / verify_ns * 1e9
    return {
        "raw_s": round(raw_ns / 1e9, 2),
        "verify_s": round(verify_ns / 1e9, 2),
        "raw_events_per_s": round(raw_rate),
        "verify_events_per_s": round(verify_rate),
        "ratio": round(verify_rate / raw_rate, 3),
    }


def measure_round(
    service: CertificationService, rows: StoreRows, events: int
) -> dict[str, Any]:
    """Raw read, verify, raw read again: the raw rate is taken over both
    reads, so a slow spell of this shared machine counts on both sides."""
    timings: dict[str, list[float]] = {"raw": [], "verify": []}

    def verify() -> int:
        return verify_store(rows).events

    def raw() -> int:
        return raw_read(service)

    for subject, action in (("raw", raw), ("verify", verify), ("raw", raw)):
        count, seconds = timed(action)
        if count != events:
            msg = f"{subject} read {count} events of {events}"
            raise RuntimeError(msg)
        timings[subject].append(seconds)
    raw_rate = events * len(timings["raw"]) / sum(timings["raw"])
    verify_rate = events / timings["verify"][0]
    return {
        "raw_s": [round(seconds, 2) for seconds in timings["raw"]],
        "verify_s": round(timings["verify"][0], 2),
        "raw_events_per_s": round(raw_rate),
        "verify_events_per_s": round(verify_rate),
        "ratio": round(verify_rate / raw_rate, 3),
    }


def bench_store(
    store: str, events: int, rounds: int, progress: Progress
) -> dict[str, Any]:
    with fresh_store(store) as url:
        service = build_service(Settings(database_url=url))
        try:
            fill_s = fill(service, events, progress)
            progress(f"{store}: wrote {events} events in {fill_s:.0f} s")
            raw_read(service)  # warm the caches, not timed
            rows = store_rows(service, url)
            interleaved = measure_interleaved(service, rows, events)
            progress(f"{store}: page by page: {interleaved}")
            runs = []
            for number in range(1, rounds + 1):
                runs.append(measure_round(service, rows, events))
                progress(f"{store}: whole round {number}: {runs[-1]}")
            rows.close()
        finally:
            service.close()
    return {
        "events": events,
        "fill_s": round(fill_s, 1),
        "interleaved": interleaved,
        "runs": runs,
        "raw_events_per_s": round(
            statistics.median(run["raw_events_per_s"] for run in runs)
        ),
        "verify_events_per_s": round(
            statistics.median(run["verify_events_per_s"] for run in runs)
        ),
        "ratio": round(statistics.median(run["ratio"] for run in runs), 3),
    }


def verdicts(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Judged on the page-by-page measure, the one a busy machine skews least."""
    checks = []
    for store, result in results.items():
        measured = result["interleaved"]
        checks.append(
            {
                "store": store,
                "what": "verify / raw read, page by page",
                "value": measured["ratio"],
                "target": f">= {TARGET_RATIO}",
                "met": measured["ratio"] >= TARGET_RATIO,
            }
        )
        if store == "postgres":
            rate = measured["verify_events_per_s"]
            checks.append(
                {
                    "store": store,
                    "what": "verify events/s, page by page",
                    "value": rate,
                    "target": f">= {TARGET_POSTGRES_EVENTS_PER_S}",
                    "met": rate >= TARGET_POSTGRES_EVENTS_PER_S,
                }
            )
    return checks


def report(document: dict[str, Any]) -> str:
    out = [
        f"bench.verify: {document['events']} events a store; "
        f"nproc {document['machine']['nproc']}, "
        f"PostgreSQL {document['machine']['postgresql_server']}; "
        f"load average at start {document['load_average']['start']}, "
        f"at end {document['load_average']['end']}",
        f"source: commit {document['source']['commit']}",
        "",
        "store     round  raw ev/s  verify ev/s  ratio",
    ]
    for store, result in document["results"].items():
        paged = result["interleaved"]
        out.append(
            f"{store:<8}  pages  {paged['raw_events_per_s']:>8}  "
            f"{paged['verify_events_per_s']:>11}  {paged['ratio']:>5.2f}"
        )
        for number, run in enumerate(result["runs"], start=1):
            out.append(
                f"{store:<8}  {number:>5}  "
                f"{run['raw_events_per_s']:>8}  {run['verify_events_per_s']:>11}  "
                f"{run['ratio']:>5.2f}"
            )
        out.append(
            f"{store:<8}  median {result['raw_events_per_s']:>8}  "
            f"{result['verify_events_per_s']:>11}  {result['ratio']:>5.2f}"
        )
    out.append("")
    out += verdict_lines(document["verdicts"])
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.verify",
        description="certd verify against the raw read of the same events.",
    )
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--events", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--rounds", type=int, default=2, metavar="R")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    args.stores = store_list(parser, args.stores)
    if args.events < 5 or args.rounds < 1:
        parser.error("--events must be at least 5 and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_service_logs("warning")

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    load_at_start = [round(load, 2) for load in os.getloadavg()]
    results = {
        store: bench_store(store, args.events, args.rounds, progress)
        for store in args.stores
    }
    document = {
        "benchmark": "bench.verify",
        "events": args.events,
        "rounds": args.rounds,
        "page_size": PAGE_SIZE,
        "machine": machine(),
        "source": source_state(),
        "load_average": {
            "start": load_at_start,
            "end": [round(load, 2) for load in os.getloadavg()],
        },
        "results": results,
        "verdicts": verdicts(results),
    }
    print(json.dumps(document, indent=2) if args.json else report(document))
    return 0 if all(item["met"] for item in document["verdicts"]) else 1


if __name__ == "__main__":
    sys.exit(main())
