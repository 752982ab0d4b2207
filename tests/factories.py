"""Valid command bodies to start from; tests change what they are about."""

from typing import Any


def application_body(revenue: int | str = 250_000, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "organisation": {
            "name": "Acme Models Ltd",
            "website": "https://acme.example",
            "country": "GB",
        },
        "contact": {"name": "Ann Example", "email": "ann@acme.example"},
        "annual_revenue_usd": revenue,
        "models": [{"name": "acme-text-1", "modality": "text"}],
    }
    body.update(changes)
    return body


def submission_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "data_sources": [
            {
                "name": "Licensed news archive",
                "basis": "contract",
                "provider": "Example News Agency",
                "agreement_ref": "AGR-2026-001",
                "purpose": "training",
            },
            {
                "name": "Wikipedia dump",
                "basis": "open_licence",
                "licence": "CC-BY-SA-4.0",
                "provider": "Wikimedia Foundation",
                "purpose": "training",
            },
        ],
        "third_party_models": [],
        "due_diligence": {
            "process": "Each provider's rights are checked against its contract.",
            "owner": "Head of Data",
        },
        "record_keeping": {
            "process": "Each training run records its data set manifests.",
            "retention_months": 60,
        },
    }
    body.update(changes)
    return body
