"""Reports of flights with many findings: what the PDF and the plots keep, the crop sheets, parallel uploads."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from findings import reports
from findings.api import upload_files
from findings.build import FlightFindings
from objectstore.client import ObjectStore, ObjectStoreError


def _many(ff: FlightFindings, n: int) -> FlightFindings:
    """``ff`` with its findings repeated (new ids) until there are ``n``."""
    out = []
    for k in range(n):
        f = copy.deepcopy(ff.findings[k % len(ff.findings)])
        f["id"] = f"F{k + 1:04d}"
        out.append(f)
    doc = dict(ff.doc, findings=out)
    crops = {f["id"]: ff.crops[ff.findings[k % len(ff.findings)]["id"]] for k, f in enumerate(out)}
    return FlightFindings(doc, crops=crops, layout=ff.layout)


def _pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


@pytest.mark.parametrize(("cap", "extra_page"), [(5, 1), (10_000, 0)])
def test_pdf_crop_sheets_stop_at_the_cap(built, tmp_path, monkeypatch, cap: int, extra_page: int) -> None:
    ff = built("pv-thermal")
    monkeypatch.setattr(reports, "MAX_PDF_CROPS", cap)
    path = tmp_path / "r.pdf"
    reports.render_pdf(ff, path)
    n = len(ff.findings)
    shown = min(n, cap)
    table = -(-n // reports.ROWS_PER_PAGE)
    # summary + map + ΔT + table + crop sheets (+ a page saying where the other crops are)
    assert _pages(path) == 3 + table + -(-shown // reports.CROPS_PER_PAGE) + extra_page


def test_map_labels_the_most_severe_and_plots_every_finding(built, monkeypatch) -> None:
    ff = _many(built("pv-thermal"), 40)
    monkeypatch.setattr(reports, "MAX_MAP_LABELS", 7)
    fig = reports.map_figure(ff)
    ax = fig.axes[0]
    try:
        assert [t.get_text() for t in ax.texts] == [f["id"] for f in ff.findings[:7]]
        points = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets"))
        assert points >= 40
        assert "33 more points unlabelled" in ax.get_title()
    finally:
        plt.close(fig)


def test_delta_t_plot_has_one_bar_per_finding_and_at_most_the_tick_cap(built) -> None:
    ff = _many(built("pv-thermal"), 150)
    fig = reports.delta_t_figure(ff.doc)
    ax = fig.axes[0]
    try:
        measured, normalised = ax.collections[:2]
        tops = [p.vertices[:, 1].max() for p in measured.get_paths()]
        assert tops == pytest.approx([f["thermal"]["delta_t_k"] for f in ff.findings])
        assert len(normalised.get_paths()) == 150
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert 0 < len(labels) <= reports.MAX_TICK_LABELS and labels[0] == "F0001"
        assert ax.get_ylim()[1] >= max(tops)
    finally:
        plt.close(fig)


def test_crop_sheet_places_each_crop_in_its_cell() -> None:
    red = np.zeros((160, 160, 3), np.uint8)
    red[..., 2] = 255  # BGR
    small = np.zeros((40, 80, 3), np.uint8)
    small[..., 0] = 255  # blue, not square: centred in its cell
    sheet = reports.crop_sheet([red, small], cols=3, rows=4, cell=160)
    pad = 40
    assert sheet.shape == (4 * 200, 3 * 200, 3)
    assert tuple(sheet[pad + 80, pad // 2 + 80]) == (255, 0, 0)  # RGB red in cell (0, 0)
    assert tuple(sheet[pad + 80, 200 + pad // 2 + 80]) == (0, 0, 255)  # blue centred in cell (0, 1)
    assert tuple(sheet[pad + 10, 200 + pad // 2 + 80]) == (255, 255, 255)  # above the short crop: white
    assert tuple(sheet[200 + pad + 80, pad // 2 + 80]) == (255, 255, 255)  # empty cell


def test_upload_files_puts_every_file(object_store: ObjectStore, tmp_path: Path) -> None:
    items = []
    for i in range(25):
        p = tmp_path / f"c{i}.png"
        p.write_bytes(bytes([i]) * (100 + i))
        items.append((f"results/S/F/reports/crops/c{i}.png", p))
    upload_files(object_store, items)
    for key, path in items:
        assert object_store.get_bytes(key) == path.read_bytes()
    with pytest.raises(
        ObjectStoreError, match=r"missing\.png"
    ):  # the failed upload's error reaches the caller
        upload_files(object_store, [*items[:3], ("results/S/F/missing.png", tmp_path / "missing.png")])


def test_html_embeds_the_first_crops_and_links_the_rest(built, tmp_path, monkeypatch) -> None:
    ff = _many(built("pv-thermal"), 30)
    monkeypatch.setattr(reports, "MAX_HTML_CROPS", 12)
    paths = reports.write_reports(ff, tmp_path)
    text = paths["html"].read_text("utf-8")
    embedded = re.findall(r"<img class='crop' alt='(F\d+)' src='data:image/png;base64,", text)
    linked = re.findall(r"<img class='crop' alt='(F\d+)' loading='lazy' src='crops/(F\d+)\.png'>", text)
    assert embedded == [f["id"] for f in ff.findings[:12]]
    assert [a for a, _ in linked] == [f["id"] for f in ff.findings[12:]]
    assert all(a == b and (tmp_path / "crops" / f"{b}.png").exists() for a, b in linked)
