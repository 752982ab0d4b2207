"""The query side over HTTP, on each store: lists, filters and pages, stats,
the public registry, and how far the views have come.

Every expectation is worked out from what the test itself sent or from each
certification's own history, by the contract's tables, never from the views
under test. The server is shared by the module, so each test names its
organisations with a prefix of its own and looks only at those.
"""

import base64
import json
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.actor import Actor
from domain.clock import FixedClock
from domain.forms import ApplicationForm, DecisionForm, PaymentForm, SubmissionForm
from service.application import CertificationService
from service.composition import build_service
from service.settings import Settings
from tests.api.server import POSITION, Api, one_year_after
from tests.factories import application_body, submission_body

VIEW_POSITION = "View-Position"
LIST = "/v1/certifications"

STATUSES = (
    "applied",
    "submitted",
    "in_review",
    "awaiting_info",
    "approved",
    "rejected",
    "certified",
    "reevaluation_due",
    "lapsed",
    "suspended",
    "revoked",
    "withdrawn",
)
# The contract's fee table: revenue from (USD), tier, submission fee, annual fee.
FEE_TABLE = (
    (Decimal(0), "under_100k", Decimal(150), Decimal(500)),
    (Decimal(100_000), "100k_to_500k", Decimal(150), Decimal(1_000)),
    (Decimal(500_000), "500k_to_5m", Decimal(250), Decimal(2_000)),
    (Decimal(5_000_000), "5m_to_10m", Decimal(350), Decimal(4_000)),
    (Decimal(10_000_000), "10m_and_over", Decimal(500), Decimal(6_000)),
)
TIERS = tuple(tier for _, tier, _, _ in FEE_TABLE)
LEAD_DAYS = 60  # the default reevaluation_lead_days
GRACE_DAYS = 30  # the default grace_days
# The contract's lifecycle table: the status each event leaves behind.
# Reinstated is missing on purpose: it returns to the status before Suspended.
STATUS_AFTER = {
    "ApplicationStarted": "applied",
    "SubmissionReceived": "submitted",
    "SubmissionFeePaid": "in_review",
    "InfoRequested": "awaiting_info",
    "InfoProvided": "in_review",
    "Approved": "approved",
    "Rejected": "rejected",
    "AnnualFeePaid": "certified",
    "ReevaluationDue": "reevaluation_due",
    "ReevaluationSubmitted": "in_review",
    "CertificationLapsed": "lapsed",
    "Suspended": "suspended",
    "Revoked": "revoked",
    "Withdrawn": "withdrawn",
}
TIERED_EVENTS = {"ApplicationStarted", "SubmissionReceived", "ReevaluationSubmitted"}
RENEWAL_STATUSES = {"reevaluation_due", "in_review", "awaiting_info", "approved"}

NINE = time_of_day(9)

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def tier_of(revenue: Decimal) -> str:
    return [tier for start, tier, _, _ in FEE_TABLE if revenue >= start][-1]


def fees_of(tier: str) -> tuple[Decimal, Decimal]:
    """Return the submission and annual fee of a tier."""
    (fees,) = [(sub, annual) for _, name, sub, annual in FEE_TABLE if name == tier]
    return fees


def utc_today() -> date:
    return datetime.now(UTC).date()


def day_of(instant: str) -> date:
    return datetime.fromisoformat(instant).astimezone(UTC).date()


