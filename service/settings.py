"""Settings, read from ``CERTD_*`` environment variables (see the README).

The two settings that may hold a secret, ``CERTD_API_TOKENS`` and
``CERTD_DATABASE_URL`` (its password), can instead be read from a file named
by ``CERTD_API_TOKENS_FILE`` or ``CERTD_DATABASE_URL_FILE``: that is how
container secrets arrive (``/run/secrets/NAME``), and it keeps them out of
the process environment, which ``docker inspect`` and crash reports show.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Settings that may come from a file, and the setting naming that file.
FROM_FILE = {"api_tokens": "api_tokens_file", "database_url": "database_url_file"}


class Settings(BaseSettings):
    # Errors never quote a value: it may be a token or a password.
    model_config = SettingsConfigDict(
        env_prefix="CERTD_", frozen=True, hide_input_in_errors=True
    )

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
    publisher_batch: int = Field(default=2_000, ge=1, le=10_000)
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
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65_535,
        description="port of the health and metrics endpoint of project, publish, "
        "consume, schedule and api (/healthz, /metrics); none when not set",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the health and metrics endpoint listens on "
        "(0.0.0.0 in a container)",
    )
    api_tokens_file: Path | None = Field(
        default=None, description="a file holding CERTD_API_TOKENS instead"
    )
    database_url_file: Path | None = Field(
        default=None, description="a file holding CERTD_DATABASE_URL instead"
    )

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, values: Any) -> Any:
        """Fill each setting that names a file with the file's text.

        Naming both the setting and its file is refused: which one wins
        would be a guess.
        """
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for name, file_setting in FROM_FILE.items():
            path = values.get(file_setting)
            if not path:
                continue
            if values.get(name):
                both = f"CERTD_{name.upper()} or CERTD_{file_setting.upper()}"
                msg = f"set {both}, not both"
                raise ValueError(msg)
            values[name] = _read_secret(Path(path), file_setting)
        return values


def _read_secret(path: Path, setting: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        msg = f"CERTD_{setting.upper()}: cannot read {path}: {error.strerror}"
        raise ValueError(msg) from None
