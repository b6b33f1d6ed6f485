"""One validated configuration tree: the gateway's own settings, its TikTok tags and GA4
forwarding (SPEC 11, 12).

Sources, later ones winning key by key: defaults, the TOML file (``--config``), then environment
variables (``GATEWAY_<KEY>`` for the ``[gateway]`` table, ``GATEWAY_GA4_<KEY>`` for ``[ga4]``).
Without a ``[[tags]]`` table, the ``TIKTOK_*`` variables describe one tag that fires on
everything but ``user_engagement``. Every
problem is reported as ``ConfigError(key, reason)`` naming the offending key; secrets are
``SecretStr`` and never appear in a message.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tiktok_gateway.errors import ConfigError
from tiktok_gateway.queue.factory import check_queue_url
from tiktok_gateway.tags.ga4.settings import GA4Settings
from tiktok_gateway.tags.tiktok.settings import TikTokTagSettings

# The forms GATEWAY_MP_API_SECRETS accepts: GA4 measurement ids, and API secrets as Google
# makes them (base64url characters); anything else is a typo, refused rather than read wrongly.
_MEASUREMENT_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")
_API_SECRET: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")

# GATEWAY_WORKERS above this is a typo, not a machine (auto is never capped).
MAX_WORKERS = 1024

# GATEWAY_WORKER_TIMEOUT_SECONDS: a worker's loop beats every second, so under 2 s a healthy
# worker busy for a moment would be killed; over an hour the detection is off in all but name.
MIN_WORKER_TIMEOUT = 2.0
MAX_WORKER_TIMEOUT = 3600.0


def available_cpus(
    cgroups: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int:
    """The CPUs this process may use: its affinity mask (a container's cpuset, ``taskset``),
    lowered to its CPU quota rounded up where its cgroups set one (``docker run --cpus``, a
    Kubernetes CPU limit, systemd's ``CPUQuota``: the mask shows every core of the machine
    then, and one worker per core would share a fraction of them)."""
    if hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    quota = cpu_quota(cgroups, membership)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cpu_quota(cgroups: Path, membership: Path) -> float | None:
    """CPUs' worth of time per period the cgroups of this process allow (the smallest along
    its cgroup's path, cgroup v2's ``cpu.max`` or v1's ``cpu.cfs_quota_us``), or ``None``: no
    quota, or none readable."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    found: list[float] = []
    files: tuple[str, ...]
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: the unified tree (at the root, or under unified/ in hybrid)
            base = cgroups if (cgroups / "cgroup.controllers").exists() else cgroups / "unified"
            files = ("cpu.max",)
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own tree
            base, files = cgroups / controllers, ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        folder = base / path.lstrip("/")
        while True:
            try:
                values = " ".join(((folder / name).read_text()) for name in files).split()
                if values[0] not in ("max", "-1"):
                    found.append(int(values[0]) / int(values[1]))
            except (OSError, ValueError, IndexError):
                pass
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return min(found) if found else None


# An admin token guards the operator surfaces against the internet: shorter ones are guessable.
MIN_ADMIN_TOKEN = 16


def is_loopback_host(host: str) -> bool:
    """Whether a listening address only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[] ")).is_loopback
    except ValueError:
        return False


# The GA4 forwarder's destination name: a TikTok tag may not take it.
GA4_DESTINATION = "ga4"

# Stands in for a pixel code when none is configured, so `inspect` works out of the box.
PLACEHOLDER_PIXEL = "PIXELCODENOTSET"

CommaList = Annotated[tuple[str, ...], NoDecode]


class _ExplicitSources(BaseSettings):
    """Settings whose environment variables are handed over by ``load_config``.

    ``load_config`` maps ``GATEWAY_*`` / ``TIKTOK_*`` itself (from ``os.environ`` or the mapping a
    test passes), so the only source pydantic-settings reads is the keyword arguments.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class GatewaySettings(_ExplicitSources):
    """The ``[gateway]`` table; every key is also ``GATEWAY_<KEY>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address of the public listener.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port of the public listener.")
    admin_host: str = Field(
        default="127.0.0.1",
        description="Address of the admin listener (/debug, /admin, /metrics, /sandbox).",
    )
    admin_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of the admin listener; default: port + 1."
    )
    admin_hostnames: CommaList = Field(
        default=(),
        description="Host names the admin listener answers to, besides IP addresses and"
        " localhost (DNS rebinding).",
    )
    data_dir: Path = Field(default=Path("./data"), description="Folder for the SQLite queue.")
    queue_url: str = Field(default="", description="sqlite:///path or redis://host:port/db.")
    queue_max_events: int = Field(
        default=1_000_000,
        ge=1,
        description="Items the queue may hold (undelivered and dead letters); past it, hits"
        " get 503 queue_full.",
    )
    queue_max_bytes: int = Field(
        default=2_000_000_000,
        ge=1,
        description="Bytes the SQLite queue may take (pages in use); past it, hits get 503"
        " queue_full. A Redis queue is capped by items only (its maxmemory bounds its bytes).",
    )
    admin_token: SecretStr | None = Field(default=None, description="Bearer token for /admin.")
    ingest_token: SecretStr | None = Field(default=None, description="Bearer token for /events.")
    trusted_proxies: CommaList = Field(default=(), description="CIDRs whose XFF is trusted.")
    allowed_origins: CommaList = Field(default=(), description="CORS origins; empty: echo any.")
    batch_max_wait_ms: int = Field(default=1000, ge=0, description="Oldest event in a batch.")
    max_body_bytes: int = Field(default=1_000_000, gt=0, description="Larger bodies get 413.")
    cookie_domain: str = Field(default="", description="Domain of the ttclid cookie.")
    mp_api_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Measurement id -> api_secret required on /mp/collect (env: G-1=s1,G-2=s2).",
    )
    debug: bool = Field(
        default=True, description="Serve /debug (admin token; loopback only when none is set)."
    )
    shutdown_seconds: float = Field(default=10.0, ge=0, description="Deadline to drain on stop.")
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A connection without a complete request head after this long is closed.",
    )
    max_connections: int | None = Field(
        default=None,
        gt=0,
        description="Open connections over both listeners; past it 503 at once. Default:"
        " min(20000, open-file limit - 256).",
    )
    workers: int | Literal["auto"] = Field(
        default=1,
        description="Processes serving both listeners (SQLite or Redis queue shared); auto: one"
        " per CPU this process may run on. 1 keeps everything in one process.",
    )
    worker_timeout_seconds: float = Field(
        default=30.0,
        ge=MIN_WORKER_TIMEOUT,
        le=MAX_WORKER_TIMEOUT,
        description="With workers: a worker whose event loop has not beaten for this long is"
        " killed and replaced (its loop beats every second).",
    )
    max_in_flight: int = Field(
        default=4, ge=1, description="Requests to TikTok at once (per worker process)."
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0, description="Per TikTok request.")
    lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="How long a worker holds events; after a crash they return after this.",
    )
    retry_base_seconds: float = Field(default=1.0, gt=0, description="First retry delay (cap).")
    retry_max_seconds: float = Field(default=300.0, gt=0, description="Longest retry delay.")
    event_expiry_seconds: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="Failing events older than this: dead letters."
    )
    probe_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Between probes of a paused tag (bad token, permission); the longest wait"
        " between probes of a tag backing off (TikTok or the network failing).",
    )

    @field_validator("mp_api_secrets", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        """``G-1=s1,G-2=s2``; anything else is refused, never read as "no secret" (a typo such
        as ``G-1:s1`` would otherwise leave /mp/collect open)."""
        if not isinstance(value, str):
            return value
        secrets: dict[str, str] = {}
        for part in value.split(","):
            if not part.strip():
                continue
            mid, _, secret = (text.strip() for text in part.partition("="))
            if not (_MEASUREMENT_ID.fullmatch(mid) and _API_SECRET.fullmatch(secret)):
                raise ValueError(
                    "write MEASUREMENT_ID=SECRET pairs separated by commas (G-ABC123=secret;"
                    " a secret is letters, digits, '-' and '_')"
                )
            secrets[mid] = secret
        return secrets

    @field_validator("mp_api_secrets")
    @classmethod
    def _no_empty_secret(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for mid, secret in value.items():
            if not mid.strip() or not secret.get_secret_value().strip():
                raise ValueError("every measurement id needs a non-empty secret")
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:
        """A whole number from 1 to ``MAX_WORKERS``, or ``auto`` (any case); a string of digits
        (the environment's) is read as a number."""
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "auto":
                return "auto"
            if text.isdigit():
                value = int(text)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
            raise ValueError(f"a number of processes from 1 to {MAX_WORKERS}, or auto")
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN:
            raise ValueError(f"must be at least {MIN_ADMIN_TOKEN} characters")
        return value

    @field_validator("trusted_proxies", "allowed_origins", "admin_hostnames", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, value: str) -> str:
        check_queue_url(value)
        return value

    @field_validator("admin_token", "ingest_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``""`` means not set, as an empty variable does (SPEC 11 writes ``ingest_token = ""``;
        kept as a token, /events would demand an empty bearer)."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("admin_hostnames")
    @classmethod
    def _lower_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.lower().rstrip(".") for name in value)

    @property
    def resolved_queue_url(self) -> str:
        """``queue_url``, or the SQLite file in ``data_dir`` when it is not set."""
        return self.queue_url or f"sqlite:///{self.data_dir / 'queue.db'}"

    @property
    def resolved_workers(self) -> int:
        """``workers``, with ``auto`` as the CPUs this process may run on (its affinity mask,
        which a container's cpuset or ``taskset`` narrows; not the machine's count)."""
        return available_cpus() if self.workers == "auto" else self.workers

    @property
    def resolved_admin_port(self) -> int:
        """``admin_port``, else the public port + 1 (8081 by default)."""
        return self.admin_port if self.admin_port is not None else self.port % 65535 + 1


class EnvTagSettings(_ExplicitSources):
    """The single tag of the quick start, from ``TIKTOK_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="TIKTOK_", extra="ignore")

    pixel_code: str = ""
    access_token: SecretStr | None = None
    access_token_file: Path | None = None
    api_url: str | None = None
    purchase_event: str | None = None
    lead_event: str | None = None
    content_type: str | None = None
    test_event_code: str | None = None
    phone_region: str | None = None
    consent: str | None = None
    limited_data_use: bool | None = None


class FileConfig(BaseModel):
    """The shape of the TOML file."""

    model_config = ConfigDict(extra="forbid")

    gateway: dict[str, Any] = Field(default_factory=dict)
    tags: list[dict[str, Any]] = Field(default_factory=list)
    ga4: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration. ``placeholder_pixel`` is true when no pixel was set."""

    gateway: GatewaySettings
    tags: tuple[TikTokTagSettings, ...]
    placeholder_pixel: bool = False
    ga4: GA4Settings = field(default_factory=GA4Settings)


def _error(
    exc: ValidationError, prefix: str, env_prefix: str = "", from_env: frozenset[str] = frozenset()
) -> ConfigError:
    """The first validation problem as ``ConfigError``, named as the user wrote the key.

    A key that came from the environment is named as the variable (``TIKTOK_PURCHASE_EVENT``);
    one from the file as its TOML path (``tags[1].pixel_code``). Input values are never quoted.
    """
    first = exc.errors(include_input=False, include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    if loc and loc[0] in from_env:
        return ConfigError(f"{env_prefix}{loc[0].upper()}", first["msg"])
    key = ".".join(part for part in (prefix, *loc) if part)
    return ConfigError(key or prefix, first["msg"])


def _read_token_file(path: Path, key: str) -> SecretStr:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from None
    if not token:
        raise ConfigError(key, f"{path} is empty")
    return SecretStr(token)


def _resolve_token(raw: dict[str, Any], key: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Replace ``access_token_env`` / ``access_token_file`` with the token they point to."""
    raw = dict(raw)
    given = [
        name for name in ("access_token", "access_token_env", "access_token_file") if name in raw
    ]
    if len(given) > 1:
        raise ConfigError(key, f"set only one of {', '.join(given)}")
    if "access_token" in raw and not str(raw["access_token"]).strip():
        raise ConfigError(
            f"{key}.access_token", "is empty (leave it out to use the built-in sandbox)"
        )
    if "access_token_env" in raw:
        var = str(raw.pop("access_token_env"))
        if not environ.get(var):
            raise ConfigError(f"{key}.access_token_env", f"environment variable {var} is not set")
        raw["access_token"] = environ[var]
    elif "access_token_file" in raw:
        path = Path(str(raw.pop("access_token_file")))
        raw["access_token"] = _read_token_file(path, f"{key}.access_token_file")
    return raw


def _env_tag(environ: Mapping[str, str]) -> tuple[TikTokTagSettings, bool]:
    given: dict[str, Any] = dict(_prefixed(environ, "TIKTOK_"))
    from_env = frozenset(given)
    try:
        env = EnvTagSettings(_env_file=None, **given)
    except ValidationError as exc:
        raise _error(exc, "TIKTOK", "TIKTOK_", from_env) from None
    values: dict[str, Any] = {
        name: value
        for name, value in env.model_dump(exclude={"access_token_file", "pixel_code"}).items()
        if value is not None
    }
    if env.access_token_file is not None and env.access_token is None:
        values["access_token"] = _read_token_file(env.access_token_file, "TIKTOK_ACCESS_TOKEN_FILE")
    placeholder = not env.pixel_code.strip()
    values["pixel_code"] = PLACEHOLDER_PIXEL if placeholder else env.pixel_code
    try:
        return TikTokTagSettings(**values), placeholder
    except ValidationError as exc:
        raise _error(exc, "TIKTOK", "TIKTOK_", from_env) from None


def _prefixed(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    """Variables with ``prefix`` as lower-case field names (so tests can pass their own env)."""
    return {
        name[len(prefix) :].lower(): value
        for name, value in environ.items()
        if name.upper().startswith(prefix) and value != ""
    }


def _read_file(path: Path) -> FileConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from None
    try:
        return FileConfig(**raw)
    except ValidationError as exc:
        raise _error(exc, "") from None


def _ga4(file: Mapping[str, Any], environ: Mapping[str, str]) -> GA4Settings:
    given = _prefixed(environ, "GATEWAY_GA4_")
    from_env = frozenset(given)
    try:
        return GA4Settings(**{**file, **given})
    except ValidationError as exc:
        raise _error(exc, "ga4", "GATEWAY_GA4_", from_env) from None


def _check_admin_listener(gateway: GatewaySettings, from_env: frozenset[str]) -> None:
    """The admin listener is not the public one, and off loopback it needs a token (SPEC 13)."""

    def key(name: str) -> str:
        return f"GATEWAY_{name.upper()}" if name in from_env else f"gateway.{name}"

    if gateway.resolved_admin_port == gateway.port:
        raise ConfigError(key("admin_port"), "the admin listener needs a port of its own")
    if gateway.admin_token is None and not is_loopback_host(gateway.admin_host):
        raise ConfigError(
            "GATEWAY_ADMIN_TOKEN",  # whatever set admin_host: the variable is what to set
            f"required (at least {MIN_ADMIN_TOKEN} characters) when the admin listener"
            f" ({key('admin_host')}) is not on a loopback address",
        )


def _check_workers(gateway: GatewaySettings, from_env: frozenset[str]) -> None:
    """Several worker processes need a queue they share: not the in-process memory one."""
    if gateway.resolved_workers > 1 and gateway.resolved_queue_url == "memory://":
        raise ConfigError(
            "GATEWAY_WORKERS" if "workers" in from_env else "gateway.workers",
            "above 1 needs a queue the processes share (sqlite:///... or redis://...),"
            " not memory://",
        )


def _check_names(tags: tuple[TikTokTagSettings, ...], ga4: GA4Settings) -> None:
    """Destination names are unique: the tags' among themselves, and none is the forwarder's."""
    names = [tag.name for tag in tags]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError("tags.name", f"tag names must be unique: {', '.join(duplicates)}")
    if ga4.forward and GA4_DESTINATION in names:
        raise ConfigError(
            "tags.name", f"{GA4_DESTINATION!r} is the name of GA4 forwarding; choose another"
        )


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the configuration; raises ``ConfigError`` naming the bad key."""
    environ = os.environ if environ is None else environ
    file = _read_file(path) if path is not None else FileConfig()
    # Unknown GATEWAY_* variables are ignored (they may belong to other tools); unknown keys in
    # the file are errors (they are typos).
    gateway_env = {
        key: value
        for key, value in _prefixed(environ, "GATEWAY_").items()
        if key in GatewaySettings.model_fields
    }
    gateway_values = {**file.gateway, **gateway_env}
    try:
        gateway = GatewaySettings(_env_file=None, **gateway_values)
    except ValidationError as exc:
        raise _error(exc, "gateway", "GATEWAY_", frozenset(gateway_env)) from None
    _check_admin_listener(gateway, frozenset(gateway_env))
    _check_workers(gateway, frozenset(gateway_env))
    ga4 = _ga4(file.ga4, environ)
    if not file.tags:
        tag, placeholder = _env_tag(environ)
        _check_names((tag,), ga4)
        return Config(gateway=gateway, tags=(tag,), placeholder_pixel=placeholder, ga4=ga4)
    tags: list[TikTokTagSettings] = []
    for index, raw in enumerate(file.tags):
        key = f"tags[{index}]"
        try:
            tags.append(TikTokTagSettings(**_resolve_token(raw, key, environ)))
        except ValidationError as exc:
            raise _error(exc, key) from None
    _check_names(tuple(tags), ga4)
    return Config(gateway=gateway, tags=tuple(tags), ga4=ga4)
