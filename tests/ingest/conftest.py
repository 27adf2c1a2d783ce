"""Fixtures for ingest tests: settings with a per-test cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyinspect.config import Settings


@pytest.fixture
def ingest_settings(s3_settings: Settings, tmp_path: Path) -> Settings:
    """The session server's settings with this test's own data dir (so the ingest cache starts empty)."""
    return s3_settings.replace(data_dir=tmp_path / "data", ingest_workers=4)
