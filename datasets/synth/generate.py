"""Build a synthetic flight (site, plan, scene) and write the flight folder of /tmp/layout.md.

Every random draw comes from ``numpy.random.default_rng([seed, stream])`` with a fixed stream per purpose
(site, scene, plan, frame ``i``), so the output is byte-identical for the same seed and options, independent of
worker count or the order frames finish in.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from datasets.synth import effects, metadata
from datasets.synth.geo import CameraModel, GeoOrigin, Pose
from detection import radiometry
from detection.taxonomy import TAXONOMY_VERSION, Domain, by_name, domain

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
JPEG_QUALITY = 92

CAMERAS: dict[Domain, CameraModel] = {
    Domain.PV_THERMAL: CameraModel("DJI", "ZH20T", 640, 512, 13.0, 12.0, 1.0),
    Domain.PV_RGB: CameraModel("DJI", "M3E", 4000, 3000, 12.29, 3.3, 2.8),
    Domain.WIND: CameraModel("DJI", "ZH20", 4000, 3000, 24.0, 3.3, 2.8),
}
DEFAULTS: dict[Domain, dict[str, float]] = {
    Domain.PV_THERMAL: {"gsd_cm": 2.8, "front": 0.8, "side": 0.6, "defect_rate": 0.03},
    Domain.PV_RGB: {"gsd_cm": 1.1, "front": 0.7, "side": 0.6, "defect_rate": 0.03},
    Domain.WIND: {"gsd_cm": 0.2, "front": 0.3, "side": 0.0, "defect_rate": 1.0},
}


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """The generator of one named random stream of a flight."""
    return np.random.default_rng([int(seed), int(stream)])


STREAM_SITE, STREAM_SCENE, STREAM_PLAN, STREAM_EFFECTS, STREAM_META = 1, 2, 3, 4, 5
STREAM_FRAME0 = 1000


@dataclass
class FrameOutput:
    """A rendered frame: pixels and truth (see :class:`datasets.synth.pv_flight.FrameTruth`)."""

    image: np.ndarray
    """(H, W, 3) uint8 BGR, or (H, W) float32 °C for thermal."""
    truth: Any


@dataclass
class SynthFlight:
    """A flight ready to render: camera, poses, capture times, the scene and its defect registry."""

    kind: Domain
    seed: int
    cam: CameraModel
    origin: GeoOrigin
    poses: list[Pose]
    times: list[datetime]
    names: list[str]
    conditions: dict
    params: dict
    render_fn: Callable[[int, np.random.Generator, bool], tuple[np.ndarray, Any]]
    registry_fn: Callable[[int], dict]
    """defect index → its registry entry (without the frames it is seen in)."""
    write_site: Callable[[Path], None]
    flight_yaw: list[float] = field(default_factory=list)
    frames: list[dict] = field(default_factory=list)
    """Wind: per frame {"turbine", "blade", "side", "radius_m", "pose"} (empty for PV)."""

    def render(self, i: int, with_masks: bool = False) -> FrameOutput:
        """Render frame ``i`` (deterministic); with_masks adds per-defect (H, W) bool masks to its truth."""
        img, truth = self.render_fn(i, rng_for(self.seed, STREAM_FRAME0 + i), with_masks)
        return FrameOutput(img, truth)


@dataclass(frozen=True)
class FlightSummary:
    kind: str
    seed: int
    out: Path
    images: int
    defects: int
    boxes: int
    seconds: float


def _origin(seed: int, lat: float | None, lon: float | None) -> GeoOrigin:
    r = rng_for(seed, 0)
    la, lo, alt = float(r.uniform(36.0, 54.0)), float(r.uniform(-4.0, 24.0)), float(r.uniform(40.0, 420.0))
    return GeoOrigin(
        round(lat if lat is not None else la, 7), round(lon if lon is not None else lo, 7), round(alt, 2)
    )


def _conditions(seed: int) -> dict:
    r = rng_for(seed, 6)
    return {
        "irradiance_w_m2": round(float(r.uniform(750, 1000)), 1),
        "ambient_temp_c": round(float(r.uniform(8, 30)), 1),
        "wind_speed_m_s": round(float(r.uniform(0.5, 5.0)), 1),
        "cloud_cover_okta": int(r.integers(0, 3)),
    }


def _times(seed: int, n: int, gaps: list[float]) -> list[datetime]:
    r = rng_for(seed, 7)
    t = datetime(2025, 4, 1) + timedelta(
        days=int(r.integers(0, 150)), seconds=int(r.integers(9 * 3600, 14 * 3600))
    )
    out = []
    for i in range(n):
        out.append(t)
        t = t + timedelta(seconds=float(gaps[i] if i < len(gaps) else 2.0))
    return [x.replace(microsecond=0) for x in out]


def build_flight(
    kind: str | Domain,
    images: int,
    seed: int,
    *,
    gsd_cm: float | None = None,
    altitude_m: float | None = None,
    front_overlap: float | None = None,
    side_overlap: float | None = None,
    defect_rate: float | None = None,
    image_size: tuple[int, int] | None = None,
    lat: float | None = None,
    lon: float | None = None,
    site_id: str = "SITE-01",
    flight_id: str | None = None,
) -> SynthFlight:
    """Plan a flight of ``images`` frames over a generated site (nothing is rendered yet).

    Raises:
        ValueError: a non-positive image count, overlap outside [0, 0.95), or an unusable GSD/altitude.
    """
    dom = domain(kind)
    if images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    cam = CAMERAS[dom]
    if image_size is not None:
        cam = cam.resized(*image_size)
    d = DEFAULTS[dom]
    rate = d["defect_rate"] if defect_rate is None else float(defect_rate)
    if rate < 0:
        raise ValueError(f"defect_rate must be >= 0, got {rate}")
    if altitude_m is not None:
        dist = float(altitude_m)
    elif gsd_cm is not None:  # an explicit GSD is what the frames get, at the requested image size
        dist = gsd_cm / 100.0 * cam.focal_px
    else:  # the default GSD is the native camera's: a smaller image size keeps the flight, with coarser pixels
        dist = d["gsd_cm"] / 100.0 * CAMERAS[dom].focal_px
    if not 1.0 <= dist <= 500.0:
        raise ValueError(f"camera distance {dist:.1f} m (from altitude/GSD) is outside 1..500 m")
    origin = _origin(seed, lat, lon)
    conditions = _conditions(seed)
    front = d["front"] if front_overlap is None else float(front_overlap)
    side = d["side"] if side_overlap is None else float(side_overlap)
    common = {
        "kind": dom.value,
        "seed": int(seed),
        "images": int(images),
        "site_id": site_id,
        "flight_id": flight_id or f"{site_id}-F{seed:04d}",
        "camera": cam.to_dict(),
        "gsd_m": dist / cam.focal_px,
        "front_overlap": front,
        "side_overlap": side,
        "defect_rate": rate,
        "jpeg_quality": JPEG_QUALITY,
        "version": GENERATOR_VERSION,
        "taxonomy_version": TAXONOMY_VERSION,
        "origin": {"lat": origin.lat, "lon": origin.lon, "alt_m": origin.alt_m},
        "projection": "pinhole, no distortion; ENU local tangent plane at origin; see datasets/synth/geo.py",
    }
    if dom == Domain.WIND:
        from datasets.synth import wind

        return wind.build_wind_flight(dom, cam, images, seed, dist, front, rate, origin, conditions, common)
    return _build_pv(dom, cam, images, seed, dist, front, side, rate, origin, conditions, common)


def _build_pv(dom, cam, images, seed, altitude, front, side, rate, origin, conditions, common) -> SynthFlight:
    from datasets.synth import pv_flight, pv_render, pv_site

    plan = pv_flight.plan_lawnmower(cam, images, altitude, front, side, rng_for(seed, STREAM_PLAN))
    diag = float(np.hypot(*plan.footprint_m))
    margin = diag / 2 + 4.0
    site = pv_site.build_pv_site(rng_for(seed, STREAM_SITE), origin, plan.area, margin)
    gsd = altitude / cam.focal_px
    res = gsd * (0.85 if dom == Domain.PV_THERMAL else 1.0)
    scene = pv_render.PVScene(
        site,
        res,
        dom == Domain.PV_THERMAL,
        rng_for(seed, STREAM_SCENE),
        conditions,
        rate,
        (
            plan.area[0] - plan.footprint_m[0] / 2,
            plan.area[1] - plan.footprint_m[1] / 2,
            plan.area[2] + plan.footprint_m[0] / 2,
            plan.area[3] + plan.footprint_m[1] / 2,
        ),
    )
    renderer = pv_flight.PVFrameRenderer(scene, cam, rng_for(seed, STREAM_EFFECTS))
    suffix = "_T.TIFF" if dom == Domain.PV_THERMAL else ".JPG"
    names = [f"DJI_{i + 1:04d}{suffix}" for i in range(images)]
    speed = 4.0
    gaps = [
        plan.spacing_m[0] / speed if i + 1 < images and plan.leg_of[i + 1] == plan.leg_of[i] else 12.0
        for i in range(images)
    ]
    params = dict(
        common,
        altitude_m=altitude,
        gsd_m=gsd,
        mosaic_res_m=res,
        footprint_m=list(plan.footprint_m),
        spacing_m=list(plan.spacing_m),
        legs=max(plan.leg_of) + 1,
        modules=len(site),
    )

    def render_fn(i, rng, with_masks):
        return renderer.render(plan.poses[i], rng, with_masks)

    def registry_fn(idx):
        dfc = scene.defects[idx]
        ys, xs = np.nonzero(dfc.patch)
        e, n = scene.enu_of_px(xs.mean() + dfc.patch_j0, ys.mean() + dfc.patch_i0)
        lat, lon = origin.to_wgs84(e, n)
        ext = max(np.ptp(xs) + 1, np.ptp(ys) + 1) * res
        mods = dfc.modules
        asset = site.asset(mods[len(mods) // 2])
        if len(mods) > 1:
            asset["module_ids"] = [site.module_ids[m] for m in mods]
        return {
            "class": dfc.cls,
            "asset": asset,
            "lat": round(float(lat), 9),
            "lon": round(float(lon), 9),
            "size_m": round(float(ext), 3),
            "delta_t_k": dfc.delta_t_k,
        }

    return SynthFlight(
        dom,
        seed,
        cam,
        origin,
        plan.poses,
        _times(seed, images, gaps),
        names,
        conditions,
        params,
        render_fn,
        registry_fn,
        site.write_geojson,
    )


def _shot(flight: SynthFlight, i: int) -> metadata.ShotMetadata:
    p = flight.poses[i]
    lat, lon = flight.origin.to_wgs84(p.e, p.n)
    r = rng_for(flight.seed, STREAM_META * 100000 + i)
    return metadata.ShotMetadata(
        lat=float(lat),
        lon=float(lon),
        abs_alt_m=flight.origin.alt_m + p.u,
        rel_alt_m=p.u,
        gimbal_yaw=p.yaw_deg,
        gimbal_pitch=p.pitch_deg,
        gimbal_roll=p.roll_deg,
        flight_yaw=flight.flight_yaw[i] if flight.flight_yaw else p.yaw_deg,
        flight_pitch=float(r.normal(0, 2.0)),
        flight_roll=float(r.normal(0, 1.5)),
        time=flight.times[i],
        image_source="InfraredCamera"
        if flight.kind == Domain.PV_THERMAL
        else ("ZoomCamera" if flight.kind == Domain.WIND else "WideCamera"),
    )


def _write_frame(flight: SynthFlight, out: Path, i: int) -> list[dict]:
    frame = flight.render(i)
    name = flight.names[i]
    shot = _shot(flight, i)
    if flight.kind == Domain.PV_THERMAL:
        counts = radiometry.celsius_to_counts(frame.image)
        metadata.write_radiometric_tiff(out / "flight" / name, counts, flight.cam, shot)
        prev = effects.thermal_preview(radiometry.counts_to_celsius(counts))
        cv2.imwrite(str(out / "previews" / (Path(name).stem + ".png")), prev)
    else:
        metadata.write_jpeg(
            out / "flight" / name, effects.encode_jpeg(frame.image, JPEG_QUALITY), flight.cam, shot
        )
    return frame.truth.boxes


def _camera_record(flight: SynthFlight, i: int) -> dict:
    p = flight.poses[i]
    lat, lon = flight.origin.to_wgs84(p.e, p.n)
    return {
        "e_m": round(p.e, 4),
        "n_m": round(p.n, 4),
        "u_m": round(p.u, 4),
        "lat": round(float(lat), 9),
        "lon": round(float(lon), 9),
        "yaw_deg": round(p.yaw_deg, 4),
        "pitch_deg": round(p.pitch_deg, 4),
        "roll_deg": round(p.roll_deg, 4),
        "time": flight.times[i].isoformat(),
    }


def generate_flight(
    kind: str | Domain,
    images: int,
    seed: int,
    out: str | Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    **options: Any,
) -> FlightSummary:
    """Render a flight into ``out`` (the layout of /tmp/layout.md); options as :func:`build_flight`."""
    start = time.perf_counter()
    flight = build_flight(kind, images, seed, **options)
    out = Path(out)
    for sub in ("flight", "truth/labels", "site") + (
        ("previews",) if flight.kind == Domain.PV_THERMAL else ()
    ):
        (out / sub).mkdir(parents=True, exist_ok=True)
    n_workers = workers or min(2, os.cpu_count() or 1)
    # frames are already rendered in parallel: OpenCV's own thread pool on top only oversubscribes the cores
    cv_threads = cv2.getNumThreads()
    if n_workers > 1:
        cv2.setNumThreads(1)
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            it = pool.map(lambda i: _write_frame(flight, out, i), range(images))
            boxes = list(
                tqdm(it, total=images, desc=f"synth {flight.kind.value}", unit="img", disable=not progress)
            )
    finally:
        cv2.setNumThreads(cv_threads)

    seen = sorted({b["defect_index"] for bs in boxes for b in bs})
    ids = {idx: f"D{k + 1:05d}" for k, idx in enumerate(seen)}
    frames_json: dict[str, list] = {}
    n_boxes = 0
    w, h = flight.cam.width, flight.cam.height
    for i, bs in enumerate(boxes):
        name = flight.names[i]
        rows, lines = [], []
        for b in bs:
            cls = flight.registry_fn(b["defect_index"])["class"]
            cid = by_name(flight.kind, cls).id
            x0, y0, x1, y1 = b["xyxy"]
            rows.append(
                {
                    "defect_id": ids[b["defect_index"]],
                    "class": cls,
                    "class_id": cid,
                    "xyxy": b["xyxy"],
                    "visibility": b["visibility"],
                }
            )
            lines.append(
                f"{cid} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} "
                f"{(y1 - y0) / h:.6f}"
            )
        n_boxes += len(rows)
        frames_json[name] = rows
        (out / "truth" / "labels" / (Path(name).stem + ".txt")).write_text(
            "".join(x + "\n" for x in lines), encoding="utf-8"
        )
    registry = []
    for idx in seen:
        entry = flight.registry_fn(idx)
        registry.append({"defect_id": ids[idx], **entry})
    _dump(out / "truth" / "frames.json", frames_json)
    _dump(out / "truth" / "defects.json", registry)
    _dump(out / "truth" / "cameras.json", {flight.names[i]: _camera_record(flight, i) for i in range(images)})
    _dump(out / "flight" / "conditions.json", flight.conditions)
    _dump(out / "synth.json", flight.params)
    flight.write_site(out / "site" / "layout.geojson")
    seconds = time.perf_counter() - start
    log.info(
        "synth %s: %d images, %d defects, %d boxes in %.1f s → %s",
        flight.kind.value,
        images,
        len(registry),
        n_boxes,
        seconds,
        out,
    )
    return FlightSummary(flight.kind.value, seed, out, images, len(registry), n_boxes, seconds)


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=_jsonable) + "\n", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
