"""Fixtures of the HTTP tests: a real ``certd serve`` on each store.

Tests that only add certifications of their own share one server per module
and store (``api``); tests that stop and start the server get their own
(``own_server``), on the function-scoped ``database_url`` store.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.server import Api, ServerProcess
from tests.databases import fresh_postgres_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty store for one module: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'certd.sqlite'}"
        return
    with fresh_postgres_database("certd_api") as url:
        yield url


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    process = ServerProcess(module_database_url, tmp_path_factory.mktemp("server"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[Api]:
    steps = Api(server)
    yield steps
    steps.close()


@pytest.fixture
def own_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, which it may stop and start again."""
    process = ServerProcess(database_url, tmp_path)
    process.start()
    yield process
    process.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "server_answers(*statuses): 5xx statuses a test asks its server for",
    )


@pytest.fixture(autouse=True)
def _server_never_fails(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which its server logged an error or answered 5xx.

    A test marked ``server_answers(503)`` may see that status, and only that.
    """
    servers = [
        request.getfixturevalue(name)
        for name in ("server", "own_server")
        if name in request.fixturenames
    ]
    marker = request.node.get_closest_marker("server_answers")
    expected = frozenset(marker.args) if marker else frozenset()
    offsets = [(process, process.log_size()) for process in servers]
    yield
    for process, offset in offsets:
        failures = process.server_errors_since(offset, expected)
        assert not failures, "the server failed:\n" + "\n".join(failures)
