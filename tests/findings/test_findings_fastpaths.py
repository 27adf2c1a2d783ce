"""The fast paths of the findings stage give the same results as the straightforward algorithms they replaced.

Each reference below is the one-by-one code the stage used before it was made fast for many detections (module
lookup, module centres in a polygon, de-duplication, trend matching, ΔT with per-box masks); the tests run
both on synthetic flights with many detections (ground truth plus jittered copies and false positives) and on
constructed edge cases, and require equal results — not approximately equal.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest

from bench.bench_findings import many_detections
from detection.taxonomy import Domain
from findings import build as B
from findings.checks import SAME_SPOT_IOS
from findings.layout import (
    SiteLayout,
    distance_to_ring,
    parse_layout,
    point_in_polygon,
)
from findings.thermal import ModuleProjection, as_celsius, exclusion_mask, measure_delta_t
from findings.trend import _same, apply_trend


# ------------------------------------------------------------------------------------------- references
def ref_locate_module(lay: SiteLayout, e: float, n: float, tol: float) -> tuple[str | None, float, str]:
    best, best_d = None, math.inf
    for i in lay.candidates(e, n, tol + 0.1):
        ring = lay.modules[i].ring
        if point_in_polygon(e, n, ring):
            return lay.modules[i].module_id, 0.0, "inside"
        d = distance_to_ring(e, n, ring)
        if d < best_d:
            best, best_d = lay.modules[i], d
    if best is not None and best_d <= tol:
        return best.module_id, best_d, "nearest"
    if not lay.modules:
        return None, math.inf, "the layout has no modules"
    return None, best_d, f"no module within {tol:.1f} m of the finding (off the as-built layout)"


def ref_modules_in_polygon(lay: SiteLayout, poly: np.ndarray) -> list[int]:
    c = poly.mean(0)
    radius = float(np.max(np.hypot(*(poly - c).T))) + 1.0
    return [i for i in lay.candidates(c[0], c[1], radius) if point_in_polygon(*lay.modules[i].centre, poly)]


def _ios(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return inter / smaller if smaller > 0 else 0.0


def ref_cluster(dom: Domain, obs: list[B.Observation]) -> list[list[B.Observation]]:
    clusters: list[dict[str, Any]] = []
    out_unlocated: list[list[B.Observation]] = []
    for o in sorted(obs, key=lambda x: (-x.quality, x.image, x.index)):
        if not o.located:
            out_unlocated.append([o])
            continue
        best, best_d = None, math.inf
        for c in clusters:
            seed = c["seed"]
            same_string = (
                o.cls.name == "string_offline" and o.string_id is not None and o.string_id == seed.string_id
            )
            piece = dom == Domain.WIND and any(
                m.image == o.image and _ios(m.xyxy, o.xyxy) >= SAME_SPOT_IOS for m in c["members"]
            )
            if seed.cls.name != o.cls.name or (o.image in c["images"] and not same_string and not piece):
                continue
            if dom == Domain.WIND:
                wa, wb = seed.wind or {}, o.wind or {}
                key_a = (wa.get("turbine_id"), wa.get("blade"), wa.get("side"))
                if key_a != (wb.get("turbine_id"), wb.get("blade"), wb.get("side")):
                    continue
                sizes = [s for s in (seed.size_m, o.size_m) if s is not None]
                thr = 0.5 * max(sizes or [o.cls.size_m[1]]) + 0.3 + 2 * o.sigma_m
                d = math.hypot(wa["radius_m"] - wb["radius_m"], wa["across_m"] - wb["across_m"])
            elif o.cls.name == "string_offline" and o.string_id and seed.string_id:
                if o.string_id != seed.string_id:
                    continue
                d, thr = 0.0, 1.0
            else:
                if o.module_id and seed.module_id and o.module_id != seed.module_id:
                    continue
                thr = 0.5 * o.cls.size_m[1] + 2.0 * o.sigma_m
                d = math.hypot(o.e - seed.e, o.n - seed.n)
            if d <= thr and d < best_d:
                best, best_d = c, d
        if best is None:
            clusters.append({"seed": o, "members": [o], "images": {o.image}})
        else:
            best["members"].append(o)
            best["images"].add(o.image)
    return [c["members"] for c in clusters] + out_unlocated


def ref_trend_pairs(cur: list[dict[str, Any]], prev: list[dict[str, Any]]) -> list[tuple[float, int, int]]:
    return sorted(
        (d, i, j) for i, c in enumerate(cur) for j, p in enumerate(prev) if (d := _same(c, p)) is not None
    )


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def many(synth_case):
    """kind → (case, detection records with many detections: truth + jittered copies + false positives)."""
    cache: dict[str, Any] = {}

    def get(kind: str, n: int = 600):
        if (kind, n) not in cache:
            case = synth_case(kind)
            sizes = {im["path"]: (im["width"], im["height"]) for im in case.manifest["images"]}
            recs = copy.deepcopy(case.detections)
            for r in recs:
                r["width"], r["height"] = sizes[r["relative_path"]]
            cache[(kind, n)] = (case, many_detections(recs, n, seed=1))
        return cache[(kind, n)]

    return get


def _observations(case, records) -> tuple[Domain, list[B.Observation], SiteLayout]:
    dom = Domain(case.kind)
    lay = parse_layout(case.layout)
    local = B._local_frame(case.manifest, lay)
    obs, _ = B._observations(
        dom, case.manifest, records, lay, local, case.thermal_reader(), B.BuildOptions(), []
    )
    return dom, obs, lay


def _mixed_layout() -> SiteLayout:
    """Rectangles, pentagons and triangles side by side (so the vertex-count groups are exercised)."""
    feats = []
    for i in range(30):
        x0, y0 = 4.0 + (i % 6) * 1.1e-5, 52.0 + (i // 6) * 1.5e-5
        if i % 3 == 0:
            ring = [[x0, y0], [x0 + 1e-5, y0], [x0 + 1e-5, y0 + 1e-5], [x0, y0 + 1e-5]]
        elif i % 3 == 1:
            ring = [
                [x0, y0],
                [x0 + 1e-5, y0],
                [x0 + 1.2e-5, y0 + 0.6e-5],
                [x0 + 0.5e-5, y0 + 1.2e-5],
                [x0, y0 + 1e-5],
            ]
        else:
            ring = [[x0, y0], [x0 + 1e-5, y0], [x0 + 0.5e-5, y0 + 1e-5]]
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
                "properties": {"module_id": f"M{i:03d}", "string_id": f"S{i // 6}"},
            }
        )
    return parse_layout({"type": "FeatureCollection", "features": feats})


# ------------------------------------------------------------------------------------------- layout
@pytest.mark.parametrize("which", ["synthetic", "mixed vertex counts"])
@pytest.mark.parametrize("tol", [0.0, 0.5, 1.7])
def test_locate_module_equals_the_one_by_one_loop(synth_case, which: str, tol: float) -> None:
    lay = parse_layout(synth_case("pv-thermal").layout) if which == "synthetic" else _mixed_layout()
    cen = lay.centres()
    lo, hi = cen.min(0) - 3.0, cen.max(0) + 3.0
    rng = np.random.default_rng(7)
    points = [
        *rng.uniform(lo, hi, (400, 2)),
        *cen[:20],
        *(np.concatenate([m.ring for m in lay.modules[:10]])),
    ]
    kinds = set()
    for e, n in points:
        m, d, how = lay.locate_module(float(e), float(n), tol)
        got = (None if m is None else m.module_id, d, how)
        assert got == ref_locate_module(lay, float(e), float(n), tol)
        kinds.add(how.split()[0])
    assert {"inside", "no"} <= kinds  # both outcomes were exercised (and "nearest" with a tolerance)
    if tol > 0:
        assert "nearest" in kinds


@pytest.mark.parametrize("which", ["synthetic", "mixed vertex counts"])
def test_modules_in_polygon_equals_the_one_by_one_test(synth_case, which: str) -> None:
    lay = parse_layout(synth_case("pv-thermal").layout) if which == "synthetic" else _mixed_layout()
    rng = np.random.default_rng(3)
    cen = lay.centres()
    hits = 0
    for _ in range(100):
        c = cen[rng.integers(len(cen))] + rng.normal(0, 1.0, 2)
        half = rng.uniform(0.3, 4.0, 2)
        angle = rng.uniform(0, np.pi)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        poly = c + (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half) @ rot.T
        got = lay.modules_in_polygon(poly)
        assert got == ref_modules_in_polygon(lay, poly)
        hits += bool(got)
    assert hits > 10


# ------------------------------------------------------------------------------------------- de-duplication
@pytest.mark.parametrize("kind", ["pv-thermal", "pv-rgb", "wind-rgb"])
def test_cluster_equals_the_compare_with_every_cluster_loop(many, kind: str) -> None:
    case, records = many(kind)
    dom, obs, _ = _observations(case, records)
    assert len(obs) >= 600
    fast = B._cluster(dom, obs)
    ref = ref_cluster(dom, obs)
    assert [[id(o) for o in c] for c in fast] == [[id(o) for o in c] for c in ref]
    assert len(fast) < len(obs)  # real merges happened


# ------------------------------------------------------------------------------------------- ΔT
def test_delta_t_with_per_frame_masks_equals_per_box_masks(many) -> None:
    case, records = many("pv-thermal", 300)
    lay = parse_layout(case.layout)
    local = B._local_frame(case.manifest, lay)
    index = B._image_index(case.manifest)
    reader = case.thermal_reader()
    checked = 0
    for rec in records:
        boxes = [list(map(float, d["xyxy"])) for d in rec["detections"]]
        if len(boxes) < 2:
            continue
        cam = B.frame_camera(index[rec["relative_path"]], local, None, None, lay.ground_alt_m)
        temp = as_celsius(reader(rec["relative_path"]))
        excl = exclusion_mask(temp.shape, boxes)
        proj = ModuleProjection(cam, lay)
        for j, box in enumerate(boxes):
            slow = measure_delta_t(temp, box, boxes[:j] + boxes[j + 1 :], cam, lay)
            fast = measure_delta_t(temp, box, [], cam, lay, exclusion=excl, projection=proj)
            assert fast == slow
            checked += 1
    assert checked >= 200


def test_exclusion_mask_of_the_wrong_shape_is_refused() -> None:
    temp = np.zeros((40, 50), np.float32)
    with pytest.raises(ValueError, match="exclusion mask has shape"):
        measure_delta_t(temp, [5, 5, 10, 10], [], exclusion=np.zeros((50, 40), bool))


def test_each_radiometric_frame_is_read_once(many) -> None:
    case, records = many("pv-thermal")
    calls: list[str] = []
    base = case.thermal_reader()

    def reader(rel: str) -> np.ndarray:
        calls.append(rel)
        return base(rel)

    ff = B.build_findings(case.manifest, records, layout=case.layout, thermal_reader=reader)
    frames = {r["relative_path"] for r in records if r["detections"]}
    assert sorted(calls) == sorted(frames)  # ΔT and crops share one read per frame
    assert len(ff.crops) == len(ff.findings)
    assert set(ff.timings) == {"georef", "dedup", "assign", "grade", "trend", "crops"}
    assert all(v >= 0 for v in ff.timings.values())


def test_frame_cache_evicts_beyond_its_budget() -> None:
    reads: list[str] = []

    def reader(rel: str) -> np.ndarray:
        reads.append(rel)
        return np.zeros((100, 100), np.uint16)  # 20 kB

    cache = B.FrameCache(reader, max_mb=0.05)  # room for 2 frames
    for rel in ["a", "b", "a", "c", "a", "b"]:
        assert cache(rel).shape == (100, 100)
    assert reads == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    assert cache.bytes <= 50_000


# ------------------------------------------------------------------------------------------- trend
def _fake_findings(rng: np.random.Generator, n: int, lat0: float, domain: str) -> list[dict[str, Any]]:
    out = []
    mlat = 111_320.0
    mlon = mlat * math.cos(math.radians(lat0))
    for i in range(n):
        cls = ["hotspot_single_cell", "string_offline", "pid"][int(rng.integers(3))]
        e, n_ = rng.uniform(0, 12, 2)
        asset: dict[str, Any] = {}
        if domain == "wind-rgb":
            asset = {
                "turbine_id": f"T{int(rng.integers(2))}",
                "blade": "ABC"[int(rng.integers(3))],
                "side": "leading_edge",
                "radius_m": float(rng.uniform(1, 20)),
            }
        else:
            if rng.random() < 0.4:
                asset["module_id"] = f"M{int(rng.integers(8))}"
            if rng.random() < 0.4:
                asset["string_id"] = f"S{int(rng.integers(3))}"
        out.append(
            {
                "id": f"F{i:04d}",
                "class": cls,
                "domain": domain,
                "size_m": float(rng.uniform(0.1, 2.0)),
                "asset": asset,
                "location": {
                    "located": bool(rng.random() < 0.9),
                    "lat": lat0 + n_ / mlat,
                    "lon": 10 + e / mlon,
                },
                "thermal": None,
                "grade": {"label": "CoA 2"},
            }
        )
    return out


@pytest.mark.parametrize("lat0", [0.0, 52.3, 69.9, -45.0])
@pytest.mark.parametrize("domain", ["pv-thermal", "wind-rgb"])
def test_trend_pairs_equal_the_all_pairs_comparison(lat0: float, domain: str) -> None:
    rng = np.random.default_rng(int(abs(lat0) * 10) + len(domain))
    prev = _fake_findings(rng, 300, lat0, domain)
    cur = _fake_findings(rng, 300, lat0, domain)
    ref = ref_trend_pairs(cur, prev)
    assert len(ref) > 50
    doc = {"findings": copy.deepcopy(cur), "inspection_time": None}
    apply_trend(doc, {"findings": prev, "flight": "F0", "inspection_time": None})
    # the greedy assignment over the reference pairs, as apply_trend does it
    used_c, used_p, matched = set(), set(), {}
    for _, i, j in ref:
        if i not in used_c and j not in used_p:
            used_c.add(i)
            used_p.add(j)
            matched[i] = prev[j]["id"]
    got = {
        i: f["trend"]["previous_id"] for i, f in enumerate(doc["findings"]) if f["trend"]["status"] != "new"
    }
    assert got == matched
    assert sorted(r["previous_id"] for r in doc["resolved"]) == sorted(
        p["id"] for j, p in enumerate(prev) if j not in used_p
    )


def test_trend_of_real_flights_equals_the_all_pairs_comparison(many) -> None:
    case, records = many("pv-rgb")
    first = copy.deepcopy(records)
    for r in first:
        r["detections"] = r["detections"][::2]
    prev = B.build_findings(case.manifest, first, layout=case.layout, options=B.BuildOptions(crops=False)).doc
    ff = B.build_findings(
        case.manifest, records, layout=case.layout, previous=prev, options=B.BuildOptions(crops=False)
    )
    pairs = ref_trend_pairs(ff.findings, prev["findings"])
    used_c, used_p, matched = set(), set(), {}
    for _, i, j in pairs:
        if i not in used_c and j not in used_p:
            used_c.add(i)
            used_p.add(j)
            matched[ff.findings[i]["id"]] = prev["findings"][j]["id"]
    got = {f["id"]: f["trend"]["previous_id"] for f in ff.findings if f["trend"]["status"] != "new"}
    assert got == matched and len(got) > 10


def test_bench_detections_are_deterministic_and_many(many) -> None:
    case, records = many("pv-rgb")
    assert sum(len(r["detections"]) for r in records) == 600
    base = many("pv-rgb", 601)[1]  # another call with the same seed: the same first added boxes
    assert [r["detections"][:3] for r in base] == [r["detections"][:3] for r in records]
    truth = sum(len(r["detections"]) for r in case.detections)
    assert truth < 600 // 4  # most are jittered copies and false positives
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        many_detections([{"width": 10, "height": 10, "detections": []}], 5)
