"""Gateway settings, read from the environment with the prefix ``PALETTE_GATEWAY_``.

The connection settings shared by every service (``RABBITMQ_URL``,
``PALETTE_MONGO_URL``, ``PALETTE_S3_ENDPOINT_URL``, ...) come from
``palette.common.settings.CommonSettings`` without the prefix.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from palette.common.settings import CommonSettings

DEV_JWT_SECRET = "plot-palette-dev-only-secret-do-not-use-in-production"  # noqa: S105
"""The default signing secret: for development on one machine only, never in production."""
BUILT_UI = Path(__file__).resolve().parents[3] / "ui" / "dist"
"""Where ``make install`` builds the page in a checkout (``services/gateway/ui/dist``)."""


def default_ui_dir() -> Path | None:
    """The page built in this checkout, when there is one (an installed wheel has none)."""
    return BUILT_UI if (BUILT_UI / "index.html").is_file() else None


class GatewaySettings(CommonSettings):
    """Settings of the REST gateway."""

    model_config = SettingsConfigDict(
        env_prefix="PALETTE_GATEWAY_", env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", description="Interface the HTTP server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port (env PALETTE_GATEWAY_PORT).")
    jwt_secret: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET),
        description=(
            "HS256 secret that signs and verifies bearer tokens. The default is a DEV-ONLY "
            "value, accepted only while `host` is a loopback address (the gateway refuses "
            "to start on any other with it): set a long random secret in every real "
            "deployment."
        ),
    )
    jwt_issuer: str | None = Field(None, description="Required `iss` claim, when set.")
    jwt_audience: str | None = Field(None, description="Required `aud` claim, when set.")
    jwt_leeway_seconds: int = Field(
        0, ge=0, le=300, description="Clock skew tolerated on `exp`/`nbf`/`iat`."
    )
    jwt_jwks_url: str | None = Field(
        None,
        description=(
            "Production mode: the identity provider's JWKS URL. When set, tokens must be "
            "RS256/ES256 (see `jwt_algorithms`) signed by a key of that set, found by `kid`, "
            "and `jwt_issuer` and `jwt_audience` are required; the HS256 secret is not used."
        ),
    )
    jwt_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description="Algorithms accepted in JWKS mode (asymmetric only; HS*/none are refused).",
    )
    jwt_jwks_cache_seconds: int = Field(
        300, ge=1, description="How long a fetched JWKS is used before it is fetched again."
    )
    jwt_jwks_refresh_seconds: float = Field(
        30.0,
        ge=0,
        description="Least time between two fetches caused by an unknown `kid` (no refetch storm).",
    )
    jwt_jwks_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of one JWKS fetch.")
    max_budget_usd: Decimal = Field(
        Decimal(10_000), gt=0, description="Largest budget one job may ask for, in USD."
    )
    max_body_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="Largest seed file upload, in bytes (413 above)."
    )
    max_json_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="Largest JSON request body, in bytes (413 above)."
    )
    seed_check_records: int = Field(
        1_000,
        ge=1,
        description="How many leading seed records a new job checks against its template.",
    )
    outbox_interval_seconds: float = Field(
        2.0, gt=0, description="How often unpublished SubmitJob commands are retried."
    )
    outbox_grace_seconds: float = Field(
        2.0,
        ge=0,
        description="Age a job must reach before the outbox republishes its SubmitJob.",
    )
    publish_timeout_seconds: float = Field(
        5.0, gt=0, description="How long a request waits for the broker to confirm a publish."
    )
    ready_timeout_seconds: float = Field(
        2.0, gt=0, description="How long /ready waits for each dependency."
    )
    max_active_jobs: int = Field(
        10,
        ge=1,
        description="Jobs one user may have queued or running at once (429 above). Counted in "
        "the database, so it holds across replicas, except that creates racing on different "
        "replicas at the same moment may pass it by at most (replicas - 1).",
    )
    rate_limit_per_second: float = Field(
        50.0,
        gt=0,
        description="Sustained requests per second one user may make to ONE gateway replica "
        "(429 above). Each replica counts in its own memory: behind a load balancer with N "
        "replicas a user gets up to about N times this. Set it to the cluster-wide figure "
        "divided by N, or limit at the ingress (docs/deployment.md).",
    )
    rate_limit_burst: int = Field(
        200,
        ge=1,
        description="Requests one user may make at once to one replica before the rate applies.",
    )
    max_seed_upload_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=1,
        description="Largest seed file a presigned upload may put, in bytes.",
    )
    presign_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint written into presigned URLs when clients reach S3 at another "
        "address than the gateway does; the S3 endpoint when unset.",
    )
    upload_url_seconds: int = Field(
        900, ge=60, le=7 * 24 * 3600, description="Lifetime of a presigned seed upload URL."
    )
    download_url_seconds: int = Field(
        3600, ge=60, le=7 * 24 * 3600, description="Lifetime of a presigned download URL."
    )
    snapshot_timeout_seconds: float = Field(
        30.0, gt=0, description="How long a download waits for a partial export to be written."
    )
    preview_timeout_seconds: float = Field(
        60.0, gt=0, description="How long `preview?run=true` waits for the model's answer."
    )
    preview_max_usd: Decimal = Field(
        Decimal("0.50"),
        gt=0,
        description="Largest worst-case cost of one previewed record run through the model.",
    )
    preview_budget_usd: Decimal = Field(
        Decimal("5"),
        gt=0,
        description="What one user's `preview?run=true` may spend per UTC day, in USD. Each "
        "record's worst case is reserved from it (accounting keeps the ledger, `GET /usage` "
        "shows it) before the model is called; a preview that does not fit is refused (429).",
    )
    preview_budget_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a preview waits for accounting's budget reservation."
    )
    read_cache_seconds: float = Field(
        0.25,
        ge=0,
        le=10,
        description="How long a read of a job, of a page of jobs or of a ledger answers the "
        "same reads in this process (0: every request reads the database). A job this "
        "process creates is read fresh; changes by the other services show within this time.",
    )
    template_render_seconds: float = Field(
        1.0,
        gt=0,
        le=30,
        description="Time the renders of one template check or preview may take in all; "
        "a template that renders longer is refused (422). Renders run on the event loop.",
    )
    events_interval_seconds: float = Field(
        0.5, gt=0, description="How often a job's event stream checks for progress."
    )
    events_heartbeat_seconds: float = Field(
        15.0, gt=0, description="Idle time after which an event stream sends a keep-alive."
    )
    max_webhooks: int = Field(
        20, ge=1, le=1000, description="Webhooks one user may have (409 above)."
    )
    validate_examples: int = Field(
        5, ge=1, le=100, description="Records lacking fields that seed validation lists."
    )

    ui_dir: Path | None = Field(
        None,
        description="Folder of the built web page served at `/ui`. Unset: the page `make "
        "install` built in this checkout (services/gateway/ui/dist), when there is one; "
        "else `/ui` answers 404.",
    )
    oidc_client_id: str | None = Field(
        None,
        description="Production sign-in of the page: the OpenID Connect client id (a public "
        "client, authorization code with PKCE) registered at `jwt_issuer`, whose access "
        "tokens carry `jwt_audience`. Unset: the page offers no OIDC sign-in.",
    )
    oidc_scope: str = Field(
        "openid profile", description="Scopes the page asks the identity provider for."
    )
    dev_sign_in: bool = Field(
        True,
        description="The page's dev sign-in (`POST /auth/dev-token` mints a token for any user "
        "name). It only ever works in dev mode: HS256 tokens (no `jwt_jwks_url`) on a "
        "loopback `host`; false turns it off there too.",
    )
    dev_token_seconds: int = Field(
        8 * 3600, ge=60, le=7 * 24 * 3600, description="Lifetime of a dev sign-in token."
    )

    @model_validator(mode="after")
    def _page_of_the_checkout(self) -> Self:
        if self.ui_dir is None:
            self.ui_dir = default_ui_dir()
        return self

    @model_validator(mode="after")
    def _jwks_mode_is_complete(self) -> Self:
        if self.jwt_jwks_url:
            if not self.jwt_issuer or not self.jwt_audience:
                raise ValueError("jwt_jwks_url needs jwt_issuer and jwt_audience")
            weak = [a for a in self.jwt_algorithms if a[:2] not in ("RS", "ES", "PS", "Ed")]
            if weak or not self.jwt_algorithms:
                raise ValueError(f"JWKS mode accepts asymmetric algorithms only, not {weak}")
        return self

    @property
    def jwks_mode(self) -> bool:
        """Whether tokens are verified against a JWKS (production) rather than HS256 (dev)."""
        return bool(self.jwt_jwks_url)
