"""``certd``: the one entry point of the service."""

import argparse
import sys
from collections.abc import Sequence
from datetime import date, datetime

import structlog
from pydantic import ValidationError
from tqdm import tqdm

from api.auth import TokenConfigError
from domain.certification import Status, day_of
from domain.clock import FixedClock
from projections.replay import compare, rebuild, swap
from projections.runner import start_in_thread
from projections.status_view import StatusRow
from projections.views import SearchFilters
from scheduler.jobs import start_scheduler
from service.cli_audit import add_audit_verbs, run_read_only
from service.cli_payments import add_payment_verbs, start_payment_consumer
from service.cli_stream import (
    EmbeddedBrokerError,
    add_stream_verbs,
    embedded_broker,
    start_publisher,
)
from service.composition import Runtime, build_app, build_runtime
from service.health_server import MetricsPortError
from service.logs import configure_logging
from service.roles import (
    STOP_TIMEOUT_SECONDS,
    add_metrics_port,
    exit_leaving_work_behind,
    metrics_port,
    projection_worker,
    run_api_role,
    run_role,
    scheduler_worker,
    serve_http,
    start_health_server,
    stop_scheduler,
)
from service.settings import Settings
from service.store import DatabaseUrlError

log = structlog.get_logger(component="certd")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "offline", False):
        # Needs neither settings nor a store: an auditor's own machine.
        return int(args.run(args))
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"certd: invalid settings:\n{error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if getattr(args, "without_store", False):
        return int(args.run(settings, args))
    if getattr(args, "read_only", False):
        # The auditors' verbs: the store opened read-only, nothing built.
        return run_read_only(settings, args)
    pretend_now = getattr(args, "now", None)
    try:
        runtime = build_runtime(
            settings, FixedClock(pretend_now) if pretend_now else None
        )
    except (DatabaseUrlError, TokenConfigError) as error:
        print(f"certd: {error}", file=sys.stderr)
        return 2
    try:
        result: int = args.run(runtime, args)
    except (TokenConfigError, MetricsPortError) as error:
        print(f"certd: {error}", file=sys.stderr)
        return 2
    finally:
        runtime.close()
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certd",
        description="Lifecycle service of the Licensed Model certification.",
    )
    verbs = parser.add_subparsers(required=True, metavar="VERB")

    serve = verbs.add_parser(
        "serve",
        help="run the whole service in one process: the API, projections, "
        "publisher and payment consumer (with a broker) and scheduler",
    )
    _add_http_address(serve)
    serve.add_argument(
        "--embedded-broker",
        action="store_true",
        help="start the bundled Kafka-protocol broker (in memory, for local use) "
        "and publish to it",
    )
    serve.set_defaults(run=_serve)

    api = verbs.add_parser(
        "api",
        help="run only the HTTP API (no projections, publisher, consumer or "
        "scheduler), until SIGTERM",
    )
    _add_http_address(api)
    api.set_defaults(run=_api)

    project = verbs.add_parser(
        "project", help="run only the projection runner, until SIGTERM"
    )
    add_metrics_port(project)
    project.set_defaults(run=_project)

    replay = verbs.add_parser(
        "replay",
        help="rebuild the status views from the first event and compare them "
        "with the live ones; exit 1 on any difference",
    )
    replay.add_argument(
        "--swap",
        action="store_true",
        help="then replace the live views with the rebuilt ones",
    )
    replay.set_defaults(run=_replay)

    schedule = verbs.add_parser(
        "schedule",
        help="run the re-evaluation scheduler: a pass now, then every "
        "CERTD_SCHEDULER_INTERVAL seconds, until SIGTERM",
    )
    schedule.add_argument(
        "--once", action="store_true", help="run one pass, print what it raised"
    )
    schedule.add_argument(
        "--now",
        type=_aware_instant,
        help="pretend it is this instant (ISO 8601 with a timezone); with --once",
    )
    add_metrics_port(schedule)
    schedule.set_defaults(run=_schedule)

    listing = verbs.add_parser("list", help="print the status views as a table")
    listing.add_argument("--status", choices=[status.value for status in Status])
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    listing.set_defaults(run=_list)

    add_stream_verbs(verbs)
    add_payment_verbs(verbs)
    add_audit_verbs(verbs, _aware_instant)
    return parser


def _add_http_address(verb: argparse.ArgumentParser) -> None:
    """Where the API listens, and the metrics beside it."""
    verb.add_argument("--host", default="127.0.0.1")
    verb.add_argument("--port", type=int, default=8000)
    add_metrics_port(verb)


