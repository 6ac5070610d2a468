"""The one settings object (env prefix ``WORKERS_``, ``.env`` supported).

Read once at the edge (CLI, app builder) and passed down; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff


class QueueOverrides(BaseModel):
    """Per-queue overrides of what the task types declare (resources, replicas, limits)."""

    num_cpus: float | None = Field(default=None, ge=0)
    num_gpus: float | None = Field(default=None, ge=0)
    memory_mb: int | None = Field(default=None, ge=0)
    replicas: int | None = Field(default=None, ge=0, description="Fixed replica count.")
    concurrency: int | None = Field(default=None, ge=1)
    time_limit_s: float | None = Field(default=None, gt=0)
    visibility_timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("num_cpus", "num_gpus")
    @classmethod
    def _ray_fraction_rule(cls, v: float | None) -> float | None:
        # Ray: quantities above 1 must be whole numbers (ray _common/ray_option_utils.py).
        if v is not None and v > 1 and v != int(v):
            raise ValueError("quantities above 1 must be whole numbers")
        return v


class Settings(BaseSettings):
    """Everything the platform can be told; every field is in `.env.example`."""

    model_config = SettingsConfigDict(
        env_prefix="WORKERS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Redis: the durable ledger and queues.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: SecretStr | None = None
    redis_prefix: str = Field(default="wc", pattern=r"^[A-Za-z0-9_.-]+$")
    redis_socket_timeout_s: float = Field(default=5.0, gt=0)
    redis_connect_timeout_s: float = Field(default=1.0, gt=0)

    # Jobs.
    result_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    idempotency_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    events_maxlen: int = Field(default=100_000, gt=0)
    dlq_maxlen: int = Field(default=100_000, gt=0)
    default_max_attempts: int = Field(default=3, ge=1, le=100)
    max_batch_size: int = Field(default=1000, ge=1, le=10_000)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_wait_s: float = Field(default=60.0, gt=0)

    # Artifacts (binaries referenced by jobs).
    artifact_dir: Path | None = Field(
        default=None, description="Shared directory for artifacts; unset: keep them in Redis."
    )
    artifact_max_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    artifact_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)

    # E-mail (email.send).
    smtp_host: str = "127.0.0.1"
    smtp_port: int | None = Field(default=None, ge=1, le=65535,
                                  description="Default: 465 for tls, 587 for starttls, 25.")
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "workers-core@localhost"
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    smtp_validate_certs: bool = True

    # Slack (notify.slack).
    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_default_channel: str | None = None
    slack_timeout_s: float = Field(default=30.0, gt=0)

    # OCR (ocr.extract).
    ocr_engine: Literal["rapidocr", "paddle"] = "rapidocr"
    ocr_dpi: int = Field(default=250, ge=72, le=600, description="PDF rasterisation DPI.")
    ocr_max_pages: int = Field(default=50, ge=1, le=2000)
    ocr_use_angle_cls: bool = Field(
        default=False, description="Rotation classifier (garbles upright Romanian lines)."
    )
    ocr_paddle_model_dir: Path | None = Field(
        default=None, description="Local PaddleOCR models (engine paddle); never downloaded."
    )
    ocr_use_gpu: bool = Field(
        default=True, description="Use onnxruntime's CUDA provider when the replica has a GPU."
    )

    # PDF rendering (pdf.render).
    pdf_chromium_path: Path | None = Field(
        default=None, description="Chromium binary; default: chromium on PATH."
    )
    pdf_allowed_hosts: list[str] = Field(
        default_factory=list, description="Hosts a pdf.render job may load (URL or subresources)."
    )
    pdf_restart_after_jobs: int = Field(default=200, ge=1)
    pdf_render_timeout_s: float = Field(default=30.0, gt=0)
    pdf_max_pages: int = Field(default=500, ge=1)

    # Official schemas and rule sets (UBL/CIUS-RO, e-Transport, SAF-T, REGES): data, read
    # from a directory, never copied into the repository.
    schemas_dir: Path | None = Field(
        default=None, description="Default: ../shared/schemas next to the checkout, if present."
    )

    # ANAF (taxpayer lookup, e-Factura, e-Transport).
    anaf_env: Literal["test", "prod"] = "test"
    anaf_public_url: str = Field(
        default="https://webservicesp.anaf.ro", description="Public lookup host (no auth)."
    )
    anaf_api_url: str = Field(default="https://api.anaf.ro", description="OAuth2 API host.")
    anaf_oauth_url: str = Field(
        default="https://logincert.anaf.ro", description="OAuth2 authorize/token host."
    )
    anaf_client_id: str | None = None
    anaf_client_secret: SecretStr | None = None
    anaf_redirect_uri: str = "https://localhost:8443/anaf/callback"
    anaf_callback_cert_file: Path | None = Field(
        default=None, description="PEM certificate (chain) served by `anaf login`'s callback; "
        "unset: a throwaway self-signed one (the browser warns once).")
    pdf_reuse_context_jobs: int = Field(
        default=1, ge=1, le=1000,
        description="Script-free jobs one browser context serves, wiped in between (1: a "
                    "fresh context per job). Above 1 skips a renderer start per job.")
    anaf_callback_key_file: Path | None = Field(
        default=None, description="Its private key (unset: read from the certificate file).")
    anaf_timeout_s: float = Field(default=60.0, gt=0)
    anaf_lookup_cache_ttl_s: int = Field(default=24 * 3600, ge=0)
    anaf_signature_certs: list[Path] = Field(
        default_factory=list,
        description="PEM certificates that sign e-Factura downloads (pinned); empty: the "
        "certificate inside the signature is used, which proves integrity, not origin.",
    )

    # e-Factura submission (efactura.*).
    efactura_poll_first_s: float = Field(default=2.0, gt=0)
    efactura_poll_max_interval_s: float = Field(default=60.0, gt=0)
    efactura_poll_in_job_s: float = Field(
        default=600.0, ge=0, description="How long one attempt polls stareMesaj before "
        "handing back (the job is retried later and resumes polling, never re-uploading)."
    )
    efactura_status_daily_budget: int = Field(
        default=90, ge=1, le=100, description="stareMesaj queries per message per day (ANAF: 100)."
    )
    efactura_download_daily_budget: int = Field(
        default=8, ge=1, le=10, description="Downloads per message per day (ANAF: 10)."
    )
    efactura_lookup_grace_s: float = Field(
        default=1200.0, ge=0, description="After an upload whose answer was lost, how long "
        "to keep looking for it in the message list before concluding it never arrived."
    )
    efactura_lookup_retry_s: float = Field(default=60.0, gt=0)

    # e-Transport submission (etransport.*).
    etransport_poll_first_s: float = Field(default=2.0, gt=0)
    etransport_poll_max_interval_s: float = Field(default=60.0, gt=0)
    etransport_poll_in_job_s: float = Field(default=600.0, gt=0)
    etransport_lookup_grace_s: float = Field(default=900.0, gt=0)
    etransport_lookup_retry_s: float = Field(default=60.0, gt=0)
    etransport_status_daily_budget: int = Field(
        default=100, ge=1, description="ANAF publishes no e-Transport limit; e-Factura's 100."
    )

    # Consumers (pool replicas).
    visibility_timeout_s: float = Field(default=60.0, gt=0)
    read_block_ms: int = Field(default=1000, ge=1)
    read_batch_size: int = Field(default=32, ge=1)
    shutdown_grace_s: float = Field(default=15.0, ge=0)

    # HTTP gateway.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    gateway_replicas: int = Field(default=1, ge=1)
    gateway_max_ongoing_requests: int = Field(default=200, ge=1)
    gateway_max_queued_requests: int = Field(default=1000, ge=1)
    gateway_num_cpus: float = Field(default=0.5, ge=0)
    backpressure_retry_after_s: int = Field(default=2, ge=1)

    # Pools.
    queues: dict[str, QueueOverrides] = Field(default_factory=dict)
    enabled_queues: list[str] | None = Field(
        default=None, description="Deploy only these queues (default: every discovered one)."
    )

    # Local stack (`workers-core up`).
    data_dir: Path = Path(".workers-core")
    dashboard_port: int = Field(default=8265, ge=1, le=65535)
    ray_port: int = Field(default=6380, ge=1, le=65535, description="GCS port of the local head.")
    log_level: str = "INFO"
    log_json: bool = True

    def overrides_for(self, queue: str) -> QueueOverrides:
        return self.queues.get(queue, QueueOverrides())

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.from_url`` (password kept out of the URL)."""
        # A pooled connection that went stale (Redis restarted) fails on first use: retry
        # connection errors only; a timeout may mean the command ran, so it is not retried.
        kwargs: dict[str, Any] = {
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
            "retry_on_error": [redis_errors.ConnectionError],
            "socket_timeout": self.redis_socket_timeout_s,
            "socket_connect_timeout": self.redis_connect_timeout_s,
            "health_check_interval": 15,
            "decode_responses": True,
        }
        if self.redis_password is not None:
            kwargs["password"] = self.redis_password.get_secret_value()
        return kwargs
