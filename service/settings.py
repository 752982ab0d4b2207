"""Settings, read from ``CERTD_*`` environment variables (see the README)."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CERTD_", frozen=True)

    database_url: str = Field(
        default="sqlite:///var/certd.sqlite",
        description="sqlite:///PATH (relative to the working directory) "
        "or postgresql://USER[:PASSWORD]@HOST:PORT/DB[?schema=NAME]",
    )
    api_tokens: SecretStr = Field(
        default=SecretStr(""),
        description="role:token pairs separated by commas",
    )
    reevaluation_lead_days: int = Field(default=60, ge=1, le=365)
    grace_days: int = Field(default=30, ge=0, le=365)
    scheduler_interval: float = Field(
        default=3_600, gt=0, le=86_400, description="seconds between passes"
    )
    postgres_pool_size: int = Field(default=10, ge=1, le=200)
    projection_batch: int = Field(
        default=1_000, ge=1, le=100_000, description="events per view transaction"
    )
    read_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="how long a query with min_position waits for the views",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1_024,
        le=64 * 1_048_576,
        description="largest request body accepted; a larger one answers 413",
    )
    max_json_depth: int = Field(
        default=32,
        ge=4,
        le=500,
        description="deepest nesting of a JSON body; a deeper one answers 422",
    )
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port[,host:port]; the event publisher and the payment "
        "consumer run only when it is set",
    )
    kafka_topic: str = "certification.events"
    kafka_payments_topic: str = "billing.payments"
    kafka_dlq_topic: str = "billing.payments.dlq"
    kafka_consumer_group: str = "certd-payments"
    kafka_partitions: int = Field(default=6, ge=1, le=1_000)
    kafka_replication: int = Field(default=1, ge=1, le=10)
    publisher_batch: int = Field(default=500, ge=1, le=10_000)
    publisher_ack_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="seconds the broker has to acknowledge a batch before the "
        "publisher counts it as failed and sends it again",
    )
    kafka_payments_retention_ms: int = Field(
        default=7 * 24 * 3600 * 1000,
        ge=-1,
        description="how long billing.payments keeps a message (-1: forever); "
        "the event topic and the dead-letter topic keep everything",
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
