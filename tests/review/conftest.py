"""A small reviewed site in the real object store, the review app on it, and logged-in clients.

Site ``S1``: flight ``F1`` (pv-rgb, two 320x240 JPEG frames, three findings) and flight ``F2`` (pv-thermal, one
16-bit radiometric TIFF, two findings), each with a manifest and a ``findings.json`` checked with the findings
stage's own schema validator, and a site layout of four module polygons.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile

from detection.radiometry import celsius_to_counts
from detection.taxonomy import by_name
from findings.schema import validate_findings
from objectstore import keys
from objectstore.client import ObjectStore
from skyinspect.config import Settings

SITE = "S1"
PASSWORD = "correct horse battery"
LAT0, LON0 = 38.3142, 9.9797

# flight -> (kind, {frame: size}, [(finding id, class, severity, frame, xyxy, other evidence)])
FLIGHTS: dict[str, tuple[str, dict[str, tuple[int, int]], list[tuple]]] = {
    "F1": (
        "pv-rgb",
        {"DJI_0001.JPG": (320, 240), "DJI_0002.JPG": (320, 240)},
        [
            (
                "F0001",
                "glass_breakage",
                "major",
                "DJI_0001.JPG",
                [40.0, 50.0, 80.0, 90.0],
                [("DJI_0002.JPG", [42.0, 20.0, 82.0, 60.0])],
            ),
            ("F0002", "soiling", "minor", "DJI_0001.JPG", [200.0, 120.0, 230.0, 150.0], []),
            ("F0003", "snail_trail", "moderate", "DJI_0002.JPG", [100.0, 150.0, 160.0, 200.0], []),
        ],
    ),
    "F2": (
        "pv-thermal",
        {"IR_0001.tif": (160, 120)},
        [
            ("F0001", "hotspot_single_cell", "critical", "IR_0001.tif", [20.0, 30.0, 30.0, 40.0], []),
            ("F0002", "bypass_diode", "moderate", "IR_0001.tif", [90.0, 60.0, 130.0, 80.0], []),
        ],
    ),
}


def _frame(kind: str, size: tuple[int, int], seed: int) -> bytes:
    w, h = size
    rng = np.random.default_rng(seed)
    if kind == "pv-thermal":
        temp = 30.0 + rng.normal(0, 0.5, (h, w))
        temp[30:40, 20:30] += 25.0
        return _tiff(celsius_to_counts(temp))
    img = np.full((h, w, 3), (90, 60, 40), np.uint8)
    img += rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
    cv2.rectangle(img, (40, 50), (80, 90), (230, 230, 230), -1)
    ok, jpg = cv2.imencode(".jpg", img)
    assert ok
    return jpg.tobytes()


def _tiff(counts: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    tifffile.imwrite(buf, counts)
    return buf.getvalue()


def _finding(
    kind: str, fid: str, cls: str, sev: str, frame: str, xyxy: list[float], others: list, n: int
) -> dict:
    c = by_name(kind, cls)
    evidence = [{"image": frame, "xyxy": xyxy, "confidence": 0.9, "quality": 0.5, "clipped": False}]
    evidence += [
        {"image": im, "xyxy": box, "confidence": 0.8, "quality": 0.4, "clipped": False} for im, box in others
    ]
    return {
        "id": fid,
        "class": cls,
        "class_id": c.id,
        "display_name": c.display_name,
        "colour": c.colour,
        "domain": kind,
        "confidence": 0.9,
        "n_observations": len(evidence),
        "size_m": 0.3,
        "best": {"image": frame, "xyxy": xyxy},
        "evidence": evidence,
        "location": {
            "located": True,
            "lat": LAT0 + 0.00002 * n,
            "lon": LON0 + 0.00003 * n,
            "e_m": 0.0,
            "n_m": 0.0,
            "uncertainty_m": 0.5,
        },
        "asset": {
            "module_id": f"M{n:03d}",
            "string_id": "S01",
            "inverter_id": "I01",
            "assignment": "inside",
            "distance_m": 0.0,
            "reason": "inside the module polygon",
        },
        "thermal": None,
        "grade": {
            "scheme": "pv-rgb-size",
            "value": 2,
            "label": "Severity 2",
            "severity": sev,
            "reason": "test",
            "critical": sev == "critical",
        },
        "power_loss_w": None,
        "power_loss_reason": "",
        "located": True,
        "graded": True,
        "reasons": [],
        "trend": None,
    }


def _layout() -> dict[str, Any]:
    feats = []
    for i in range(4):
        lon, lat = LON0 + 0.00003 * (i + 1), LAT0 + 0.00002 * (i + 1)
        ring = [
            [lon - 1e-5, lat - 5e-6],
            [lon + 1e-5, lat - 5e-6],
            [lon + 1e-5, lat + 5e-6],
            [lon - 1e-5, lat + 5e-6],
            [lon - 1e-5, lat - 5e-6],
        ]
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"module_id": f"M{i + 1:03d}", "string_id": "S01", "inverter_id": "I01"},
            }
        )
    return {"type": "FeatureCollection", "properties": {"kind": "pv-plant"}, "features": feats}


def write_site(store: ObjectStore, site: str = SITE, generated: str = "2026-11-29T08:00:00+00:00") -> None:
    """Put frames, manifests, findings.json (schema-checked) and the layout of ``site`` into ``store``."""
    n = 0
    for flight, (kind, frames, rows) in FLIGHTS.items():
        images = []
        for i, (rel, size) in enumerate(frames.items()):
            key = keys.image_key(site, flight, rel)
            store.put_bytes(key, _frame(kind, size, i))
            images.append({"key": key, "path": rel, "paths": [rel], "width": size[0], "height": size[1]})
        store.put_json(
            keys.manifest_key(site, flight), {"site": site, "flight": flight, "kind": kind, "images": images}
        )
        found = []
        for fid, cls, sev, frame, xyxy, others in rows:
            n += 1
            found.append(_finding(kind, fid, cls, sev, frame, xyxy, others, n))
        doc = {
            "schema_version": "1.0",
            "taxonomy_version": "1.0",
            "site": site,
            "flight": flight,
            "kind": kind,
            "generated": generated,
            "inspection_time": None,
            "conditions": None,
            "validity": None,
            "counts": {
                "findings": len(found),
                "critical": 0,
                "by_severity": {},
                "by_class": {},
                "power_loss_w": 0.0,
            },
            "findings": found,
            "resolved": [],
        }
        store.put_json(keys.findings_key(site, flight), validate_findings(doc))
    store.put_json(keys.site_layout_key(site), _layout())


@dataclass
class ReviewEnv:
    settings: Settings
    store: ObjectStore
    app: Any
    db_url: str

    def client(self, user: str | None = None) -> Any:
        """A TestClient, logged in as ``user`` (password :data:`PASSWORD`) when given."""
        from starlette.testclient import TestClient

        c = TestClient(self.app, raise_server_exceptions=False)
        if user:
            r = c.post("/login", data=login_form(c, user, PASSWORD), follow_redirects=False)
            assert r.status_code == 303, r.text
        return c


def login_form(client: Any, user: str, password: str, nxt: str = "/") -> dict[str, str]:
    """The login form's fields as the login page serves them to this client (with its CSRF token)."""
    page = client.get("/login")
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert m, "no csrf token on the login page"
    return {"name": user, "password": password, "next": nxt, "csrf_token": m.group(1)}


