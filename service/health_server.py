"""A role's own small HTTP endpoint: ``/healthz`` and ``/metrics``.

The roles without an HTTP API (``project``, ``publish``, ``consume``,
``schedule``) have nothing else an orchestrator or Prometheus could ask, and
the API role offers it too, so that Prometheus scrapes every role the same
way, on a port that is never published outside the deployment and so needs
no token.

``/healthz`` is liveness: 200 while the role's worker runs (for the API,
while uvicorn serves the app), 503 before it started and once it has stopped
or died. It asks neither the database nor the broker: a restart would not
bring those back, and the worker already waits for them (its lag shows in
``/metrics``; the API's ``/readyz`` asks the store).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from service.metrics import Metrics

log = structlog.get_logger(component="certd.health")


class MetricsPortError(RuntimeError):
    """The health and metrics endpoint cannot listen where it was told to."""


class HealthServer:
    """Serve ``/healthz`` and ``/metrics`` from a daemon thread."""

    def __init__(
        self,
        role: str,
        host: str,
        port: int,
        is_alive: Callable[[], bool],
        metrics: Metrics,
    ) -> None:
        handler = _handler_class(role, is_alive, metrics)
        self.role = role
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            msg = (
                f"the metrics endpoint cannot listen on {host}:{port} "
                f"({error.strerror}); set CERTD_METRICS_PORT or --metrics-port "
                "to a free port"
            )
            raise MetricsPortError(msg) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose, for port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("health_server_started", role=self.role, port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_class(
    role: str, is_alive: Callable[[], bool], metrics: Metrics
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                alive = is_alive()
                body = {"status": "ok" if alive else "down", "role": role}
                self._send(200 if alive else 503, "application/json", _json(body))
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.exposition())
            else:
                self._send(404, "application/json", _json({"detail": "not found"}))

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Say nothing per request: scrapes come every few seconds, and
            http.server would write plain lines among the JSON ones."""

    return Handler


def _json(body: dict[str, str]) -> bytes:
    return json.dumps(body).encode()
