"""The envelope of a message on ``certification.events``, for the AsyncAPI document.

The event publisher writes these; this model states their shape for
subscribers (see the contract's "Event stream"). It is a CloudEvents 1.0
event in structured JSON mode, with two extension attributes.
"""

from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class CertificationEventEnvelope(BaseModel):
    """One stored event of a certification, as a CloudEvent.

    Subscribers drop duplicates by ``id``: every stored event is published at
    least once, and a re-publish carries the same ``id``.
    """

    model_config = ConfigDict(frozen=True, title="CertificationEvent")

    specversion: Literal["1.0"]
    id: UUID = Field(description="the stored event's own id, the same on a re-publish")
    source: Literal["/certifications"]
    type: str = Field(
        pattern=r"^certification\.[A-Za-z]+$",
        description="certification.<EventName>, e.g. certification.SubmissionFeePaid",
        examples=["certification.SubmissionFeePaid"],
    )
    subject: UUID = Field(description="the certification's id, also the message key")
    time: AwareDatetime = Field(description="when the event happened")
    datacontenttype: Literal["application/json"]
    data: dict[str, Any] = Field(description="the event's own fields")
    sequence: int = Field(
        ge=1, description="the certification's version after this event"
    )
    position: int = Field(ge=1, description="the event's position in the store")
