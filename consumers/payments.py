"""The payment consumer: billing's payments on Kafka become payment commands.

Each message on ``billing.payments`` (``CERTD_KAFKA_PAYMENTS_TOPIC``) is read
in the consumer group ``CERTD_KAFKA_CONSUMER_GROUP`` and handled once:

- a payment the service records, or one whose reference it has recorded
  before (a repeat changes nothing), is done;
- a message that is not a valid payment, a payment for an unknown
  certification and a payment the domain refuses are published, bytes
  unchanged, to the dead-letter topic (``CERTD_KAFKA_DLQ_TOPIC``) with the
  reason in the ``x-dlq-reason`` header, and are done;
- a store that cannot be reached, a write lost to a race, or an error nobody
  expected is retried here with backoff; if it still fails, the handler
  raises, the offset is not committed and the message comes back, so a
  payment is never lost and never dead-lettered for being early.

The handler validates the raw bytes itself rather than letting FastStream do
it, because FastStream would treat an invalid message as a failed one and
redeliver it forever. The offset of a message is committed only after its
handler returns (FastStream's ``NACK_ON_ERROR`` ack policy: an error rewinds
the partition to the message instead).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

import structlog
from aiokafka import ConsumerRecord  # type: ignore[import-untyped]
from aiokafka.client import AIOKafkaClient  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.publisher.usecase import DefaultPublisher
from faststream.message import StreamMessage
from faststream.specification import AsyncAPI
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from structlog.typing import FilteringBoundLogger

from consumers.event_envelope import CertificationEventEnvelope
from domain.actor import Actor
from domain.errors import InvalidCommandError, RefusedError
from domain.forms import NonEmptyText, PaymentForm, describe_validation_errors
from service.application import (
    CertificationNotFoundError,
    ConcurrentWriteError,
    PaymentOutcome,
    StoreUnavailableError,
)
from service.settings import Settings

log = structlog.get_logger(component="certd.payments")

# FastStream's own lines (connections, rebalances, a handler's traceback) go
# through the standard library, rendered like every other line of the service.
_faststream_log = logging.getLogger("certd.kafka")

PAYMENT_ACTOR = Actor(role="billing", name="kafka:billing.payments")

DLQ_REASON = "x-dlq-reason"
DLQ_SOURCE_TOPIC = "x-dlq-source-topic"
DLQ_SOURCE_PARTITION = "x-dlq-source-partition"
DLQ_SOURCE_OFFSET = "x-dlq-source-offset"


class PaymentMessage(BaseModel):
    """A fee paid, as billing announces it on ``billing.payments``."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        str_strip_whitespace=True,
        title="Payment",
    )

    certification_id: UUID = Field(description="the certification the fee is for")
    kind: Literal["submission_fee", "annual_fee"]
    amount_usd: Annotated[Decimal, Field(gt=0, max_digits=16, decimal_places=2)] = (
        Field(description="the amount paid, in USD; it must be the exact fee due")
    )
    reference: NonEmptyText = Field(
        description="billing's reference; a payment seen before changes nothing"
    )
    # TODO: paid_at is checked but not stored: the payment event keeps the
    # service's own time. A version 3 of the payment events with a paid_at
    # field (older ones upcast with their timestamp) would keep billing's.
    paid_at: AwareDatetime = Field(description="when billing received the payment")

    def to_form(self) -> PaymentForm:
        return PaymentForm(
            kind=self.kind, amount_usd=self.amount_usd, reference=self.reference
        )


# A dead letter is the payment's message with its bytes unchanged.
DeadLetter = Annotated[
    bytes,
    WithJsonSchema(
        {
            "title": "DeadLetteredPayment",
            "type": "string",
            "description": "the message read from billing.payments, bytes "
            f"unchanged; its headers say why it was not applied ({DLQ_REASON}) "
            f"and where it was read ({DLQ_SOURCE_TOPIC}, {DLQ_SOURCE_PARTITION}, "
            f"{DLQ_SOURCE_OFFSET}); the original headers are kept",
        }
    ),
]


# The handler takes the raw bytes, validated by PaymentMessage inside it; the
# AsyncAPI document shows the shape they must have.
RawPayment = Annotated[bytes, WithJsonSchema(PaymentMessage.model_json_schema())]


