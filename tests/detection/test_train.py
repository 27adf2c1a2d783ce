"""detection.train / detection.offline: model resolution, data files, run records, and training with no network."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from fixtures_training import make_shapes_dataset, shapes_dataset, tiny_model  # noqa: F401

from detection import taxonomy
from detection.train import (
    TrainConfig,
    TrainError,
    available_architectures,
    dataset_version_of,
    fallback_dataset_version,
    load_checkpoint_model,
    load_data_yaml,
    resolve_model,
    train,
)

REPO = Path(__file__).resolve().parents[2]


def test_bundled_architectures_include_yolo11_and_yolo26() -> None:
    found = available_architectures()
    assert {"yolo11n", "yolo26n", "yolo11s"} <= set(found)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("yolo11n", ("yolo11n.yaml", "architecture")),
        ("YOLO26n", ("yolo26n.yaml", "architecture")),
        ("yolov8s", ("yolov8s.yaml", "architecture")),
    ],
)
def test_resolve_architecture_names(spec: str, expected: tuple[str, str]) -> None:
    assert resolve_model(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("yolo11q", "expected an architecture name"),
        ("missing.pt", "missing.pt does not exist"),
        ("arch.yaml", "architecture file .*arch.yaml does not exist"),
        ("weights.onnx", "expected an architecture name"),
    ],
)
def test_resolve_rejects(spec: str, message: str) -> None:
    with pytest.raises(TrainError, match=message):
        resolve_model(spec)


def test_project_pico_architecture_is_half_the_nano() -> None:
    """``yolo11p`` resolves to the project's YAML and builds a model with about a third of the nano's weights."""
    from ultralytics.nn.tasks import DetectionModel

    source, kind = resolve_model("yolo11p")
    assert (
        kind == "yaml"
        and source.endswith("detection/arch/yolo11p.yaml")
        and "yolo11p" in available_architectures()
    )

    def params(cfg: str) -> int:
        return sum(t.numel() for t in DetectionModel(cfg, nc=6, verbose=False).parameters())

    pico, nano = params(source), params("yolo11n.yaml")
    assert 0.2 * nano < pico < 0.5 * nano


def test_p2_pico_detects_at_stride_4() -> None:
    """``yolo11p-p2`` adds a stride-4 level: a 6 px defect always contains an anchor centre (stride 8 often not)."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    source, kind = resolve_model("yolo11p-p2")
    assert kind == "yaml" and source.endswith("detection/arch/yolo11p-p2.yaml")
    model = DetectionModel(source, nc=7, verbose=False)
    assert model.stride.tolist() == [4.0, 8.0, 16.0, 32.0]
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 96))
    pred = out[0] if isinstance(out, (list, tuple)) else out
    assert tuple(pred.shape) == (1, 4 + 7, sum((64 // s) * (96 // s) for s in (4, 8, 16, 32)))


def test_p2_r1_regresses_boxes_directly_with_a_narrow_box_branch() -> None:
    """``yolo11p-p2-r1``: the same levels, reg_max 1 (no DFL bins), every box branch 16 channels instead of 64."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    source, kind = resolve_model("yolo11p-p2-r1")
    assert kind == "yaml" and source.endswith("detection/arch/yolo11p-p2-r1.yaml")
    narrow, wide = (DetectionModel(s, nc=7, verbose=False) for s in (source, resolve_model("yolo11p-p2")[0]))
    assert narrow.stride.tolist() == [4.0, 8.0, 16.0, 32.0]
    head, wide_head = narrow.model[-1], wide.model[-1]
    assert (head.reg_max, wide_head.reg_max) == (1, 16)
    assert [b[0].conv.out_channels for b in head.cv2] == [16] * 4
    assert [b[0].conv.out_channels for b in wide_head.cv2] == [64] * 4
    narrow.eval()
    with torch.no_grad():
        out = narrow(torch.zeros(1, 3, 64, 96))
    pred = out[0] if isinstance(out, (list, tuple)) else out
    assert tuple(pred.shape) == (1, 4 + 7, sum((64 // s) * (96 // s) for s in (4, 8, 16, 32)))


def test_resolve_existing_files(tmp_path: Path) -> None:
    (tmp_path / "m.pt").write_bytes(b"x")
    (tmp_path / "arch.yaml").write_text("nc: 2\n")
    assert resolve_model(str(tmp_path / "m.pt")) == (str(tmp_path / "m.pt"), "weights")
    assert resolve_model(str(tmp_path / "arch.yaml")) == (str(tmp_path / "arch.yaml"), "yaml")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(content)
    with pytest.raises(TrainError, match=r"best\.pt: not a readable ultralytics checkpoint"):
        load_checkpoint_model(bad)


def test_train_with_corrupt_checkpoint_fails_before_training(shapes_dataset: Path, tmp_path: Path) -> None:  # noqa: F811
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(TrainError, match="not a readable ultralytics checkpoint"):
        train(TrainConfig(data=shapes_dataset, model=str(bad), epochs=1, out=tmp_path / "runs"))
    assert not (tmp_path / "runs" / "bad-shapes0").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": "images/train", "val": "images/val"}, "'names' must be"),
        ({"names": ["a"], "val": "images/val"}, "no 'train' entry"),
        ("- just\n- a list\n", "expected a mapping"),
        ("key: [unclosed\n", "cannot read YAML"),
    ],
)
def test_load_data_yaml_rejects(tmp_path: Path, data, message: str) -> None:
    path = tmp_path / "data.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    with pytest.raises(TrainError, match=message):
        load_data_yaml(path)


def test_load_data_yaml_resolves_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "set"
    sub.mkdir()
    (sub / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": ["a", "b"],
                                                   "names": {0: "x", 1: "y"}}))  # fmt: skip
    spec = load_data_yaml(sub)  # a folder works too
    assert spec.root == sub.resolve()
    assert spec.splits == {"train": [str(sub.resolve() / "images/train")],
                           "val": [str(sub.resolve() / "a"), str(sub.resolve() / "b")]}  # fmt: skip
    assert spec.names == ["x", "y"]
    with pytest.raises(TrainError, match="does not exist"):
        load_data_yaml(tmp_path / "nope.yaml")


def test_fallback_dataset_version_follows_label_content(tmp_path: Path) -> None:
    data_yaml = make_shapes_dataset(tmp_path / "set", n_train=2, n_val=1)
    spec = load_data_yaml(data_yaml)
    before = fallback_dataset_version(spec)
    assert before == fallback_dataset_version(spec)
    label = next((tmp_path / "set" / "labels" / "train").glob("*.txt"))
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")
    assert fallback_dataset_version(spec) != before
    version, method = dataset_version_of(spec)
    assert method == "datasets.version.dataset_version" and len(version) == 16


def test_run_record_of_the_tiny_model(tiny_model) -> None:  # noqa: F811
    from datasets.version import dataset_version
    from detection.train import read_run_record, sha256_file

    rec = tiny_model.record
    assert tiny_model.record_path == tiny_model.weights.parent / "run.json"
    assert read_run_record(tiny_model.weights) == rec
    assert rec["model"] == {"spec": "yolo11n", "source": "yolo11n.yaml", "kind": "architecture"}
    assert rec["dataset"]["version"] == dataset_version(tiny_model.data_yaml)
    assert rec["names"] == taxonomy.class_names("pv-rgb")
    assert rec["config"]["epochs"] > 0 and rec["ultralytics_args"]["deterministic"] is True
    assert rec["ultralytics_args"]["seed"] == 0 and rec["ultralytics_args"]["amp"] is False
    m = rec["metrics"]
    assert 0.0 <= m["map50_95"] <= m["map50"] <= 1.0
    assert set(m["per_class"]) <= set(taxonomy.class_names("pv-rgb"))
    assert {"precision", "recall", "ap50", "ap50_95", "support"} <= set(next(iter(m["per_class"].values())))
    assert all(rec["libraries"][k] for k in ("torch", "ultralytics", "numpy", "onnxruntime"))
    assert rec["weights"]["sha256"] == sha256_file(tiny_model.weights)
    assert rec["wall_time_s"] > 0
    assert rec["git"] is None or len(rec["git"]["commit"]) == 40


def test_fine_tune_from_a_checkpoint(tiny_model, tmp_path: Path) -> None:  # noqa: F811
    result = train(TrainConfig(data=tiny_model.data_yaml, model=str(tiny_model.weights), epochs=1, imgsz=64, batch=8,
                               out=tmp_path, name="ft", workers=0, overrides={"val": False}))  # fmt: skip
    assert result.record["model"]["kind"] == "weights"
    assert result.weights.is_file() and result.weights.parent == tmp_path / "ft" / "weights"


# --- no network: a recording proxy sees every HTTP(S) request a library tries ---------------------------------------


class RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that records each request line (``CONNECT host:443 …``) and refuses it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    first = "<no request line>"
                self.requests.append(first)
                try:
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_training_from_yaml_makes_no_network_request(tmp_path: Path) -> None:
    """`skyinspect train` in a fresh process and a fresh data dir, every proxy variable pointing at a recorder:
    yolo26n from its YAML, with ultralytics' plots on (they need fonts), must train without one request."""
    data_yaml = make_shapes_dataset(tmp_path / "set", n_train=8, n_val=4)
    proxy = RecordingProxy()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("YOLO_", "NO_PROXY"))}
    url = f"http://127.0.0.1:{proxy.port}"
    env.update(
        {
            name: url
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
        }
    )
    env["SKYINSPECT_DATA_DIR"] = str(tmp_path / "data")
    cmd = [sys.executable, "-m", "skyinspect.cli", "train", "--data", str(data_yaml), "--model", "yolo26n",
           "--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0", "--out", str(tmp_path / "runs"),
           "--name", "offline", "--plots", "--json"]  # fmt: skip
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    finally:
        proxy.close()
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert proxy.requests == [], f"network requests attempted: {proxy.requests}"
    assert "Downloading" not in log and "download" not in log.lower(), log[-3000:]
    record = json.loads(proc.stdout)  # --json: stdout is exactly one JSON object
    assert record["model"]["source"] == "yolo26n.yaml"
    assert Path(record["dataset"]["data_yaml"]) == data_yaml.resolve()
    ul = tmp_path / "data" / "ultralytics" / "Ultralytics"
    assert (ul / "Arial.ttf").is_file() and (ul / "Arial.Unicode.ttf").is_file()
    settings = json.loads((ul / "settings.json").read_text())
    assert settings["sync"] is False and settings["mlflow"] is False
    weights = tmp_path / "runs" / "offline" / "weights"
    assert (weights / "best.pt").is_file() and (weights / "run.json").is_file()
    assert any((tmp_path / "runs" / "offline").glob("*.png")), "plots were requested"


def test_offline_setup_gives_pillow_its_own_open_back(tmp_path) -> None:
    """ultralytics swaps PIL.Image.open for a pi-heif installer; after the offline set-up "not an image" is
    Pillow's UnidentifiedImageError again, as ingest's checks expect."""
    import io

    import pytest
    from PIL import Image, UnidentifiedImageError

    from detection.offline import ensure_offline

    ensure_offline(config_dir=tmp_path / "yolo")
    import ultralytics.utils.patches as patches

    assert Image.open is patches._image_open
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(b"just some text, not an image"))
