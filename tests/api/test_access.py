"""Who may do what: every route against every role, from one table."""

import base64
from collections.abc import Callable
from typing import Any, NamedTuple

import httpx
import pytest

from tests.api.server import ROLES, Api
from tests.factories import application_body, submission_body

REASON = {"reason": "checked by the access tests"}
PAYMENT = {"kind": "submission_fee", "amount_usd": "150", "reference": "acc-1"}
ANSWER = {"request_id": "r-1", "answers": ["We do."]}
DECISION = {"outcome": "approved", "reason": "fine"}
QUESTIONS = {"questions": ["Who owns the archive?"]}


class Route(NamedTuple):
    method: str
    path: str
    roles: str
    body: dict[str, Any] | None

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


ONE = "/v1/certifications/{id}"

# Every route behind a token, the roles that may use it (CONTRACT.md, "HTTP
# API"), and a body that fits it.
ACCESS = [
    Route("POST", "/v1/certifications", "applicant operator", application_body()),
    Route("POST", f"{ONE}/submission", "applicant operator", submission_body()),
    Route("POST", f"{ONE}/payments", "billing operator", PAYMENT),
    Route("POST", f"{ONE}/info-requests", "operator", QUESTIONS),
    Route("POST", f"{ONE}/info-responses", "applicant operator", ANSWER),
    Route("POST", f"{ONE}/decision", "operator", DECISION),
    Route("POST", f"{ONE}/suspension", "operator", REASON),
    Route("POST", f"{ONE}/reinstatement", "operator", REASON),
    Route("POST", f"{ONE}/revocation", "operator", REASON),
    Route("POST", f"{ONE}/withdrawal", "applicant operator", REASON),
    Route("GET", "/v1/certifications", "operator auditor", None),
    Route("GET", ONE, "applicant operator auditor", None),
    Route("GET", f"{ONE}/history", "operator auditor", None),
    Route("GET", f"{ONE}/state?as_of=2030-01-01T00:00:00Z", "operator auditor", None),
    Route("GET", "/v1/stats", "operator auditor", None),
]
ACCESS_WITHOUT_QUERIES = [
    route._replace(path=route.path.partition("?")[0]) for route in ACCESS
]
PUBLIC = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/v1/registry")]


def send(api: Api, route: Route, cid: str, headers: dict[str, str]) -> httpx.Response:
    path = route.path.format(id=cid)
    return api.anonymous.request(route.method, path, json=route.body, headers=headers)


def assert_unauthenticated(answer: httpx.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["detail"]
    assert answer.headers["WWW-Authenticate"] == "Bearer"


CASES = [
    pytest.param(route, role, id=f"{route.name} {role}")
    for route in ACCESS
    for role in ROLES
]


@pytest.mark.parametrize(("route", "role"), CASES)
def test_each_role_may_use_only_its_routes(api: Api, route: Route, role: str) -> None:
    cid = api.start()
    headers = api.server.bearer(api.server.tokens[role])

    answer = send(api, route, cid, headers)

    if role in route.roles.split():
        assert answer.status_code not in {401, 403}, answer.text
        assert answer.status_code < 500, answer.text
    else:
        assert answer.status_code == 403, answer.text
        assert role in answer.json()["detail"]
        assert api.event_types(cid) == ["ApplicationStarted"]


def test_the_table_names_every_route_the_server_serves(api: Api) -> None:
    schema = api.anonymous.get("/openapi.json").json()

    served = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }

    tabled = {
        (route.method, route.path.replace("{id}", "{certification_id}"))
        for route in ACCESS_WITHOUT_QUERIES
    }
    assert served == tabled | set(PUBLIC)


ROUTES = [pytest.param(route, id=route.name) for route in ACCESS]


@pytest.mark.parametrize("route", ROUTES)
def test_a_request_without_a_token_is_unauthenticated(api: Api, route: Route) -> None:
    cid = api.start()

    answer = send(api, route, cid, headers={})

    assert_unauthenticated(answer)
    assert api.event_types(cid) == ["ApplicationStarted"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_request_with_an_unknown_token_is_unauthenticated(
    api: Api, route: Route
) -> None:
    cid = api.start()
    headers = api.server.bearer("not-a-token-anyone-was-given")

    answer = send(api, route, cid, headers)

    assert_unauthenticated(answer)
    assert api.event_types(cid) == ["ApplicationStarted"]


@pytest.mark.parametrize("route", ROUTES)
def test_a_request_is_authenticated_before_its_id_is_read(
    api: Api, route: Route
) -> None:
    answer = send(api, route, "not-a-uuid", headers={})

    assert_unauthenticated(answer)


@pytest.mark.parametrize("route", ROUTES)
def test_a_role_is_checked_before_the_id_is_read(api: Api, route: Route) -> None:
    outsider = next(role for role in ROLES if role not in route.roles.split())
    headers = api.server.bearer(api.server.tokens[outsider])

    answer = send(api, route, "not-a-uuid", headers)

    assert answer.status_code == 403, answer.text


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"operator:{token}".encode()).decode()


WRONG_SCHEMES: dict[str, Callable[[str], str]] = {
    "basic": basic,
    "token": lambda token: f"Token {token}",
    "no scheme": lambda token: token,
    "bearer without a token": lambda token: "Bearer",
}


@pytest.mark.parametrize("scheme", WRONG_SCHEMES)
def test_a_token_sent_with_another_scheme_is_unauthenticated(
    api: Api, scheme: str
) -> None:
    cid = api.start()
    token = api.server.tokens["operator"]
    headers = {"Authorization": WRONG_SCHEMES[scheme](token)}

    answer = api.anonymous.get(f"/v1/certifications/{cid}", headers=headers)

    assert_unauthenticated(answer)


def test_the_scheme_name_is_not_case_sensitive(api: Api) -> None:
    cid = api.start()
    headers = {"Authorization": f"bearer {api.server.tokens['auditor']}"}

    answer = api.anonymous.get(f"/v1/certifications/{cid}", headers=headers)

    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("method", "path"), PUBLIC)
def test_health_and_readiness_need_no_token(api: Api, method: str, path: str) -> None:
    answer = api.anonymous.request(method, path)

    assert answer.status_code == 200, answer.text


def test_readiness_tells_the_store_position(api: Api) -> None:
    api.start()

    ready = api.anonymous.get("/readyz").json()

    assert ready["status"] == "ready"
    assert ready["store_position"] >= 1
