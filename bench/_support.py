"""Helpers for bench modules: a throw-away embedded S3 store, timing."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from skyinspect.config import Settings


@contextmanager
def embedded_store(workers: int = 8) -> Iterator[Settings]:
    """A real SeaweedFS on a free loopback port with random keys and a temporary data dir; stopped on exit.

    Yields:
        Settings pointing at it (``data_dir`` is the temporary folder, so caches start empty).
    """
    from objectstore.server import EmbeddedStore, free_port

    with tempfile.TemporaryDirectory(prefix="skyinspect-bench-") as tmp:
        settings = Settings(
            s3_endpoint=f"127.0.0.1:{free_port()}",
            s3_access_key="bench-" + secrets.token_hex(4),
            s3_secret_key=secrets.token_urlsafe(24),
            s3_bucket="bench",
            data_dir=Path(tmp) / "data",
            ingest_workers=workers,
        )
        store = EmbeddedStore(settings)
        try:
            store.start(tied_to_parent=True)
            yield settings
        finally:
            store.stop()


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the elapsed wall time in seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)