def _serve(runtime: Runtime, args: argparse.Namespace) -> int:
    if not args.embedded_broker:
        return _serve_with(runtime, args)
    try:
        with embedded_broker(runtime.settings) as settings:
            # Everything started from here on finds the broker in the settings.
            runtime.settings = settings
            return _serve_with(runtime, args)
    except EmbeddedBrokerError as error:
        print(f"certd: {error}", file=sys.stderr)
        return 2


def _serve_with(runtime: Runtime, args: argparse.Namespace) -> int:
    """Every part in this process: the API, with the others in threads."""
    publisher = start_publisher(runtime)
    app = build_app(runtime, publisher)
    payments = start_payment_consumer(runtime)
    thread, stopping = start_in_thread(runtime.runner)
    scheduler = start_scheduler(
        runtime.scheduler_pass, runtime.settings.scheduler_interval, runtime.metrics
    )
    health = None
    scheduler_finished = True
    try:
        health = start_health_server(
            "serve", runtime, lambda: True, metrics_port(runtime, args)
        )
        serve_http(app, args.host, args.port)
    finally:
        scheduler_finished = stop_scheduler(scheduler, STOP_TIMEOUT_SECONDS)
        stopping.set()
        thread.join(timeout=10)
        if publisher is not None:
            publisher.stop()
        if payments is not None:
            payments.stop()
        if health is not None:
            health.stop()
    if not scheduler_finished:
        exit_leaving_work_behind("serve", 0)
    return 0


def _api(runtime: Runtime, args: argparse.Namespace) -> int:
    """The API alone: it reads the views that ``certd project`` keeps.

    Its /readyz asks the store, not the broker, even with one configured:
    this process never uses the broker, and taking every API replica out of
    the load balancer while Kafka is away would refuse commands that the
    publisher relays anyway once it is back.
    """
    return run_api_role(
        runtime, build_app(runtime), args.host, args.port, metrics_port(runtime, args)
    )


def _project(runtime: Runtime, args: argparse.Namespace) -> int:
    return run_role("project", runtime, projection_worker, metrics_port(runtime, args))


def _replay(runtime: Runtime, args: argparse.Namespace) -> int:
    target = runtime.views.position()
    with tqdm(total=target, unit="event", desc="rebuilding", file=sys.stderr) as bar:
        rebuilt, position = rebuild(
            runtime.service,
            runtime.views,
            runtime.settings.reevaluation_lead_days,
            progress=bar.update,
        )
    report = compare(runtime.views, rebuilt, position)
    for difference in report.differences:
        print(difference)
    print(
        f"rebuilt {report.rows} certifications up to position {position}: "
        f"{len(report.differences)} differences, "
        f"{report.moved_on} rows moved on since and not compared"
    )
    if args.swap:
        swap(runtime.views, rebuilt)
        print("the live views now hold the rebuilt rows")
        return 0
    rebuilt.drop()
    return 1 if report.differences else 0


def _schedule(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.now and not args.once:
        print("certd: --now pretends for one pass only; add --once", file=sys.stderr)
        return 2
    if args.once:
        report = runtime.scheduler_pass.run()
        for certification_id, fact in report.raised:
            print(f"{fact} {certification_id}")
        print(
            f"pass for {report.today}: raised {len(report.raised)}, "
            f"skipped {report.skipped} already raised elsewhere"
        )
        return 0
    return run_role("schedule", runtime, scheduler_worker, metrics_port(runtime, args))


def _aware_instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not an ISO 8601 time, e.g. 2027-01-31T09:00:00+00:00"
        raise argparse.ArgumentTypeError(msg) from None
    if instant.tzinfo is None:
        msg = f"{text!r} has no timezone; add one, e.g. +00:00 or Z"
        raise argparse.ArgumentTypeError(msg)
    return instant


def _list(runtime: Runtime, args: argparse.Namespace) -> int:
    filters = SearchFilters(status=Status(args.status) if args.status else None)
    today = day_of(runtime.service.clock.now())
    rows, _ = runtime.views.search(filters, today, args.limit)
    if args.json:
        for row in rows:
            print(row.model_dump_json())
        return 0
    print(_table(rows, today))
    return 0


def _table(rows: list[StatusRow], today: date) -> str:
    header = ("id", "organisation", "status", "tier", "certified", "valid until")
    lines = [
        (
            str(row.id),
            row.organisation_name[:30],
            row.status.value,
            row.tier.value,
            "yes" if row.is_certified(today) else "no",
            row.valid_until.isoformat() if row.valid_until else "-",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(6)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *lines]
    )


if __name__ == "__main__":
    sys.exit(main())
