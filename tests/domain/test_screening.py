"""Pre-screening of submissions, and the validation of the submission form."""

from typing import Any

import pytest
from pydantic import ValidationError

from domain.forms import ApplicationForm, DeclaredModel, SubmissionForm
from domain.screening import Finding, Severity, SubjectKind, screen
from tests.factories import application_body, submission_body

TEXT_MODEL = {"name": "acme-text-1", "modality": "text"}
IMAGE_MODEL = {"name": "acme-image-1", "modality": "image"}


def declared(*models: dict[str, str]) -> list[DeclaredModel]:
    body = application_body(models=list(models or [TEXT_MODEL]))
    return list(ApplicationForm.model_validate(body).models)


def source(**changes: Any) -> dict[str, Any]:
    """Return an owned training source, with these changes."""
    body: dict[str, Any] = {
        "name": "In-house corpus",
        "basis": "owned",
        "provider": "Acme Models Ltd",
        "purpose": "training",
    }
    body.update(changes)
    return body


def open_source(licence: str, name: str = "Open corpus") -> dict[str, Any]:
    return source(
        name=name, basis="open_licence", licence=licence, provider="Open Data Org"
    )


def findings_of(
    body: dict[str, Any], models: list[DeclaredModel] | None = None
) -> list[Finding]:
    form = SubmissionForm.model_validate(body)
    return screen(form, declared() if models is None else models)


def codes(findings: list[Finding]) -> list[str]:
    return [finding.code for finding in findings]


def test_a_clean_submission_has_no_findings() -> None:
    assert findings_of(submission_body()) == []


