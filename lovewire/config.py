"""Settings (contract section 7): defaults, then a TOML file, then LOVEWIRE_* env, then flags."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Every operator setting; the names are stable (contract section 7)."""

    model_config = SettingsConfigDict(env_prefix="LOVEWIRE_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    ws_port: int = Field(8765, ge=0, le=65535)
    http_port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("./data")
    public_url: str = ""
    sms_provider: Literal["console", "http"] = "console"
    sms_url: str = ""
    sms_token: str = ""
    sms_interval: float = Field(60, ge=0)
    sms_tel_hourly: int = Field(5, ge=0)
    sms_tel_daily: int = Field(10, ge=0)
    sms_addr_hourly: int = Field(30, ge=0)
    sms_global_hourly: int = Field(1000, ge=0)
    sms_international: bool = False
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.1",)
    requests_per_second: float = Field(50, gt=0)
    sockets_per_user: int = Field(10, ge=1)
    sockets_per_addr: int = Field(1000, ge=1)
    comments_per_minute: int = Field(20, ge=0)
    uploads_per_hour: int = Field(20, ge=0)
    token_days: float = Field(30, gt=0)
    # -- chat (4.6) --
    #: Days a conversation opened by a match stays open (fractions allowed).
    chat_days: float = Field(3, gt=0)
    #: Days an ended conversation stays readable before it is deleted.
    chat_retention_days: float = Field(7, ge=0)
    #: Chat messages per user per minute.
    messages_per_minute: int = Field(60, ge=0)
    #: Seconds between two looks for expired conversations (they end within this long).
    chat_sweep_interval: float = Field(15, gt=0, le=60)
    min_age: int = Field(18, ge=0)
    max_frame: int = Field(1_048_576, ge=1024)
    max_upload: int = Field(10_485_760, ge=1024)
    max_pixels: int = Field(50_000_000, ge=1)
    admin_token: str = ""
    timezone: str = "Asia/Shanghai"
    lang: Literal["zh", "en"] = "zh"
    log_level: str = "info"
    #: The event loop: `auto` (uvloop where it is installed), `asyncio` or `uvloop`.
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    #: Seconds between WebSocket pings, and without a pong before the socket is closed.
    ping_interval: float = Field(20, gt=0)
    ping_timeout: float = Field(60, gt=0)
    #: Frames waiting for one socket before it is deemed stalled and closed (a second
    #: bound beside outbound_bytes: many tiny frames cost more in bookkeeping than bytes).
    outbound_queue: int = Field(256, ge=8)
    #: Days a stored push is kept for replay.
    push_retention_days: float = Field(7, ge=7)
    # -- pictures (security) --
    avatars_per_day: int = Field(10, ge=0)
    #: Pictures decoded at once, each in a worker process (0: one per core, at most 4).
    picture_workers: int = Field(0, ge=0)
    #: Seconds a picture waits for a free worker before it is refused with error 6.
    picture_wait: float = Field(5, ge=0)
    #: One picture's decoding budget: CPU seconds, memory (MiB), wall-clock seconds.
    picture_cpu_seconds: int = Field(2, ge=1)
    picture_memory_mb: int = Field(384, ge=16)
    picture_deadline: float = Field(10, gt=0)
    #: Frames of an animation, and scans of a progressive JPEG, in one picture.
    picture_max_frames: int = Field(1000, ge=1)
    picture_max_scans: int = Field(100, ge=1)
    # -- ingress limits (security) --
    max_anon_frame: int = Field(65_536, ge=1024)
    http_timeout: float = Field(30, gt=0)
    http_per_addr: int = Field(100, ge=1)
    shutdown_grace: float = Field(10, ge=0)
    # -- outbound limits (security) --
    #: Bytes waiting for one socket (queued, being written, in the transport's buffer)
    #: before it is deemed stalled and closed (1013); above the transport's 32 KiB mark.
    outbound_bytes: int = Field(4_194_304, ge=65_536)
    # -- storage backend (storage) --
    #: `postgresql://...` for PostgreSQL; empty: SQLite in the data dir.
    database_url: str = ""
    #: Connections each process keeps to PostgreSQL at most.
    database_pool: int = Field(10, ge=1)
    # -- several processes (section 8) --
    #: `redis://...`: pushes, presence and limits shared by every process; empty: one process.
    redis_url: str = ""
    #: Prefix of every Redis key and channel (deployments sharing one Redis differ here).
    redis_prefix: str = "lovewire:"
    #: Processes sharing the ports (more than 1 needs database_url and redis_url).
    workers: int = Field(1, ge=1, le=256)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(p.strip() for p in value.split(",") if p.strip())
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log level must be debug, info, warning, error or critical")
        return value.lower()

    @cached_property
    def zone(self) -> ZoneInfo:
        """The zone of the app's time strings."""
        return ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file_var.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


class _ConfigFile:
    """The TOML file chosen for the settings being loaded (flag, then LOVEWIRE_CONFIG)."""

    path: Path | None = None

    def get(self) -> Path | None:
        return self.path


_config_file_var = _ConfigFile()


def load_settings(config: str | Path | None = None, **flags: Any) -> Settings:
    """Load settings: defaults < TOML file < environment < flags (None flags are ignored)."""
    chosen = config or os.environ.get("LOVEWIRE_CONFIG") or None
    path = Path(chosen) if chosen else None
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    _config_file_var.path = path
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    finally:
        _config_file_var.path = None
