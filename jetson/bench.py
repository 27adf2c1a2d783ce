"""On-device latency: p50/p95 and throughput of the full frame path (decode → detections) and of the model alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detection.images import IMAGE_SUFFIXES, decode_image


@dataclass(frozen=True)
class Timing:
    """Latencies of one measured step (seconds per call)."""

    name: str
    seconds: list[float]

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.seconds, 50) * 1000)

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.seconds, 95) * 1000)

    @property
    def per_s(self) -> float:
        total = float(np.sum(self.seconds))
        return len(self.seconds) / total if total > 0 else float("inf")

    def row(self) -> dict[str, float | str | int]:
        return {
            "step": self.name,
            "n": len(self.seconds),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
            "frames_per_s": round(self.per_s, 2),
        }


def load_images(folder: Path | None, n: int, synthetic_hw: tuple[int, int] = (3000, 4000)) -> list[bytes]:
    """Up to ``n`` encoded images from ``folder`` (cycled), or ``min(n, 8)`` synthetic JPEG frames when None."""
    import cv2

    if folder is not None:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise FileNotFoundError(f"no images in {folder}")
        return [files[i % len(files)].read_bytes() for i in range(min(n, len(files)))]
    rng = np.random.default_rng(0)
    out = []
    h, w = synthetic_hw
    for _ in range(min(n, 8)):
        img = np.empty((h, w, 3), np.uint8)
        img[:] = np.linspace(40, 200, w, dtype=np.uint8)[None, :, None]
        for _ in range(30):
            x, y, s = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(8, h // 6))
            cv2.rectangle(
                img, (x, y), (x + s, y + s // 2), tuple(int(c) for c in rng.integers(0, 255, 3)), -1
            )
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError("cannot encode a synthetic JPEG frame")
        out.append(buf.tobytes())
    return out


def measure(fn: Callable[[bytes], object], inputs: Sequence[bytes], n: int, warmup: int = 2) -> list[float]:
    """Call ``fn`` on ``inputs`` cyclically: ``warmup`` untimed calls, then ``n`` timed → seconds per call."""
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(inputs[i % len(inputs)])
        out.append(time.perf_counter() - t0)
    return out


def bench_runner(
    runner: Callable[[np.ndarray], object],
    images: Sequence[bytes],
    n: int,
    warmup: int = 2,
    decode_detect: Callable[[bytes], object] | None = None,
) -> list[Timing]:
    """Full path (decode + detect: ``decode_detect``, default a full decode then ``runner``) and model path
    (``runner`` on frames decoded beforehand at full size), ``n`` frames each."""
    decoded = [decode_image(b) for b in images]
    index = {id(b): i for i, b in enumerate(images)}
    full = measure(decode_detect or (lambda b: runner(decode_image(b))), images, n, warmup)
    model = measure(lambda b: runner(decoded[index[id(b)]]), images, n, warmup)
    return [Timing("decode+detect", full), Timing("detect", model)]
