"""Helpers for bench modules: a throw-away embedded S3 store, timing."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def calibrate_untrained(net: Any, batch: Any) -> None:
    """Make an untrained ultralytics detection net produce a realistic number of boxes, in place.

    One forward pass in train mode with BatchNorm momentum 1 sets the running statistics from ``batch``
    ((B, 3, H, W) float32 numpy, RGB 0..1); the class branches' last convs are then scaled and biased so that a
    few hundred anchors pass a 0.25 threshold — timings of decode and NMS stay representative.
    """
    import torch

    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = 1.0
        net.train()
        net(torch.from_numpy(batch))
        net.eval()
        for seq in net.model[-1].cv3:
            seq[-1].weight.mul_(2.0)
            seq[-1].bias.fill_(-4.0)
