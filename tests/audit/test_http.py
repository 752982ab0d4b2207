"""The auditors' HTTP routes on a real server: the state at an instant, and
read-only access for the auditor over every route of one table."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.api.server import Api, ServerProcess
from tests.api.test_access import CALLERS, TABLE, Route, send
from tests.databases import fresh_postgres_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """A real ``certd serve`` for the module, on each store."""
    with _store(request.param, tmp_path_factory.mktemp("store")) as url:
        server = ServerProcess(url, tmp_path_factory.mktemp("server"))
        server.start()
        steps = Api(server)
        try:
            yield steps
        finally:
            steps.close()
            server.stop()


@contextmanager
def _store(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'certd.sqlite'}"
        return
    with fresh_postgres_database("certd_audit") as url:
        yield url


def state(api: Api, cid: str, as_of: str, role: str = "auditor") -> dict[str, object]:
    answer = api.clients[role].get(
        f"/v1/certifications/{cid}/state", params={"as_of": as_of}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_the_state_at_each_event_instant_and_between(api: Api) -> None:
    cid = api.bring_to("in_review")
    instants = [
        datetime.fromisoformat(entry["occurred_at"]) for entry in api.history(cid)
    ]

    at_each = [state(api, cid, instant.isoformat()) for instant in instants]
    just_before_second = state(
        api, cid, (instants[1] - timedelta(microseconds=1)).isoformat()
    )

    assert [view["status"] for view in at_each] == [
        "applied",
        "submitted",
        "in_review",
    ]
    assert [view["version"] for view in at_each] == [1, 2, 3]
    assert just_before_second["status"] == "applied"
    assert state(api, cid, instants[2].isoformat(), "operator") == at_each[2]


def test_an_instant_before_the_application_is_not_found(api: Api) -> None:
    cid = api.start()
    (started,) = api.history(cid)
    before = datetime.fromisoformat(started["occurred_at"]) - timedelta(seconds=1)

    answer = api.auditor.get(
        f"/v1/certifications/{cid}/state", params={"as_of": before.isoformat()}
    )

    assert answer.status_code == 404, answer.text


@pytest.mark.parametrize("as_of", ["2027-01-31T09:00:00", "yesterday", "2027-13-01"])
def test_an_unreadable_or_naive_instant_is_refused_naming_as_of(
    api: Api, as_of: str
) -> None:
    cid = api.start()

    answer = api.auditor.get(f"/v1/certifications/{cid}/state", params={"as_of": as_of})

    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "as_of"


def test_a_missing_instant_is_refused_naming_as_of(api: Api) -> None:
    cid = api.start()

    answer = api.auditor.get(f"/v1/certifications/{cid}/state")

    assert answer.status_code == 422, answer.text
    assert "as_of" in answer.json()["detail"]


def test_the_history_shows_what_the_contract_lists(api: Api) -> None:
    cid = api.bring_to("in_review")

    history = api.history(cid)

    assert all(
        set(entry) == {"type", "version", "occurred_at", "data", "actor"}
        for entry in history
    )
    assert history[2]["data"]["currency"] == "USD"


AUDITOR = CALLERS.index("auditor")
# HEAD reads as GET does; every other method is a command.
READS = {"GET", "HEAD"}
WRITES = [route for route in TABLE if route.method not in READS]


def test_the_access_table_refuses_the_auditor_every_command() -> None:
    assert WRITES, "the table lists the commands"
    assert {route.statuses[AUDITOR] for route in WRITES} == {403}


@pytest.mark.parametrize("route", WRITES, ids=lambda route: route.name)
def test_every_command_refuses_the_auditor_and_stores_nothing(
    api: Api, route: Route
) -> None:
    cid = api.start()
    before = api.anonymous.get("/readyz").json()["store_position"]

    answer = send(api, route, cid, api.server.bearer(api.server.tokens["auditor"]))

    assert answer.status_code == 403, answer.text
    assert api.anonymous.get("/readyz").json()["store_position"] == before
