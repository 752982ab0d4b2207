"""Who may do what: every route and verb against every role, a missing token
and an unknown one, with the expected status of each from one table.

The table must name exactly the routes the application serves, read from its
own routes rather than its OpenAPI document, which leaves out the document
itself and the pages that show it. The metrics port of every role has a
table of its own.
"""

import base64
from collections.abc import Callable
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from service.composition import build_app, build_runtime
from service.health_server import HealthServer
from service.metrics import Metrics
from service.settings import Settings
from tests.api.server import ROLES, Api
from tests.factories import application_body, submission_body

APPLICATION = application_body()
SUBMISSION = submission_body()
REASON = {"reason": "checked by the access tests"}
PAYMENT = {"kind": "submission_fee", "amount_usd": "150", "reference": "acc-1"}
ANSWER = {"request_id": "r-1", "answers": ["We do."]}
DECISION = {"outcome": "approved", "reason": "fine"}
QUESTIONS = {"questions": ["Who owns the archive?"]}

# The callers of each row: the four roles, then no token and an unknown token.
CALLERS = (*ROLES, "no token", "unknown token")


class Route(NamedTuple):
    """A route, a body that fits it, and what each caller gets from it when it
    is sent about a certification just applied for."""

    method: str
    path: str
    body: dict[str, Any] | None
    statuses: tuple[int, int, int, int, int, int]  # in the order of CALLERS

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def route(self) -> str:
        """The path without its query."""
        return self.path.partition("?")[0]

    def expected(self, caller: str) -> int:
        return self.statuses[CALLERS.index(caller)]


ONE = "/v1/certifications/{id}"

# The one table (CONTRACT.md, "HTTP API"). A role with the right gets what the
# command does on an applied certification: 409 for a command out of turn.
# The statuses are in the order of CALLERS: applicant, operator, billing,
# auditor, no token, unknown token.
TABLE = [
    Route("POST", "/v1/certifications", APPLICATION, (201, 201, 403, 403, 401, 401)),
    Route("POST", f"{ONE}/submission", SUBMISSION, (200, 200, 403, 403, 401, 401)),
    Route("POST", f"{ONE}/payments", PAYMENT, (403, 409, 409, 403, 401, 401)),
    Route("POST", f"{ONE}/info-requests", QUESTIONS, (403, 409, 403, 403, 401, 401)),
    Route("POST", f"{ONE}/info-responses", ANSWER, (409, 409, 403, 403, 401, 401)),
    Route("POST", f"{ONE}/decision", DECISION, (403, 409, 403, 403, 401, 401)),
    Route("POST", f"{ONE}/suspension", REASON, (403, 409, 403, 403, 401, 401)),
    Route("POST", f"{ONE}/reinstatement", REASON, (403, 409, 403, 403, 401, 401)),
    Route("POST", f"{ONE}/revocation", REASON, (403, 200, 403, 403, 401, 401)),
    Route("POST", f"{ONE}/withdrawal", REASON, (200, 200, 403, 403, 401, 401)),
    Route("GET", "/v1/certifications", None, (403, 200, 403, 200, 401, 401)),
    Route("GET", ONE, None, (200, 200, 403, 200, 401, 401)),
    Route("GET", f"{ONE}/history", None, (403, 200, 403, 200, 401, 401)),
    Route(
        "GET",
        f"{ONE}/state?as_of=2030-01-01T00:00:00Z",
        None,
        (403, 200, 403, 200, 401, 401),
    ),
    Route("GET", "/v1/stats", None, (403, 200, 403, 200, 401, 401)),
    Route("GET", "/v1/registry", None, (200, 200, 200, 200, 200, 200)),
    Route("GET", "/healthz", None, (200, 200, 200, 200, 200, 200)),
    Route("GET", "/readyz", None, (200, 200, 200, 200, 200, 200)),
    # Counts of the business: for operations staff, not the public.
    Route("GET", "/metrics", None, (403, 200, 403, 403, 401, 401)),
    # The service's description and the pages that show it are public, as for
    # any service API: they say nothing a client of the contract does not know.
    *(
        Route(verb, path, None, (200, 200, 200, 200, 200, 200))
        for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
        for verb in ("GET", "HEAD")
    ),
]
GUARDED = [route for route in TABLE if 401 in route.statuses]
UNKNOWN_TOKEN = "not-a-token-anyone-was-given"
VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def headers_of(api: Api, caller: str) -> dict[str, str]:
    if caller == "no token":
        return {}
    if caller == "unknown token":
        return api.server.bearer(UNKNOWN_TOKEN)
    return api.server.bearer(api.server.tokens[caller])


def send(api: Api, route: Route, cid: str, headers: dict[str, str]) -> httpx.Response:
    path = route.path.format(id=cid)
    return api.anonymous.request(route.method, path, json=route.body, headers=headers)


def assert_json_refusal(answer: httpx.Response) -> None:
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["detail"]


CASES = [
    pytest.param(route, caller, id=f"{route.name} {caller}")
    for route in TABLE
    for caller in CALLERS
]


