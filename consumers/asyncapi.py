"""The AsyncAPI document of certd's topics, generated from the FastStream app.

``docs/asyncapi.json`` is this document for the contract's topic names;
``certd asyncapi --out docs/asyncapi.json`` writes it again, and a test fails
when the committed file and the code disagree.
"""

import json
from pathlib import Path
from typing import Any
from uuid import UUID

from consumers.payments import create_payment_consumer
from domain.actor import Actor
from domain.forms import PaymentForm
from service.application import PaymentOutcome
from service.settings import Settings

DOCUMENT_PATH = Path("docs/asyncapi.json")


class _NoStore:
    """Stands in for the service: the document is built, never run."""

    def record_payment(
        self, certification_id: UUID, form: PaymentForm, actor: Actor
    ) -> PaymentOutcome:
        msg = "the AsyncAPI document's application records no payments"
        raise RuntimeError(msg)


def asyncapi_document() -> str:
    """Return the document as indented JSON, for the default topic names.

    The settings' defaults are used rather than the environment, so that the
    document describes the contract and not one deployment.
    """
    consumer = create_payment_consumer(Settings.model_construct(), _NoStore())
    document = consumer.app.schema.to_specification().to_jsonable()
    return json.dumps(_in_name_order(document), indent=2, ensure_ascii=False) + "\n"


def _in_name_order(document: dict[str, Any]) -> dict[str, Any]:
    """Sort the channels, operations, messages and schemas by name.

    FastStream keeps a broker's publishers in a weak set, so they come out in
    an order that changes from one process to the next.
    """
    by_name = {
        "channels": document.get("channels", {}),
        "operations": document.get("operations", {}),
    }
    components = document.get("components", {})
    ordered_components = {
        key: dict(sorted(value.items())) if isinstance(value, dict) else value
        for key, value in components.items()
    }
    return {
        **document,
        **{key: dict(sorted(value.items())) for key, value in by_name.items()},
        "components": ordered_components,
    }