class RecordsPayments(Protocol):
    def record_payment(
        self, certification_id: UUID, form: PaymentForm, actor: Actor
    ) -> PaymentOutcome: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often a payment that failed for a passing reason is tried in hand."""

    attempts: int = 5
    first_delay: float = 0.2
    max_delay: float = 5.0


class PaymentDeferredError(Exception):
    """A payment could not be recorded yet; its message will come back."""


class _NotAPaymentError(Exception):
    """The message is not a payment the service can apply; dead-letter it.

    ``kind`` names the reason in a word for the metrics: ``invalid``,
    ``unknown_certification`` or ``refused``.
    """

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.kind = kind


class PaymentObserver(Protocol):
    """Told what became of each payment message, beside its log line."""

    def payment_handled(self, outcome: str) -> None: ...
    def payment_dead_lettered(self, reason: str) -> None: ...


class _Unobserved:
    def payment_handled(self, outcome: str) -> None:
        pass

    def payment_dead_lettered(self, reason: str) -> None:
        pass


@dataclass(frozen=True)
class _Handler:
    service: RecordsPayments
    dead_letters: DefaultPublisher
    retry: RetryPolicy
    observer: PaymentObserver

    async def handle(self, body: bytes, message: StreamMessage[Any]) -> None:
        record = message.raw_message
        if not isinstance(record, ConsumerRecord):
            msg = "the payment consumer reads one message at a time"
            raise TypeError(msg)
        message_log = log.bind(
            topic=record.topic, partition=record.partition, offset=record.offset
        )
        try:
            payment = _parse(body)
            message_log = message_log.bind(
                certification_id=str(payment.certification_id),
                reference=payment.reference,
            )
            outcome = await self._record(payment, message_log)
        except _NotAPaymentError as error:
            await self._dead_letter(body, message, record, str(error))
            message_log.warning("payment_dead_lettered", reason=str(error))
            self.observer.payment_dead_lettered(error.kind)
            return
        except PaymentDeferredError:
            self.observer.payment_handled("deferred")
            raise
        consumed = "repeat" if outcome.position is None else "recorded"
        message_log.info(
            "payment_consumed", outcome=consumed, position=outcome.position
        )
        self.observer.payment_handled(consumed)

    async def _record(
        self, payment: PaymentMessage, message_log: FilteringBoundLogger
    ) -> PaymentOutcome:
        """Record a payment, retrying in hand what may pass; raise if it does not.

        Anything but the service's verdict on the payment is retried: a store
        that is away and a lost race are expected, and an error nobody
        expected (a bug) must not cost a payment either.
        """
        attempt, delay = 1, self.retry.first_delay
        while True:
            try:
                return await asyncio.to_thread(
                    self.service.record_payment,
                    payment.certification_id,
                    payment.to_form(),
                    PAYMENT_ACTOR,
                )
            except Exception as error:
                if _is_verdict(error):
                    raise _verdict(error) from error
                expected = isinstance(error, _PASSING)
                if attempt >= self.retry.attempts:
                    message_log.error(
                        "payment_deferred",
                        attempts=attempt,
                        error=str(error),
                        exc_info=not expected,
                    )
                    msg = (
                        f"payment not recorded after {attempt} attempts ({error}); "
                        "its offset is not committed, so it comes back"
                    )
                    raise PaymentDeferredError(msg) from error
                message_log.warning(
                    "payment_retry",
                    attempt=attempt,
                    delay_seconds=delay,
                    error=str(error),
                    exc_info=not expected,
                )
            await asyncio.sleep(delay)
            attempt, delay = attempt + 1, min(delay * 2, self.retry.max_delay)

    async def _dead_letter(
        self,
        body: bytes,
        message: StreamMessage[Any],
        record: ConsumerRecord[Any, Any],
        reason: str,
    ) -> None:
        # A failed publish raises: the message is not committed and comes back.
        await self.dead_letters.publish(
            body,
            key=record.key,
            headers={
                **message.headers,
                DLQ_REASON: reason,
                DLQ_SOURCE_TOPIC: record.topic,
                DLQ_SOURCE_PARTITION: str(record.partition),
                DLQ_SOURCE_OFFSET: str(record.offset),
            },
        )


# Errors that may pass if the payment is tried again.
_PASSING = (StoreUnavailableError, ConcurrentWriteError)


def _is_verdict(error: Exception) -> bool:
    """Whether an error is the service's final answer to a payment."""
    if isinstance(error, ConcurrentWriteError):
        return False
    return isinstance(
        error, CertificationNotFoundError | RefusedError | InvalidCommandError
    )


def _verdict(error: Exception) -> _NotAPaymentError:
    if isinstance(error, CertificationNotFoundError):
        return _NotAPaymentError(
            f"unknown certification: {error}", "unknown_certification"
        )
    return _NotAPaymentError(f"refused: {error}", "refused")


def _parse(body: bytes) -> PaymentMessage:
    try:
        return PaymentMessage.model_validate_json(body)
    except ValidationError as error:
        problems = describe_validation_errors(error.errors())
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        msg = f"not a valid payment: {detail}"
        raise _NotAPaymentError(msg, "invalid") from None


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    """Hand the handler the message's bytes as they are, decoded by no one."""
    return message.body