def organisation(name: str, *models: str) -> dict[str, Any]:
    """Return the application fields naming an organisation and its models."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return {
        "organisation": {
            "name": name,
            "website": f"https://{slug}.example",
            "country": "GB",
        },
        "models": [
            {"name": model, "modality": "text"} for model in models or (f"{slug}-1",)
        ],
    }


def caught_up(api: Api) -> int:
    """Wait until the views hold every write seen so far; return their position."""
    answer = api.auditor.get("/v1/stats", params={"min_position": api.last_position})
    assert answer.status_code == 200, answer.text
    position: int = answer.json()["view_position"]
    return position


# The real service on a pretend clock, for what only time brings about.

STAFF = Actor(role="operator", name="pretend-clock")


@contextmanager
def service_at(database_url: str, at: datetime) -> Iterator[CertificationService]:
    service = build_service(Settings(database_url=database_url), clock=FixedClock(at))
    try:
        yield service
    finally:
        service.close()


def noted(api: Api, position: int | None) -> None:
    """Make the next queries wait for a write made outside HTTP."""
    assert position is not None
    api.last_position = max(api.last_position, position)


def certify_long_ago(api: Api, database_url: str, body: dict[str, Any]) -> str:
    """Certify an organisation 400 days ago, so its certificate has expired."""
    fees = fees_of(tier_of(Decimal(str(body["annual_revenue_usd"]))))
    payments = [
        PaymentForm(kind=kind, amount_usd=fee, reference=f"past-{uuid4()}")
        for kind, fee in zip(("submission_fee", "annual_fee"), fees, strict=True)
    ]
    then = datetime.now(UTC) - timedelta(days=400)
    with service_at(database_url, then) as service:
        form = ApplicationForm.model_validate(body)
        cid = service.start_application(form, STAFF).certification.id
        service.submit(cid, SubmissionForm.model_validate(submission_body()), STAFF)
        service.record_payment(cid, payments[0], STAFF)
        service.decide(cid, DecisionForm(outcome="approved", reason="fine"), STAFF)
        noted(api, service.record_payment(cid, payments[1], STAFF).position)
    return str(cid)


def raise_reevaluation_due(api: Api, database_url: str, cid: str) -> None:
    """Do what the scheduler will do on the day the re-evaluation falls due."""
    valid_until = date.fromisoformat(api.view(cid)["valid_until"])
    due_on = valid_until - timedelta(days=LEAD_DAYS)
    with service_at(database_url, datetime.combine(due_on, NINE, UTC)) as service:
        noted(api, service.raise_reevaluation_due(UUID(cid)).position)


def lapse(api: Api, database_url: str, cid: str) -> None:
    """Do what the scheduler will do the day after the grace days end."""
    valid_until = date.fromisoformat(api.view(cid)["valid_until"])
    after_grace = valid_until + timedelta(days=GRACE_DAYS + 1)
    with service_at(database_url, datetime.combine(after_grace, NINE, UTC)) as service:
        noted(api, service.lapse(UUID(cid)).position)


# The reference: each certification as its own history leaves it.


@dataclass(frozen=True)
class Reference:
    id: str
    name: str
    created_at: datetime
    status: str
    tier: str
    is_certified: bool
    certified_since: date | None
    valid_until: date | None
    reevaluation_due_on: date | None

    @property
    def order(self) -> tuple[datetime, str]:
        return self.created_at, self.id


def reference_of(cid: str, history: list[dict[str, Any]], today: date) -> Reference:
    """Fold a history by the contract's lifecycle table."""
    status = before_suspension = tier = ""
    in_renewal = False
    certified_since: date | None = None
    valid_until: date | None = None
    for event in history:
        kind, data = event["type"], event["data"]
        if kind == "Suspended":
            before_suspension = status
        status = before_suspension if kind == "Reinstated" else STATUS_AFTER[kind]
        if kind in TIERED_EVENTS:
            tier = data["tier"]
        if kind == "ReevaluationDue":
            in_renewal = True
        if kind == "AnnualFeePaid":
            in_renewal = False
            valid_until = date.fromisoformat(data["valid_until"])
            certified_since = certified_since or day_of(event["occurred_at"])
    holds = status == "certified" or (in_renewal and status in RENEWAL_STATUSES)
    started = history[0]
    return Reference(
        id=cid,
        name=started["data"]["organisation"]["name"],
        created_at=datetime.fromisoformat(started["occurred_at"]),
        status=status,
        tier=tier,
        is_certified=holds and valid_until is not None and today <= valid_until,
        certified_since=certified_since,
        valid_until=valid_until,
        reevaluation_due_on=(
            valid_until - timedelta(days=LEAD_DAYS)
            if valid_until is not None and status == "certified"
            else None
        ),
    )


def references(api: Api, ids: Iterable[str]) -> dict[str, Reference]:
    today = utc_today()
    return {cid: reference_of(cid, api.history(cid), today) for cid in ids}


# The population the filters and pages are checked against.


@dataclass(frozen=True)
class Applicant:
    """One certification to create, and where it should end.

    ``bring_to`` takes it to ``status`` over HTTP (or the service certifies it
    400 days ago when ``long_ago``), then each step of ``then`` follows. The
    ``submitted_revenue`` goes with the last submission it makes.
    """

    name: str
    revenue: str
    status: str
    then: tuple[str, ...] = ()
    submitted_revenue: str | None = None
    long_ago: bool = False
    ends_as: str | None = None
    certified: bool | None = None

    @property
    def final_status(self) -> str:
        return self.ends_as or self.status

    @property
    def is_certified(self) -> bool:
        if self.certified is None:
            return self.final_status == "certified"
        return self.certified

    @property
    def tier(self) -> str:
        return tier_of(Decimal(self.submitted_revenue or self.revenue))


