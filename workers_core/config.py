"""The one settings object (env prefix ``WORKERS_``, ``.env`` supported).

Read once at the edge (CLI, app builder) and passed down; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
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
    # Autoscaling (when `replicas` is unset): see workers_core/actors/scaling.py. min >= 1:
    # replicas report the backlog, so a pool at zero would have nobody to wake it.
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    target_backlog: int | None = Field(
        default=None, ge=1, description="Waiting + in-flight jobs per replica (KEDA queueLength)."
    )
    scale_down_cooldown_s: float | None = Field(default=None, ge=0)

    @field_validator("num_cpus", "num_gpus")
    @classmethod
    def _ray_fraction_rule(cls, v: float | None) -> float | None:
        # Ray: quantities above 1 must be whole numbers (ray _common/ray_option_utils.py).
        if v is not None and v > 1 and v != int(v):
            raise ValueError("quantities above 1 must be whole numbers")
        return v

    @model_validator(mode="after")
    def _fixed_or_autoscaled(self) -> QueueOverrides:
        if self.replicas is not None and (self.min_replicas or self.max_replicas):
            raise ValueError("set either replicas (a fixed count) or min_replicas/max_replicas")
        if self.min_replicas and self.max_replicas and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) > max_replicas "
                             f"({self.max_replicas})")
        return self


RATE_PATTERN = r"\s*\d+\s*/\s*\d*\s*[smhd]\s*"  # "500/s", "5/10m": what ratelimit.Rate parses


class SubmitRate(BaseModel):
    """A per-subject submission limit: jobs per period ("500/s") and the burst allowed."""

    rate: str = Field(pattern=f"^{RATE_PATTERN}$")
    burst: int = Field(default=10_000, ge=1)


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
    pdf_reuse_context_jobs: int = Field(
        default=1, ge=1, le=1000,
        description="Script-free jobs one browser context serves, wiped in between (1: a "
                    "fresh context per job). Above 1 skips a renderer start per job.")
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

    # REGES-ONLINE (reges.*): Keycloak password grant with the employer register's API key.
    reges_api_url: str = Field(
        default="https://api.dev.inspectiamuncii.org",
        description="REGES API host (production: https://api.inspectiamuncii.ro).",
    )
    reges_token_url: str = Field(
        default="https://sso.dev.inspectiamuncii.org/realms/API/protocol/openid-connect/token",
        description="Keycloak token endpoint (the production SSO host is not documented).",
    )
    reges_client_id: str = "reges-api"
    reges_client_secret: SecretStr | None = None
    reges_username: SecretStr | None = Field(default=None, description="API key user.")
    reges_password: SecretStr | None = Field(default=None, description="API key password.")
    reges_author_id: str | None = Field(
        default=None, description="Header AuthorId: the employer's REGES id (/api/Profile)."
    )
    reges_consumer_id: str | None = Field(
        default=None, description="consumerId: our own cursor on the result queue."
    )
    reges_timeout_s: float = Field(default=60.0, gt=0)
    reges_poll_first_s: float = Field(default=2.0, gt=0)
    reges_poll_max_interval_s: float = Field(default=60.0, gt=0)
    reges_poll_in_job_s: float = Field(default=600.0, gt=0)
    reges_lookup_grace_s: float = Field(default=1800.0, gt=0)
    reges_lookup_retry_s: float = Field(default=60.0, gt=0)

    # Lifecycle events: SSE (GET /v1/events) and webhook subscriptions.
    events_sse_max_streams: int = Field(
        default=100, ge=1, description="Open SSE streams per gateway replica (503 past it).")
    events_sse_ping_s: float = Field(default=15.0, gt=0, description="Keep-alive comment period.")
    events_sse_block_ms: int = Field(default=5000, ge=1, description="XREAD BLOCK per read.")
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list, description="Hosts webhooks may be sent to: exact names, "
        "`*.example.com` for subdomains, or `*` for any public host. Empty: none.")
    webhook_allow_loopback: bool = Field(
        default=False, description="Allow loopback destinations (127.0.0.1, ::1, localhost).")
    webhook_allow_private: bool = Field(
        default=False, description="Allow private-range destinations (10/8, 172.16/12, "
        "192.168/16, fc00::/7, 100.64/10). Link-local (169.254/16: cloud metadata) never.")
    webhook_allow_http: bool = Field(
        default=False, description="Allow plain http to non-loopback hosts (else https only).")
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    webhook_backoff_base_s: float = Field(default=5.0, ge=0)
    webhook_backoff_max_s: float = Field(default=3600.0, ge=0)
    webhook_dispatch_block_ms: int = Field(
        default=1000, ge=1, description="Dispatcher poll period (XREADGROUP BLOCK).")
    webhook_claim_idle_s: float = Field(
        default=60.0, gt=0, description="After this, a dead replica's events and deliveries "
        "are taken over by another replica.")
    webhook_max_parallel: int = Field(default=16, ge=1, description="Concurrent POSTs per replica.")
    webhook_delivery_log_size: int = Field(default=100, ge=1, description="Attempts kept per hook.")
    webhook_dead_letter_max: int = Field(default=1000, ge=1, description="Dead letters per hook.")
    webhook_dispatcher_enabled: bool = Field(
        default=True, description="Run the webhook dispatcher in each gateway replica.")

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

    # Auth (bearer JWTs with scopes), audit log, per-client submission limits.
    auth_mode: Literal["auto", "jwt", "disabled"] = Field(
        default="auto", description="auto: jwt when a key is set, else disabled; disabled "
        "(everyone is `anonymous` with every scope) is refused unless http_host is loopback.")
    auth_jwt_secret: SecretStr | None = Field(default=None, description="HS256 secret.")
    auth_jwt_secret_file: Path | None = Field(default=None, description="HS256 secret file.")
    auth_jwt_public_key_file: Path | None = Field(default=None, description="RS256 PEM key.")
    auth_jwks_file: Path | None = Field(default=None, description="RS256 JWKS (kid picks).")
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    auth_jwt_leeway_s: float = Field(default=30.0, ge=0, le=300)
    audit_maxlen: int = Field(default=100_000, gt=0)
    submit_rate_limit: str | None = Field(
        default="1000/s", pattern=f"^({RATE_PATTERN})?$",
        description="Jobs per client (token sub, or IP when anonymous); empty: no limit.")
    submit_rate_burst: int = Field(default=10_000, ge=1)
    submit_rate_overrides: dict[str, SubmitRate] = Field(
        default_factory=dict, description="Per subject: {\"etl-bot\": {\"rate\": \"5000/s\"}}.")

    # Recurring jobs (cron schedules): every gateway replica runs the loop; one job per tick.
    schedule_enabled: bool = Field(default=True, description="Run the loop in this gateway.")
    schedule_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    schedule_timezone: str = Field(default="Europe/Bucharest",
                                   description="IANA zone of schedules that name none.")
    schedule_misfire_grace_s: int = Field(
        default=3600, ge=1, description="How late the latest missed tick may fire after "
        "downtime; older ticks are skipped (and recorded).")
    schedule_batch_size: int = Field(default=100, ge=1, le=10_000)
    schedule_history_len: int = Field(default=50, ge=1, le=10_000)
    schedule_preview: int = Field(default=5, ge=0, le=100)

    @field_validator("schedule_timezone")
    @classmethod
    def _iana_zone(cls, v: str) -> str:
        import zoneinfo

        try:
            return zoneinfo.ZoneInfo(v).key
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r}") from None

    # Pools.
    queues: dict[str, QueueOverrides] = Field(default_factory=dict)
    enabled_queues: list[str] | None = Field(
        default=None, description="Deploy only these queues (default: every discovered one)."
    )
    # Autoscaling defaults for pools without a fixed `replicas` (min == max: fixed count).
    pool_min_replicas: int = Field(default=1, ge=1)
    pool_max_replicas: int = Field(default=1, ge=1)
    pool_target_backlog: int = Field(default=100, ge=1)
    pool_scale_down_cooldown_s: float = Field(default=120.0, ge=0)

    # Worker registry (heartbeats, missing workers) and deep health checks.
    registry_namespace: str = Field(
        default="wrk", pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of the registry's Redis keys and event channel; also names "
        "its Ray actor (`<ns>-registry`), so two platforms on one cluster stay apart.")
    registry_ray_namespace: str = Field(default="workers-core", min_length=1)
    registry_heartbeat_interval_s: float = Field(default=30.0, gt=0)
    registry_call_timeout_s: float = Field(default=5.0, gt=0)
    registry_backoff_max_s: float = Field(
        default=120.0, gt=0, description="Longest wait between tries while the registry is "
        "unreachable (1 s, doubling); jobs go on meanwhile.")
    registry_worker_ttl_s: float = Field(
        default=90.0, gt=0, description="A worker silent this long is `missing`.")
    registry_forget_after_s: float = Field(
        default=600.0, gt=0, description="Missing or stopped workers are dropped after this.")
    registry_sweep_interval_s: float = Field(default=5.0, gt=0)
    registry_status_ttl_s: int = Field(default=120, ge=1)
    registry_metrics_ttl_s: int = Field(default=60, ge=1)
    health_check_interval_s: float = Field(default=30.0, gt=0)
    health_check_timeout_s: float = Field(default=5.0, gt=0)
    health_breaker_failures: int = Field(
        default=3, ge=1, description="Failed deep checks in a row that open the breaker.")
    health_breaker_reset_s: float = Field(
        default=60.0, gt=0, description="While open, one trial check per this period.")
    health_unhealthy_after_s: float = Field(
        default=120.0, gt=0, description="Serve restarts a replica whose deep check has "
        "failed this long (one blip does not).")

    # Local stack (`workers-core up`).
    data_dir: Path = Path(".workers-core")
    dashboard_port: int = Field(default=8265, ge=1, le=65535)
    ray_port: int = Field(default=6380, ge=1, le=65535, description="GCS port of the local head.")
    log_level: str = "INFO"
    log_json: bool = True

    # Metrics (ray.util.metrics, exported by Ray's metrics agent; the gateway serves /metrics).
    metrics_queue_interval_s: float = Field(
        default=10.0, gt=0,
        description="How often each pool replica refreshes its queue's depth/lag/DLQ gauges.",
    )

    def overrides_for(self, queue: str) -> QueueOverrides:
        return self.queues.get(queue, QueueOverrides())

    @model_validator(mode="after")
    def _replica_bounds_ordered(self) -> Settings:
        """min <= max for every pool once per-queue values meet the defaults, at start-up."""
        for queue, o in {"pool_*": QueueOverrides(), **self.queues}.items():
            if o.replicas is not None:
                continue
            low = o.min_replicas or self.pool_min_replicas
            high = o.max_replicas or self.pool_max_replicas
            if low > high:
                raise ValueError(f"queues.{queue}: min_replicas ({low}) > max_replicas ({high}) "
                                 "(per-queue values fall back to pool_min/max_replicas)")
        return self

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.from_url`` (password kept out of the URL)."""
        # A pooled connection that went stale (Redis restarted) fails on first use: retry
        # connection errors only; a timeout may mean the command ran, so it is not retried.
        kwargs: dict[str, Any] = {
            # supported_errors given: Retry's default also retries TimeoutError.
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3,
                           supported_errors=(redis_errors.ConnectionError,)),
            "retry_on_error": [redis_errors.ConnectionError],
            "socket_timeout": self.redis_socket_timeout_s,
            "socket_connect_timeout": self.redis_connect_timeout_s,
            "health_check_interval": 15,
            "decode_responses": True,
        }
        if self.redis_password is not None:
            kwargs["password"] = self.redis_password.get_secret_value()
        return kwargs


SettingsArgs = dict[str, Any]


def resolve_settings(given: Settings | SettingsArgs) -> Settings:
    """A replica's Settings. ``build_app`` binds only the config's ``args`` (never secrets):
    each replica reads its secrets from its own environment, so none is pickled into Serve's
    deployment arguments, which the GCS keeps (in Redis, with fault tolerance on)."""
    return given if isinstance(given, Settings) else Settings(**given)
