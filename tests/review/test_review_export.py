"""Import (idempotent), review status and the YOLO export of decisions, against the real object store."""

from __future__ import annotations

import io

import numpy as np
import pytest
import yaml
from PIL import Image

from datasets.yolo import find_yolo_set, read_labels
from detection.taxonomy import by_name, class_names
from objectstore import keys
from review import db
from review.decisions import Decision, apply_decision
from review.export import export_site
from review.importer import import_site
from review.status import review_status
from tests.review.conftest import SITE, write_site

DECISIONS = [
    ("F1", "F0001", Decision("confirm", 1)),
    ("F1", "F0002", Decision("reject", 1, comment="shadow")),
    ("F1", "F0003", Decision("reclassify", 1, class_name="delamination")),
    ("F2", "F0001", Decision("adjust_box", 1, xyxy=(18.0, 28.0, 32.0, 42.0))),
    ("F2", "F0002", Decision("reject", 1)),
]


def _line(dom: str, cls: str, box: list[float], w: int, h: int) -> str:
    x1, y1, x2, y2 = box
    cid = by_name(dom, cls).id
    return f"{cid} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"


def test_import_is_idempotent_and_keeps_decisions(review_env) -> None:
    engine, store = review_env.app.state.review.engine, review_env.store
    first = import_site(engine, store, SITE)
    assert (first.inserted, first.refreshed, first.unchanged) == (5, 0, 0) and first.flights == ["F1", "F2"]
    again = import_site(engine, store, SITE)
    assert (again.inserted, again.refreshed, again.unchanged) == (0, 0, 5)
    apply_decision(engine, SITE, "F1", "F0001", Decision("reclassify", 1, class_name="soiling"), "rev1")
    write_site(store, generated="2026-11-30T08:00:00+00:00")  # findings rebuilt
    store.put_bytes(keys.findings_key(SITE, "F3"), b'{"schema_version": "1.0"}')  # a broken flight
    third = import_site(engine, store, SITE)
    assert (third.inserted, third.refreshed, third.unchanged) == (0, 4, 1)
    assert (
        len(third.problems) == 1
        and third.problems[0].startswith("F3: ")
        and "required field" in third.problems[0]
    )
    with engine.connect() as conn:
        row = db.get_finding(conn, SITE, "F1", "F0001")
        untouched = db.get_finding(conn, SITE, "F1", "F0002")
        trail = db.audit_trail(conn, SITE, "F1", "F0002")
    assert row["class_name"] == "soiling" and row["version"] == 2 and row["status"] == "confirmed"
    assert untouched["version"] == 2 and untouched["source_generated"].startswith("2026-11-30")
    assert [e["action"] for e in trail] == ["import", "refresh"]


def test_review_status(review_env) -> None:
    engine = review_env.app.state.review.engine
    import_site(engine, review_env.store, SITE)
    for flight, fid, d in DECISIONS:
        apply_decision(engine, SITE, flight, fid, d, "rev1")
    got = review_status(SITE, "F1", db_url=review_env.db_url)
    assert {k: v["status"] for k, v in got.items()} == {
        "F0001": "confirmed",
        "F0002": "rejected",
        "F0003": "confirmed",
    }
    assert got["F0003"]["class_name"] == "delamination" and got["F0001"]["reviewer"] == "rev1"
    assert got["F0001"]["time"]
    assert review_status(SITE, "F9", db_url=review_env.db_url) == {}


def test_export_yolo_sets(review_env, tmp_path) -> None:
    engine, store = review_env.app.state.review.engine, review_env.store
    import_site(engine, store, SITE)
    for flight, fid, d in DECISIONS:
        apply_decision(engine, SITE, flight, fid, d, "rev1")
    res = export_site(engine, store, SITE, tmp_path / "exp", to_store=True)
    assert (res.images, res.boxes, res.negatives) == (3, 4, 2) and res.skipped_frames == []
    root = tmp_path / "exp" / res.export_id
    expected = {
        ("pv-rgb", "F1__DJI_0001"): [_line("pv-rgb", "glass_breakage", [40, 50, 80, 90], 320, 240)],
        ("pv-rgb", "F1__DJI_0002"): [
            _line("pv-rgb", "glass_breakage", [42, 20, 82, 60], 320, 240),  # F0001's other evidence frame
            _line("pv-rgb", "delamination", [100, 150, 160, 200], 320, 240),  # reclassified
        ],
        ("pv-thermal", "F2__IR_0001"): [
            _line("pv-thermal", "hotspot_single_cell", [18, 28, 32, 42], 160, 120)
        ],
    }
    for (dom, stem), lines in expected.items():
        got = (root / dom / "labels" / "train" / f"{stem}.txt").read_text().splitlines()
        assert sorted(got) == sorted(lines), stem
        data = yaml.safe_load((root / dom / "data.yaml").read_text())
        assert data["names"] == class_names(dom) and data["train"] == "images/train"
        yolo = find_yolo_set(root / dom / "data.yaml")
        assert yolo.names == class_names(dom) and not yolo.orphan_labels
        assert len(yolo.images) == (2 if dom == "pv-rgb" else 1)
        for img in yolo.images:
            assert len(read_labels(yolo.label_of(img), len(yolo.names))) == len(expected[(dom, img.stem)])
    thermal = Image.open(root / "pv-thermal" / "images" / "train" / "F2__IR_0001.png")
    assert thermal.mode == "L" and thermal.size == (160, 120)
    hot = np.asarray(thermal)[30:40, 20:30].mean()
    assert hot > np.asarray(thermal).mean() + 30  # the 55 °C spot is bright through the 0-100 °C window
    assert "thermal_window_c" in yaml.safe_load((root / "pv-thermal" / "data.yaml").read_text())
    rgb = (root / "pv-rgb" / "images" / "train" / "F1__DJI_0001.jpg").read_bytes()
    assert rgb == store.get_bytes(keys.image_key(SITE, "F1", "DJI_0001.JPG"))  # byte for byte
    prefix = keys.review_export_prefix(SITE, res.export_id)
    assert res.store_prefix == prefix
    stored = {i.key[len(prefix) :] for i in store.list(prefix)}
    local = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert stored == local and "export.json" in stored and "pv-rgb/data.yaml" in stored
    assert Image.open(
        io.BytesIO(store.get_bytes(prefix + "pv-thermal/images/train/F2__IR_0001.png"))
    ).size == (160, 120)


def test_export_leaves_out_frames_with_unreviewed_findings(review_env, tmp_path) -> None:
    engine, store = review_env.app.state.review.engine, review_env.store
    import_site(engine, store, SITE)
    with pytest.raises(ValueError, match="no reviewed finding"):
        export_site(engine, store, SITE, tmp_path)
    apply_decision(engine, SITE, "F1", "F0002", Decision("reject", 1), "rev1")  # shares its frame with F0001
    apply_decision(engine, SITE, "F2", "F0002", Decision("reject", 1), "rev1")
    apply_decision(engine, SITE, "F2", "F0001", Decision("reject", 1), "rev1")
    res = export_site(engine, store, SITE, tmp_path)
    assert res.skipped_frames == ["F1/DJI_0001.JPG"] and res.domains == ["pv-thermal"]
    label = tmp_path / res.export_id / "pv-thermal" / "labels" / "train" / "F2__IR_0001.txt"
    assert label.read_text() == ""  # both findings were false positives: a pure negative frame
    assert res.negatives == 2 and res.store_prefix is None
