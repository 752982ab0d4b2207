"""Queries answered from the status views: lists, one certification, stats,
and the public registry.

The views follow the store a moment behind. A client that must see its own
write passes the ``Store-Position`` its command answered as ``min_position``;
the query waits briefly for the views to get there, and answers 503 if they
do not.
"""

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from api.auth import Role, require
from api.schemas import (
    Registry,
    Stats,
    StatusPage,
    StatusTierCount,
    StatusView,
    TierFees,
)
from domain.actor import Actor
from domain.certification import Status, day_of
from domain.fees import RevenueTier
from projections.status_view import StatusRow
from projections.views import CursorError, SearchFilters, StatsRow, StatusViews
from service.application import (
    CertificationNotFoundError,
    CertificationService,
    StoreUnavailableError,
)

VIEW_POSITION_HEADER = "View-Position"

Reader = Annotated[Actor, Depends(require(Role.APPLICANT, Role.OPERATOR, Role.AUDITOR))]
Staff = Annotated[Actor, Depends(require(Role.OPERATOR, Role.AUDITOR))]
MinPosition = Annotated[
    int | None,
    Query(ge=0, description="wait until the views hold this store position"),
]


class ViewsBehindError(StoreUnavailableError):
    """The views did not reach a requested position in time."""


def _views(request: Request) -> StatusViews:
    views: StatusViews = request.app.state.views
    return views


def _service(request: Request) -> CertificationService:
    service: CertificationService = request.app.state.service
    return service


Views = Annotated[StatusViews, Depends(_views)]
Service = Annotated[CertificationService, Depends(_service)]


def wait_for_position(
    views: StatusViews, min_position: int | None, timeout: float
) -> int:
    """Return the views' position once it reaches ``min_position``."""
    deadline = time.monotonic() + timeout
    position = views.position()
    while min_position is not None and position < min_position:
        if time.monotonic() >= deadline:
            msg = (
                f"the status views are at position {position}, behind the "
                f"requested min_position {min_position}"
            )
            raise ViewsBehindError(msg)
        time.sleep(0.01)
        position = views.position()
    return position


def invalid_query(name: str, message: str) -> RequestValidationError:
    """Return the 422 that names a query parameter, as FastAPI's own would."""
    problem = {"type": "value_error", "loc": ("query", name), "msg": message}
    return RequestValidationError([problem])


def query_routes(read_wait_seconds: float) -> APIRouter:
    router = APIRouter(tags=["queries"])

    @router.get("/certifications")
    def list_certifications(
        actor: Staff,
        views: Views,
        service: Service,
        response: Response,
        status: Status | None = None,
        tier: RevenueTier | None = None,
        is_certified: bool | None = None,
        due_before: Annotated[
            date | None, Query(description="re-evaluation due before this day")
        ] = None,
        q: Annotated[
            str | None,
            Query(max_length=200, description="part of the organisation's name"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
        min_position: MinPosition = None,
    ) -> StatusPage:
        """Status views, oldest application first, a page at a time."""
        if q is not None and "\x00" in q:
            # PostgreSQL text cannot hold one, so no name can match it.
            raise invalid_query("q", "must not contain a NUL character")
        position = wait_for_position(views, min_position, read_wait_seconds)
        today = day_of(service.clock.now())
        filters = SearchFilters(status, tier, is_certified, due_before, q)
        try:
            rows, next_cursor = views.search(filters, today, limit, cursor)
        except CursorError as error:
            raise invalid_query("cursor", str(error)) from error
        response.headers[VIEW_POSITION_HEADER] = str(position)
        return StatusPage(
            items=[StatusView.of(row, today) for row in rows],
            next_cursor=next_cursor,
            view_position=position,
        )

    @router.get("/certifications/{certification_id}")
    def get_certification(
        actor: Reader,
        certification_id: str,
        views: Views,
        service: Service,
        response: Response,
        min_position: MinPosition = None,
    ) -> StatusView:
        """One certification's status view."""
        position = wait_for_position(views, min_position, read_wait_seconds)
        row = _find(views, service, certification_id, read_wait_seconds)
        response.headers[VIEW_POSITION_HEADER] = str(max(position, row.position))
        return StatusView.of(row, day_of(service.clock.now()))

    @router.get("/stats")
    def stats(
        actor: Staff,
        views: Views,
        service: Service,
        response: Response,
        min_position: MinPosition = None,
    ) -> Stats:
        """Counts by status and tier; fees invoiced, paid and outstanding."""
        position = wait_for_position(views, min_position, read_wait_seconds)
        response.headers[VIEW_POSITION_HEADER] = str(position)
        rows = views.stats(day_of(service.clock.now()))
        return _stats(rows, position)

    return router


@dataclass
class _RenderedRegistry:
    """The last registry document served, kept until the views move on."""

    document: tuple[str, str] = ("", "")  # ETag, body


def registry_routes(cache_seconds: int = 60) -> APIRouter:
    router = APIRouter(tags=["public"])
    cached = _RenderedRegistry()

    @router.get("/registry", response_model=Registry)
    def registry(request: Request, views: Views, service: Service) -> Response:
        """Organisations certified now; suspended ones are marked so. No token.

        The document is built by the database as JSON and served as it is;
        the same view position on the same day gives the same document, so
        it is built once for each.
        """
        today = day_of(service.clock.now())
        etag = f'"{views.position()}-{today.isoformat()}"'
        cache = f"public, max-age={cache_seconds}"
        if request.headers.get("if-none-match") == etag:
            return Response(
                status_code=304, headers={"ETag": etag, "Cache-Control": cache}
            )
        headers = {"ETag": etag, "Cache-Control": cache}
        served_etag, body = cached.document
        if served_etag != etag:
            entries = views.registry_entries(today)
            body = f'{{"as_of":"{today.isoformat()}","organisations":{entries}}}'
            cached.document = (etag, body)  # one assignment: threads share it
        return Response(body, media_type="application/json", headers=headers)

    return router


def _find(
    views: StatusViews,
    service: CertificationService,
    certification_id: str,
    timeout: float,
) -> StatusRow:
    """Read a row; one the store has but the views not yet is waited for."""
    try:
        wanted = UUID(certification_id)
    except ValueError:
        raise CertificationNotFoundError(certification_id) from None
    row = views.get(wanted)
    if row is not None:
        return row
    service.get(wanted)  # raises when the store has no such certification
    wait_for_position(views, service.ping_store(), timeout)
    row = views.get(wanted)
    if row is None:
        raise CertificationNotFoundError(certification_id)
    return row


def _stats(rows: list[StatsRow], position: int) -> Stats:
    by_status: Counter[Status] = Counter()
    tiers: dict[RevenueTier, list[StatsRow]] = {}
    for row in rows:
        by_status[row.status] += row.count
        tiers.setdefault(row.tier, []).append(row)
    return Stats(
        counts=[
            StatusTierCount(status=row.status, tier=row.tier, count=row.count)
            for row in rows
        ],
        by_status=dict(by_status),
        fees_by_tier=[
            TierFees(
                tier=tier,
                certifications=sum(row.count for row in tier_rows),
                certified=sum(row.certified for row in tier_rows),
                invoiced_usd=_total(row.fees_invoiced_usd for row in tier_rows),
                paid_usd=_total(row.fees_paid_usd for row in tier_rows),
                outstanding_usd=_total(row.fees_outstanding_usd for row in tier_rows),
            )
            for tier, tier_rows in sorted(tiers.items())
        ],
        view_position=position,
    )


def _total(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, Decimal(0))
