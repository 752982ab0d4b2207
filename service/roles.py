"""Run the parts of the service, alone (one role a process) or together.

Every role works in a background thread while the main thread waits for
SIGTERM or SIGINT, and, with a metrics port, serves ``/healthz`` and
``/metrics`` beside it. On the signal the role's worker is stopped: it
finishes the batch or message in hand or abandons it, and either is safe,
because each worker moves its tracked position (or commits its offset) only
after the work before it is durably done. A worker that dies ends the
process with status 1, so that the orchestrator restarts it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
import uvicorn
from apscheduler.schedulers.base import BaseScheduler
from fastapi import FastAPI

from consumers.payments import PaymentConsumerThread
from projections.publisher import PublisherThread
from projections.runner import start_in_thread
from scheduler.jobs import start_scheduler
from service.composition import build_payment_consumer, build_publisher
from service.health_server import HealthServer, MetricsPortError

if TYPE_CHECKING:
    from service.composition import Runtime

log = structlog.get_logger(component="certd.roles")

# How often the main thread looks whether the worker is still alive.
WATCH_INTERVAL_SECONDS = 0.5
# How long a stopping worker may take over the work in hand.
STOP_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class Worker:
    """A role's work running in the background, and how to end it.

    ``stop`` waits at most STOP_TIMEOUT_SECONDS and says whether the work in
    hand ended within them.
    """

    is_alive: Callable[[], bool]
    stop: Callable[[], bool]


def run_role(
    role: str,
    runtime: Runtime,
    start: Callable[[Runtime], Worker],
    metrics_port: int | None,
) -> int:
    """Run one role until SIGTERM or SIGINT; 0 when stopped, 1 if it died."""
    stopping = stop_on_signals()
    worker = start(runtime)
    try:
        health = start_health_server(role, runtime, worker.is_alive, metrics_port)
    except MetricsPortError:
        worker.stop()
        raise
    log.info("role_started", role=role)
    status = watch(role, worker, stopping)
    finished = worker.stop()
    if health is not None:
        health.stop()
    log.info("role_stopped", role=role, status=status)
    if not finished:
        exit_leaving_work_behind(role, status)
    return status


def watch(role: str, worker: Worker, stopping: threading.Event) -> int:
    """Wait for the signal (0) or for the worker to die (1)."""
    while not stopping.wait(WATCH_INTERVAL_SECONDS):
        if not worker.is_alive():
            log.error("role_worker_died", role=role)
            return 1
    return 0


def exit_leaving_work_behind(role: str, status: int) -> None:
    """End the process now, though a thread still works: the interpreter's
    normal exit would wait for it (a thread pool's worker, say) without end."""
    log.warning("role_work_abandoned", role=role, waited_seconds=STOP_TIMEOUT_SECONDS)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM or SIGINT sets, instead of ending the process."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    return stopping


def start_health_server(
    role: str,
    runtime: Runtime,
    is_alive: Callable[[], bool],
    port: int | None,
) -> HealthServer | None:
    """Serve the role's /healthz and /metrics when a port is configured."""
    if port is None:
        return None
    server = HealthServer(
        role, runtime.settings.metrics_host, port, is_alive, runtime.metrics
    )
    server.start()
    return server


def add_metrics_port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /healthz and /metrics on this port (default: "
        "CERTD_METRICS_PORT; none when neither is set)",
    )


def metrics_port(runtime: Runtime, args: argparse.Namespace) -> int | None:
    """The port of ``--metrics-port``, else of the settings, else none."""
    port: int | None = getattr(args, "metrics_port", None)
    return port if port is not None else runtime.settings.metrics_port


# The workers of the roles.


def projection_worker(runtime: Runtime) -> Worker:
    """The projection runner. Each batch writes its rows and the views' new
    position in one transaction: a batch stopped half-way rolls back whole,
    and the next runner projects it again from the position."""
    thread, stopping = start_in_thread(runtime.runner)

    def stop() -> bool:
        stopping.set()
        thread.join(STOP_TIMEOUT_SECONDS)
        return not thread.is_alive()

    return Worker(thread.is_alive, stop)


def publisher_worker(runtime: Runtime) -> Worker:
    """The event publisher. It moves its position only after the broker
    acknowledged the whole batch, so a batch abandoned on stopping is sent
    again by the next publisher: repeated, never lost."""
    thread = PublisherThread(build_publisher(runtime.settings, runtime.service))
    thread.start()

    def stop() -> bool:
        thread.stop(STOP_TIMEOUT_SECONDS)
        return not thread.is_alive

    return Worker(lambda: thread.is_alive, stop)


def payment_worker(runtime: Runtime) -> Worker:
    """The payment consumer. An offset is committed only after its message was
    handled, so a message abandoned on stopping is read again by whichever
    consumer of the group gets its partition."""
    thread = PaymentConsumerThread(
        build_payment_consumer(runtime.settings, runtime.service, runtime.metrics)
    )
    thread.start()

    def stop() -> bool:
        thread.stop(STOP_TIMEOUT_SECONDS)
        return not thread.is_alive

    return Worker(lambda: thread.is_alive, stop)


def scheduler_worker(runtime: Runtime) -> Worker:
    """The scheduler. Stopping waits for the pass in hand, up to
    STOP_TIMEOUT_SECONDS; a pass cut short is no loss either, as the
    scheduler keeps no state: the next pass raises whatever this one did not."""
    scheduler = start_scheduler(
        runtime.scheduler_pass, runtime.settings.scheduler_interval, runtime.metrics
    )
    return Worker(
        lambda: bool(scheduler.running),
        lambda: stop_scheduler(scheduler, STOP_TIMEOUT_SECONDS),
    )


def stop_scheduler(scheduler: BaseScheduler, timeout: float) -> bool:
    """Shut the scheduler down; say whether its pass in hand ended within
    ``timeout`` seconds (its shutdown alone would wait for it without end)."""
    if not scheduler.running:
        return True
    shutting_down = threading.Thread(
        target=scheduler.shutdown, name="scheduler-shutdown", daemon=True
    )
    shutting_down.start()
    shutting_down.join(timeout)
    return not shutting_down.is_alive()


# The HTTP API.

# uvicorn's exit status when it could not start (uvicorn.run's own).
HTTP_STARTUP_FAILURE = 3


class HttpServer:
    """uvicorn serving the app, and whether it is serving."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                access_log=False,
                log_config=None,
                timeout_graceful_shutdown=10,
            )
        )

    @property
    def started(self) -> bool:
        """It listened, with the app started up (and may have stopped since)."""
        return self._server.started

    def is_serving(self) -> bool:
        """Listening with the app started up, and not shutting down."""
        return self.started and not self._server.should_exit

    def serve(self) -> None:
        """Serve until SIGTERM or SIGINT (from the main thread) or ``exit``;
        requests in hand get 10 s. SystemExit when it cannot start."""
        self._server.run()

    def exit(self) -> None:
        self._server.should_exit = True


def serve_http(app: FastAPI, host: str, port: int) -> None:
    """Serve the API until SIGTERM or SIGINT; requests in hand get 10 s."""
    serve_until_signal(HttpServer(app, host, port))


def serve_until_signal(server: HttpServer) -> None:
    """Serve from the main thread until SIGTERM or SIGINT; exit with status
    HTTP_STARTUP_FAILURE when the server did not start."""
    # uvicorn raises SIGTERM again once it has shut down; with the default
    # handler that would end the process before the caller stopped its parts.
    signal.signal(signal.SIGTERM, lambda *_: None)
    log.info("serving", host=server.host, port=server.port)
    server.serve()
    if not server.started:
        sys.exit(HTTP_STARTUP_FAILURE)


def run_api_role(
    runtime: Runtime, app: FastAPI, host: str, port: int, metrics_port: int | None
) -> int:
    """The API alone; its /healthz on the metrics port answers 200 only while
    uvicorn serves the app (503 before it listens, and once it stops)."""
    server = HttpServer(app, host, port)
    health = start_health_server("api", runtime, server.is_serving, metrics_port)
    try:
        serve_until_signal(server)
    finally:
        if health is not None:
            health.stop()
    return 0