@pytest.mark.parametrize(
    "licence",
    ["CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "MIT", "Apache-2.0", "cc-by-4.0", "mit"],
)
def test_an_open_licence_that_allows_the_use_has_no_findings(licence: str) -> None:
    body = submission_body(data_sources=[open_source(licence)])

    assert findings_of(body) == []


def test_an_spdx_id_in_another_case_still_carries_its_restrictions() -> None:
    body = submission_body(data_sources=[open_source("cc-by-nc-4.0")])

    assert codes(findings_of(body)) == ["licence_non_commercial"]


def test_a_licence_that_is_not_an_spdx_id_is_flagged_unknown() -> None:
    body = submission_body(data_sources=[open_source("Acme-Custom-1.0")])

    findings = findings_of(body)

    assert findings == [
        Finding(
            code="licence_unknown",
            severity=Severity.WARNING,
            subject_kind=SubjectKind.DATA_SOURCE,
            subject="Open corpus",
            message=findings[0].message,
        )
    ]
    assert "Acme-Custom-1.0" in findings[0].message


@pytest.mark.parametrize(
    ("licence", "expected"),
    [
        ("CC-BY-NC-4.0", ["licence_non_commercial"]),
        ("CC-BY-NC-SA-4.0", ["licence_non_commercial"]),
        ("PolyForm-Noncommercial-1.0.0", ["licence_non_commercial"]),
        ("CC-BY-ND-4.0", ["licence_no_derivatives"]),
        ("CC-BY-NC-ND-4.0", ["licence_non_commercial", "licence_no_derivatives"]),
    ],
)
def test_a_restrictive_licence_is_flagged_for_each_restriction(
    licence: str, expected: list[str]
) -> None:
    body = submission_body(data_sources=[open_source(licence)])

    findings = findings_of(body)

    assert codes(findings) == expected
    for finding in findings:
        assert finding.severity is Severity.ERROR
        assert finding.subject_kind is SubjectKind.DATA_SOURCE
        assert finding.subject == "Open corpus"
        assert licence in finding.message


def test_a_contract_through_an_intermediary_is_flagged_for_its_consent() -> None:
    stock = source(
        name="Stock photos",
        basis="contract",
        provider="Example Stock Library",
        agreement_ref="AGR-7",
        via_intermediary=True,
    )

    findings = findings_of(submission_body(data_sources=[stock]))

    assert [(f.code, f.severity, f.subject_kind, f.subject) for f in findings] == [
        (
            "contract_via_intermediary",
            Severity.INFO,
            SubjectKind.DATA_SOURCE,
            "Stock photos",
        )
    ]
    assert "Example Stock Library" in findings[0].message


def test_a_direct_contract_is_not_flagged() -> None:
    direct = source(basis="contract", agreement_ref="AGR-7", via_intermediary=False)

    assert findings_of(submission_body(data_sources=[direct])) == []


def third_party(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "open-base-7b",
        "provider": "Open Models Org",
        "role": "base_model",
    }
    body.update(changes)
    return body


def test_a_third_party_model_with_neither_reference_nor_sources_is_flagged() -> None:
    body = submission_body(third_party_models=[third_party()])

    findings = findings_of(body)

    assert [(f.code, f.severity, f.subject_kind, f.subject) for f in findings] == [
        (
            "third_party_model_undocumented",
            Severity.ERROR,
            SubjectKind.THIRD_PARTY_MODEL,
            "open-base-7b",
        )
    ]
    assert "certification_ref" in findings[0].message


@pytest.mark.parametrize(
    "documentation",
    [
        pytest.param({"certification_ref": "LM-2025-0042"}, id="certified"),
        pytest.param({"data_sources": [source()]}, id="with its sources"),
    ],
)
def test_a_documented_third_party_model_is_not_flagged(
    documentation: dict[str, Any],
) -> None:
    body = submission_body(third_party_models=[third_party(**documentation)])

    assert findings_of(body) == []


def test_the_sources_of_a_third_party_model_are_screened_under_its_name() -> None:
    model = third_party(data_sources=[open_source("CC-BY-ND-4.0", name="Forum dump")])

    findings = findings_of(submission_body(third_party_models=[model]))

    assert [(f.code, f.subject) for f in findings] == [
        ("licence_no_derivatives", "open-base-7b: Forum dump")
    ]


def test_a_declared_model_without_a_training_source_is_flagged() -> None:
    evaluation_only = source(name="Benchmark set", purpose="evaluation")
    body = submission_body(data_sources=[evaluation_only])

    findings = findings_of(body)

    assert [(f.code, f.severity, f.subject_kind, f.subject) for f in findings] == [
        (
            "model_without_training_data",
            Severity.ERROR,
            SubjectKind.MODEL,
            "acme-text-1",
        )
    ]
    assert "acme-text-1" in findings[0].message


def test_a_source_limited_to_another_model_leaves_a_model_uncovered() -> None:
    images_only = source(name="Photo archive", models=["acme-image-1"])
    body = submission_body(data_sources=[images_only])

    findings = findings_of(body, declared(TEXT_MODEL, IMAGE_MODEL))

    assert [(f.code, f.subject) for f in findings] == [
        ("model_without_training_data", "acme-text-1")
    ]


def test_a_source_without_models_trains_every_declared_model() -> None:
    body = submission_body(data_sources=[source()])

    assert findings_of(body, declared(TEXT_MODEL, IMAGE_MODEL)) == []


def test_findings_come_in_the_order_of_the_submission() -> None:
    body = submission_body(
        data_sources=[
            open_source("Unknown-1", name="First"),
            source(name="Evaluation", purpose="evaluation"),
            open_source("CC-BY-NC-4.0", name="Second"),
        ],
        third_party_models=[third_party()],
    )

    findings = findings_of(body, declared(TEXT_MODEL))

    assert [(f.code, f.subject) for f in findings] == [
        ("licence_unknown", "First"),
        ("licence_non_commercial", "Second"),
        ("third_party_model_undocumented", "open-base-7b"),
    ]


# Form validation


def error_locations(error: ValidationError) -> list[tuple[str | int, ...]]:
    return [tuple(detail["loc"]) for detail in error.errors()]


def test_a_basis_outside_the_four_is_refused_naming_the_field() -> None:
    body = submission_body(data_sources=[source(basis="fair_use")])

    with pytest.raises(ValidationError) as raised:
        SubmissionForm.model_validate(body)

    assert error_locations(raised.value) == [("data_sources", 0, "basis")]


@pytest.mark.parametrize(
    "basis", ["contract", "open_licence", "public_domain", "owned"]
)
def test_each_of_the_four_bases_is_accepted(basis: str) -> None:
    evidence = {"licence": "CC0-1.0", "agreement_ref": "AGR-1"}
    body = submission_body(data_sources=[source(basis=basis, **evidence)])

    form = SubmissionForm.model_validate(body)

    assert form.data_sources[0].basis == basis


@pytest.mark.parametrize(
    ("basis", "missing"),
    [("open_licence", "licence"), ("contract", "agreement_ref")],
)
def test_a_source_without_the_evidence_of_its_basis_is_refused(
    basis: str, missing: str
) -> None:
    body = submission_body(data_sources=[source(basis=basis)])

    with pytest.raises(ValidationError) as raised:
        SubmissionForm.model_validate(body)

    (detail,) = raised.value.errors()
    assert detail["loc"] == ("data_sources", 0)
    assert f"`{missing}`" in detail["msg"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        pytest.param(
            submission_body(data_source=[source()]), ("data_source",), id="top level"
        ),
        pytest.param(
            submission_body(data_sources=[source(licence_url="https://x.example")]),
            ("data_sources", 0, "licence_url"),
            id="in a data source",
        ),
    ],
)
def test_an_unknown_field_is_refused_naming_it(
    body: dict[str, Any], location: tuple[str | int, ...]
) -> None:
    with pytest.raises(ValidationError) as raised:
        SubmissionForm.model_validate(body)

    assert location in error_locations(raised.value)
    assert any(detail["type"] == "extra_forbidden" for detail in raised.value.errors())


@pytest.mark.parametrize("part", ["data_sources", "due_diligence", "record_keeping"])
def test_a_submission_missing_a_required_part_is_refused_naming_it(
    part: str,
) -> None:
    body = submission_body()
    del body[part]

    with pytest.raises(ValidationError) as raised:
        SubmissionForm.model_validate(body)

    assert error_locations(raised.value) == [(part,)]
