"""Settings: one place that reads the config file and ``SKYINSPECT_*`` environment variables.

Precedence (highest first): explicit overrides passed by the caller (CLI options) → environment variables →
the config file → defaults. Nothing here runs at import time; call :func:`load_settings`.

The config file is TOML with the same keys as :class:`Settings`, lower-case, without the prefix::

    s3_endpoint = "minio.example.net:9000"
    s3_bucket = "skyinspect"
    data_dir = "/srv/skyinspect"

Its path is ``SKYINSPECT_CONFIG`` if set, else ``$XDG_CONFIG_HOME/skyinspect/config.toml`` when that exists.

When no S3 keys are configured, the embedded store's keys are used: they are generated once, randomly, and kept
in ``<data_dir>/store/credentials.json`` (mode 0600), so no secret is hard-coded anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "SKYINSPECT_"
SECRET_FIELDS = frozenset({"s3_secret_key"})


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting and where it came from."""


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skyinspect"


@dataclass(frozen=True)
class Settings:
    """All of skyinspect's settings. Each field maps to ``SKYINSPECT_<FIELD>`` (upper case)."""

    s3_endpoint: str = "127.0.0.1:8333"
    """host:port of the S3 API (the embedded SeaweedFS by default, MinIO in production)."""
    s3_access_key: str = ""
    s3_secret_key: str = field(default="", repr=False)
    s3_bucket: str = "skyinspect"
    s3_secure: bool = False
    """Use HTTPS to reach the S3 endpoint."""
    s3_region: str = "us-east-1"
    data_dir: Path = field(default_factory=_default_data_dir)
    """Local working data: the embedded store's files, caches, local copies of reports."""
    ingest_workers: int = 8
    """Parallel uploads during ingest."""
    max_image_pixels: int = 200_000_000
    """Images with more pixels than this are rejected (decompression-bomb guard)."""
    log_level: str = "INFO"

    # ----------------------------------------------------------------------------------------------
    @property
    def s3_endpoint_host(self) -> str:
        return self.s3_endpoint.rsplit(":", 1)[0]

    @property
    def s3_endpoint_port(self) -> int:
        return int(self.s3_endpoint.rsplit(":", 1)[1])

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict that is safe to log or print: secrets are masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = "***" if value else ""
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _coerce(name: str, raw: Any, source: str) -> Any:
    """Convert a raw value (str from env, or TOML value) to the field's type, with a clear error."""
    kind = {f.name: f for f in fields(Settings)}[name]
    default = kind.default if kind.default is not dataclasses.MISSING else kind.default_factory()  # type: ignore[misc]
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(f"expected true/false, got {raw!r}")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, Path):
            return Path(str(raw)).expanduser()
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"setting {name} from {source}: {exc}") from exc


def config_file_path(environ: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_PREFIX + "CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    candidate = Path(base) / "skyinspect" / "config.toml"
    return candidate if candidate.exists() else None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build :class:`Settings` from defaults, the config file, the environment and ``overrides``.

    Raises:
        ConfigError: a file that cannot be parsed, an unknown key, or a value of the wrong type.
    """
    env = os.environ if environ is None else environ
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or config_file_path(env)
    if path is not None:
        if not path.exists():
            raise ConfigError(f"config file {path} (from {ENV_PREFIX}CONFIG) does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        for key, raw in data.items():
            if key not in names:
                raise ConfigError(f"config file {path}: unknown setting {key!r}; known: {', '.join(sorted(names))}")
            values[key] = _coerce(key, raw, f"config file {path}")

    for name in names:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(name, raw, f"environment variable {ENV_PREFIX}{name.upper()}")

    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in names:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(key, raw, "command line")

    settings = Settings(**values)
    _validate(settings)
    if not settings.s3_access_key or not settings.s3_secret_key:
        access, secret = embedded_credentials(settings.data_dir)
        settings = settings.replace(
            s3_access_key=settings.s3_access_key or access, s3_secret_key=settings.s3_secret_key or secret
        )
    return settings


def _validate(settings: Settings) -> None:
    host, sep, port = settings.s3_endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"setting s3_endpoint ({ENV_PREFIX}S3_ENDPOINT): expected host:port, got {settings.s3_endpoint!r}"
        )
    if "/" in settings.s3_endpoint:
        raise ConfigError(
            f"setting s3_endpoint ({ENV_PREFIX}S3_ENDPOINT): give host:port without a scheme or path, "
            f"got {settings.s3_endpoint!r}; use {ENV_PREFIX}S3_SECURE=true for HTTPS"
        )
    if settings.ingest_workers < 1:
        raise ConfigError(f"setting ingest_workers must be at least 1, got {settings.ingest_workers}")


def embedded_credentials(data_dir: Path) -> tuple[str, str]:
    """The embedded store's access and secret key, generated on first use and kept with mode 0600."""
    path = data_dir / "store" / "credentials.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["access_key"]), str(data["secret_key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    access, secret = "skyinspect-" + secrets.token_hex(4), secrets.token_urlsafe(30)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"access_key": access, "secret_key": secret}, fh)
    os.replace(tmp, path)
    return access, secret
