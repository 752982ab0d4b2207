"""The checks that hold a load's answers against the store catch what they are
for: a stored event no answer explains, and an event stored twice."""

from tests.reliability.agreement import Stored, repeated_events, unanswered_events
from tests.reliability.load import Answer, Tally

CID = "0b7e7f0e-2a51-4f7a-9d3e-5c1e8a3b9f10"


def answer(command: str, status: int, position: int | None = None) -> Answer:
    version = None if position is None else position
    return Answer(command, CID, "http://server", status, position, version, "")


def store(*types: str) -> dict[int, Stored]:
    return {
        position: Stored(position, CID, position, kind)
        for position, kind in enumerate(types, start=1)
    }


def started_and_approved(approval: Answer, *more: Answer) -> Tally:
    return Tally(answers=[answer("start", 201, 1), approval, *more])


def test_an_event_answered_at_its_position_is_explained() -> None:
    tally = started_and_approved(answer("approve", 200, 2))

    assert unanswered_events(tally, store("ApplicationStarted", "Approved")) == []


def test_a_409_explains_no_stored_event() -> None:
    tally = started_and_approved(answer("approve", 409))

    problems = unanswered_events(tally, store("ApplicationStarted", "Approved"))

    assert problems == [
        f"{CID}: 1 stored events nobody was answered for, 0 unclear answers"
    ]


def test_each_unclear_answer_explains_one_stored_event_and_no_more() -> None:
    stored = store("ApplicationStarted", "SubmissionReceived", "SubmissionFeePaid")
    one_unclear = started_and_approved(answer("submit", 503), answer("pay", 409))
    two_unclear = started_and_approved(answer("submit", 503), answer("pay", 0))

    assert len(unanswered_events(one_unclear, stored)) == 1
    assert unanswered_events(two_unclear, stored) == []


def test_an_unclear_read_explains_no_stored_command() -> None:
    tally = started_and_approved(answer("read", 503), answer("approve", 409))

    assert len(unanswered_events(tally, store("ApplicationStarted", "Approved"))) == 1


def test_a_repeat_explains_the_first_try_whose_reply_was_lost() -> None:
    tally = started_and_approved(answer("pay", 200))

    assert (
        unanswered_events(tally, store("ApplicationStarted", "SubmissionFeePaid")) == []
    )


def test_an_event_the_load_makes_once_stored_twice_is_a_problem() -> None:
    stored = store("ApplicationStarted", "Approved", "Approved", "ReevaluationDue")

    assert repeated_events(stored) == [f"{CID}: Approved stored 2 times"]