APPLICANTS = (
    Applicant("Aurora Labs", "50000", "applied"),
    Applicant("Borealis AI", "250000", "submitted"),
    Applicant("Cirrus Models", "1000000", "in_review"),
    Applicant("Delta Vision", "7000000", "awaiting_info"),
    Applicant("Ærø Straße Systèmes", "20000000", "approved"),
    # Characters that LIKE would read as wildcards or escapes.
    Applicant("Fjord 100%_Data\\Works", "99999.99", "rejected"),
    Applicant("Gamma Speech", "100000", "certified"),
    Applicant("Helix Music", "500000", "suspended"),
    Applicant("Ion Imaging", "5000000", "revoked"),
    Applicant("Juniper Text", "10000000", "withdrawn"),
    Applicant("Kestrel Audio", "30000", "certified"),
    Applicant("Lumen Labs", "2000000", "certified", submitted_revenue="12000000"),
    Applicant(
        "Nimbus Works", "300000", "awaiting_info", ("answer",), ends_as="in_review"
    ),
    Applicant(
        "Orbit Models", "800000", "suspended", ("reinstate",), ends_as="certified"
    ),
    Applicant("Pulsar AI", "60000", "submitted", submitted_revenue="6000000"),
    Applicant("Quasar Data", "15000000", "applied"),
    Applicant("Rook Systems", "400000", "rejected"),
    # Still certified by status, but its year has run out.
    Applicant("Sirius Archive", "3000000", "certified", long_ago=True, certified=False),
    Applicant(
        "Tundra Sound",
        "70000",
        "certified",
        ("reevaluation_due", "lapse"),
        long_ago=True,
        ends_as="lapsed",
    ),
    # Renewals keep the certificate until it runs out.
    Applicant(
        "Umbra Renewals",
        "450000",
        "certified",
        ("reevaluation_due",),
        ends_as="reevaluation_due",
        certified=True,
    ),
    Applicant(
        "Vega Resubmits",
        "150000",
        "certified",
        ("reevaluation_due", "resubmit"),
        submitted_revenue="8000000",
        ends_as="in_review",
        certified=True,
    ),
)


@dataclass(frozen=True)
class Population:
    prefix: str
    applicants: dict[str, Applicant]
    references: dict[str, Reference]

    @property
    def names(self) -> list[str]:
        return sorted(reference.name for reference in self.references.values())


def create(api: Api, database_url: str, applicant: Applicant, prefix: str) -> str:
    body = application_body(
        revenue=applicant.revenue, **organisation(f"{prefix} {applicant.name}")
    )
    revised = (
        submission_body(annual_revenue_usd=applicant.submitted_revenue)
        if applicant.submitted_revenue
        else None
    )
    if applicant.long_ago:
        cid = certify_long_ago(api, database_url, body)
    else:
        first = None if "resubmit" in applicant.then else revised
        cid = api.bring_to(applicant.status, body, first)
    for step in applicant.then:
        take(api, database_url, cid, step, revised)
    return cid


def take(
    api: Api,
    database_url: str,
    cid: str,
    step: str,
    submission: dict[str, Any] | None,
) -> None:
    if step == "reevaluation_due":
        raise_reevaluation_due(api, database_url, cid)
        return
    if step == "lapse":
        lapse(api, database_url, cid)
        return
    if step == "answer":
        request_id = api.view(cid)["open_info_request"]["request_id"]
        answer = api.provide_info(cid, request_id)
    elif step == "reinstate":
        answer = api.operate(cid, "reinstatement")
    else:
        answer = api.submit(cid, submission)
    assert answer.status_code == 200, f"{step}: {answer.text}"


@pytest.fixture(scope="module")
def population(api: Api, module_database_url: str) -> Population:
    prefix = f"Qry{uuid4().hex[:8]}"
    applicants = {
        create(api, module_database_url, applicant, prefix): applicant
        for applicant in APPLICANTS
    }
    return Population(prefix, applicants, references(api, applicants))


