"""ingest_flight end to end against the real S3 server: idempotence, resume, rejects, names, kinds."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

import ingest.api as api
from ingest.api import IngestError, ingest_flight
from ingest.manifest import read_manifest
from ingest.samples import drone_jpeg, thermal_tiff, write_flight
from objectstore import keys
from objectstore.client import ObjectNotFound, ObjectStore
from skyinspect.config import Settings

SITE, FLIGHT = "plant-north", "2024-06-01_block-A"


def _ingest(folder: Path, store: ObjectStore, settings: Settings, **kwargs) -> api.IngestSummary:
    return ingest_flight(folder, SITE, FLIGHT, store=store, settings=settings, progress=False, **kwargs)


def _image_keys(store: ObjectStore) -> list[str]:
    return [i.key for i in store.list(keys.images_prefix(SITE, FLIGHT))]


@pytest.fixture
def probe_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every file the ingest decodes (a spy around the real probe_image)."""
    calls: list[str] = []
    real = api.probe_image

    def spy(data: bytes, name: str, max_pixels: int, check: str = "decode"):
        calls.append(name)
        return real(data, name, max_pixels, check)

    monkeypatch.setattr(api, "probe_image", spy)
    return calls


def test_flight_ingests_then_reingest_uploads_and_reads_nothing(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings, probe_calls: list[str]
) -> None:
    folder = tmp_path / "flight"
    paths = write_flight(folder, 120)
    (folder / "conditions.json").write_text(
        json.dumps(
            {"irradiance_w_m2": 850, "ambient_temp_c": 21.5, "wind_speed_m_s": 3.0, "cloud_cover_okta": 1}
        )
    )

    first = _ingest(folder, object_store, ingest_settings)
    assert (first.uploaded, first.already_present, first.images) == (120, 0, 120)
    assert first.rejected == [] and first.manifest_written
    assert first.bytes == sum(p.stat().st_size for p in paths)
    assert len(probe_calls) == 120
    assert len(_image_keys(object_store)) == 120

    manifest = read_manifest(object_store, SITE, FLIGHT)
    assert manifest["kind"] == "pv-rgb" and manifest["kind_decision"]["method"] == "gimbal_pitch"
    assert manifest["conditions"]["irradiance_w_m2"] == 850.0
    assert manifest["counts"]["images"] == 120 and len(manifest["images"]) == 120
    by_path = {r["path"]: r for r in manifest["images"]}
    record = by_path["DJI_0007.JPG"]
    assert record["key"] == keys.image_key(SITE, FLIGHT, "DJI_0007.JPG")
    assert record["lat"] == pytest.approx(52.0 + 6e-4, abs=1e-7)
    assert record["size"] == paths[6].stat().st_size
    stat = object_store.stat(record["key"])
    assert stat is not None and stat.metadata["sha256"] == record["sha256"]
    assert object_store.get_bytes(record["key"]) == paths[6].read_bytes()

    probe_calls.clear()
    again = _ingest(folder, object_store, ingest_settings)
    assert (again.uploaded, again.already_present, again.images, again.bytes) == (0, 120, 120, 0)
    assert probe_calls == []  # unchanged files are not read again (cache + listing)
    assert not again.manifest_written  # nothing changed, so the manifest is left as it is

    # no cache (another machine): everything is re-read, still nothing is uploaded
    fresh = _ingest(folder, object_store, ingest_settings.replace(data_dir=tmp_path / "other"))
    assert (fresh.uploaded, fresh.already_present) == (0, 120)
    assert len(probe_calls) == 120

    # one file changes: exactly that one is uploaded again
    paths[3].write_bytes(drone_jpeg(seed=999))
    changed = _ingest(folder, object_store, ingest_settings)
    assert (changed.uploaded, changed.already_present) == (1, 119)
    assert object_store.get_bytes(keys.image_key(SITE, FLIGHT, "DJI_0004.JPG")) == paths[3].read_bytes()
    assert changed.manifest_written


class _Stop(Exception):
    pass


