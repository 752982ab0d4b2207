"""Structured logs: JSON lines when not on a terminal, readable lines when on one."""

import logging
import sys
from typing import Literal, TextIO

import structlog


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Write the service's own events and other libraries' logs to stderr.

    The service's events go straight from structlog to stderr, without the
    standard library's logging machinery: a command's log line is on its hot
    path. Other libraries (uvicorn, eventsourcing) log through the standard
    library, rendered the same way. Context bound with
    ``structlog.contextvars`` (the request id, for one) appears on every line
    logged while it is bound.
    """
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    _route_standard_logging(
        level, stream, [*shared, structlog.stdlib.add_logger_name], renderer
    )


def _route_standard_logging(
    level: str,
    stream: TextIO,
    pre_chain: list[structlog.typing.Processor],
    renderer: structlog.typing.Processor,
) -> None:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=pre_chain,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