# Listing and walking pages.


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    tier: str | None = None
    is_certified: bool | None = None
    q: str | None = None

    def params(self) -> dict[str, str]:
        given = {
            "status": self.status,
            "tier": self.tier,
            "is_certified": (
                None if self.is_certified is None else str(self.is_certified).lower()
            ),
            "q": self.q,
        }
        return {name: value for name, value in given.items() if value is not None}

    def admit(self, status: str, tier: str, is_certified: bool, name: str) -> bool:
        return (
            self.status in {None, status}
            and self.tier in {None, tier}
            and self.is_certified in {None, is_certified}
            and (not self.q or self.q.casefold() in name.casefold())
        )


def walk(api: Api, params: dict[str, str], limit: int) -> list[list[dict[str, Any]]]:
    """Follow next_cursor from the first page to the last; return the pages."""
    pages: list[list[dict[str, Any]]] = []
    cursors: set[str] = set()
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, "min_position": api.last_position}
        if cursor is not None:
            query["cursor"] = cursor
        answer = api.auditor.get(LIST, params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert int(answer.headers[VIEW_POSITION]) == page["view_position"]
        assert page["view_position"] >= api.last_position
        assert len(page["items"]) <= limit
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(page["items"]) == limit, "only the last page may be short"
        assert cursor not in cursors, "a cursor led back to a page already seen"
        cursors.add(cursor)


def listed_ids(api: Api, params: dict[str, str], limit: int = 500) -> list[str]:
    return [item["id"] for page in walk(api, params, limit) for item in page]


@st.composite
def part_of_a_name(draw: st.DrawFn, names: list[str]) -> str:
    """A piece of one of the names, in any case."""
    name = draw(st.sampled_from(names))
    start = draw(st.integers(0, len(name) - 1))
    end = draw(st.integers(start + 1, len(name)))
    case = draw(st.sampled_from([str.lower, str.upper, str.swapcase, str.title]))
    return case(name[start:end])


def filters(population: Population) -> st.SearchStrategy[Filters]:
    prefix_in_any_case = st.sampled_from([str.lower, str.upper, str.swapcase]).map(
        lambda case: case(population.prefix)
    )
    return st.builds(
        Filters,
        status=st.none() | st.sampled_from(STATUSES),
        tier=st.none() | st.sampled_from(TIERS),
        is_certified=st.none() | st.booleans(),
        q=st.none() | prefix_in_any_case | part_of_a_name(population.names),
    )


@PROPERTY_SETTINGS
@given(data=st.data())
def test_walking_the_pages_lists_exactly_the_matching_certifications_in_order(
    api: Api, population: Population, data: st.DataObject
) -> None:
    wanted = data.draw(filters(population), label="filters")
    limit = data.draw(st.integers(1, 7), label="limit")
    expected = sorted(
        (
            reference
            for reference in population.references.values()
            if wanted.admit(
                reference.status,
                reference.tier,
                reference.is_certified,
                reference.name,
            )
        ),
        key=lambda reference: reference.order,
    )

    items = [item for page in walk(api, wanted.params(), limit) for item in page]

    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)), "a certification came on two pages"
    order = [(datetime.fromisoformat(item["created_at"]), item["id"]) for item in items]
    assert order == sorted(order)
    for item in items:
        name = item["organisation"]["name"]
        assert wanted.admit(item["status"], item["tier"], item["is_certified"], name)
    ours = [cid for cid in ids if cid in population.references]
    assert ours == [reference.id for reference in expected]


def test_the_list_shows_each_certification_as_its_history_leaves_it(
    api: Api, population: Population
) -> None:
    items = [
        item for page in walk(api, {"q": population.prefix}, limit=7) for item in page
    ]

    shown = {
        item["id"]: (item["status"], item["tier"], item["is_certified"])
        for item in items
    }
    assert shown == {
        cid: (reference.status, reference.tier, reference.is_certified)
        for cid, reference in population.references.items()
    }
    assert shown == {
        cid: (applicant.final_status, applicant.tier, applicant.is_certified)
        for cid, applicant in population.applicants.items()
    }


