"""The payment consumer's verbs of ``certd``: consume and asyncapi."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.asyncapi import DOCUMENT_PATH, asyncapi_document
from consumers.payments import PaymentConsumerThread
from service.composition import build_payment_consumer
from service.roles import add_metrics_port, metrics_port, payment_worker, run_role
from service.settings import Settings

if TYPE_CHECKING:
    from service.composition import Runtime

NO_BOOTSTRAP = "set CERTD_KAFKA_BOOTSTRAP to the broker (host:port)"


def add_payment_verbs(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add ``consume`` and ``asyncapi`` (which needs no store)."""
    consume = verbs.add_parser(
        "consume",
        help="run only the payment consumer of CERTD_KAFKA_PAYMENTS_TOPIC, "
        "until SIGTERM (needs CERTD_KAFKA_BOOTSTRAP)",
    )
    add_metrics_port(consume)
    consume.set_defaults(run=consume_payments)

    asyncapi = verbs.add_parser(
        "asyncapi",
        help="print the AsyncAPI document of the Kafka topics and their messages",
    )
    asyncapi.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help=f"write it to FILE instead (the committed one is {DOCUMENT_PATH})",
    )
    asyncapi.set_defaults(run=write_asyncapi, without_store=True)


def consume_payments(runtime: Runtime, args: argparse.Namespace) -> int:
    """``certd consume``: until SIGTERM or SIGINT, then finish the message in hand."""
    if not runtime.settings.kafka_bootstrap:
        print(f"certd: {NO_BOOTSTRAP}", file=sys.stderr)
        return 2
    return run_role("consume", runtime, payment_worker, metrics_port(runtime, args))


def start_payment_consumer(runtime: Runtime) -> PaymentConsumerThread | None:
    """Start the consumer beside the server when a broker is configured."""
    if not runtime.settings.kafka_bootstrap:
        return None
    thread = PaymentConsumerThread(
        build_payment_consumer(runtime.settings, runtime.service, runtime.metrics)
    )
    thread.start()
    return thread


def write_asyncapi(settings: Settings, args: argparse.Namespace) -> int:
    """``certd asyncapi [--out FILE]``: the document, for the contract's topics."""
    document = asyncapi_document()
    if args.out is None:
        sys.stdout.write(document)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(document, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0
