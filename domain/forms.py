"""What an applicant tells us: the online application and the written submission.

These are the bodies of the applicant's commands. They are frozen and refuse
unknown fields, so a typo in a field name is an error rather than data that
silently goes missing.
"""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

NonEmptyText = Annotated[str, Field(min_length=1, max_length=500)]
LongText = Annotated[str, Field(min_length=1, max_length=10_000)]
Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]


class Form(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Organisation(Form):
    name: NonEmptyText
    website: Annotated[str, Field(max_length=500)] | None = None
    country: Annotated[str, Field(min_length=2, max_length=100)]


class Contact(Form):
    name: NonEmptyText
    email: EmailStr


class DeclaredModel(Form):
    name: NonEmptyText
    modality: NonEmptyText
    description: LongText | None = None


class ApplicationForm(Form):
    organisation: Organisation
    contact: Contact
    annual_revenue_usd: Money
    models: Annotated[list[DeclaredModel], Field(min_length=1, max_length=200)]

    @model_validator(mode="after")
    def _model_names_are_unique(self) -> Self:
        names = [model.name for model in self.models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            msg = f"each model needs its own name; repeated: {', '.join(duplicates)}"
            raise ValueError(msg)
        return self


class Basis(StrEnum):
    """The four grounds on which training data may be used."""

    CONTRACT = "contract"
    OPEN_LICENCE = "open_licence"
    PUBLIC_DOMAIN = "public_domain"
    OWNED = "owned"


class Purpose(StrEnum):
    TRAINING = "training"
    FINE_TUNING = "fine_tuning"
    EVALUATION = "evaluation"
    SYNTHETIC_DATA = "synthetic_data"


class DataSource(Form):
    name: NonEmptyText
    basis: Basis
    provider: NonEmptyText
    licence: NonEmptyText | None = None
    agreement_ref: NonEmptyText | None = None
    via_intermediary: bool = False
    purpose: Purpose
    models: list[NonEmptyText] | None = Field(
        default=None,
        description="Declared models this source feeds; all of them when absent.",
    )

    @model_validator(mode="after")
    def _basis_has_its_evidence(self) -> Self:
        if self.basis is Basis.OPEN_LICENCE and self.licence is None:
            msg = "an open_licence source needs `licence`, its SPDX licence id"
            raise ValueError(msg)
        if self.basis is Basis.CONTRACT and self.agreement_ref is None:
            msg = "a contract source needs `agreement_ref`, the agreement's reference"
            raise ValueError(msg)
        return self

    def feeds(self, model_name: str) -> bool:
        return self.models is None or model_name in self.models


class ThirdPartyRole(StrEnum):
    BASE_MODEL = "base_model"
    SYNTHETIC_DATA_GENERATOR = "synthetic_data_generator"


class ThirdPartyModel(Form):
    """A model made by someone else that the applicant builds on or learns from.

    It must meet the same requirements as the applicant's own data: either it
    is itself certified (`certification_ref`) or its data sources are listed.
    Pre-screening flags one that has neither for the reviewer.
    """

    name: NonEmptyText
    provider: NonEmptyText
    role: ThirdPartyRole
    certification_ref: NonEmptyText | None = None
    data_sources: Annotated[list[DataSource], Field(max_length=1_000)] = []


class DueDiligence(Form):
    process: LongText
    owner: NonEmptyText


class RecordKeeping(Form):
    process: LongText
    retention_months: Annotated[int, Field(ge=1, le=1_200)]


class SubmissionForm(Form):
    annual_revenue_usd: Money | None = Field(
        default=None,
        description="Updates the revenue tier when given.",
    )
    data_sources: Annotated[list[DataSource], Field(min_length=1, max_length=1_000)]
    third_party_models: Annotated[list[ThirdPartyModel], Field(max_length=200)] = []
    due_diligence: DueDiligence
    record_keeping: RecordKeeping


class InfoRequestForm(Form):
    questions: Annotated[list[LongText], Field(min_length=1, max_length=50)]
    respond_by: date | None = None


class InfoResponseForm(Form):
    request_id: NonEmptyText
    answers: Annotated[list[LongText], Field(min_length=1, max_length=50)]


class PaymentForm(Form):
    kind: Literal["submission_fee", "annual_fee"]
    amount_usd: Annotated[Decimal, Field(gt=0, max_digits=16, decimal_places=2)]
    reference: NonEmptyText
    currency: Literal["USD"] = "USD"


class DecisionForm(Form):
    outcome: Literal["approved", "rejected"]
    reason: LongText


class ReasonForm(Form):
    reason: LongText


def describe_validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Name each wrong field as a path (``data_sources[0].basis``) with why."""
    described = []
    for error in errors:
        if error.get("type") == "json_invalid":
            # Its location holds a character position, not a field.
            reason = error.get("ctx", {}).get("error", "JSON decode error")
            described.append({"field": "body", "message": f"is not JSON: {reason}"})
            continue
        location = [part for part in error.get("loc", ()) if part != "body"]
        field = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in location
        ).lstrip(".")
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        described.append({"field": field or "body", "message": message})
    return described