def test_due_before_lists_the_certified_ones_due_before_that_day(
    api: Api, population: Population
) -> None:
    due_on = {
        reference.id: reference.reevaluation_due_on
        for reference in population.references.values()
        if reference.reevaluation_due_on is not None
    }
    ending_certified = [
        applicant
        for applicant in population.applicants.values()
        if applicant.final_status == "certified"
    ]
    assert len(due_on) == len(ending_certified)
    days = sorted(
        {day + timedelta(days=shift) for day in due_on.values() for shift in (0, 1)}
    )
    assert len(days) >= 4, "the certified ones should fall due on two days at least"

    for day in days:
        items = [
            item
            for page in walk(api, {"due_before": day.isoformat()}, limit=3)
            for item in page
        ]

        listed = {item["id"] for item in items} & set(population.references)
        assert listed == {cid for cid, due in due_on.items() if due < day}, day
        for item in items:
            assert item["status"] == "certified"
            assert date.fromisoformat(item["reevaluation_due_on"]) < day


def test_a_search_ignores_case_and_takes_wildcards_literally(
    api: Api, population: Population
) -> None:
    by_name = {ref.name: cid for cid, ref in population.references.items()}
    fjord = by_name[f"{population.prefix} Fjord 100%_Data\\Works"]
    straße = by_name[f"{population.prefix} Ærø Straße Systèmes"]

    assert listed_ids(api, {"q": "%_data\\"}) == [fjord]
    assert fjord not in listed_ids(api, {"q": "100_"})
    assert listed_ids(api, {"q": "ÆRØ STRASSE"}) == [straße]


# Parameters that cannot be answered.


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("limit", "501"),
        ("limit", "a few"),
        ("status", "pending"),
        ("tier", "enormous"),
        ("is_certified", "perhaps"),
        ("due_before", "next week"),
        ("min_position", "-1"),
    ],
)
def test_a_query_parameter_out_of_its_range_is_refused_naming_it(
    api: Api, name: str, value: str
) -> None:
    answer = api.auditor.get(LIST, params={name: value})

    assert answer.status_code == 422, answer.text
    assert name in answer.json()["detail"]


@pytest.mark.parametrize("limit", [1, 500])
def test_a_page_holds_from_1_to_500_certifications(api: Api, limit: int) -> None:
    answer = api.auditor.get(LIST, params={"limit": limit})

    assert answer.status_code == 200, answer.text
    assert len(answer.json()["items"]) <= limit


def encoded(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "",
        encoded(b"\xff\xfe\xfd"),
        encoded({"created_at": "2026-01-01", "id": str(uuid4())}),
        encoded([1, 2, 3]),
        encoded(["2026-01-01T00:00:00.000000Z", "not-an-id"]),
        encoded(["\u00002026-01-01T00:00:00Z", str(uuid4())]),
        encoded([None, str(uuid4())]),
    ],
    ids=[
        "plain text",
        "empty",
        "not UTF-8",
        "an object",
        "three numbers",
        "no id",
        "a NUL",
        "no time",
    ],
)
def test_a_cursor_this_service_did_not_give_is_refused_naming_it(
    api: Api, cursor: str
) -> None:
    answer = api.auditor.get(LIST, params={"cursor": cursor, "limit": 1})

    assert answer.status_code == 422, answer.text
    assert "cursor" in answer.json()["detail"]


@PROPERTY_SETTINGS
@given(text=st.text(max_size=40))
@pytest.mark.parametrize("name", ["q", "cursor"])
def test_no_search_text_or_cursor_makes_the_list_fail(
    api: Api, name: str, text: str
) -> None:
    answer = api.auditor.get(LIST, params={name: text, "limit": 2})

    assert answer.status_code in {200, 422}, answer.text
    if answer.status_code == 422:
        assert name in answer.json()["detail"]


# Reading one's own writes.


def test_a_query_at_the_position_a_command_answered_shows_that_write(
    api: Api,
) -> None:
    name = f"Ryw{uuid4().hex[:8]} Ltd"

    started = api.apply(application_body(**organisation(name)))
    cid = started.json()["id"]
    at_start = int(started.headers[POSITION])
    listed = api.auditor.get(LIST, params={"q": name, "min_position": at_start})
    submitted = api.submit(cid)
    at_submission = int(submitted.headers[POSITION])
    one = api.auditor.get(f"{LIST}/{cid}", params={"min_position": at_submission})
    stats = api.auditor.get("/v1/stats", params={"min_position": at_submission})

    assert [item["id"] for item in listed.json()["items"]] == [cid]
    assert int(listed.headers[VIEW_POSITION]) >= at_start
    assert one.json()["status"] == "submitted"
    assert int(one.headers[VIEW_POSITION]) >= at_submission
    assert stats.json()["view_position"] >= at_submission
    assert int(stats.headers[VIEW_POSITION]) == stats.json()["view_position"]


