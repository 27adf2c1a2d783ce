"""End-to-end checks of rendered tiny flights: determinism, labels, masks, overlap, registry, layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FLIGHTS, options

from datasets.synth import build_flight, generate_flight
from detection.taxonomy import TaxonomyError, classes

KINDS = list(FLIGHTS)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_identical_bytes(kind: str, flight_dir, tmp_path: Path) -> None:
    first = flight_dir(kind)
    spec = FLIGHTS[kind]
    generate_flight(kind, spec["images"], spec["seed"], tmp_path, progress=False, workers=1, **options(kind))
    a, b = _digests(first), _digests(tmp_path)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


@pytest.mark.parametrize("kind", KINDS)
def test_different_seed_gives_different_flight(kind: str, flight_dir, tmp_path: Path) -> None:
    spec = FLIGHTS[kind]
    generate_flight(kind, 2, spec["seed"] + 100, tmp_path, progress=False, **options(kind))
    first = flight_dir(kind)
    for name in sorted(p.name for p in (tmp_path / "flight").iterdir() if p.suffix != ".json"):
        assert (tmp_path / "flight" / name).read_bytes() != (first / "flight" / name).read_bytes()
    assert (tmp_path / "synth.json").read_text() != (first / "synth.json").read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_layout_and_labels_parse(kind: str, flight_dir) -> None:
    root = flight_dir(kind)
    frames = json.loads((root / "truth" / "frames.json").read_text())
    registry = {d["defect_id"]: d for d in json.loads((root / "truth" / "defects.json").read_text())}
    synth = json.loads((root / "synth.json").read_text())
    conditions = json.loads((root / "flight" / "conditions.json").read_text())
    assert set(conditions) == {"irradiance_w_m2", "ambient_temp_c", "wind_speed_m_s", "cloud_cover_okta"}
    assert synth["kind"] == kind and synth["images"] == FLIGHTS[kind]["images"]
    images = sorted(p.name for p in (root / "flight").iterdir() if p.suffix in (".JPG", ".TIFF"))
    assert images == sorted(frames)
    n_classes = len(classes(kind))
    names = {c.id: c.name for c in classes(kind)}
    n_boxes = 0
    for name, rows in frames.items():
        lines = (root / "truth" / "labels" / (Path(name).stem + ".txt")).read_text().splitlines()
        assert len(lines) == len(rows)
        w, h = synth["camera"]["width"], synth["camera"]["height"]
        for line, row in zip(lines, rows, strict=True):
            cid, cx, cy, bw, bh = line.split()
            cid = int(cid)
            assert 0 <= cid < n_classes and names[cid] == row["class"] == registry[row["defect_id"]]["class"]
            vals = np.array([cx, cy, bw, bh], float)
            assert np.all(vals >= 0) and np.all(vals <= 1)
            x0, y0, x1, y1 = row["xyxy"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert x1 - x0 >= 4 and y1 - y0 >= 4 and 0.3 <= row["visibility"] <= 1
            np.testing.assert_allclose(
                vals, [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], atol=1e-6
            )
            n_boxes += 1
    assert n_boxes > 0, "the test flight should contain labelled defects"
    seen = {r["defect_id"] for rows in frames.values() for r in rows}
    assert seen == set(registry)


@pytest.mark.parametrize("kind", KINDS)
def test_label_boxes_cover_rendered_masks(kind: str, flight_dir) -> None:
    """Boxes (each defect's own mask, warped) against the label map warped with the frame (another path)."""
    root = flight_dir(kind)
    frames = json.loads((root / "truth" / "frames.json").read_text())
    spec = FLIGHTS[kind]
    flight = build_flight(kind, spec["images"], spec["seed"], **options(kind))
    checked = 0
    for i, name in enumerate(flight.names):
        out = flight.render(i, with_masks=True)
        assert [b["xyxy"] for b in out.truth.boxes] == [r["xyxy"] for r in frames[name]]
        for b in out.truth.boxes:
            mask = out.truth.masks[b["defect_index"]]
            ys, xs = np.nonzero(mask)
            assert len(xs) > 0, f"{name}: box without rendered mask pixels"
            mb = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
            bb = np.array(b["xyxy"], float)
            inter = np.prod(np.clip(np.minimum(mb[2:], bb[2:]) - np.maximum(mb[:2], bb[:2]), 0, None))
            union = np.prod(mb[2:] - mb[:2]) + np.prod(bb[2:] - bb[:2]) - inter
            # the box covers its mask (1 px of resampling slack) and hugs it: IoU >= 0.9 (0.75 under 20 px)
            x0, y0, x1, y1 = b["xyxy"]
            inside = mask[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1].sum() / mask.sum()
            assert inside >= 0.98, f"{name}: box {bb} leaves {1 - inside:.1%} of its mask outside"
            small = min(bb[2] - bb[0], bb[3] - bb[1]) < 20
            assert inter / union >= (0.75 if small else 0.9), f"{name}: box {bb} vs mask bbox {mb}"
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("kind", KINDS)
def test_defects_change_the_pixels(kind: str) -> None:
    """Rendering with defects differs from the same frame without them, inside the labelled boxes."""
    spec = FLIGHTS[kind]
    with_def = build_flight(kind, spec["images"], spec["seed"], **options(kind))
    clean = build_flight(kind, spec["images"], spec["seed"], **{**options(kind), "defect_rate": 0.0})
    diffs = []
    for i in range(len(with_def.names)):
        a = with_def.render(i)
        if not a.truth.boxes:
            continue
        b = clean.render(i)  # same plan, site and frame randomness; only the defects are missing
        for box in a.truth.boxes:
            x0, y0, x1, y1 = box["xyxy"]
            da = a.image[y0:y1, x0:x1].astype(np.float32)
            db = b.image[y0:y1, x0:x1].astype(np.float32)
            if da.shape == db.shape:
                diffs.append(float(np.abs(da - db).mean()))
    assert diffs and np.median(diffs) > (0.5 if kind == "pv-thermal" else 4.0)


def test_pv_layout_holds_every_defect_module(flight_dir) -> None:
    for kind in ("pv-thermal", "pv-rgb"):
        root = flight_dir(kind)
        layout = json.loads((root / "site" / "layout.geojson").read_text())
        polys = {
            f["properties"]["module_id"]: np.array(f["geometry"]["coordinates"][0])
            for f in layout["features"]
        }
        assert layout["type"] == "FeatureCollection" and polys
        for d in json.loads((root / "truth" / "defects.json").read_text()):
            mods = d["asset"].get("module_ids", [d["asset"]["module_id"]])
            assert all(m in polys for m in mods), d
            ring = np.concatenate([polys[m] for m in mods])
            lon0, lat0 = ring.min(0)
            lon1, lat1 = ring.max(0)
            tol = 2e-7  # ~2 cm: the defect's centre lies on its module(s)
            assert lon0 - tol <= d["lon"] <= lon1 + tol and lat0 - tol <= d["lat"] <= lat1 + tol, d
            assert d["asset"]["string_id"] and d["asset"]["inverter_id"]
            assert d["size_m"] > 0
            assert (d["delta_t_k"] is not None) == (kind == "pv-thermal")


def test_wind_registry_assets(flight_dir) -> None:
    root = flight_dir("wind-rgb")
    layout = json.loads((root / "site" / "layout.geojson").read_text())
    turbines = {f["properties"]["turbine_id"]: f["properties"] for f in layout["features"]}
    registry = json.loads((root / "truth" / "defects.json").read_text())
    assert registry
    for d in registry:
        a = d["asset"]
        assert a["turbine_id"] in turbines and a["blade"] in ("A", "B", "C")
        assert a["side"] in ("leading_edge", "trailing_edge", "pressure_side", "suction_side")
        assert 0 < a["radius_m"] <= turbines[a["turbine_id"]]["blade_length_m"]
        assert 40 <= turbines[a["turbine_id"]]["blade_length_m"] <= 60


@pytest.mark.parametrize("kind", ["pv-thermal", "pv-rgb"])
def test_pv_defects_seen_from_several_frames(kind: str, flight_dir) -> None:
    frames = json.loads((flight_dir(kind) / "truth" / "frames.json").read_text())
    count: dict[str, int] = {}
    for rows in frames.values():
        for r in rows:
            count[r["defect_id"]] = count.get(r["defect_id"], 0) + 1
    multi = sum(1 for c in count.values() if c >= 2)
    assert count and multi / len(count) >= 0.5, count


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"images": 0}, ValueError, "images"),
        ({"front_overlap": 0.99}, ValueError, "overlap"),
        ({"defect_rate": -1.0}, ValueError, "defect_rate"),
        ({"altitude_m": 0.1}, ValueError, "distance"),
        ({"kind": "sonar"}, TaxonomyError, "unknown domain"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, error: type, match: str) -> None:
    args = {"kind": "pv-thermal", "images": 2, "seed": 0, **kwargs}
    with pytest.raises(error, match=match):
        build_flight(args.pop("kind"), args.pop("images"), args.pop("seed"), **args)


def test_every_wind_side_renders_with_matching_masks() -> None:
    """One frame of each blade side (the tiny session flight only reaches the first sides)."""
    flight = build_flight("wind-rgb", 120, 11, image_size=(480, 360), defect_rate=6.0)
    frames = flight.frames
    seen_sides = set()
    boxes = 0
    for i, fr in enumerate(frames):
        if fr["side"] in seen_sides or fr["radius_m"] < 12:
            continue
        seen_sides.add(fr["side"])
        out = flight.render(i, with_masks=True)
        assert out.image.shape == (360, 480, 3)
        for b in out.truth.boxes:
            x0, y0, x1, y1 = b["xyxy"]
            mask = out.truth.masks[b["defect_index"]]
            assert (
                mask.any()
                and mask[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1].sum() >= 0.98 * mask.sum()
            )
            boxes += 1
    assert seen_sides == {"leading_edge", "pressure_side", "trailing_edge", "suction_side"}
    assert boxes > 0