@dataclass
class PaymentConsumer:
    """The FastStream application of the payment consumer, and how to run it."""

    app: FastStream
    broker: KafkaBroker
    bootstrap: str

    def run(self, stopping: threading.Event) -> None:
        """Consume until ``stopping`` is set, then finish the message in hand."""
        asyncio.run(self._run(stopping))

    async def _run(self, stopping: threading.Event) -> None:
        if not await self._start(stopping):
            return
        log.info("payment_consumer_started")
        try:
            await _sleep_unless(stopping, float("inf"))
        finally:
            await self.app.stop()
            log.info("payment_consumer_stopped")

    async def _start(self, stopping: threading.Event) -> bool:
        """Start, waiting for Kafka while it cannot be reached; False if stopped."""
        delay = 1.0
        while not stopping.is_set():
            try:
                # FastStream leaves a producer that failed to start unclosed,
                # so it starts only once the cluster has answered.
                await _bootstrap(self.bootstrap)
                await self.app.start()
            except KafkaError as error:
                log.warning(
                    "payment_consumer_waiting_for_kafka",
                    error=str(error),
                    retry_in_seconds=delay,
                )
                await self.app.stop()
                await _sleep_unless(stopping, delay)
                delay = min(delay * 2, 30.0)
            else:
                return True
        return False


async def _bootstrap(bootstrap: str) -> None:
    """Ask the cluster for its metadata; raise a KafkaError if it cannot answer."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    try:
        await client.bootstrap()
    finally:
        await client.close()


async def _sleep_unless(stopping: threading.Event, seconds: float) -> None:
    """Sleep, but wake up at once when ``stopping`` is set."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not stopping.is_set() and loop.time() < deadline:
        await asyncio.sleep(0.1)


def create_payment_consumer(
    settings: Settings,
    service: RecordsPayments,
    retry: RetryPolicy | None = None,
    observer: PaymentObserver | None = None,
) -> PaymentConsumer:
    """Build the broker and the application that turn payments into commands.

    The application also declares the ``certification.events`` publisher, so
    that its AsyncAPI document shows every topic of the service.
    """
    bootstrap = settings.kafka_bootstrap or "localhost:9092"
    broker = KafkaBroker(
        bootstrap,
        # tansu refuses idempotent producers; every replica must have a message.
        acks="all",
        enable_idempotence=False,
        client_id="certd",
        # Stopping waits this long for the message in hand (retries included).
        graceful_timeout=20.0,
        logger=_faststream_log,
        log_level=logging.DEBUG,
        description="The Kafka cluster certd reads payments from and "
        "publishes certification events to.",
    )
    dead_letters = broker.publisher(
        settings.kafka_dlq_topic,
        title=f"{settings.kafka_dlq_topic}:DeadLetter",
        description="Payments that were not applied: not a valid payment, an "
        f"unknown certification, or refused. Headers: {DLQ_REASON}, "
        f"{DLQ_SOURCE_TOPIC}, {DLQ_SOURCE_PARTITION}, {DLQ_SOURCE_OFFSET}.",
        schema=DeadLetter,
    )
    broker.publisher(
        settings.kafka_topic,
        title=f"{settings.kafka_topic}:CertificationEvent",
        description="Every stored event of every certification, at least once, "
        "in store order per certification; keyed by the certification id; "
        "content-type application/cloudevents+json.",
        schema=CertificationEventEnvelope,
    )
    handler = _Handler(
        service, dead_letters, retry or RetryPolicy(), observer or _Unobserved()
    )

    @broker.subscriber(
        settings.kafka_payments_topic,
        group_id=settings.kafka_consumer_group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        decoder=_raw_body,
        title=f"{settings.kafka_payments_topic}:Payment",
        description="Fees paid, from billing. Each becomes a payment command; "
        "one not applied goes to the dead-letter topic.",
    )
    async def handle_payment(body: RawPayment, message: KafkaMessage) -> None:
        await handler.handle(body, message)

    app = FastStream(
        broker,
        logger=_faststream_log,
        specification=AsyncAPI(
            title="certd event stream",
            version="1.0",
            description="The topics the certification service reads and writes.",
        ),
    )
    return PaymentConsumer(app, broker, bootstrap)


class PaymentConsumerThread:
    """The consumer in a thread of its own, beside the HTTP server."""

    def __init__(self, consumer: PaymentConsumer) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=consumer.run,
            args=(self._stopping,),
            name="payment-consumer",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the message in hand, leave the group and stop."""
        self._stopping.set()
        self._thread.join(timeout)

    @property
    def is_alive(self) -> bool:
        return self._thread.is_alive()
