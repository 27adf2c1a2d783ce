"""Helpers shared by the pipeline tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from skyinspect.config import Settings

SITE = "wind-farm-1"


def ingest(
    folder: Path, store, settings: Settings, flight: str, kind: str = "wind-rgb", site: str = SITE
) -> None:
    """Ingest a flight folder with the real ingest stage."""
    from ingest.api import ingest_flight

    ingest_flight(folder, site, flight, store=store, settings=settings, kind=kind, progress=False)


def mkdir(path: Path) -> str:
    """Create ``path`` (DagsterInstance.local_temp wants an existing folder) and return it as a string."""
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