def test_interrupted_ingest_resumes_and_the_manifest_ends_complete(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings
) -> None:
    folder = tmp_path / "flight"
    write_flight(folder, 100)
    uploaded: list[str] = []

    def stop_after_30(outcome: api.Outcome) -> None:
        if outcome.status == "uploaded":
            uploaded.append(outcome.rel)
            if len(uploaded) == 30:
                raise _Stop

    with pytest.raises(_Stop):
        _ingest(folder, object_store, ingest_settings, on_outcome=stop_after_30)
    with pytest.raises(ObjectNotFound):
        read_manifest(object_store, SITE, FLIGHT)  # no half manifest
    stored = len(_image_keys(object_store))
    assert 30 <= stored < 100

    resumed = _ingest(folder, object_store, ingest_settings)
    assert resumed.uploaded == 100 - stored
    assert resumed.already_present == stored
    manifest = read_manifest(object_store, SITE, FLIGHT)
    record_keys = [r["key"] for r in manifest["images"]]
    assert len(record_keys) == len(set(record_keys)) == 100
    assert sorted(record_keys) == _image_keys(object_store)


def test_killed_subprocess_ingest_resumes(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings
) -> None:
    folder = tmp_path / "flight"
    write_flight(folder, 400, size=(96, 72), noise=True)
    env = dict(os.environ)
    env.update(
        SKYINSPECT_S3_ENDPOINT=ingest_settings.s3_endpoint,
        SKYINSPECT_S3_ACCESS_KEY=ingest_settings.s3_access_key,
        SKYINSPECT_S3_SECRET_KEY=ingest_settings.s3_secret_key,
        SKYINSPECT_S3_BUCKET=object_store.bucket,
        SKYINSPECT_DATA_DIR=str(ingest_settings.data_dir),
    )
    command = [sys.executable, "-m", "skyinspect.cli", "ingest", str(folder), "--site", SITE, "--flight", FLIGHT,
               "--workers", "1", "--json"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(_image_keys(object_store)) < 10:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.kill()
    finally:
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()
    # a PUT whose body was fully sent before the kill may still land: wait until the count settles
    stored, previous = len(_image_keys(object_store)), -1
    while stored != previous:
        time.sleep(0.3)
        stored, previous = len(_image_keys(object_store)), stored
    assert 10 <= stored < 400
    with pytest.raises(ObjectNotFound):
        read_manifest(object_store, SITE, FLIGHT)

    resumed = _ingest(folder, object_store, ingest_settings)
    assert (resumed.uploaded, resumed.already_present) == (400 - stored, stored)
    manifest = read_manifest(object_store, SITE, FLIGHT)
    assert len({r["key"] for r in manifest["images"]}) == len(manifest["images"]) == 400


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


def _png_truncated() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()[:-40]


BROKEN = [
    ("zero.JPG", lambda: b"", "empty_file"),
    ("truncated.JPG", lambda: _truncated(drone_jpeg(seed=1, size=(160, 120), noise=True)), "corrupt"),
    ("truncated.png", _png_truncated, "corrupt"),
    ("truncated_T.TIFF", lambda: _truncated(thermal_tiff(seed=1)), "corrupt"),
    ("readme.jpg", lambda: b"this is not a picture\n" * 4, "not_an_image"),
    ("animation.jpeg", _gif, "unsupported_format"),
    ("DJI_0009.DNG", lambda: b"II*\x00raw sensor data", "unsupported_format"),
    ("huge.jpg", lambda: drone_jpeg(seed=2, size=(400, 300)), "too_many_pixels"),
]


@pytest.mark.parametrize(("name", "make", "reason"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_file_goes_to_quarantine_with_its_reason(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings, name, make, reason
) -> None:
    folder = tmp_path / "flight"
    write_flight(folder, 2)
    data = make()
    (folder / "bad").mkdir()
    (folder / "bad" / name).write_bytes(data)
    settings = ingest_settings.replace(max_image_pixels=100_000)  # 400x300 is above, 64x48 below

    summary = _ingest(folder, object_store, settings)
    assert summary.images == 2  # the rest went through
    assert [(r["path"], r["reason"]) for r in summary.rejected] == [(f"bad/{name}", reason)]
    qkey = keys.quarantine_key(SITE, FLIGHT, f"bad/{name}")
    assert summary.rejected[0]["quarantine_key"] == qkey
    assert object_store.get_bytes(qkey) == data
    note = object_store.get_json(keys.quarantine_reason_key(SITE, FLIGHT, f"bad/{name}"))
    assert note["reason"] == reason and note["path"] == f"bad/{name}" and note["detail"]
    manifest = read_manifest(object_store, SITE, FLIGHT)
    assert [r["reason"] for r in manifest["rejected"]] == [reason]
    assert keys.image_key(SITE, FLIGHT, f"bad/{name}") not in _image_keys(object_store)


def test_non_images_are_skipped_and_system_junk_ignored(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings
) -> None:
    folder = tmp_path / "flight"
    write_flight(folder, 1)
    for name in ["DJI_0001.SRT", "DJI_0002.MP4", "notes.txt", "sub/meta.json", "LICENSE"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    for junk in [".DS_Store", "._DJI_0001.JPG", "Thumbs.db", "desktop.ini", "__MACOSX/DJI_0001.JPG"]:
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_bytes(b"\x00junk")
    summary = _ingest(folder, object_store, ingest_settings)
    assert summary.images == 1 and summary.rejected == []
    assert sorted(s["path"] for s in summary.skipped) == ["DJI_0001.SRT", "DJI_0002.MP4", "LICENSE", "notes.txt",
                                                          "sub/meta.json"]  # fmt: skip
    assert all(s["reason"].startswith("not an image") for s in summary.skipped)
    assert summary.ignored == 5


def test_symlinks_outside_are_skipped_inside_are_extra_names(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings
) -> None:
    folder = tmp_path / "flight"
    write_flight(folder, 2)
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(drone_jpeg(seed=77))
    (folder / "escape.jpg").symlink_to(outside)
    (folder / "escape-dir").symlink_to(tmp_path, target_is_directory=True)
    (folder / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (folder / "alias.JPG").symlink_to(folder / "DJI_0001.JPG")

    summary = _ingest(folder, object_store, ingest_settings)
    skipped = {s["path"]: s["reason"] for s in summary.skipped}
    assert skipped == {
        "escape.jpg": "symlink leads outside the flight folder",
        "escape-dir": "symlinked folder not followed",
        "dangling.jpg": "broken symlink",
    }
    assert summary.images == 2 and summary.duplicates == 1
    stored = _image_keys(object_store)
    assert all(k.startswith(keys.images_prefix(SITE, FLIGHT)) for k in stored) and len(stored) == 2
    manifest = read_manifest(object_store, SITE, FLIGHT)
    first = next(r for r in manifest["images"] if "DJI_0001.JPG" in r["paths"])
    assert first["paths"] == ["DJI_0001.JPG", "alias.JPG"]


def test_duplicate_bytes_are_stored_once_with_every_name(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings
) -> None:
    folder = tmp_path / "flight"
    same = drone_jpeg(seed=5)
    for name in ["a/DJI_0001.JPG", "b/DJI_0001.JPG", "copy of DJI_0001.JPG"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(same)
    (folder / "other.JPG").write_bytes(drone_jpeg(seed=6))

    for run in range(2):
        summary = _ingest(folder, object_store, ingest_settings.replace(data_dir=tmp_path / f"cache{run}"))
        assert (summary.images, summary.duplicates) == (2, 2)
        assert summary.uploaded == (2 if run == 0 else 0)
        assert len(_image_keys(object_store)) == 2
    manifest = read_manifest(object_store, SITE, FLIGHT)
    dup = next(r for r in manifest["images"] if len(r["paths"]) > 1)
    assert dup["paths"] == ["a/DJI_0001.JPG", "b/DJI_0001.JPG", "copy of DJI_0001.JPG"]
    assert dup["path"] in dup["paths"]
    assert manifest["counts"] == {**manifest["counts"], "images": 2, "names": 4}


def test_unicode_and_spaces_in_names(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings
) -> None:
    folder = tmp_path / "flight"
    names = [
        "Flug Ü/Bild 1 é.JPG",
        unicodedata.normalize("NFD", "Müller Feld/Ünïcödé.jpg"),
        "北京/图像 01.jpg",
    ]
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(drone_jpeg(seed=100 + i))
    summary = _ingest(folder, object_store, ingest_settings)
    assert summary.images == 3 and summary.rejected == []
    for i, name in enumerate(names):
        key = keys.image_key(SITE, FLIGHT, unicodedata.normalize("NFC", name))
        assert object_store.get_bytes(key) == drone_jpeg(seed=100 + i)
    manifest = read_manifest(object_store, SITE, FLIGHT)
    assert sorted(r["path"] for r in manifest["images"]) == sorted(
        unicodedata.normalize("NFC", n) for n in names
    )


def test_names_that_try_to_escape_the_prefix_are_rejected(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings
) -> None:
    folder = tmp_path / "flight"
    write_flight(folder, 1)
    (folder / "..\\..\\..\\evil.jpg").write_bytes(drone_jpeg(seed=50))  # a legal Linux name with backslashes
    (folder / "sub").mkdir()
    (folder / "sub\\..\\DJI_0001.JPG").write_bytes(drone_jpeg(seed=51))
    summary = _ingest(folder, object_store, ingest_settings)
    assert summary.images == 1
    assert sorted(r["reason"] for r in summary.rejected) == ["unsafe_name", "unsafe_name"]
    every_key = [i.key for i in object_store.list("")]
    allowed = (keys.flight_prefix(SITE, FLIGHT), keys.quarantine_prefix(SITE, FLIGHT))
    assert every_key and all(k.startswith(allowed) for k in every_key)
    assert all(".." not in k.split("/") for k in every_key)


@pytest.mark.parametrize(
    ("sidecar", "ok"),
    [
        ({"irradiance_w_m2": 600, "ambient_temp_c": 18, "wind_speed_m_s": 2, "cloud_cover_okta": 3}, True),
        ({"irradiance_w_m2": 600, "ambient_temp_c": 18, "wind_speed_m_s": 2}, False),
        ({"irradiance_w_m2": -5, "ambient_temp_c": 18, "wind_speed_m_s": 2, "cloud_cover_okta": 3}, False),
        ("not json at all {", False),
    ],
)
def test_conditions_sidecar(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings, sidecar, ok
) -> None:
    folder = tmp_path / "flight"
    write_flight(folder, 1)
    text = sidecar if isinstance(sidecar, str) else json.dumps(sidecar)
    (folder / "conditions.json").write_text(text)
    summary = _ingest(folder, object_store, ingest_settings)
    manifest = read_manifest(object_store, SITE, FLIGHT)
    assert summary.images == 1
    if ok:
        assert manifest["conditions"]["cloud_cover_okta"] == 3 and summary.rejected == []
    else:
        assert manifest["conditions"] is None
        assert [(r["path"], r["reason"]) for r in summary.rejected] == [("conditions.json", "bad_sidecar")]
        assert "conditions.json" in summary.rejected[0]["detail"]
        assert object_store.get_bytes(keys.quarantine_key(SITE, FLIGHT, "conditions.json")) == text.encode()


@pytest.mark.parametrize(
    ("maker", "given", "kind", "method"),
    [
        (lambda i: (f"DJI_{i:04d}_T.TIFF", thermal_tiff(seed=i)), "auto", "pv-thermal", "radiometric"),
        (lambda i: (f"DJI_{i:04d}.JPG", drone_jpeg(seed=i, pitch=-90.0)), "auto", "pv-rgb", "gimbal_pitch"),
        (lambda i: (f"DJI_{i:04d}.JPG", drone_jpeg(seed=i, pitch=-5.0)), "auto", "wind-rgb", "gimbal_pitch"),
        (lambda i: (f"DJI_{i:04d}.JPG", drone_jpeg(seed=i, pitch=-5.0)), "pv-rgb", "pv-rgb", "given"),
    ],
)
def test_kind(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings, maker, given, kind, method
) -> None:
    folder = tmp_path / "flight"
    folder.mkdir()
    for i in range(3):
        name, data = maker(i)
        (folder / name).write_bytes(data)
    summary = _ingest(folder, object_store, ingest_settings, kind=given)
    manifest = read_manifest(object_store, SITE, FLIGHT)
    assert summary.kind == manifest["kind"] == kind
    assert manifest["kind_decision"]["method"] == method
    if kind == "pv-thermal":
        assert all(r["radiometric"] and r["bit_depth"] == 16 for r in manifest["images"])


@pytest.mark.parametrize(
    ("site", "flight", "kind", "message"),
    [
        ("bad site", FLIGHT, "auto", "site 'bad site' is not a safe id"),
        (SITE, "../up", "auto", "flight '../up' is not a safe id"),
        (SITE, FLIGHT, "infrared", "kind 'infrared'"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings, site, flight, kind, message
) -> None:
    write_flight(tmp_path / "flight", 1)
    with pytest.raises(IngestError, match=message):
        ingest_flight(
            tmp_path / "flight", site, flight, store=object_store, settings=ingest_settings, kind=kind
        )
    assert list(object_store.list("")) == []


def test_missing_folder_is_refused(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings
) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        _ingest(tmp_path / "nope", object_store, ingest_settings)


def test_structure_checked_files_are_decoded_when_a_full_check_is_asked(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings, probe_calls: list[str]
) -> None:
    folder = tmp_path / "flight"
    write_flight(folder, 5)
    fast = _ingest(folder, object_store, ingest_settings, check="structure")
    assert fast.uploaded == 5
    assert {r["checked"] for r in read_manifest(object_store, SITE, FLIGHT)["images"]} == {"structure"}
    probe_calls.clear()
    assert _ingest(folder, object_store, ingest_settings, check="structure").already_present == 5
    assert probe_calls == []  # same check: trusted from the cache
    full = _ingest(folder, object_store, ingest_settings)
    assert (full.uploaded, full.already_present, len(probe_calls)) == (0, 5, 5)
    assert {r["checked"] for r in read_manifest(object_store, SITE, FLIGHT)["images"]} == {"decode"}


@pytest.mark.parametrize(
    "kind",
    ["pv-thermal", "wind-rgb", pytest.param("pv-rgb", marks=pytest.mark.slow)],  # pv-rgb renders slowly
)
def test_a_synthetic_flight_is_ingested_with_its_kind_detected(
    tmp_path: Path, object_store: ObjectStore, ingest_settings: Settings, kind: str
) -> None:
    """The shared contract: what `skyinspect synth` writes is what a crew uploads."""
    pytest.importorskip("datasets.synth.cli")
    out = tmp_path / "synth"
    result = subprocess.run(
        [sys.executable, "-m", "skyinspect.cli", "synth", "--kind", kind, "--images", "3",
         "--image-size", "320x240", "--seed", "3", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = _ingest(out / "flight", object_store, ingest_settings)
    assert (summary.kind, summary.images, summary.rejected, summary.skipped) == (kind, 3, [], [])
    manifest = read_manifest(object_store, SITE, FLIGHT)
    assert manifest["kind_decision"]["method"] == ("radiometric" if kind == "pv-thermal" else "gimbal_pitch")
    assert manifest["conditions"] == json.loads((out / "flight" / "conditions.json").read_text())
    for record in manifest["images"]:
        assert record["warnings"] == []
        assert record["lat"] is not None and record["gimbal_pitch_deg"] is not None
        assert record["calibrated_focal_length_px"] > 0
        assert record["radiometric"] is (kind == "pv-thermal")
