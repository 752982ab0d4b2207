"""``certd``: the one entry point of the service."""

import argparse
import sys
from collections.abc import Sequence

import structlog
import uvicorn
from pydantic import ValidationError

from api.auth import TokenConfigError
from service.composition import build_app
from service.logs import configure_logging
from service.settings import Settings
from service.store import DatabaseUrlError

log = structlog.get_logger("certd")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"certd: invalid settings:\n{error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        result: int = args.run(settings, args)
    except (DatabaseUrlError, TokenConfigError) as error:
        print(f"certd: {error}", file=sys.stderr)
        return 2
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certd",
        description="Lifecycle service of the Licensed Model certification.",
    )
    verbs = parser.add_subparsers(required=True, metavar="VERB")
    serve = verbs.add_parser(
        "serve", help="run the whole service in one process (HTTP API)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    app = build_app(settings)
    log.info("serving", host=args.host, port=args.port)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