@pytest.mark.server_answers(503)
@pytest.mark.parametrize("path", [LIST, f"{LIST}/{{cid}}", "/v1/stats"])
def test_a_position_the_store_has_not_reached_answers_503_naming_both(
    api: Api, path: str
) -> None:
    cid = api.start()
    views_at = caught_up(api)
    beyond = api.last_position + 1_000_000

    began = time.monotonic()
    answer = api.auditor.get(path.format(cid=cid), params={"min_position": beyond})
    waited = time.monotonic() - began

    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/json"
    detail = answer.json()["detail"]
    assert re.search(rf"\b{beyond}\b", detail), detail
    assert re.search(rf"\b{views_at}\b", detail), detail
    assert "Retry-After" in answer.headers
    assert waited < 5.0


# Stats.


STATS_SET = (
    ("50000", "applied"),
    ("250000", "submitted"),
    ("1000000", "in_review"),
    ("7000000", "awaiting_info"),
    ("20000000", "approved"),
    ("250000", "rejected"),
    ("50000", "certified"),
    ("20000000", "certified"),
    ("7000000", "suspended"),
    ("1000000", "revoked"),
    ("100000", "withdrawn"),
)
# The fees each status has been invoiced and paid on the way bring_to takes.
INVOICED_AND_PAID = {
    "applied": ((), ()),
    "submitted": (("submission",), ()),
    "in_review": (("submission",), ("submission",)),
    "awaiting_info": (("submission",), ("submission",)),
    "approved": (("submission", "annual"), ("submission",)),
    "rejected": (("submission",), ("submission",)),
    "certified": (("submission", "annual"), ("submission", "annual")),
    "suspended": (("submission", "annual"), ("submission", "annual")),
    "revoked": (("submission", "annual"), ("submission", "annual")),
    "withdrawn": ((), ()),
}

Tally = dict[tuple[str, ...], Decimal]
FEE_KEYS = (
    "certifications",
    "certified",
    "invoiced_usd",
    "paid_usd",
    "outstanding_usd",
)


def tally(stats: dict[str, Any]) -> Tally:
    """Flatten the stats into one number per key, so two can be subtracted."""
    numbers: Tally = {}
    for row in stats["counts"]:
        numbers["count", row["status"], row["tier"]] = Decimal(row["count"])
    for status, count in stats["by_status"].items():
        numbers["by_status", status] = Decimal(count)
    for row in stats["fees_by_tier"]:
        for key in FEE_KEYS:
            numbers[key, row["tier"]] = Decimal(str(row[key]))
    return numbers


def difference(after: Tally, before: Tally) -> Tally:
    keys = after.keys() | before.keys()
    changes = {
        key: after.get(key, Decimal(0)) - before.get(key, Decimal(0)) for key in keys
    }
    return {key: change for key, change in changes.items() if change}


def expected_tally(certifications: Iterable[tuple[str, str]]) -> Tally:
    numbers: Tally = {}

    def add(key: tuple[str, ...], amount: Decimal) -> None:
        numbers[key] = numbers.get(key, Decimal(0)) + amount

    for revenue, status in certifications:
        tier = tier_of(Decimal(revenue))
        fee = dict(zip(("submission", "annual"), fees_of(tier), strict=True))
        invoiced, paid = INVOICED_AND_PAID[status]
        add(("count", status, tier), Decimal(1))
        add(("by_status", status), Decimal(1))
        add(("certifications", tier), Decimal(1))
        add(("certified", tier), Decimal(status == "certified"))
        add(("invoiced_usd", tier), sum((fee[kind] for kind in invoiced), Decimal(0)))
        add(("paid_usd", tier), sum((fee[kind] for kind in paid), Decimal(0)))
        outstanding = [kind for kind in invoiced if kind not in paid]
        add(("outstanding_usd", tier), sum((fee[k] for k in outstanding), Decimal(0)))
    return {key: number for key, number in numbers.items() if number}


def stats_now(api: Api) -> dict[str, Any]:
    answer = api.auditor.get("/v1/stats", params={"min_position": api.last_position})
    assert answer.status_code == 200, answer.text
    stats: dict[str, Any] = answer.json()
    return stats


