"""Events stored by older code are still read: an old payment event gains its
currency through the upcaster, and events without hashes are read but
reported by ``certd verify`` as unverifiable."""

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent

from domain.certification import Certification, Status
from domain.clock import FixedClock
from domain.forms import ApplicationForm, SubmissionForm
from service.composition import Runtime
from service.ledger import ZERO_HASH, seal, stated_hash
from tests.audit.cli import Certd
from tests.audit.tables import StoredEvents
from tests.factories import application_body, submission_body
from tests.projections.steps import APPLICANT, BILLING, Steps

SUBMISSION_FEE_TOPIC = "domain.certification:Certification.SubmissionFeePaid"
ANNUAL_FEE_TOPIC = "domain.certification:Certification.AnnualFeePaid"


def old_payment(runtime: Runtime, cert_id: UUID, version: int) -> StoredEvent:
    """A SubmissionFeePaid as version 1 of the event stored it: no currency."""
    fields = {"amount_usd": Decimal(150), "reference": "OLD-1"}
    return old_event(runtime, cert_id, version, SUBMISSION_FEE_TOPIC, fields)


def old_event(
    runtime: Runtime, cert_id: UUID, version: int, topic: str, fields: dict[str, Any]
) -> StoredEvent:
    """A billing event as version 1 of its class stored it: no class version."""
    state = runtime.service.mapper.transcoder.encode(
        {
            "timestamp": runtime.service.clock.now(),
            "actor": BILLING.as_record(),
            **fields,
        }
    )
    return StoredEvent(
        originator_id=cert_id, originator_version=version, topic=topic, state=state
    )


def test_an_old_sealed_payment_event_is_read_with_its_currency(
    runtime: Runtime, steps: Steps, tables: StoredEvents
) -> None:
    cert_id = steps.start()
    steps.submit(cert_id)
    previous = tables.row(tables.positions_of(cert_id)[-1])[3]
    old = seal(old_payment(runtime, cert_id, 3), stated_hash(previous))
    runtime.service.recorder.insert_events([old])

    paid = runtime.service.history(cert_id)[-1]
    certification = runtime.service.get(cert_id)

    assert isinstance(paid, Certification.SubmissionFeePaid)
    assert paid.currency == "USD"
    assert (paid.amount_usd, paid.reference) == (Decimal(150), "OLD-1")
    assert certification.status is Status.IN_REVIEW
    assert b"currency" not in old.state


def test_an_old_sealed_annual_fee_event_is_read_with_its_currency(
    runtime: Runtime, steps: Steps, tables: StoredEvents, certd: Certd
) -> None:
    cert_id = steps.in_review("Old Fee Ltd")
    steps.approve(cert_id)
    valid_until = date(2027, 3, 1)
    fields = {
        "amount_usd": Decimal(1000),
        "reference": "OLD-2",
        "valid_until": valid_until,
    }
    previous = tables.row(tables.positions_of(cert_id)[-1])[3]
    old_state = old_event(runtime, cert_id, 5, ANNUAL_FEE_TOPIC, fields)
    old = seal(old_state, stated_hash(previous))
    runtime.service.recorder.insert_events([old])

    paid = runtime.service.history(cert_id)[-1]
    certification = runtime.service.get(cert_id)
    shown = certd("history", str(cert_id), "--json")
    verified = certd("verify")

    assert isinstance(paid, Certification.AnnualFeePaid)
    assert (paid.currency, paid.amount_usd) == ("USD", Decimal(1000))
    assert (paid.reference, paid.valid_until) == ("OLD-2", valid_until)
    assert certification.status is Status.CERTIFIED
    assert certification.valid_until == valid_until
    assert json.loads(shown.out)[-1]["data"]["currency"] == "USD"
    assert verified.code == 0, verified.out
    assert b"currency" not in old.state
    assert b"class_version" not in old.state


def test_new_payment_events_are_stored_as_version_2(
    steps: Steps, tables: StoredEvents
) -> None:
    cert_id = steps.start()
    steps.submit(cert_id)
    steps.pay_due(cert_id)

    stored = tables.row(tables.positions_of(cert_id)[-1])[3]

    assert b'"class_version":2' in stored
    assert b'"currency":"USD"' in stored


def test_a_store_without_hashes_is_read_but_reported_unverifiable(
    runtime: Runtime, clock: FixedClock, steps: Steps, certd: Certd
) -> None:
    cert_id = uuid4()
    older = Certification.start(
        ApplicationForm.model_validate(application_body()),
        id=cert_id,
        actor=APPLICANT,
        at=clock.now(),
    )
    older.submit(
        SubmissionForm.model_validate(submission_body()),
        actor=APPLICANT,
        at=clock.now(),
    )
    # What the service stored before it sealed: bare events.
    mapper = runtime.service.mapper
    bare = [mapper.to_stored_event(event) for event in older.collect_events()]
    runtime.service.recorder.insert_events([*bare, old_payment(runtime, cert_id, 3)])
    clock.advance(timedelta(hours=1))
    steps.approve(cert_id)

    ran = certd("verify")

    assert runtime.service.get(cert_id).status is Status.APPROVED
    assert ran.code == 3, ran.out
    assert "3 events were stored before tamper evidence" in ran.out
    assert f"certification {cert_id} version 1 at position 1" in ran.out
    assert "verified 4 events of 1 certifications" in ran.out


def test_a_bare_event_after_sealed_ones_counts_as_tampering(
    runtime: Runtime, steps: Steps, tables: StoredEvents, certd: Certd
) -> None:
    cert_id = steps.start()
    steps.submit(cert_id)
    steps.pay_due(cert_id)
    position = tables.positions_of(cert_id)[-1]
    sealed = tables.row(position)[3]
    tables.set_state(position, sealed[147:-1].replace(b'"150"', b'"15"'))

    ran = certd("verify")

    assert ran.code == 1
    assert f"certification {cert_id} version 3 at position {position}" in ran.out
    assert "envelope was removed" in ran.out
    assert ZERO_HASH not in sealed[6:70]
