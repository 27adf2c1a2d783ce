"""Settings: precedence, type coercion, clear errors naming the setting, generated embedded credentials."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from skyinspect.config import ConfigError, Settings, embedded_credentials, load_settings


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"SKYINSPECT_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path), **extra}


def test_defaults_bind_loopback_and_generate_credentials(tmp_path: Path) -> None:
    settings = load_settings(environ=_env(tmp_path))
    assert settings.s3_endpoint.startswith("127.0.0.1:")
    assert settings.s3_access_key and len(settings.s3_secret_key) >= 30
    again = load_settings(environ=_env(tmp_path))
    assert (again.s3_access_key, again.s3_secret_key) == (settings.s3_access_key, settings.s3_secret_key)
    cred_file = tmp_path / "data" / "store" / "credentials.json"
    assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600


def test_precedence_overrides_env_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('s3_bucket = "from-file"\ningest_workers = 3\ns3_secure = true\n', encoding="utf-8")
    env = _env(tmp_path, SKYINSPECT_CONFIG=str(cfg), SKYINSPECT_INGEST_WORKERS="5")
    settings = load_settings(environ=env)
    assert (settings.s3_bucket, settings.ingest_workers, settings.s3_secure) == ("from-file", 5, True)
    settings = load_settings(overrides={"s3_bucket": "cli"}, environ=env)
    assert settings.s3_bucket == "cli"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SKYINSPECT_S3_ENDPOINT": "http://minio:9000"}, "SKYINSPECT_S3_ENDPOINT"),
        ({"SKYINSPECT_S3_ENDPOINT": "minio"}, "host:port"),
        ({"SKYINSPECT_S3_ENDPOINT": "minio:99999"}, "host:port"),
        ({"SKYINSPECT_S3_SECURE": "maybe"}, "SKYINSPECT_S3_SECURE"),
        ({"SKYINSPECT_INGEST_WORKERS": "many"}, "SKYINSPECT_INGEST_WORKERS"),
        ({"SKYINSPECT_INGEST_WORKERS": "0"}, "ingest_workers"),
        ({"SKYINSPECT_CONFIG": "/nonexistent/skyinspect.toml"}, "does not exist"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=_env(tmp_path, **env))


def test_unknown_key_and_bad_toml_in_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('s3_bukket = "typo"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown setting 's3_bukket'"):
        load_settings(environ=_env(tmp_path, SKYINSPECT_CONFIG=str(cfg)))
    cfg.write_text("s3_bucket = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=str(cfg)):
        load_settings(environ=_env(tmp_path, SKYINSPECT_CONFIG=str(cfg)))


def test_redacted_hides_secret(tmp_path: Path) -> None:
    settings = Settings(s3_secret_key="hunter2-very-secret", data_dir=tmp_path)
    shown = settings.redacted()
    assert shown["s3_secret_key"] == "***"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(shown)


def test_explicit_keys_win_over_embedded(tmp_path: Path) -> None:
    embedded_credentials(tmp_path / "data")
    env = _env(tmp_path, SKYINSPECT_S3_ACCESS_KEY="ak", SKYINSPECT_S3_SECRET_KEY="sk")
    settings = load_settings(environ=env)
    assert (settings.s3_access_key, settings.s3_secret_key) == ("ak", "sk")