def test_the_stats_grow_by_exactly_what_new_certifications_add(api: Api) -> None:
    prefix = f"Sts{uuid4().hex[:8]}"
    before = stats_now(api)

    for number, (revenue, status) in enumerate(STATS_SET):
        body = application_body(revenue=revenue, **organisation(f"{prefix} {number}"))
        api.bring_to(status, body)
    after = stats_now(api)

    assert difference(tally(after), tally(before)) == expected_tally(STATS_SET)


def test_the_stats_add_up(api: Api) -> None:
    api.bring_to("certified")

    stats = stats_now(api)

    by_status: dict[str, int] = {}
    by_tier: dict[str, int] = {}
    for row in stats["counts"]:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["count"]
        by_tier[row["tier"]] = by_tier.get(row["tier"], 0) + row["count"]
    assert stats["by_status"] == by_status
    assert {row["tier"]: row["certifications"] for row in stats["fees_by_tier"]} == (
        by_tier
    )


# The public registry.


REGISTRY_CASES = (
    "applied",
    "approved",
    "rejected",
    "certified",
    "suspended",
    "revoked",
    "withdrawn",
)


def registry(api: Api, etag: str | None = None) -> httpx.Response:
    caught_up(api)
    headers = {} if etag is None else {"If-None-Match": etag}
    return api.anonymous.get("/v1/registry", headers=headers)


def entries_of(answer: httpx.Response, prefix: str) -> dict[str, dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return {
        entry["organisation"]: entry
        for entry in answer.json()["organisations"]
        if entry["organisation"].startswith(prefix)
    }


def test_the_registry_lists_the_organisations_certified_now_and_suspended_ones(
    api: Api, module_database_url: str
) -> None:
    prefix = f"Reg{uuid4().hex[:8]}"

    def body(case: str) -> dict[str, Any]:
        models = (f"{case}-text", f"{case}-image")
        return application_body(**organisation(f"{prefix} {case}", *models))

    cids = {status: api.bring_to(status, body(status)) for status in REGISTRY_CASES}
    cids["expired"] = certify_long_ago(api, module_database_url, body("expired"))
    cids["renewing"] = api.bring_to("certified", body("renewing"))
    raise_reevaluation_due(api, module_database_url, cids["renewing"])
    paid_on = {
        case: day_of(event["occurred_at"])
        for case, cid in cids.items()
        for event in api.history(cid)
        if event["type"] == "AnnualFeePaid"
    }

    answer = registry(api)

    assert answer.json()["as_of"] == utc_today().isoformat()
    assert entries_of(answer, prefix) == {
        f"{prefix} {case}": {
            "organisation": f"{prefix} {case}",
            "website": f"https://{prefix.lower()}-{case}.example",
            "country": "GB",
            "models": [f"{case}-text", f"{case}-image"],
            "certified_since": paid_on[case].isoformat(),
            "valid_until": one_year_after(paid_on[case]).isoformat(),
            "suspended": case == "suspended",
        }
        for case in ("certified", "suspended", "renewing")
    }
    assert "ann@acme.example" not in answer.text


def test_the_registry_is_cached_until_an_event_changes_it(api: Api) -> None:
    prefix = f"Etg{uuid4().hex[:8]}"
    cid = api.bring_to("suspended", application_body(**organisation(prefix)))

    first = registry(api)
    again = registry(api, etag=first.headers["ETag"])
    api.operate(cid, "reinstatement")
    changed = registry(api, etag=first.headers["ETag"])

    assert "max-age" in first.headers["Cache-Control"]
    assert entries_of(first, prefix)[prefix]["suspended"] is True
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert changed.headers["ETag"] != first.headers["ETag"]
    assert entries_of(changed, prefix)[prefix]["suspended"] is False
    assert "max-age" in changed.headers["Cache-Control"]


# Readiness.


def test_readiness_shows_the_views_position_and_no_lag_once_caught_up(
    api: Api,
) -> None:
    api.start()

    deadline = time.monotonic() + 5.0
    ready = api.anonymous.get("/readyz").json()
    while ready["views"]["lag"] and time.monotonic() < deadline:
        time.sleep(0.05)
        ready = api.anonymous.get("/readyz").json()

    assert ready["views"] == {"position": ready["store_position"], "lag": 0}
    assert ready["views"]["position"] >= api.last_position
