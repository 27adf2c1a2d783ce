"""Store round trip against the real S3 server: ingest → detections → layout → process_flight → reports, warnings
(webhook with a store sent-ledger), trend across two flights, and the report / score / site commands."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from findings.api import process_flight
from findings.config import FindingsConfig
from ingest.api import ingest_flight
from ingest.manifest import read_manifest
from objectstore import keys
from objectstore.client import ObjectStore
from skyinspect.cli import cli
from skyinspect.config import Settings


@pytest.fixture
def hook() -> Iterator[tuple[list[str], str]]:
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body["id"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield received, f"http://127.0.0.1:{server.server_address[1]}/warnings"
    finally:
        server.shutdown()
        server.server_close()


def _jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")


def _env(settings: Settings, store: ObjectStore) -> dict[str, str]:
    return {
        "SKYINSPECT_S3_ENDPOINT": settings.s3_endpoint,
        "SKYINSPECT_S3_ACCESS_KEY": settings.s3_access_key,
        "SKYINSPECT_S3_SECRET_KEY": settings.s3_secret_key,
        "SKYINSPECT_S3_BUCKET": store.bucket,
        "SKYINSPECT_DATA_DIR": str(settings.data_dir),
    }


def test_store_round_trip_warnings_and_trend(
    object_store: ObjectStore, s3_settings: Settings, synth_case, tmp_path: Path, hook
) -> None:
    received, url = hook
    case = synth_case("pv-thermal")
    settings = s3_settings.replace(data_dir=tmp_path / "data")
    store = object_store
    for flight in ("F1", "F2"):
        ingest_flight(case.flight_dir, "S1", flight, store=store, settings=settings, progress=False)
        store.put_bytes(keys.detections_key("S1", flight), _jsonl(case.detections))
    # F2 is the same plant 30 days later, one frame's detections fewer
    m2 = read_manifest(store, "S1", "F2")
    for rec in m2["images"]:
        rec["capture_time"] = (datetime.fromisoformat(rec["capture_time"]) + timedelta(days=30)).isoformat()
    store.put_json(keys.manifest_key("S1", "F2"), m2)

    runner = CliRunner()
    env = _env(settings, store)
    res = runner.invoke(
        cli, ["site", "import-layout", "S1", str(case.root / "site" / "layout.geojson")], env=env
    )
    assert res.exit_code == 0, res.output
    assert "modules" in res.output and store.exists(keys.site_layout_key("S1"))

    cfg = FindingsConfig(webhook_urls=(url,), webhook_backoff_s=0.01)
    r1 = process_flight(store, "S1", "F1", data_dir=settings.data_dir, config=cfg)
    stored = store.get_json(keys.findings_key("S1", "F1"))
    local = json.loads((r1.local_dir / "findings.json").read_text("utf-8"))
    assert stored == local and stored["counts"]["findings"] == r1.counts["findings"] > 0
    assert all(f["asset"]["module_id"] for f in stored["findings"])
    for name in (
        "report.html",
        "report.pdf",
        "findings.csv",
        "findings.geojson",
        "findings.kml",
        "findings.json",
    ):
        assert store.exists(keys.report_key("S1", "F1", name)), name
        assert (settings.data_dir / "reports" / "S1" / "F1" / name).exists()
    assert store.get_bytes(keys.report_key("S1", "F1", "report.pdf")).startswith(b"%PDF")
    warnings = store.get_json(keys.warnings_key("S1", "F1"))
    ids = [w["id"] for w in warnings["warnings"]]
    assert ids and sorted(received) == sorted(ids)
    assert all(d["status"] == "sent" for d in warnings["deliveries"])
    assert all(store.exists(keys.warning_sent_key("S1", i)) for i in ids)
    assert r1.previous_flight is None

    again = process_flight(
        store, "S1", "F1", data_dir=settings.data_dir, config=cfg
    )  # a re-run sends nothing
    assert all(d["status"] == "already-sent" for d in again.deliveries)
    assert sorted(received) == sorted(ids)

    dets2 = [r for r in case.detections if r["detections"]][1:]
    r2 = process_flight(store, "S1", "F2", image_detections=dets2, data_dir=settings.data_dir, config=cfg)
    assert r2.previous_flight == "F1"
    doc2 = store.get_json(keys.findings_key("S1", "F2"))
    assert doc2["previous_flight"]["days_between"] == pytest.approx(30.0)
    statuses = [f["trend"]["status"] for f in doc2["findings"]]
    assert set(statuses) <= {"new", "persisting", "growing"} and "persisting" in statuses
    assert doc2["counts"]["trend"].get("persisting", 0) + doc2["counts"]["trend"].get("resolved", 0) >= len(
        ids
    )
    summary = json.loads(store.get_bytes(keys.report_key("S1", "F2", "site_summary.json")))
    assert [i["flight"] for i in summary["inspections"]] == ["F1", "F2"]

    # the commands, through the top-level group
    res = runner.invoke(
        cli, ["score", "--site", "S1", "--flight", "F1", "--truth", str(case.root), "--json"], env=env
    )
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert {
        "recall",
        "precision",
        "duplicate_rate",
        "median_location_error_m",
        "module_id_accuracy",
        "grade_agreement",
    } <= set(s)
    assert s["recall"] >= 0.9 and s["precision"] >= 0.9 and s["module_id_accuracy"] >= 0.9
    res = runner.invoke(cli, ["site", "show", "S1", "--json"], env=env)
    assert res.exit_code == 0 and len(json.loads(res.output)["inspections"]) == 2


def test_report_command(object_store: ObjectStore, s3_settings: Settings, synth_case, tmp_path: Path) -> None:
    case = synth_case("pv-rgb")
    settings = s3_settings.replace(data_dir=tmp_path / "data")
    ingest_flight(case.flight_dir, "S2", "R1", store=object_store, settings=settings, progress=False)
    env = _env(settings, object_store)
    runner = CliRunner()
    res = runner.invoke(cli, ["report", "--site", "S2", "--flight", "R1"], env=env)
    assert res.exit_code != 0 and "detected" in res.output  # no detections stored yet: a clear error
    res = runner.invoke(
        cli,
        [
            "report",
            "--site",
            "S2",
            "--flight",
            "R1",
            "--from-truth",
            str(case.root),
            "--json",
            "--module-power-w",
            "550",
        ],
        env=env,
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["counts"]["findings"] > 0 and out["findings_key"] == keys.findings_key("S2", "R1")
    doc = object_store.get_json(out["findings_key"])
    assert doc["options"]["module_power_w"] == 550
    assert all(f["asset"]["reason"] == "no as-built layout for this site" for f in doc["findings"])
    res = runner.invoke(cli, ["score", "--site", "S2", "--flight", "R1", "--truth", str(case.root)], env=env)
    assert res.exit_code == 0 and "recall" in res.output


def test_import_layout_refuses_a_bad_file(
    object_store: ObjectStore, s3_settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                        "properties": {},
                    }
                ],
            }
        )
    )
    res = CliRunner().invoke(
        cli, ["site", "import-layout", "S3", str(bad)], env=_env(s3_settings, object_store)
    )
    assert res.exit_code != 0 and "'module_id' is missing" in res.output
    assert not object_store.exists(keys.site_layout_key("S3"))


@pytest.mark.parametrize(
    ("text", "message"),
    [('{"a": 1}\nnot json\n', "line 2: not JSON"), ("[1, 2]\n", "line 1: expected a JSON object")],
)
def test_detections_jsonl_errors_name_the_line(text: str, message: str) -> None:
    from findings.api import parse_jsonl

    with pytest.raises(ValueError, match=message):
        parse_jsonl(text, "detections.jsonl")
    assert parse_jsonl('{"a": 1}\n\n', "x") == [{"a": 1}]


@pytest.mark.parametrize(
    ("flight", "time", "kind", "expected"),
    [
        ("F3", "2025-06-01T10:00:00", "pv-thermal", "F2"),  # latest earlier one of the same kind
        ("F3", "2025-06-01T10:00:00", "pv-rgb", "R1"),
        ("F1", "2025-01-01T10:00:00", "pv-thermal", None),  # nothing earlier
        ("F3", None, "pv-thermal", "F2"),
    ],
)
def test_previous_inspection_is_the_latest_earlier_one_of_the_same_kind(flight, time, kind, expected) -> None:
    from findings.api import previous_findings

    docs = {
        "F1": {"flight": "F1", "kind": "pv-thermal", "inspection_time": "2025-01-01T10:00:00"},
        "F2": {"flight": "F2", "kind": "pv-thermal", "inspection_time": "2025-04-01T10:00:00"},
        "R1": {"flight": "R1", "kind": "pv-rgb", "inspection_time": "2025-05-01T10:00:00"},
    }
    got = previous_findings(docs, flight, time, kind)
    assert (got or {}).get("flight") == expected
