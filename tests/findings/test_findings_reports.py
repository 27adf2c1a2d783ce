"""Reports parse: HTML (html.parser), KML (XML), GeoJSON (structure), CSV, PDF (header, pages), JSON schema."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from findings.alerts import build_warnings
from findings.reports import write_reports
from findings.schema import SchemaError, validate_findings


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.imgs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "img":
            self.imgs.append(dict(attrs).get("src", ""))

    def handle_data(self, data) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def thermal_reports(built, tmp_path_factory) -> tuple[dict, dict[str, Path]]:
    ff = built("pv-thermal")
    out = tmp_path_factory.mktemp("reports")
    return ff.doc, write_reports(ff, out, warnings=build_warnings(ff.doc), site_docs=[ff.doc])


def test_html_report(thermal_reports) -> None:
    doc, paths = thermal_reports
    p = _Collect()
    p.feed(paths["html"].read_text("utf-8"))
    p.close()
    text = " ".join(p.text)
    n = len(doc["findings"])
    assert p.tags["tr"] == n + 1  # header + one row per finding
    assert p.tags["svg"] == 1 and p.tags["circle"] == n  # the map, every finding plotted
    crops = [s for s in p.imgs if s.startswith("data:image/png;base64,")]
    assert len(crops) == n + 1  # annotated crops + the ΔT plot, all embedded
    assert "IEC TS 62446-3 conditions met" in text
    assert "1000 W/m²" in text
    for f in doc["findings"]:
        assert f["id"] in text and f["grade"]["label"] in text
    assert "http" not in re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", paths["html"].read_text("utf-8"))


def test_kml_is_valid_xml_with_one_placemark_per_located_finding(thermal_reports) -> None:
    doc, paths = thermal_reports
    root = ET.parse(paths["kml"]).getroot()
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    marks = root.findall(".//k:Placemark", ns)
    assert len(marks) == sum(f["located"] for f in doc["findings"])
    for m in marks:
        lon, lat = (float(v) for v in m.find(".//k:coordinates", ns).text.split(",")[:2])
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        assert m.find("k:styleUrl", ns).text.startswith("#sev-")


def test_geojson_structure(thermal_reports) -> None:
    doc, paths = thermal_reports
    gj = json.loads(paths["geojson"].read_text("utf-8"))
    assert gj["type"] == "FeatureCollection"
    by_id = {f["id"]: f for f in doc["findings"]}
    assert len(gj["features"]) == len(by_id)
    for feat in gj["features"]:
        assert feat["type"] == "Feature" and feat["geometry"]["type"] == "Point"
        lon, lat = feat["geometry"]["coordinates"][:2]
        assert (lat, lon) == (by_id[feat["id"]]["location"]["lat"], by_id[feat["id"]]["location"]["lon"])
        assert feat["properties"]["grade"] == by_id[feat["id"]]["grade"]["label"]


def test_csv_and_json(thermal_reports) -> None:
    doc, paths = thermal_reports
    rows = list(csv.DictReader(paths["csv"].open(encoding="utf-8")))
    assert [r["id"] for r in rows] == [f["id"] for f in doc["findings"]]
    assert all(r["module_id"] for r in rows)
    again = json.loads(paths["json"].read_text("utf-8"))
    assert again["findings"] == doc["findings"]
    validate_findings(again)
    schema = json.loads(paths["schema"].read_text("utf-8"))
    assert schema["properties"]["schema_version"]["enum"] == [doc["schema_version"]]


def test_pdf_has_header_and_pages(thermal_reports) -> None:
    doc, paths = thermal_reports
    data = paths["pdf"].read_bytes()
    assert data.startswith(b"%PDF-")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    # summary + map + ΔT plot + findings table + crop sheets (12 per page)
    assert pages == 4 + -(-len(doc["findings"]) // 12)


def test_site_summary(thermal_reports) -> None:
    doc, paths = thermal_reports
    summary = json.loads(paths["site_json"].read_text("utf-8"))
    assert summary["inspections"][0]["findings"] == len(doc["findings"])
    p = _Collect()
    p.feed(paths["site_html"].read_text("utf-8"))
    assert p.tags["tr"] == 2


def test_wind_reports_have_3d_points(built, tmp_path) -> None:
    ff = built("wind-rgb")
    paths = write_reports(ff, tmp_path)
    gj = json.loads(paths["geojson"].read_text("utf-8"))
    assert all(len(f["geometry"]["coordinates"]) == 3 for f in gj["features"])
    root = ET.parse(paths["kml"]).getroot()
    assert root.find(".//{http://www.opengis.net/kml/2.2}altitudeMode").text == "absolute"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("findings"), "required field 'findings'"),
        (lambda d: d["findings"][0]["grade"].update(severity="bad"), "is not one of"),
        (lambda d: d["findings"][0].update(confidence=1.5), "maximum"),
        (lambda d: d.update(kind="sonar"), "kind"),
    ],
)
def test_schema_rejects_broken_documents(built, mutate, message: str) -> None:
    doc = json.loads(json.dumps(built("pv-thermal").doc))
    mutate(doc)
    with pytest.raises(SchemaError, match=message):
        validate_findings(doc)


@pytest.mark.parametrize("with_layout", [True, False])
def test_a_flight_without_findings_still_reports(synth_case, tmp_path, with_layout: bool) -> None:
    from findings.build import build_findings

    case = synth_case("pv-thermal")
    ff = build_findings(case.manifest, [], layout=case.layout if with_layout else None)
    paths = write_reports(ff, tmp_path)
    assert ff.doc["counts"]["findings"] == 0
    assert paths["pdf"].read_bytes().startswith(b"%PDF-")
    assert json.loads(paths["geojson"].read_text())["features"] == []
    ET.parse(paths["kml"])


def test_reports_show_each_findings_review_status(built, tmp_path) -> None:
    ff = built("pv-thermal")
    first, second = (f["id"] for f in ff.doc["findings"][:2])
    review = {
        first: {"status": "confirmed", "reviewer": "alice", "time": "2026-11-29T10:00:00Z", "class_name": None},
        second: {"status": "rejected", "reviewer": "bob", "time": "2026-11-29T10:05:00Z", "class_name": None},
    }
    paths = write_reports(ff, tmp_path, review=review)
    rows = {r["id"]: r for r in csv.DictReader(paths["csv"].open(encoding="utf-8"))}
    assert (rows[first]["review_status"], rows[first]["reviewer"]) == ("confirmed", "alice")
    assert rows[second]["review_status"] == "rejected"
    others = [r["review_status"] for fid, r in rows.items() if fid not in review]
    assert others and set(others) == {"pending"}
    text = paths["html"].read_text("utf-8")
    assert "<th>Review</th>" in text and "by alice" in text and "<b>rejected</b>" in text
