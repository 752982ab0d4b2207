"""The FastAPI application: routes, roles and the answer to each command.

A command's answer carries the store position of the event it recorded in the
``Store-Position`` header; a repeat that recorded nothing has none.
"""

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Protocol
from uuid import UUID, uuid4

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import Role, TokenTable, require
from api.errors import install_error_handlers
from api.limits import BodyLimits
from api.queries import query_routes, registry_routes
from api.schemas import (
    CertificationView,
    ErrorBody,
    HistoryEntry,
    InfoRequestAccepted,
    PaymentReceipt,
    StatusView,
)
from domain.actor import Actor
from domain.certification import Certification, day_of
from domain.errors import InvalidCommandError
from domain.forms import (
    ApplicationForm,
    DecisionForm,
    InfoRequestForm,
    InfoResponseForm,
    PaymentForm,
    ReasonForm,
    SubmissionForm,
)
from projections.as_of import state_as_of
from projections.runner import ProjectionRunner
from projections.views import StatusViews
from service.application import (
    CertificationNotFoundError,
    CertificationService,
    Outcome,
)

log = structlog.get_logger(component="certd.api")

POSITION_HEADER = "Store-Position"

Applicant = Annotated[Actor, Depends(require(Role.APPLICANT, Role.OPERATOR))]
Operator = Annotated[Actor, Depends(require(Role.OPERATOR))]
Billing = Annotated[Actor, Depends(require(Role.BILLING, Role.OPERATOR))]
Auditor = Annotated[Actor, Depends(require(Role.OPERATOR, Role.AUDITOR))]


class PublisherStatus(Protocol):
    """What /readyz asks the event publisher, when one runs."""

    def broker_reachable(self) -> bool: ...
    def position(self) -> int: ...


class MetricsSource(Protocol):
    """The process's metrics, in Prometheus' text format."""

    def exposition(self) -> bytes: ...


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 503)
}


def create_app(
    service: CertificationService,
    tokens: TokenTable,
    views: StatusViews,
    runner: ProjectionRunner,
    read_wait_seconds: float = 2.0,
    publisher: PublisherStatus | None = None,
    metrics: MetricsSource | None = None,
    max_body_bytes: int = 1_048_576,
    max_json_depth: int = 32,
) -> FastAPI:
    app = FastAPI(
        title="certd",
        summary="Lifecycle of the Licensed Model certification",
        version="1.0",
        responses=ERROR_RESPONSES,
    )
    app.state.service = service
    app.state.tokens = tokens
    app.state.views = views
    app.state.runner = runner
    app.state.publisher = publisher
    install_error_handlers(app)
    # Added first, so it runs inside the request log: refusals are logged too.
    app.add_middleware(BodyLimits, max_bytes=max_body_bytes, max_depth=max_json_depth)
    app.middleware("http")(_log_request)
    app.include_router(_health_routes())
    if metrics is not None:
        app.include_router(_metrics_routes(metrics))
    app.include_router(_command_routes(), prefix="/v1")
    app.include_router(_history_routes(), prefix="/v1")
    app.include_router(query_routes(read_wait_seconds), prefix="/v1")
    app.include_router(registry_routes(), prefix="/v1")
    return app


def _service(request: Request) -> CertificationService:
    service: CertificationService = request.app.state.service
    return service


Service = Annotated[CertificationService, Depends(_service)]


def parse_id(certification_id: str) -> UUID:
    try:
        return UUID(certification_id)
    except ValueError:
        raise CertificationNotFoundError(certification_id) from None


# Routes take their actor before this: dependencies resolve in parameter
# order, and a request must be authenticated (401, 403) before its id is read.
CertificationId = Annotated[UUID, Depends(parse_id)]


def _view(service: CertificationService, cert: Certification) -> CertificationView:
    return CertificationView.of(
        cert, service.clock.now(), service.policy.reevaluation_lead_days
    )


def _answer(
    service: CertificationService, outcome: Outcome, response: Response
) -> CertificationView:
    if outcome.position is not None:
        response.headers[POSITION_HEADER] = str(outcome.position)
    return _view(service, outcome.certification)


