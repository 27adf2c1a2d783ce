"""Annotated crops: each finding's best observation cut out of its frame with the box drawn (PNG bytes)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import cv2
import numpy as np

from detection.taxonomy import Domain

if TYPE_CHECKING:
    from findings.build import FlightFindings

log = logging.getLogger(__name__)

CROP_WORKERS = 2
"""Frames cut into crops at the same time (each holds one decoded frame in memory)."""


def thermal_to_bgr(temp_c: np.ndarray) -> np.ndarray:
    """(H, W) °C → (H, W, 3) uint8 BGR with the inferno palette, stretched to the 1st–99.5th percentile."""
    lo, hi = np.percentile(temp_c, [1.0, 99.5])
    scaled = np.clip((temp_c - lo) / max(hi - lo, 1e-3) * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)


def annotated_crop(
    image: np.ndarray, xyxy: list[float], colour_bgr: tuple[int, int, int], size: int
) -> bytes:
    """A square crop (2× the box, at least 48 px of context) around ``xyxy`` with the box drawn, as PNG bytes."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1, 48.0)
    a0, b0 = int(max(0, cx - half)), int(max(0, cy - half))
    a1, b1 = int(min(w, cx + half)), int(min(h, cy + half))
    crop = np.ascontiguousarray(image[b0:b1, a0:a1])
    scale = size / max(crop.shape[0], crop.shape[1], 1)
    crop = cv2.resize(
        crop,
        (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
        interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA,
    )
    m = 3  # draw the box just outside the defect so the defect itself stays visible
    p1 = (int((x1 - a0) * scale) - m, int((y1 - b0) * scale) - m)
    p2 = (int((x2 - a0) * scale) - 1 + m, int((y2 - b0) * scale) - 1 + m)
    cv2.rectangle(crop, p1, p2, colour_bgr, 2)
    ok, png = cv2.imencode(".png", crop)
    if not ok:
        raise ValueError("PNG encoding of a crop failed")
    return png.tobytes()


def make_crops(
    ff: FlightFindings,
    *,
    thermal_reader: Callable[[str], np.ndarray] | None,
    image_reader: Callable[[str], np.ndarray] | None,
    size: int = 160,
    workers: int = CROP_WORKERS,
) -> dict[str, bytes]:
    """finding id → PNG bytes of its best observation (findings whose frame cannot be read get none).

    Frames are visited one at a time per worker — read, every crop of the findings whose best view it is cut
    out, then released — so memory holds ``workers`` frames (a 4000×3000 frame decodes to 36 MB), and the
    reads and decodes of ``workers`` frames overlap (OpenCV and the store client release the GIL).
    """
    from detection.taxonomy import by_name
    from findings.thermal import as_celsius

    dom = Domain(ff.doc["kind"])
    by_frame: dict[str, list[dict]] = {}
    for f in ff.findings:
        by_frame.setdefault(f["best"]["image"], []).append(f)

    def frame_crops(rel: str, fs: list[dict]) -> dict[str, bytes]:
        img = None
        try:
            if dom == Domain.PV_THERMAL and thermal_reader is not None:
                img = thermal_to_bgr(as_celsius(thermal_reader(rel)))
            elif image_reader is not None:
                img = image_reader(rel)
                if img is not None and img.ndim == 2:
                    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        except Exception as exc:  # a crop is decoration: never fail the findings for it
            log.warning("no crop from %s: %s", rel, exc)
        if img is None:
            return {}
        return {
            f["id"]: annotated_crop(img, f["best"]["xyxy"], by_name(dom, f["class"]).colour_bgr, size)
            for f in fs
        }

    done: dict[str, bytes] = {}
    if workers <= 1 or len(by_frame) <= 1:
        for rel, fs in by_frame.items():
            done.update(frame_crops(rel, fs))
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="findings-crops") as pool:
            for part in pool.map(lambda item: frame_crops(*item), by_frame.items()):
                done.update(part)
    return {f["id"]: done[f["id"]] for f in ff.findings if f["id"] in done}  # in the findings' order
