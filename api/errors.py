"""Turn every refusal into a JSON answer with a ``detail`` a person can act on."""

import structlog
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from domain.errors import InvalidCommandError, RefusedError
from domain.forms import describe_validation_errors
from projections.database import ViewsUnavailableError
from service.application import CertificationNotFoundError, StoreUnavailableError

log = structlog.get_logger(component="certd.api")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.add_exception_handler(HTTPException, _unreadable_body_or_default)
    app.add_exception_handler(InvalidCommandError, _invalid_command)
    app.add_exception_handler(RefusedError, _refused)
    app.add_exception_handler(CertificationNotFoundError, _not_found)
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    app.add_exception_handler(ViewsUnavailableError, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)


async def _invalid_body(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)  # noqa: S101 (registered so)
    problems = describe_validation_errors(error.errors())
    detail = "; ".join(f"{item['field']}: {item['message']}" for item in problems)
    return JSONResponse(
        {"detail": detail, "errors": problems},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


# FastAPI's own answer to a body it cannot even decode (not UTF-8, nested past
# the JSON parser's depth): a 400 that names no field.
_UNREADABLE_BODY = "There was an error parsing the body"


async def _unreadable_body_or_default(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)  # noqa: S101 (registered so)
    if error.status_code == status.HTTP_400_BAD_REQUEST and (
        error.detail == _UNREADABLE_BODY
    ):
        detail = "body: is not JSON that can be read as UTF-8"
        return JSONResponse(
            {"detail": detail, "errors": [{"field": "body", "message": detail}]},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    return await http_exception_handler(request, error)


async def _invalid_command(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidCommandError)  # noqa: S101 (registered so)
    return JSONResponse(
        {
            "detail": str(error),
            "errors": [{"field": error.field, "message": error.message}],
        },
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


async def _refused(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)


async def _not_found(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status.HTTP_404_NOT_FOUND)


async def _store_unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("store_unavailable", error=str(error))
    return JSONResponse(
        {"detail": f"{error}; try again shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "1"},
    )


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("request_failed")
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    return JSONResponse(
        {"detail": f"internal error; quote request id {request_id} when reporting"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