def _command_routes() -> APIRouter:
    router = APIRouter(tags=["commands"])

    @router.post("/certifications", status_code=status.HTTP_201_CREATED)
    def start_application(
        form: ApplicationForm,
        actor: Applicant,
        service: Service,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> CertificationView:
        """Start an application (ApplicationStarted).

        The same ``Idempotency-Key`` from the same credential returns the
        certification it started instead of starting another.
        """
        outcome = service.start_application(form, actor, idempotency_key)
        response.headers["Location"] = f"/v1/certifications/{outcome.certification.id}"
        return _answer(service, outcome, response)

    @router.post("/certifications/{certification_id}/submission")
    def submit(
        actor: Applicant,
        certification_id: CertificationId,
        form: SubmissionForm,
        service: Service,
        response: Response,
    ) -> CertificationView:
        """Take the written submission (SubmissionReceived, or ReevaluationSubmitted
        when a re-evaluation is due); the answer has the fees and findings."""
        outcome = service.submit(certification_id, form, actor)
        return _answer(service, outcome, response)

    @router.post("/certifications/{certification_id}/payments")
    def pay(
        actor: Billing,
        certification_id: CertificationId,
        form: PaymentForm,
        service: Service,
        response: Response,
    ) -> PaymentReceipt:
        """Record a fee paid in full (SubmissionFeePaid or AnnualFeePaid).

        The same ``reference`` again changes nothing and gets the same answer.
        """
        outcome = service.record_payment(certification_id, form, actor)
        if outcome.position is not None:
            response.headers[POSITION_HEADER] = str(outcome.position)
        return PaymentReceipt.of(certification_id, outcome.payment)

    @router.post("/certifications/{certification_id}/info-requests")
    def request_info(
        actor: Operator,
        certification_id: CertificationId,
        form: InfoRequestForm,
        service: Service,
        response: Response,
    ) -> InfoRequestAccepted:
        """Ask the applicant for more information (InfoRequested)."""
        outcome, request_id = service.request_info(certification_id, form, actor)
        view = _answer(service, outcome, response)
        return InfoRequestAccepted(**dict(view), request_id=request_id)

    @router.post("/certifications/{certification_id}/info-responses")
    def provide_info(
        actor: Applicant,
        certification_id: CertificationId,
        form: InfoResponseForm,
        service: Service,
        response: Response,
    ) -> CertificationView:
        """Answer the open information request (InfoProvided)."""
        outcome = service.provide_info(certification_id, form, actor)
        return _answer(service, outcome, response)

    @router.post("/certifications/{certification_id}/decision")
    def decide(
        actor: Operator,
        certification_id: CertificationId,
        form: DecisionForm,
        service: Service,
        response: Response,
    ) -> CertificationView:
        """Approve or reject after review (Approved or Rejected)."""
        outcome = service.decide(certification_id, form, actor)
        return _answer(service, outcome, response)

    _add_reason_route(router, "suspension", CertificationService.suspend, Operator)
    _add_reason_route(router, "reinstatement", CertificationService.reinstate, Operator)
    _add_reason_route(router, "revocation", CertificationService.revoke, Operator)
    _add_reason_route(router, "withdrawal", CertificationService.withdraw, Applicant)
    return router


ReasonCommand = Callable[[CertificationService, UUID, str, Actor], Outcome]


def _add_reason_route(
    router: APIRouter, path: str, command: ReasonCommand, role: object
) -> None:
    def handle(
        actor: role,  # type: ignore[valid-type]
        certification_id: CertificationId,
        form: ReasonForm,
        service: Service,
        response: Response,
    ) -> CertificationView:
        outcome = command(service, certification_id, form.reason, actor)
        return _answer(service, outcome, response)

    handle.__doc__ = f"Record the {path} with its reason."
    router.post(
        f"/certifications/{{certification_id}}/{path}",
        name=path,
        response_model=CertificationView,
    )(handle)


def _history_routes() -> APIRouter:
    router = APIRouter(tags=["queries"])

    @router.get("/certifications/{certification_id}/history")
    def history(
        actor: Auditor, certification_id: CertificationId, service: Service
    ) -> list[HistoryEntry]:
        """Every stored event of the certification, oldest first."""
        return [HistoryEntry.of(e) for e in service.history(certification_id)]

    @router.get("/certifications/{certification_id}/state")
    def state(
        actor: Auditor,
        certification_id: CertificationId,
        as_of: str,
        request: Request,
        service: Service,
    ) -> StatusView:
        """The certification's status view as it stood at ``as_of``.

        Replays the events recorded up to that instant, inclusive; an
        instant before the application answers 404. ``as_of`` is ISO 8601
        with its timezone, e.g. ``2027-01-31T09:00:00Z``.
        """
        instant = parse_instant("as_of", as_of)
        views: StatusViews = request.app.state.views
        row = state_as_of(
            service,
            views.db,
            certification_id,
            instant,
            service.policy.reevaluation_lead_days,
        )
        return StatusView.of(row, day_of(instant))

    return router


def parse_instant(field: str, text: str) -> datetime:
    """Read an ISO 8601 instant with its timezone; refuse it naming ``field``."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not an ISO 8601 time, e.g. 2027-01-31T09:00:00Z"
        raise InvalidCommandError(field, msg) from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        msg = f"{text!r} has no timezone; add one, e.g. Z or +00:00"
        raise InvalidCommandError(field, msg)
    return instant


def _health_routes() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"model": ErrorBody}})
    def readyz(request: Request, service: Service) -> JSONResponse:
        """The store answers; the views say how far behind the store they are.

        With a broker configured, it must answer too, and the publisher says
        how far behind the store it is.
        """
        runner: ProjectionRunner = request.app.state.runner
        publisher: PublisherStatus | None = request.app.state.publisher
        try:
            store_position = service.ping_store()
            view_position = runner.views.position()
            published = publisher.position() if publisher is not None else 0
        except Exception as error:  # any failure means not ready
            log.warning("store_not_ready", error=type(error).__name__)
            return JSONResponse(
                {"detail": "the event store is not reachable", "store": "down"},
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        body: dict[str, object] = {
            "status": "ready",
            "store_position": store_position,
            "views": {
                "position": view_position,
                "lag": max(0, store_position - view_position),
            },
        }
        if publisher is None:
            return JSONResponse(body)
        reachable = publisher.broker_reachable()
        body["broker"] = "up" if reachable else "down"
        body["publisher"] = {
            "position": published,
            "lag": max(0, store_position - published),
        }
        if reachable:
            return JSONResponse(body)
        log.warning("broker_not_ready")
        return JSONResponse(
            {
                **body,
                "status": "not_ready",
                "detail": "the Kafka broker is not reachable",
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    return router


def _metrics_routes(metrics: MetricsSource) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", response_class=Response)
    def metrics_text(actor: Operator) -> Response:
        """The process's Prometheus metrics, for operators only.

        This port faces the clients, and the counts tell how much business
        the service does; Prometheus scrapes the role's metrics port
        (``CERTD_METRICS_PORT``), which is never published, instead.
        """
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


async def _log_request(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    request_id = request.headers.get("x-request-id") or str(uuid4())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id[:100])
    started = time.perf_counter()
    response = await call_next(request)
    response.headers["X-Request-ID"] = request_id[:100]
    log.info(
        "request_handled",
        method=request.method,
        path=request.url.path,
        status=response.status_code,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response
