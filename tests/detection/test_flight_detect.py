"""detect_flight against the real embedded S3 server, a real ingested synthetic flight and a real ONNX model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from detection.flight import (
    RECORD_FIELDS,
    FlightDetectionError,
    FlightDetectionStats,
    detect_flight,
    read_detections,
)
from detection.images import decode_image
from detection.inference import Detector
from detection.slicing import SlicedDetector
from objectstore import keys
from skyinspect.config import Settings

SITE, FLIGHT = "wind-site", "F0001"


@pytest.fixture(scope="module")
def wind_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-image synthetic wind flight at 640×480 (2× the 320 model input along the width)."""
    from datasets.synth.generate import generate_flight

    out = tmp_path_factory.mktemp("wind-flight")
    generate_flight("wind-rgb", 3, 11, out, progress=False, image_size=(640, 480))
    return out / "flight"


@pytest.fixture
def ingested(object_store, s3_settings: Settings, wind_folder: Path, tmp_path: Path):
    from ingest.api import ingest_flight

    settings = s3_settings.replace(data_dir=tmp_path / "data")
    ingest_flight(
        wind_folder, SITE, FLIGHT, store=object_store, settings=settings, kind="wind-rgb", progress=False
    )
    return object_store


@pytest.fixture
def detector(onnx_model) -> Detector:
    return Detector.from_onnx(onnx_model.path, conf=0.05)  # low: the untrained model must still find boxes


def _manifest_images(store) -> list[dict]:
    return store.get_json(keys.manifest_key(SITE, FLIGHT))["images"]


def test_records_match_the_detector_and_the_format(ingested, detector: Detector, onnx_model) -> None:
    store = ingested
    stats = FlightDetectionStats()
    records = detect_flight(store, SITE, FLIGHT, detector, batch_size=3, workers=2, slice_factor=10.0,
                            progress=False, stats=stats)  # fmt: skip
    images = _manifest_images(store)
    assert [r["image_key"] for r in records] == [im["key"] for im in images]
    assert read_detections(store, SITE, FLIGHT) == records
    sha = hashlib.sha256(Path(onnx_model.path).read_bytes()).hexdigest()
    for rec, im in zip(records, images, strict=True):
        assert tuple(rec) == RECORD_FIELDS
        assert rec["error"] is None and rec["relative_path"] == im["path"]
        assert (rec["width"], rec["height"]) == (640, 480)
        assert rec["model"] == {"domain": "wind-rgb", "version": None, "sha256": sha}
        # whole JPEG frames decode at the scale the model needs (640×480 → 1/2 for a 320 input), boxes mapped back
        pixels, full = detector.decode_frame(store.get_bytes(im["key"]))
        assert full == (480, 640) and pixels.shape[:2] == (240, 320)
        expected = detector.predict_prepared([detector.prepare_one(pixels, full)])[0]
        got = np.array([d["xyxy"] for d in rec["detections"]], dtype=np.float32).reshape(-1, 4)
        np.testing.assert_allclose(got, np.round(expected.xyxy, 2), atol=0.011)
        assert [d["class_name"] for d in rec["detections"]] == [
            detector.names[int(c)] for c in expected.class_id
        ]
    assert stats.images == 3 and stats.errors == 0 and stats.sliced_images == 0
    assert stats.detections == sum(len(r["detections"]) for r in records) > 0
    assert not list(store.list(keys.detections_parts_prefix(SITE, FLIGHT)))


@pytest.mark.parametrize(
    ("runner", "factor", "sliced"),
    [("detector", 1.5, 3), ("detector", 2.5, 0), ("sliced", 10.0, 3)],
    ids=["large-frames-sliced", "small-enough-whole", "always-sliced"],
)
def test_frames_much_larger_than_the_input_are_sliced(ingested, detector, runner, factor, sliced) -> None:
    store = ingested
    given = SlicedDetector(detector, batch_size=4) if runner == "sliced" else detector
    stats = FlightDetectionStats()
    records = detect_flight(store, SITE, FLIGHT, given, batch_size=2, workers=2, slice_factor=factor,
                            progress=False, stats=stats)  # fmt: skip
    assert stats.sliced_images == sliced
    data = store.get_bytes(records[-1]["image_key"])
    if sliced:  # sliced frames decode at full size
        expected = SlicedDetector(detector, batch_size=2).predict(decode_image(data))
    else:  # whole ones at the scale the model needs
        pixels, full = detector.decode_frame(data)
        expected = detector.predict_prepared([detector.prepare_one(pixels, full)])[0]
    got = np.array([d["xyxy"] for d in records[-1]["detections"]], dtype=np.float32).reshape(-1, 4)
    np.testing.assert_allclose(got, np.round(expected.xyxy, 2), atol=0.011)


def test_unreadable_and_missing_images_give_error_records(ingested, detector: Detector) -> None:
    store = ingested
    images = _manifest_images(store)
    store.put_bytes(images[1]["key"], b"\xff\xd8 this is not a JPEG any more")
    store.delete(images[2]["key"])
    records = detect_flight(store, SITE, FLIGHT, detector, batch_size=2, workers=2, progress=False)
    assert len(records) == 3
    assert records[1]["error"].startswith("unreadable image") and records[1]["detections"] == []
    assert records[2]["error"].startswith("missing object") and records[2]["detections"] == []
    assert records[1]["width"] == images[1]["width"]  # from the manifest when the pixels are unreadable
    assert records[0]["error"] is None


class Interrupted(RuntimeError):
    pass


def test_interrupted_run_resumes_without_duplicates(ingested, detector: Detector) -> None:
    store = ingested

    def stop_after_two(first: int) -> None:
        if first == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        detect_flight(
            store, SITE, FLIGHT, detector, part_size=1, workers=2, progress=False, on_part=stop_after_two
        )
    parts = list(store.list(keys.detections_parts_prefix(SITE, FLIGHT)))
    assert len(parts) == 2
    assert not store.exists(keys.detections_key(SITE, FLIGHT))

    stats = FlightDetectionStats()
    records = detect_flight(
        store, SITE, FLIGHT, detector, part_size=1, workers=2, progress=False, stats=stats
    )
    assert (stats.parts_reused, stats.parts_written) == (2, 1)
    lines = store.get_bytes(keys.detections_key(SITE, FLIGHT)).decode().splitlines()
    assert [json.loads(x)["image_key"] for x in lines] == [im["key"] for im in _manifest_images(store)]
    fresh = detect_flight(store, SITE, FLIGHT, detector, part_size=3, workers=1, progress=False)
    assert fresh == records  # a different part size recomputes everything and agrees
    assert not list(store.list(keys.detections_parts_prefix(SITE, FLIGHT)))


def test_a_flight_without_manifest_is_refused(object_store, detector: Detector) -> None:
    with pytest.raises(FlightDetectionError, match="no manifest"):
        detect_flight(object_store, SITE, "never-ingested", detector, progress=False)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"workers": 0}, {"part_size": 0}, {"slice_factor": 0}])
def test_bad_arguments_are_refused(object_store, detector: Detector, kwargs: dict) -> None:
    with pytest.raises(FlightDetectionError):
        detect_flight(object_store, SITE, FLIGHT, detector, progress=False, **kwargs)
