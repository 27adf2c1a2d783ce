"""Radiometric frames fetched ahead from the real S3 store, and the stage timings a processed flight reports."""

from __future__ import annotations

import pytest

from findings.api import Prefetcher, thermal_plan
from objectstore.client import ObjectNotFound, ObjectStore


@pytest.fixture
def frames(object_store: ObjectStore) -> dict[str, bytes]:
    data = {f"raw/S/F/DJI_{i:04d}_T.TIFF": bytes([i]) * (1000 + i) for i in range(12)}
    for key, value in data.items():
        object_store.put_bytes(key, value)
    return data


@pytest.mark.parametrize("ahead", [1, 4, 20])
def test_prefetcher_returns_each_object_in_any_order(object_store: ObjectStore, frames, ahead: int) -> None:
    keys = list(frames)
    pre = Prefetcher(object_store, keys[:8], ahead=ahead, workers=3)
    try:
        assert len(pre.pending) == min(ahead, 8)
        order = [keys[2], keys[0], keys[1], *keys[3:]]  # out of plan order, and unplanned keys after it
        for key in order:
            assert pre.get(key) == frames[key]
            assert len(pre.pending) <= ahead
        assert pre.get(keys[0]) == frames[keys[0]]  # asked again: fetched again, not lost
        with pytest.raises(ObjectNotFound):
            pre.get("raw/S/F/missing.TIFF")
    finally:
        pre.close()
    assert pre.pending == {}


def test_thermal_plan_lists_frames_with_detections_in_order() -> None:
    manifest = {
        "kind": "pv-thermal",
        "images": [
            {"path": "a_T.TIFF", "key": "raw/S/F/a_T.TIFF"},
            {"path": "b_T.TIFF", "key": "raw/S/F/b_T.TIFF"},
            {"path": "c_T.TIFF", "key": None},
        ],
    }
    dets = [
        {"relative_path": "c_T.TIFF", "detections": [{}]},
        {"relative_path": "a_T.TIFF", "detections": []},
        {"relative_path": "b_T.TIFF", "detections": [{}]},
        {"relative_path": "zzz.TIFF", "detections": [{}]},
    ]
    assert thermal_plan(manifest, dets, "S", "F") == ["raw/S/F/images/c_T.TIFF", "raw/S/F/b_T.TIFF"]
    assert thermal_plan(dict(manifest, kind="pv-rgb"), dets, "S", "F") == []


def test_process_flight_reports_its_stage_timings(
    object_store: ObjectStore, s3_settings, synth_case, tmp_path
) -> None:
    import json

    from findings.api import process_flight
    from findings.config import FindingsConfig
    from ingest.api import ingest_flight
    from objectstore import keys

    case = synth_case("pv-thermal")
    settings = s3_settings.replace(data_dir=tmp_path / "data")
    ingest_flight(case.flight_dir, "S9", "F1", store=object_store, settings=settings, progress=False)
    body = "".join(json.dumps(r) + "\n" for r in case.detections).encode()
    object_store.put_bytes(keys.detections_key("S9", "F1"), body)
    object_store.put_bytes(keys.site_layout_key("S9"), json.dumps(case.layout).encode())
    result = process_flight(object_store, "S9", "F1", data_dir=settings.data_dir, config=FindingsConfig())
    stages = {"georef", "dedup", "assign", "grade", "trend", "crops", "reports", "upload"}
    assert set(result.timings) == stages and all(v >= 0 for v in result.timings.values())
    assert result.to_dict()["timings"] == result.timings
    crops = [k for k in result.report_keys if k.startswith("crop:")]
    assert len(crops) == result.counts["findings"] > 0
    assert all(object_store.exists(result.report_keys[k]) for k in crops)  # every crop uploaded
    doc = object_store.get_json(keys.findings_key("S9", "F1"))
    assert all(f["thermal"]["delta_t_k"] is not None for f in doc["findings"])  # frames read via the prefetch
