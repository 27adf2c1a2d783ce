"""Sync to a real S3 server: edge keys, back-off while unreachable, and exactly-once delivery across ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ROOT, edge_cmd, write_images

from jetson.cli import cli
from jetson.config import SyncConfig
from jetson.outbox import Outbox
from jetson.pipeline import JSONL_NAME
from jetson.sync import Syncer, backoff_s
from objectstore import keys
from objectstore.client import ObjectStore

DEVICE = "jetson-test-01"


def s3_env(s3_settings, bucket: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYINSPECT_")}
    env.update(
        SKYINSPECT_S3_ENDPOINT=s3_settings.s3_endpoint,
        SKYINSPECT_S3_ACCESS_KEY=s3_settings.s3_access_key,
        SKYINSPECT_S3_SECRET_KEY=s3_settings.s3_secret_key,
        SKYINSPECT_S3_BUCKET=bucket,
        SKYINSPECT_DATA_DIR=str(data_dir),
        PYTHONPATH=str(ROOT),
    )
    return env


def write_config(path: Path, **sections: dict) -> Path:
    base = {
        "device": DEVICE,
        "conf": 0.3,
        "source": {"stable_s": 0.05, "poll_s": 0.02},
        "storage": {"min_free_mb": 0},
        "sync": {"interval_s": 0.2, "backoff_base_s": 0.05, "backoff_max_s": 0.5},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values} if isinstance(values, dict) else values
    path.write_text(json.dumps(base))
    return path


def stored_results(store: ObjectStore) -> dict[str, dict]:
    prefix = keys.edge_prefix(DEVICE) + "results/"
    return {info.key[len(prefix) : -len(".json")]: store.get_json(info.key) for info in store.list(prefix)}


def queue_payloads(data_dir: Path) -> dict[str, dict]:
    with Outbox(data_dir / "edge" / "queue.sqlite") as box:
        rows = box._conn().execute("SELECT result_id, payload FROM results").fetchall()
    return {rid: json.loads(p) for rid, p in rows}


def run_once_args(cfg: Path, tmp_path: Path, model: Path) -> list[str]:
    """``--edge-config CFG run --source tmp/card --model MODEL --once --out tmp/out``: one pass over a card."""
    return [
        "--edge-config", str(cfg), "run", "--source", str(tmp_path / "card"), "--model", str(model),
        "--once", "--out", str(tmp_path / "out"),
    ]  # fmt: skip


def invoke(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_results_images_and_thumbnails_reach_the_edge_keys(s3_settings, object_store, tiny_onnx, tmp_path):
    env = s3_env(s3_settings, object_store.bucket, tmp_path / "data")
    images = write_images(tmp_path / "card", 3)
    cfg = write_config(tmp_path / "edge.yaml", sync={"upload_images": True})
    invoke(
        env,
        *run_once_args(cfg, tmp_path, tiny_onnx),
    )
    lines = [json.loads(x) for x in (tmp_path / "out" / JSONL_NAME).read_text().splitlines()]
    stored = stored_results(object_store)
    assert stored == {r["result_id"]: r for r in lines}
    for r in lines:
        rid = r["result_id"]
        source = next(p for p in images if p.name == Path(r["source"]).name)
        assert (
            object_store.get_bytes(keys.edge_file_key(DEVICE, "images", rid, ".jpg")) == source.read_bytes()
        )
        assert (
            object_store.get_bytes(keys.edge_file_key(DEVICE, "thumbnails", rid, ".jpg"))[:2] == b"\xff\xd8"
        )
    assert not list((tmp_path / "data" / "edge" / "spool").iterdir())  # spooled copies removed once synced
    status = json.loads(invoke(env, "--edge-config", str(cfg), "status", "--json"))
    assert status["counts"]["unsynced"] == 0 and status["counts"]["synced"] == 3
    assert status["last_sync"] is not None and status["device"] == DEVICE


def test_unreachable_store_backs_off_then_syncs(s3_settings, object_store, tmp_path):
    from objectstore.server import free_port

    cfg = SyncConfig(backoff_base_s=0.05, backoff_max_s=0.2)
    with Outbox(tmp_path / "q.sqlite") as box:
        box.begin_source("s", "video", "/v.mp4", 1, 1)
        for i in range(5):
            box.add_result(f"r{i}", "s", i, {"result_id": f"r{i}"})
        down = ObjectStore(f"127.0.0.1:{free_port()}", "k", "s", object_store.bucket)
        report = Syncer(box, down, DEVICE, cfg).sync_round()
        assert (report.uploaded, report.failed, report.store_down) == (
            0,
            1,
            True,
        )  # stopped at the first failure
        counts = box.counts()
        assert (counts["retrying"], counts["unsynced"]) == (1, 5)
        assert "cannot reach the S3 endpoint" in box.get_state("last_sync_error")
        assert "k" not in box.get_state("last_sync_error").split()  # no keys in what is kept
        time.sleep(0.3)
        report = Syncer(box, object_store, DEVICE, cfg).drain(deadline_s=time.monotonic() + 30)
        assert report.uploaded == 5 and box.counts()["unsynced"] == 0
    assert sorted(stored_results(object_store)) == [f"r{i}" for i in range(5)]


@pytest.mark.parametrize("attempts", [1, 2, 3, 10, 30])
def test_backoff_doubles_up_to_the_cap(attempts: int) -> None:
    import random

    cfg = SyncConfig(backoff_base_s=2.0, backoff_max_s=60.0)
    expected = min(60.0, 2.0 * 2 ** (attempts - 1))
    got = [backoff_s(attempts, cfg, random.Random(seed)) for seed in range(20)]
    assert all(0.8 * expected <= g <= 1.2 * expected for g in got)


def _kill_when(proc: subprocess.Popen, ready, timeout_s: float = 120.0) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` is true → whether it was killed (False: it ended first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return True
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the process neither reached the kill point nor ended in time")


def test_kill_9_during_sync_delivers_every_result_exactly_once(
    s3_settings, object_store, tiny_onnx, tmp_path
):
    data = tmp_path / "data"
    env = s3_env(s3_settings, object_store.bucket, data)
    n = 150
    write_images(tmp_path / "card", n, hw=(48, 64))
    cfg = write_config(tmp_path / "edge.yaml", sync={"enabled": False})
    invoke(
        env,
        *run_once_args(cfg, tmp_path, tiny_onnx),
    )
    produced = queue_payloads(data)
    assert len(produced) == n

    prefix = keys.edge_prefix(DEVICE) + "results/"
    proc = subprocess.Popen(
        edge_cmd("--edge-config", str(cfg), "sync"),
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = _kill_when(proc, lambda: sum(1 for _ in object_store.list(prefix)) >= 20)
    assert killed, "sync finished before it could be killed; the test needs more results"
    with Outbox(data / "edge" / "queue.sqlite") as box:
        left = box.counts()["unsynced"]
    assert 0 < left < n  # interrupted half-way

    rerun = subprocess.run(
        edge_cmd("--edge-config", str(cfg), "sync"),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert stored_results(object_store) == produced  # every result, once, with the produced content
    assert sum(1 for _ in object_store.list(keys.edge_prefix(DEVICE) + "thumbnails/")) == n
    with Outbox(data / "edge" / "queue.sqlite") as box:
        assert box.counts()["unsynced"] == 0


def test_kill_9_during_run_neither_skips_nor_duplicates_a_frame(
    s3_settings, object_store, tiny_onnx, tmp_path
):
    data = tmp_path / "data"
    env = s3_env(s3_settings, object_store.bucket, data)
    n = 150  # enough frames that the kill lands mid-run even on an idle machine
    images = write_images(tmp_path / "card", n, hw=(48, 64))
    cfg = write_config(tmp_path / "edge.yaml")
    args = edge_cmd(
        *run_once_args(cfg, tmp_path, tiny_onnx),
    )
    queue_file = data / "edge" / "queue.sqlite"

    def enough() -> bool:
        if not queue_file.exists():
            return False
        with Outbox(queue_file) as box:
            counts = box.counts()
        return counts["results"] >= 15

    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _kill_when(proc, enough), "run finished before it could be killed"
    assert len(queue_payloads(data)) < n

    rerun = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    produced = queue_payloads(data)
    stored = stored_results(object_store)
    assert stored == produced and len(stored) == n
    assert sorted(Path(r["source"]).name for r in stored.values()) == sorted(p.name for p in images)
    lines = [json.loads(x) for x in (tmp_path / "out" / JSONL_NAME).read_text().splitlines()]
    assert sorted(r["result_id"] for r in lines) == sorted(produced)  # the local JSONL: each frame once too


def test_a_missing_bucket_stops_the_round_at_the_first_result(s3_settings, tmp_path):
    store = ObjectStore.from_settings(s3_settings, bucket="no-such-bucket-edge")
    with Outbox(tmp_path / "q.sqlite") as box:
        box.begin_source("s", "video", "/v.mp4", 1, 1)
        for i in range(3):
            box.add_result(f"r{i}", "s", i, {"result_id": f"r{i}"})
        report = Syncer(box, store, DEVICE, SyncConfig()).sync_round()
        assert (report.uploaded, report.failed, report.store_down) == (0, 1, True)
        assert "NoSuchBucket" in box.get_state("last_sync_error")
