"""The API role's /healthz on its metrics port follows uvicorn: 503 until the
server listens with the app started, 200 while it serves, 503 once it stops
or when it could not listen at all. The server and the health endpoint run
here in threads; tests/deploy/test_roles.py runs the whole role."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpx
import pytest
from fastapi import FastAPI

from service.embedded_broker import free_port
from service.health_server import HealthServer
from service.metrics import Metrics
from service.roles import HttpServer
from tests.deploy.roles import wait_until

pytestmark = pytest.mark.timeout(60)


@contextmanager
def api_health(server: HttpServer) -> Iterator[HealthServer]:
    """The health endpoint the api role serves beside ``server``."""
    health = HealthServer("api", "127.0.0.1", 0, server.is_serving, Metrics())
    health.start()
    try:
        yield health
    finally:
        health.stop()


def health_status(health: HealthServer) -> int:
    url = f"http://127.0.0.1:{health.port}/healthz"
    return httpx.get(url, timeout=5, trust_env=False).status_code


def serve_in_thread(server: HttpServer) -> threading.Thread:
    def serve() -> None:
        with suppress(SystemExit):  # how uvicorn ends when it cannot listen
            server.serve()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_api_health_is_503_before_uvicorn_serves_200_while_it_does_503_after() -> None:
    server = HttpServer(FastAPI(), "127.0.0.1", free_port())
    with api_health(server) as health:
        before = health_status(health)
        thread = serve_in_thread(server)
        wait_until(lambda: health_status(health) == 200, 15, "uvicorn to serve")
        server.exit()
        thread.join(15)
        after = health_status(health)

    assert before == 503
    assert not thread.is_alive()
    assert after == 503


def test_api_health_stays_503_when_uvicorn_cannot_listen() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HttpServer(FastAPI(), "127.0.0.1", taken.getsockname()[1])
        with api_health(server) as health:
            thread = serve_in_thread(server)
            thread.join(15)
            status = health_status(health)

    assert not thread.is_alive()
    assert not server.started
    assert status == 503
