"""The AsyncAPI document in docs/ is the one the FastStream application makes."""

import json
import os
import subprocess
import sys
from pathlib import Path

from consumers.asyncapi import DOCUMENT_PATH, asyncapi_document

ROOT = Path(__file__).resolve().parents[2]
CERTD = Path(sys.executable).with_name("certd")


def test_the_committed_asyncapi_document_is_the_one_the_code_generates() -> None:
    committed = (ROOT / DOCUMENT_PATH).read_text(encoding="utf-8")

    assert committed == asyncapi_document(), (
        f"{DOCUMENT_PATH} and the code disagree: run "
        f"`certd asyncapi --out {DOCUMENT_PATH}` and commit the file"
    )


def test_the_document_shows_each_topic_with_its_message() -> None:
    document = json.loads(asyncapi_document())

    actions = {
        document["channels"][operation["channel"]["$ref"].split("/")[-1]][
            "address"
        ]: operation["action"]
        for operation in document["operations"].values()
    }
    assert actions == {
        "billing.payments": "receive",
        "billing.payments.dlq": "send",
        "certification.events": "send",
    }
    schemas = document["components"]["schemas"]
    payment = schemas["billing.payments:Payment:Message:Payload"]
    assert payment["required"] == [
        "certification_id",
        "kind",
        "amount_usd",
        "reference",
        "paid_at",
    ]
    assert (
        "x-dlq-reason"
        in schemas["billing.payments.dlq:DeadLetter:Message:Payload"]["description"]
    )
    assert set(schemas["CertificationEvent"]["required"]) == {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "data",
        "sequence",
        "position",
    }


def test_certd_asyncapi_writes_the_document_whatever_the_topics_configured(
    tmp_path: Path,
) -> None:
    out = tmp_path / "asyncapi.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTD_")}
    env |= {
        "CERTD_KAFKA_PAYMENTS_TOPIC": "payments.elsewhere",
        "CERTD_DATABASE_URL": f"sqlite:///{tmp_path / 'never-opened.sqlite'}",
    }

    subprocess.run(
        [str(CERTD), "asyncapi", "--out", str(out)],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )

    assert out.read_text(encoding="utf-8") == asyncapi_document()
    assert not (tmp_path / "never-opened.sqlite").exists(), "it needs no store"