@pytest.mark.parametrize(("route", "caller"), CASES)
def test_each_caller_gets_the_status_the_table_gives_it(
    api: Api, route: Route, caller: str
) -> None:
    cid = api.start()

    answer = send(api, route, cid, headers_of(api, caller))

    assert answer.status_code == route.expected(caller), answer.text
    if answer.status_code >= 400:
        assert_json_refusal(answer)
    if answer.status_code == 401:
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    if answer.status_code == 403:
        assert caller in answer.json()["detail"]
    if answer.status_code in {401, 403, 409}:
        assert api.event_types(cid) == ["ApplicationStarted"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The verbs of each path the application of ``certd serve`` serves, read
    from its routes, by path."""
    store = tmp_path_factory.mktemp("routes") / "certd.sqlite"
    runtime = build_runtime(Settings(database_url=f"sqlite:///{store}"))
    try:
        routes = list(iter_route_contexts(build_app(runtime).routes))
    finally:
        runtime.close()
    verbs: dict[str, set[str]] = {}
    for route in routes:
        assert route.path is not None, route
        verbs.setdefault(route.path, set()).update(route.methods or ())
    return verbs


def test_the_table_names_every_route_the_server_serves(
    served: dict[str, set[str]],
) -> None:
    tabled = {
        (route.method, route.route.replace("{id}", "{certification_id}"))
        for route in TABLE
    }

    assert {(verb, path) for path, verbs in served.items() for verb in verbs} == (
        tabled
    )


@pytest.mark.parametrize("caller", CALLERS)
def test_a_verb_a_route_does_not_serve_is_not_allowed(
    api: Api, served: dict[str, set[str]], caller: str
) -> None:
    cid = api.start()
    unserved = [
        (verb, path)
        for path, verbs in served.items()
        for verb in VERBS
        if verb not in verbs
    ]

    answers = {
        (verb, path): api.anonymous.request(
            verb, path.format(certification_id=cid), headers=headers_of(api, caller)
        )
        for verb, path in unserved
    }

    assert {verb for verb, _ in unserved} == set(VERBS)
    for (verb, path), answer in answers.items():
        assert answer.status_code == 405, (verb, path, answer.text)
        # Starlette names the verbs of the first route of the path it matched,
        # which for a path of two routes is one of the two.
        allowed = set(answer.headers["allow"].split(", "))
        assert allowed, (verb, path)
        assert allowed <= served[path], (verb, path, allowed)
        if verb == "HEAD":  # an answer to HEAD has no body
            assert answer.headers["content-type"] == "application/json"
        else:
            assert_json_refusal(answer)
    assert api.event_types(cid) == ["ApplicationStarted"]


@pytest.mark.parametrize("route", [pytest.param(r, id=r.name) for r in GUARDED])
def test_a_request_is_authenticated_before_its_id_is_read(
    api: Api, route: Route
) -> None:
    answer = send(api, route, "not-a-uuid", headers={})

    assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("route", [pytest.param(r, id=r.name) for r in GUARDED])
def test_a_role_is_checked_before_the_id_is_read(api: Api, route: Route) -> None:
    outsider = next(role for role in ROLES if route.expected(role) == 403)

    answer = send(api, route, "not-a-uuid", headers_of(api, outsider))

    assert answer.status_code == 403, answer.text


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"operator:{token}".encode()).decode()


WRONG_SCHEMES: dict[str, Callable[[str], str]] = {
    "basic": basic,
    "token": lambda token: f"Token {token}",
    "no scheme": lambda token: token,
    "bearer without a token": lambda token: "Bearer",
    "a token with one character changed": lambda token: f"Bearer {token[:-1]}#",
    "a token with more after it": lambda token: f"Bearer {token}x",
    "a prefix of the token": lambda token: f"Bearer {token[:8]}",
}


@pytest.mark.parametrize("scheme", WRONG_SCHEMES)
def test_a_token_sent_wrongly_is_unauthenticated(api: Api, scheme: str) -> None:
    cid = api.start()
    token = api.server.tokens["operator"]
    headers = {"Authorization": WRONG_SCHEMES[scheme](token)}

    answer = api.anonymous.get(f"/v1/certifications/{cid}", headers=headers)

    assert answer.status_code == 401, answer.text
    assert_json_refusal(answer)


def test_the_scheme_name_is_not_case_sensitive(api: Api) -> None:
    cid = api.start()
    headers = {"Authorization": f"bearer {api.server.tokens['auditor']}"}

    answer = api.anonymous.get(f"/v1/certifications/{cid}", headers=headers)

    assert answer.status_code == 200, answer.text


def test_readiness_tells_the_store_position(api: Api) -> None:
    api.start()

    ready = api.anonymous.get("/readyz").json()

    assert ready["status"] == "ready"
    assert ready["store_position"] >= 1


# The metrics port of a role is never published outside the deployment, so it
# needs no token (service/health_server.py); it serves these and nothing else.
METRICS_PORT_TABLE = {("GET", "/healthz"): 200, ("GET", "/metrics"): 200}
# http.server's answer to a verb it has no handler for.
NOT_IMPLEMENTED = 501


def test_the_metrics_port_serves_health_and_metrics_to_anyone_and_nothing_else() -> (
    None
):
    server = HealthServer("api", "127.0.0.1", 0, lambda: True, Metrics())
    server.start()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}", trust_env=False
        ) as client:
            for headers in ({}, {"Authorization": f"Bearer {UNKNOWN_TOKEN}"}):
                assert metrics_port_answers(client, headers) == expected_on_port()
    finally:
        server.stop()


def expected_on_port() -> dict[tuple[str, str], int]:
    paths = {path for _, path in METRICS_PORT_TABLE} | {"/v1/certifications"}
    return {
        (verb, path): METRICS_PORT_TABLE.get(
            (verb, path), 404 if verb == "GET" else NOT_IMPLEMENTED
        )
        for path in paths
        for verb in VERBS
    }


def metrics_port_answers(
    client: httpx.Client, headers: dict[str, str]
) -> dict[tuple[str, str], int]:
    return {
        (verb, path): client.request(verb, path, headers=headers).status_code
        for verb, path in expected_on_port()
    }
