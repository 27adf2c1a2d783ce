"""detection.registry against the real SeaweedFS server (``object_store`` fixture): cards, aliases, CAS, pull."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from detection import taxonomy
from detection.registry import (
    ChecksumError,
    ModelRegistry,
    RegistryError,
    aliases_key,
    card_key,
    conditional_put,
)

DOMAIN = "pv-rgb"


def fake_run(
    tmp_path: Path, name: str = "run", payload: bytes = b"weights", names: list[str] | None = None
) -> Path:
    """A best.pt (opaque bytes: the registry never loads it) with a run.json beside it."""
    folder = tmp_path / name / "weights"
    folder.mkdir(parents=True)
    weights = folder / "best.pt"
    weights.write_bytes(payload)
    record = {
        "names": names or taxonomy.class_names(DOMAIN),
        "imgsz": 640,
        "command": "skyinspect train --data d.yaml",
        "config": {"epochs": 3, "model": "yolo11n"},
        "dataset": {"version": "abc123", "version_method": "datasets.version.dataset_version"},
        "metrics": {"map50": 0.5, "map50_95": 0.3, "per_class": {}},
        "libraries": {"torch": "x", "ultralytics": "y"},
        "wall_time_s": 12.5,
        "created": "2026-01-01T00:00:00+00:00",
    }
    (folder / "run.json").write_text(json.dumps(record))
    return weights


def test_register_writes_weights_and_card_and_sets_candidate(object_store, tmp_path: Path) -> None:
    reg = ModelRegistry(object_store)
    weights = fake_run(tmp_path)
    card = reg.register(DOMAIN, weights, version="v1")
    assert card["version"] == "v1" and card["domain"] == DOMAIN
    assert card["names"] == taxonomy.class_names(DOMAIN)
    assert card["metrics"]["map50"] == 0.5
    assert card["provenance"]["dataset_version"] == "abc123"
    assert card["provenance"]["command"].startswith("skyinspect train")
    art = card["artifacts"]["best.pt"]
    assert art["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert object_store.get_bytes(art["key"]) == b"weights"
    assert object_store.get_json(card_key(DOMAIN, "v1")) == card
    assert reg.aliases(DOMAIN)["candidate"] == "v1"
    assert reg.versions(DOMAIN) == ["v1"]


def test_default_version_name_is_time_and_hash(object_store, tmp_path: Path) -> None:
    card = ModelRegistry(object_store).register(DOMAIN, fake_run(tmp_path), candidate=False)
    assert card["version"].endswith("-" + hashlib.sha256(b"weights").hexdigest()[:8])
    assert ModelRegistry(object_store).aliases(DOMAIN)["candidate"] is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("duplicate", "already exists"),
        ("wrong_names", "not the pv-rgb taxonomy"),
        ("bad_version", "version 'champion'"),
        ("missing", "does not exist"),
    ],
)
def test_register_rejects(object_store, tmp_path: Path, setup: str, message: str) -> None:
    reg = ModelRegistry(object_store)
    weights = fake_run(tmp_path, names=["a", "b"] if setup == "wrong_names" else None)
    version = "champion" if setup == "bad_version" else "v1"
    if setup == "duplicate":
        reg.register(DOMAIN, weights, version="v1")
    if setup == "missing":
        weights = tmp_path / "nope.pt"
    with pytest.raises(RegistryError, match=message):
        reg.register(DOMAIN, weights, version=version)


def test_add_artifact_and_pull_verifies_checksums(object_store, tmp_path: Path) -> None:
    reg = ModelRegistry(object_store)
    reg.register(DOMAIN, fake_run(tmp_path), version="v1")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx-bytes")
    card = reg.add_artifact(DOMAIN, "v1", onnx, "onnx", info={"opset": 17})
    assert card["artifacts"]["model.onnx"]["sha256"] == hashlib.sha256(b"onnx-bytes").hexdigest()
    assert card["artifacts"]["model.onnx"]["opset"] == 17

    pulled = reg.pull(DOMAIN, "candidate", tmp_path / "site")
    assert pulled.version == "v1"
    assert sorted(pulled.files) == ["best.pt", "model.onnx"]
    assert pulled.path("onnx").read_bytes() == b"onnx-bytes"
    assert json.loads((tmp_path / "site" / "card.json").read_text())["version"] == "v1"

    only = reg.pull(DOMAIN, "v1", tmp_path / "edge", kinds=["onnx"])
    assert sorted(p.name for p in (tmp_path / "edge").iterdir()) == ["card.json", "model.onnx"]
    with pytest.raises(RegistryError, match="no pytorch artifact"):
        only.path("pytorch")


def test_pull_refuses_a_tampered_artifact(object_store, tmp_path: Path) -> None:
    reg = ModelRegistry(object_store)
    card = reg.register(DOMAIN, fake_run(tmp_path), version="v1")
    object_store.put_bytes(card["artifacts"]["best.pt"]["key"], b"swapped weights")
    dest = tmp_path / "site"
    with pytest.raises(ChecksumError, match=r"best\.pt .* has sha256"):
        reg.pull(DOMAIN, "v1", dest)
    assert not (dest / "best.pt").exists()
    assert not any(p.name.endswith(".part") for p in dest.iterdir())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r, tmp: r.add_artifact(DOMAIN, "v9", tmp / "x.onnx", "onnx"), "does not exist"),
        (
            lambda r, tmp: r.add_artifact(DOMAIN, "v1", tmp / "run" / "weights" / "best.pt", "weird"),
            "artifact kind",
        ),
        (lambda r, tmp: r.promote(DOMAIN, "v9"), "v9 is not registered"),
        (lambda r, tmp: r.resolve(DOMAIN, "champion"), "alias 'champion' is not set"),
        (lambda r, tmp: r.rollback(DOMAIN), "no previous champion"),
        (lambda r, tmp: r.card("wind", "v1"), "wind-rgb version v1 is not registered"),
    ],
)
def test_errors_name_the_problem(object_store, tmp_path: Path, call, message: str) -> None:
    reg = ModelRegistry(object_store)
    reg.register(DOMAIN, fake_run(tmp_path), version="v1")
    with pytest.raises(RegistryError, match=message):
        call(reg, tmp_path)


def test_promote_and_rollback_walk_the_champion_history(object_store, tmp_path: Path) -> None:
    reg = ModelRegistry(object_store)
    for i in (1, 2, 3):
        reg.register(DOMAIN, fake_run(tmp_path, f"r{i}", payload=f"w{i}".encode()), version=f"v{i}")
        reg.promote(DOMAIN)  # candidate v{i} -> champion
    doc = reg.aliases(DOMAIN)
    assert (doc["champion"], doc["candidate"], doc["previous_champions"]) == ("v3", None, ["v1", "v2"])
    with pytest.raises(RegistryError, match="no candidate"):
        reg.promote(DOMAIN)
    assert reg.rollback(DOMAIN)["champion"] == "v2"
    assert reg.rollback(DOMAIN)["champion"] == "v1"
    with pytest.raises(RegistryError, match="no previous champion"):
        reg.rollback(DOMAIN)
    reg.promote(DOMAIN, "v3")  # a named version
    doc = reg.aliases(DOMAIN)
    assert doc["champion"] == "v3" and doc["previous_champions"] == ["v1"]
    actions = [(h["action"], h["from"], h["to"]) for h in doc["history"]]
    assert actions[-3:] == [("rollback", "v3", "v2"), ("rollback", "v2", "v1"), ("promote", "v1", "v3")]
    assert doc["revision"] == len(doc["history"]) == 3 * 2 + 3
    assert [v.aliases for v in reg.list(DOMAIN)] == [[], [], ["champion"]]


def test_conditional_put_is_a_compare_and_swap(object_store) -> None:
    key = "cas/test.json"
    assert conditional_put(object_store, key, b"{}", if_none_match=True)
    assert not conditional_put(object_store, key, b"{}", if_none_match=True)  # exists already
    etag = object_store.stat(key).etag
    assert conditional_put(object_store, key, b'{"a": 1}', if_match=etag)
    assert not conditional_put(object_store, key, b'{"a": 2}', if_match=etag)  # stale ETag
    assert object_store.get_json(key) == {"a": 1}


def test_concurrent_alias_updates_are_not_lost(object_store, tmp_path: Path) -> None:
    """8 threads × 3 updates each, all racing on aliases.json: every update must land exactly once."""
    reg = ModelRegistry(object_store)
    reg.register(DOMAIN, fake_run(tmp_path, "a", b"a"), version="va", candidate=False)
    reg.register(DOMAIN, fake_run(tmp_path, "b", b"b"), version="vb", candidate=False)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for j in range(3):
                ModelRegistry(object_store).set_alias(DOMAIN, "candidate", "va" if (i + j) % 2 else "vb",
                                                      action=f"t{i}-{j}")  # fmt: skip
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    doc = object_store.get_json(aliases_key(DOMAIN))
    actions = sorted(h["action"] for h in doc["history"])
    assert actions == sorted(f"t{i}-{j}" for i in range(8) for j in range(3))
    assert doc["revision"] == 24
    assert len({h["update_id"] for h in doc["history"]}) == 24


# --- CLI ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(object_store, s3_settings) -> dict[str, str]:
    return {
        "SKYINSPECT_S3_ENDPOINT": s3_settings.s3_endpoint,
        "SKYINSPECT_S3_ACCESS_KEY": s3_settings.s3_access_key,
        "SKYINSPECT_S3_SECRET_KEY": s3_settings.s3_secret_key,
        "SKYINSPECT_S3_BUCKET": object_store.bucket,
    }


def test_models_cli_register_list_promote_rollback_pull(cli_env: dict[str, str], tmp_path: Path) -> None:
    from skyinspect.cli import cli

    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=cli_env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout  # logs go to stderr

    report = tmp_path / "heldout.json"
    report.write_text(json.dumps({"map50": 0.81, "map50_95": 0.5, "images": 10}))
    v1 = run("models", "register", "pv-rgb", str(fake_run(tmp_path, "a", b"a")), "--version", "v1").strip()
    run("models", "promote", "pv-rgb")
    v2 = run("models", "register", "pv-rgb", str(fake_run(tmp_path, "b", b"b")), "--version", "v2",
             "--eval-report", str(report)).strip()  # fmt: skip
    assert (v1, v2) == ("v1", "v2")
    assert "champion v1 -> v2" in run("models", "promote", "pv-rgb")

    listed = json.loads(run("models", "list", "pv-rgb", "--json"))
    assert listed["champion"] == "v2"
    assert [(v["version"], v["aliases"], v["map50"]) for v in listed["versions"]] == [
        ("v1", [], 0.5),
        ("v2", ["champion"], 0.5),
    ]
    table = run("models", "list", "pv-rgb")
    assert "v2" in table and "champion" in table and "0.500" in table

    card = json.loads(run("models", "show", "pv-rgb", "champion"))
    assert card["version"] == "v2" and card["evaluations"]["heldout"]["map50"] == 0.81

    assert "champion v2 -> v1 (rolled back)" in run("models", "rollback", "pv-rgb")
    out = run("models", "pull", "pv-rgb", "--dest", str(tmp_path / "site"))
    assert "pv-rgb v1" in out and (tmp_path / "site" / "best.pt").read_bytes() == b"a"

    failed = runner.invoke(cli, ["models", "rollback", "pv-rgb"], env=cli_env)
    assert failed.exit_code != 0 and "no previous champion" in failed.output
    failed = runner.invoke(cli, ["models", "list", "solar"], env=cli_env)
    assert failed.exit_code != 0 and "unknown domain 'solar'" in failed.output