def csrf_of(client: Any, path: str = "/") -> str:
    """The CSRF token a page served to this client's session carries."""
    page = client.get(path)
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert m, f"no csrf token on {path}: {page.status_code}"
    return m.group(1)


def _make_env(store: ObjectStore, s3_settings: Settings, data_dir: Path) -> ReviewEnv:
    from review import auth, db
    from review.app import create_app

    write_site(store)
    settings = s3_settings.replace(s3_bucket=store.bucket, data_dir=data_dir)
    db_url = db.default_url(settings)
    engine = db.connect(db_url)
    for name, role in (
        ("viewer1", "viewer"),
        ("rev1", "reviewer"),
        ("rev2", "reviewer"),
        ("admin1", "admin"),
    ):
        auth.add_user(engine, name, role, PASSWORD)
    engine.dispose()
    return ReviewEnv(settings, store, create_app(settings, db_url=db_url, store=store), db_url)


@pytest.fixture
def review_env(object_store: ObjectStore, s3_settings: Settings, tmp_path: Path) -> Iterator[ReviewEnv]:
    """The review app on a fresh bucket holding site S1, with users viewer1, rev1, rev2 and admin1."""
    env = _make_env(object_store, s3_settings, tmp_path / "data")
    yield env
    env.app.state.review.engine.dispose()


@pytest.fixture(scope="module")
def review_env_shared(s3_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewEnv]:
    """Like ``review_env``, shared by a module's tests that only read (or are refused before writing)."""
    store = ObjectStore.from_settings(s3_settings, bucket=f"t-{secrets.token_hex(6)}")
    store.ensure_bucket()
    env = _make_env(store, s3_settings, tmp_path_factory.mktemp("review") / "data")
    yield env
    env.app.state.review.engine.dispose()
    store.remove_bucket(force=True)


@pytest.fixture
def login(review_env: ReviewEnv) -> Callable[[str], Any]:
    return review_env.client
