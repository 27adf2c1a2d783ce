"""The edge pipeline through ``skyinspect-edge run``: same detections as the cloud path, bad input, full disk, JSONL."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import build_tiny_onnx, frame, write_images

from detection.images import read_image
from detection.inference import Detector
from detection.slicing import SlicedDetector
from jetson.cli import EXIT_DISK_FULL, cli
from jetson.config import parse_edge_config
from jetson.engine import FrameRunner, open_detector
from jetson.outbox import Outbox
from jetson.pipeline import JSONL_NAME, ModelInfo, Pipeline, reconcile_jsonl
from jetson.sources import iter_folder


@pytest.fixture
def edge_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data dir for the CLI (its queue, models, caches)."""
    monkeypatch.setenv("SKYINSPECT_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def run_edge(home: Path, config: dict, *args: str, code: int = 0) -> str:
    cfg_path = home / "edge.yaml"
    cfg_path.write_text(json.dumps(config))  # JSON is YAML
    result = CliRunner().invoke(cli, ["--edge-config", str(cfg_path), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


FAST = {
    "source": {"stable_s": 0.05, "poll_s": 0.02},
    "sync": {"enabled": False},
    "storage": {"min_free_mb": 0},
}


@pytest.mark.parametrize(
    ("tiling", "hw", "conf"),
    [
        ({"mode": "never"}, (96, 128), 0.3),
        ({"mode": "always", "tile": 64, "overlap": 0.25}, (300, 400), 0.45),
    ],
    ids=["whole-frame", "sliced"],
)
def test_edge_detections_equal_the_cloud_detector(
    edge_home: Path, tiny_onnx: Path, tiling: dict, hw: tuple, conf: float
) -> None:
    images = write_images(edge_home / "card", 4, hw=hw)
    out = edge_home / "out"
    config = {**FAST, "conf": conf, "tiling": tiling}
    run_edge(
        edge_home,
        config,
        "run",
        "--source",
        str(edge_home / "card"),
        "--model",
        str(tiny_onnx),
        "--once",
        "--out",
        str(out),
    )
    edge = {Path(r["source"]).name: r for r in read_jsonl(out / JSONL_NAME)}
    assert sorted(edge) == [p.name for p in images]

    cloud = Detector.from_onnx(tiny_onnx, conf=conf)  # the cloud path: the core, used directly
    sliced = tiling["mode"] == "always"
    runner = SlicedDetector(cloud, tile=64, overlap=0.25) if sliced else cloud
    total = 0
    for p in images:
        # detect_flight's steps: a JPEG detected whole is decoded at the scale the model needs, boxes mapped back
        image, full = cloud.decode_frame(p.read_bytes(), p, whole=lambda s: not sliced)
        assert (full is not None) is not sliced and (full or image.shape[:2]) == hw
        if full is not None:
            expected = cloud.predict_prepared([cloud.prepare_one(image, full)])[0].to_records(cloud.names)
        else:
            expected = runner.predict(image).to_records(cloud.names)
        got = edge[p.name]
        assert got["status"] == "ok" and got["sliced"] is sliced
        assert (got["height"], got["width"]) == hw  # the frame's size, not the decoded one
        assert [{k: v for k, v in d.items() if k != "tile"} for d in got["detections"]] == [
            {k: v for k, v in d.items() if k != "tile"} for d in expected
        ]
        total += len(expected)
        thumb = out / "thumbnails" / f"{got['result_id']}.jpg"
        # smaller than thumbnail_px: kept at the decoded size
        assert cv2.imread(str(thumb)).shape[:2] == image.shape[:2]
    assert total > 0


def test_tiling_auto_slices_only_large_frames(tiny_onnx: Path) -> None:
    cfg = parse_edge_config({"tiling": {"mode": "auto", "min_pixels": 100_000}})
    runner = FrameRunner.build(open_detector(tiny_onnx, cfg, Path("/nonexistent-cache")), cfg)
    assert runner(frame(200, 300, 1))[1] is False
    assert runner(frame(400, 300, 1))[1] is True


def test_unreadable_frame_is_recorded_once_and_not_retried(edge_home: Path, tiny_onnx: Path) -> None:
    card = edge_home / "card"
    write_images(card, 2)
    (card / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    args = (
        "run",
        "--source",
        str(card),
        "--model",
        str(tiny_onnx),
        "--once",
        "--out",
        str(edge_home / "out"),
    )
    output = run_edge(edge_home, FAST, *args)
    assert "2 frame(s) processed, 1 unreadable" in output
    lines = read_jsonl(edge_home / "out" / JSONL_NAME)
    errors = [r for r in lines if r["status"] == "error"]
    assert len(lines) == 3 and len(errors) == 1
    assert "corrupt.jpg" in errors[0]["source"] and "not a decodable image" in errors[0]["error"]
    assert "0 frame(s) processed, 0 unreadable" in run_edge(edge_home, FAST, *args)  # not retried
    assert len(read_jsonl(edge_home / "out" / JSONL_NAME)) == 3


@pytest.mark.parametrize(
    ("drop", "named"), [(("names",), "names"), (("imgsz", "stride"), "imgsz, stride"), (("task",), "task")]
)
def test_model_without_required_metadata_is_refused_naming_the_keys(
    edge_home: Path, drop: tuple[str, ...], named: str
) -> None:
    model = build_tiny_onnx(edge_home / "bad.onnx", dict.fromkeys(drop))
    write_images(edge_home / "card", 1)
    output = run_edge(
        edge_home, FAST, "run", "--source", str(edge_home / "card"), "--model", str(model), "--once", code=1
    )
    assert "model refused" in output and f"lacks required key(s) {named}" in output


def test_full_disk_stops_intake_before_writing(edge_home: Path, tiny_onnx: Path) -> None:
    write_images(edge_home / "card", 3)
    args = (
        "run",
        "--source",
        str(edge_home / "card"),
        "--model",
        str(tiny_onnx),
        "--once",
        "--out",
        str(edge_home / "out"),
    )
    output = run_edge(edge_home, {**FAST, "storage": {"min_free_mb": 1e12}}, *args, code=EXIT_DISK_FULL)
    assert "intake stopped" in output and "storage.min_free_mb" in output
    with Outbox(edge_home / "data" / "edge" / "queue.sqlite") as box:
        assert box.counts()["results"] == 0
    assert "3 frame(s) processed" in run_edge(edge_home, FAST, *args)  # space back: nothing was lost


def test_jsonl_reconcile_drops_a_torn_line_and_adds_each_missing_result_once(tmp_path: Path) -> None:
    with Outbox(tmp_path / "q.sqlite") as box:
        box.begin_source("s", "video", "/v", 1, 1)
        for i in range(3):
            box.add_result(f"r{i}", "s", i, {"result_id": f"r{i}", "frame": i})
        path = tmp_path / JSONL_NAME
        path.write_text(json.dumps({"result_id": "r0", "frame": 0}) + "\n" + '{"result_id": "r1", "fr')
        assert reconcile_jsonl(path, box) == 2
        assert [r["result_id"] for r in read_jsonl(path)] == ["r0", "r1", "r2"]
        assert reconcile_jsonl(path, box) == 0


def test_a_file_still_being_copied_is_read_only_when_complete(tmp_path: Path, tiny_onnx: Path) -> None:
    cfg = parse_edge_config(
        {
            "source": {"stable_s": 0.4, "poll_s": 0.05},
            "sync": {"enabled": False},
            "storage": {"min_free_mb": 0},
            "output": {"thumbnails": False},
        }
    )
    card = tmp_path / "card"
    card.mkdir()
    detector = open_detector(tiny_onnx, cfg, tmp_path / "cache")
    with Outbox(tmp_path / "q.sqlite") as box:
        pipeline = Pipeline(
            FrameRunner.build(detector, cfg),
            box,
            cfg,
            "dev-1",
            ModelInfo(str(tiny_onnx), "sha", None, "wind-rgb"),
            tmp_path / "out",
            tmp_path / "spool",
        )
        stop = threading.Event()
        thread = threading.Thread(
            target=pipeline.run, args=(lambda s: iter_folder(card, cfg.source, box, s), stop)
        )
        thread.start()
        _, buf = cv2.imencode(".jpg", frame(600, 800, 7), [cv2.IMWRITE_JPEG_QUALITY, 95])
        data = buf.tobytes()
        with (card / "DJI_0042.JPG").open("wb") as fh:  # copied in 8 chunks, 0.1 s apart (< stable_s)
            for k in range(8):
                fh.write(data[k * len(data) // 8 : (k + 1) * len(data) // 8])
                fh.flush()
                time.sleep(0.1)
        deadline = time.monotonic() + 20
        while box.counts()["results"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(timeout=20)
        counts = box.counts()
    lines = read_jsonl(tmp_path / "out" / JSONL_NAME)
    assert (counts["results"], counts["frame_errors"]) == (1, 0)
    assert lines[0]["status"] == "ok" and (lines[0]["height"], lines[0]["width"]) == (600, 800)


def test_video_file_is_sampled(edge_home: Path, tiny_onnx: Path) -> None:
    video = edge_home / "flight.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (128, 96))
    for i in range(12):
        writer.write(frame(96, 128, i))
    writer.release()
    args = (
        "run",
        "--source",
        str(video),
        "--model",
        str(tiny_onnx),
        "--once",
        "--out",
        str(edge_home / "out"),
    )
    run_edge(edge_home, {**FAST, "source": {"video_every_n": 5}}, *args)
    lines = read_jsonl(edge_home / "out" / JSONL_NAME)
    assert [r["frame"] for r in lines] == [0, 5, 10] and {r["kind"] for r in lines} == {"video"}
    assert len({r["result_id"] for r in lines}) == 3
    assert np.isclose(lines[1]["timestamp_s"], 0.5)
    run_edge(edge_home, {**FAST, "source": {"video_every_n": 5}}, *args)  # done: nothing added
    assert len(read_jsonl(edge_home / "out" / JSONL_NAME)) == 3


@pytest.mark.slow
def test_edge_equals_cloud_on_an_exported_yolo_model(edge_home: Path, tmp_path_factory) -> None:
    """The same check on a real ultralytics YOLO11n export (calibrated, see tests/detection/fixtures_inference)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detection"))
    from fixtures_inference import build_calibrated_yolo, export_onnx, synthetic_frame

    from detection.offline import ensure_offline

    work = tmp_path_factory.mktemp("edge-yolo")
    ensure_offline(config_dir=work / "ultralytics")
    model = export_onnx(build_calibrated_yolo(work, (320, 320)), work, (320, 320), "edge-yolo320")
    card = edge_home / "card"
    card.mkdir()
    images = []
    for i, (h, w) in enumerate([(480, 640), (720, 960), (1500, 2000)]):
        images.append(card / f"f{i}.png")
        cv2.imwrite(str(images[-1]), synthetic_frame(h, w, seed=40 + i))
    config = {**FAST, "conf": 0.25, "tiling": {"mode": "auto", "min_pixels": 1_000_000}}
    run_edge(
        edge_home,
        config,
        "run",
        "--source",
        str(card),
        "--model",
        str(model),
        "--once",
        "--out",
        str(edge_home / "out"),
    )
    edge = {Path(r["source"]).name: r for r in read_jsonl(edge_home / "out" / JSONL_NAME)}
    cloud = Detector.from_onnx(model, conf=0.25)
    total = 0
    for p in images:
        img = read_image(p)
        sliced = img.shape[0] * img.shape[1] > 1_000_000
        expected = (SlicedDetector(cloud) if sliced else cloud).predict(img).to_records(cloud.names)
        assert edge[p.name]["sliced"] is sliced
        strip = lambda recs: [{k: v for k, v in d.items() if k != "tile"} for d in recs]  # noqa: E731
        assert strip(edge[p.name]["detections"]) == strip(expected)
        total += len(expected)
    assert total > 0


def _video_frames(n: int) -> list:
    from jetson.sources import Frame

    return [Frame("clip", i, "video", "/clip.mp4", frame(96, 128, 40 + i), last=i == n - 1) for i in range(n)]


@pytest.mark.parametrize("fail_at", [None, 0, 2])
def test_writer_thread_stores_detected_frames_in_order_and_hands_back_its_error(
    tmp_path: Path, tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int | None
) -> None:
    """Stores run in the writer thread, in frame order, all done when run() returns; when one fails, run() raises
    it, nothing after it is stored, and a rerun stores the rest once (the stored ones are replays)."""
    cfg = parse_edge_config({**FAST, "sync": {"enabled": False, "upload_images": True}})
    frames = _video_frames(6)
    detector = open_detector(tiny_onnx, cfg, tmp_path / "cache")
    with Outbox(tmp_path / "q.sqlite") as box:
        box.begin_source("clip", "video", "/clip.mp4")
        pipe = Pipeline(FrameRunner.build(detector, cfg), box, cfg, "dev-1",
                        ModelInfo(str(tiny_onnx), "sha", None, "wind-rgb"), tmp_path / "out", tmp_path / "spool")  # fmt: skip
        seen: list[tuple[int, str]] = []
        real_add = box.add_result
        calls = iter(range(100))

        def add_result(*args, **kwargs):
            if next(calls) == fail_at:
                raise OSError("disk I/O error")
            return real_add(*args, **kwargs)

        monkeypatch.setattr(box, "add_result", add_result)
        record = lambda p: seen.append((p["frame"], threading.current_thread().name))  # noqa: E731
        if fail_at is None:
            pipe.run(lambda stop: iter(frames), threading.Event(), on_result=record)
        else:
            with pytest.raises(OSError, match="disk I/O error"):
                pipe.run(lambda stop: iter(frames), threading.Event(), on_result=record)
        stored = 6 if fail_at is None else fail_at
        assert seen == [(i, "edge-writer") for i in range(stored)]
        assert box.counts()["results"] == stored
        jsonl = tmp_path / "out" / JSONL_NAME
        assert ([r["frame"] for r in read_jsonl(jsonl)] if jsonl.exists() else []) == list(range(stored))
        files = (
            6 if fail_at is None else fail_at + 1
        )  # the failed frame's files (named by result id) are rewritten
        assert len(list((tmp_path / "out" / "thumbnails").glob("*.jpg"))) == files
        assert len(list((tmp_path / "spool").glob("*.jpg"))) == files

        monkeypatch.setattr(box, "add_result", real_add)
        rerun = Pipeline(FrameRunner.build(detector, cfg), box, cfg, "dev-1",
                         ModelInfo(str(tiny_onnx), "sha", None, "wind-rgb"), tmp_path / "out", tmp_path / "spool")  # fmt: skip
        stats = rerun.run(lambda stop: iter(frames), threading.Event())
        assert (stats.frames, stats.skipped_replays) == (6 - stored, stored)
        assert box.counts()["results"] == 6
    assert [r["frame"] for r in read_jsonl(tmp_path / "out" / JSONL_NAME)] == list(range(6))
