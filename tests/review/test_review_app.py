"""The review app against the real object store: login and roles, list and filters, decisions with optimistic
concurrency and the audit trail, images through the app, and clear 4xx answers to bad requests."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from review import db
from tests.review.conftest import PASSWORD, SITE, csrf_of, login_form


def _api_post(client, path: str, body, csrf: str | None):
    headers = {"content-type": "application/json"}
    if csrf is not None:
        headers["x-csrf-token"] = csrf
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, content=data, headers=headers)


def _finding(client, flight: str, fid: str) -> dict:
    r = client.get(f"/api/sites/{SITE}/{flight}/{fid}")
    assert r.status_code == 200, r.text
    return r.json()


def test_login_required_and_wrong_password(review_env) -> None:
    anon = review_env.client()
    r = anon.get(f"/sites/{SITE}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/sites/S1")
    r = anon.get(f"/api/sites/{SITE}/findings")
    assert r.status_code == 401 and r.json()["error"]
    assert anon.get(f"/img/{SITE}/F1/F0001/crop").status_code == 401
    r = anon.post("/login", data=login_form(anon, "rev1", PASSWORD + "x"), follow_redirects=False)
    assert r.status_code == 401 and "wrong password" in r.text
    r = anon.post("/login", data=login_form(anon, "nobody", PASSWORD), follow_redirects=False)
    assert r.status_code == 401
    # a login form not served by the app (login CSRF) is refused even with the right password
    r = anon.post("/login", data={"name": "rev1", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and "not served by this app" in r.text
    assert "skyinspect_review=" not in r.headers.get("set-cookie", "")
    form = login_form(anon, "rev1", PASSWORD)
    r = review_env.client().post("/login", data=form, follow_redirects=False)  # the token without its cookie
    assert r.status_code == 403


def test_session_cookie_flags_and_tampering(review_env) -> None:
    anon = review_env.client()
    r = anon.post(
        "/login", data=login_form(anon, "rev1", PASSWORD, "//evil.example/"), follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    value = anon.cookies.get("skyinspect_review")
    payload, mac = value.rsplit(".", 1)
    forged = review_env.client()
    forged.cookies.set("skyinspect_review", payload + "." + ("0" * len(mac)))
    assert forged.get(f"/api/sites/{SITE}/findings").status_code == 401


def test_list_imports_on_demand_and_filters(review_env, login) -> None:
    c = login("viewer1")
    r = c.get(f"/api/sites/{SITE}/findings")
    assert r.status_code == 200
    rows = r.json()["findings"]
    assert {(f["flight"], f["finding_id"]) for f in rows} == {
        ("F1", "F0001"),
        ("F1", "F0002"),
        ("F1", "F0003"),
        ("F2", "F0001"),
        ("F2", "F0002"),
    }
    assert all(f["status"] == "pending" and f["version"] == 1 for f in rows)
    page = c.get(f"/sites/{SITE}")
    assert page.status_code == 200
    assert (
        page.text.count('class="dot ') == 5 and page.text.count('class="asset"') == 4
    )  # map: findings + layout


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("severity=minor", {("F1", "F0002")}),
        ("severity=critical", {("F2", "F0001")}),
        ("class=snail_trail", {("F1", "F0003")}),
        ("flight=F2", {("F2", "F0001"), ("F2", "F0002")}),
        ("flight=F1&severity=moderate", {("F1", "F0003")}),
        ("status=confirmed", set()),
        ("status=pending&flight=F2&class=bypass_diode", {("F2", "F0002")}),
    ],
)
def test_filters(review_env_shared, query: str, expected: set) -> None:
    c = review_env_shared.client("viewer1")
    rows = c.get(f"/api/sites/{SITE}/findings?{query}").json()["findings"]
    assert {(f["flight"], f["finding_id"]) for f in rows} == expected
    page = c.get(f"/sites/{SITE}?{query}").text
    assert {
        tuple(m.split("/")) for m in __import__("re").findall(r'data-finding="([^"]+)"', page)
    } == expected


def test_decisions_update_db_and_audit(review_env, login) -> None:
    c = login("rev1")
    csrf = csrf_of(c, f"/sites/{SITE}")
    base = f"/api/sites/{SITE}"
    steps = [
        ("F1", "F0001", {"action": "confirm"}, {"status": "confirmed"}),
        ("F1", "F0002", {"action": "reject", "comment": "bird dropping shadow"}, {"status": "rejected"}),
        (
            "F1",
            "F0003",
            {"action": "reclassify", "class_name": "delamination"},
            {"status": "confirmed", "class_name": "delamination"},
        ),
        (
            "F2",
            "F0002",
            {"action": "adjust_box", "xyxy": [88, 58, 132.5, 82]},
            {"status": "confirmed", "xyxy": [88.0, 58.0, 132.5, 82.0]},
        ),
        (
            "F2",
            "F0001",
            {"action": "severity", "severity": "major", "comment": "single cell, low dT"},
            {"status": "pending", "severity": "major"},
        ),
    ]
    for flight, fid, body, want in steps:
        before = _finding(c, flight, fid)
        r = _api_post(c, f"{base}/{flight}/{fid}/decision", {**body, "version": before["version"]}, csrf)
        assert r.status_code == 200, r.text
        after = _finding(c, flight, fid)
        for k, v in want.items():
            assert after[k] == v, (fid, k)
        assert after["version"] == before["version"] + 1 and after["reviewer"] == "rev1"
        last = after["audit"][-1]
        assert last["user"] == "rev1" and last["action"] == body["action"]
        assert last["before"]["version"] == before["version"] and last["after"]["version"] == after["version"]
        for k, v in want.items():
            assert last["after"][k] == v
        assert last["comment"] == body.get("comment")
    engine = sa.create_engine(review_env.db_url)
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.select(db.findings.c.finding_id, db.findings.c.status).where(db.findings.c.flight == "F1")
            ).all()
        )
        n_audit = conn.execute(sa.select(sa.func.count()).select_from(db.audit)).scalar()
    engine.dispose()
    assert statuses == {"F0001": "confirmed", "F0002": "rejected", "F0003": "confirmed"}
    assert n_audit == 5 + 5  # five imports, five decisions


def test_html_form_decision_and_stale_version_conflict(review_env, login) -> None:
    a, b = login("rev1"), login("rev2")
    path = f"/sites/{SITE}/F1/F0001"
    csrf_a, csrf_b = csrf_of(a, path), csrf_of(b, path)
    r = a.post(path, data={"csrf_token": csrf_a, "version": "1", "action": "confirm"}, follow_redirects=False)
    assert r.status_code == 303
    # rev2 still has the page of version 1 open: its reject must not silently overwrite rev1's confirm
    r = b.post(path, data={"csrf_token": csrf_b, "version": "1", "action": "reject"})
    assert r.status_code == 409
    assert "changed by rev1" in r.text and "nothing was saved" in r.text and "Traceback" not in r.text
    r = _api_post(b, f"/api/sites/{SITE}/F1/F0001/decision", {"action": "reject", "version": 1}, csrf_b)
    assert r.status_code == 409 and r.json()["current"]["status"] == "confirmed"
    row = _finding(a, "F1", "F0001")
    assert row["status"] == "confirmed" and row["version"] == 2 and row["reviewer"] == "rev1"
    assert [e["action"] for e in row["audit"]] == ["import", "confirm"]
    # with the current version the second reviewer may change it, and the trail shows both
    r = _api_post(b, f"/api/sites/{SITE}/F1/F0001/decision", {"action": "reject", "version": 2}, csrf_b)
    assert r.status_code == 200
    trail = _finding(a, "F1", "F0001")["audit"]
    assert [(e["user"], e["before"]["status"], e["after"]["status"]) for e in trail[1:]] == [
        ("rev1", "pending", "confirmed"),
        ("rev2", "confirmed", "rejected"),
    ]


def test_roles(review_env, login) -> None:
    viewer = login("viewer1")
    csrf = csrf_of(viewer, f"/sites/{SITE}")
    r = _api_post(viewer, f"/api/sites/{SITE}/F1/F0001/decision", {"action": "confirm", "version": 1}, csrf)
    assert r.status_code == 403 and "needs role reviewer" in r.json()["error"]
    r = viewer.post(f"/sites/{SITE}/F1/F0001", data={"csrf_token": csrf, "version": "1", "action": "confirm"})
    assert r.status_code == 403
    assert 'id="btn-confirm"' not in viewer.get(f"/sites/{SITE}/F1/F0001").text
    rev = login("rev1")
    r = _api_post(rev, f"/api/sites/{SITE}/export", {}, csrf_of(rev, f"/sites/{SITE}"))
    assert r.status_code == 403
    r = rev.post(f"/sites/{SITE}/import", data={"csrf_token": csrf_of(rev)})
    assert r.status_code == 403
    admin = login("admin1")
    r = admin.post(
        f"/sites/{SITE}/import", data={"csrf_token": csrf_of(admin, f"/sites/{SITE}")}, follow_redirects=False
    )
    assert r.status_code == 303


BAD_API = [
    ("/api/sites/S1/F1/F0001/decision", {"action": "confirm", "version": 1}, "none", 403, "CSRF"),
    ("/api/sites/S1/F1/F0001/decision", {"action": "confirm", "version": 1}, "wrong", 403, "CSRF"),
    ("/api/sites/S1/F1/F9999/decision", {"action": "confirm", "version": 1}, "ok", 404, "F9999"),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "reclassify", "class_name": "nonsense", "version": 1},
        "ok",
        400,
        "unknown class 'nonsense'",
    ),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "reclassify", "class_name": "hotspot_single_cell", "version": 1},
        "ok",
        400,
        "domain pv-rgb",
    ),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "adjust_box", "xyxy": [50, 50, 40, 60], "version": 1},
        "ok",
        400,
        "x1 < x2",
    ),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "adjust_box", "xyxy": [10, 10, 400, 60], "version": 1},
        "ok",
        400,
        "outside the 320x240",
    ),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "adjust_box", "xyxy": "a b c d", "version": 1},
        "ok",
        400,
        "four numbers",
    ),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "adjust_box", "xyxy": [1, 2, 3], "version": 1},
        "ok",
        400,
        "four finite",
    ),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "adjust_box", "xyxy": ["nan", 2, 3, 4], "version": 1},
        "ok",
        400,
        "four finite",
    ),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "severity", "severity": "major", "version": 1},
        "ok",
        400,
        "comment",
    ),
    (
        "/api/sites/S1/F1/F0001/decision",
        {"action": "severity", "severity": "huge", "comment": "x", "version": 1},
        "ok",
        400,
        "not one of",
    ),
    ("/api/sites/S1/F1/F0001/decision", {"action": "explode", "version": 1}, "ok", 400, "action"),
    ("/api/sites/S1/F1/F0001/decision", {"action": "confirm", "version": "one"}, "ok", 400, "version"),
    ("/api/sites/S1/F1/F0001/decision", "{not json", "ok", 400, "not JSON"),
    ("/api/sites/S1/F1/F0001/decision", "[1, 2]", "ok", 400, "JSON object"),
    ("/api/sites/S1/F1/bad%20id!/decision", {"action": "confirm", "version": 1}, "ok", 400, "not a valid id"),
    ("/api/sites/S1/-F1-/F0001/decision", {"action": "confirm", "version": 1}, "ok", 400, "not a safe id"),
]


@pytest.mark.parametrize(("path", "body", "csrf", "status", "text"), BAD_API)
def test_bad_api_requests_get_clear_4xx(review_env_shared, path, body, csrf, status, text) -> None:
    c = review_env_shared.client("rev1")
    token = {"none": None, "wrong": "0" * 64, "ok": csrf_of(c, f"/sites/{SITE}")}[csrf]
    r = _api_post(c, path, body, token)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert text in r.json()["error"] and "Traceback" not in r.text
    row = _finding(c, "F1", "F0001")
    assert row["status"] == "pending" and row["version"] == 1  # nothing was written


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("get", "/sites/-bad-", 400, "not a safe id"),
        ("get", "/sites/S1/F1/F0042", 404, "F0042"),
        ("get", "/sites/S1/F1/F%20x", 400, "not a valid id"),
        ("get", "/sites/S1?severity=huge", 400, "severity"),
        ("get", "/sites/S1?class=unicorn", 400, "unicorn"),
        ("get", "/api/sites/S1/findings?status=maybe", 400, "status"),
        ("get", "/img/S1/F1/F0001/frame/7", 404, "frames 0..1"),
        ("get", "/nowhere", 404, ""),
        ("post", "/sites/S1/F1/F0001", 403, "CSRF"),
    ],
)
def test_bad_page_requests(review_env_shared, method, path, status, text) -> None:
    c = review_env_shared.client("rev1")
    c.get(f"/sites/{SITE}")  # import
    r = c.get(path) if method == "get" else c.post(path, data={"version": "1", "action": "confirm"})
    assert r.status_code == status
    assert text in r.text and "Traceback" not in r.text
    if path.startswith(("/api/", "/img/")):
        assert r.headers["content-type"].startswith("application/json")
    elif status != 404 or text:
        assert r.headers["content-type"].startswith("text/html")


def test_images_are_proxied_and_no_credentials_reach_the_browser(review_env_shared) -> None:
    c = review_env_shared.client("rev1")
    s = review_env_shared.settings
    bodies = []
    for path in (
        f"/sites/{SITE}",
        f"/sites/{SITE}/F1/F0001",
        f"/sites/{SITE}/F2/F0001",
        "/",
        "/login",
        f"/api/sites/{SITE}/findings",
        f"/api/sites/{SITE}/F1/F0001",
        "/static/review.js",
    ):
        r = c.get(path)
        assert r.status_code == 200, path
        bodies.append(r.text + json.dumps(dict(r.headers)))
        assert "default-src 'self'" in r.headers["content-security-policy"]
    for path, ctype, magic in [
        (f"/img/{SITE}/F1/F0001/crop", "image/png", b"\x89PNG"),
        (f"/img/{SITE}/F1/F0001/frame/0", "image/jpeg", b"\xff\xd8"),
        (f"/img/{SITE}/F1/F0001/frame/1", "image/jpeg", b"\xff\xd8"),
        (f"/img/{SITE}/F2/F0001/frame/0", "image/png", b"\x89PNG"),  # 16-bit thermal rendered for display
        (f"/img/{SITE}/F2/F0002/crop", "image/png", b"\x89PNG"),
    ]:
        r = c.get(path)
        assert r.status_code == 200 and r.headers["content-type"] == ctype and r.content.startswith(magic), (
            path
        )
        bodies.append(json.dumps(dict(r.headers)))
    text = "\n".join(bodies)
    assert s.s3_access_key not in text and s.s3_secret_key not in text
    assert s.s3_endpoint not in text and "X-Amz-" not in text
    page = c.get(f"/sites/{SITE}/F1/F0001").text
    assert f"/img/{SITE}/F1/F0001/frame/0" in page and 'viewBox="0 0 320 240"' in page


def test_secret_and_passwords_at_rest(review_env) -> None:
    secret = review_env.settings.data_dir / "review" / "secret.key"
    assert secret.stat().st_mode & 0o777 == 0o600
    database = review_env.settings.data_dir / "review" / "review.db"
    assert database.stat().st_mode & 0o777 == 0o600
    raw = b"".join(p.read_bytes() for p in database.parent.iterdir() if p.is_file())  # with -wal / -shm
    assert PASSWORD.encode() not in raw and b"scrypt$" in raw


def test_store_down_gives_503_not_a_trace(review_env, tmp_path) -> None:
    from objectstore.client import ObjectStore
    from objectstore.server import free_port
    from review.app import create_app
    from tests.review.conftest import ReviewEnv

    c = review_env.client("rev1")
    assert c.get(f"/sites/{SITE}").status_code == 200  # imported while the store is up
    dead_settings = review_env.settings.replace(s3_endpoint=f"127.0.0.1:{free_port()}")
    dead = ObjectStore.from_settings(dead_settings)
    app = create_app(dead_settings, db_url=review_env.db_url, store=dead)
    c = ReviewEnv(dead_settings, dead, app, review_env.db_url).client("rev1")
    page = c.get(f"/sites/{SITE}")  # the list comes from the database; the import problem is shown
    assert page.status_code == 200 and "object store unavailable" in page.text
    r = c.get(f"/img/{SITE}/F1/F0001/frame/0")
    assert r.status_code == 503 and r.json()["error"] == "the object store is unavailable: try again later"
    assert dead_settings.s3_endpoint not in r.text and "Traceback" not in r.text
    page = c.get(f"/sites/{SITE}/F1/F0001")  # frame sizes come from the database: the page still renders
    assert page.status_code == 200 and 'id="btn-confirm"' in page.text
    app.state.review.engine.dispose()


def test_comments_are_escaped_and_admin_export_over_http(review_env, login) -> None:
    c = login("admin1")
    path = f"/sites/{SITE}/F1/F0002"
    csrf = csrf_of(c, path)
    r = _api_post(c, f"/api/sites/{SITE}/export", {"to_store": True}, csrf)
    assert r.status_code == 409 and "no reviewed finding" in r.json()["error"]
    evil = "<script>alert(1)</script>"
    r = c.post(path, data={"csrf_token": csrf, "version": "1", "action": "reject", "comment": evil})
    assert r.status_code == 200 and "reject saved" in r.text
    assert evil not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    r = _api_post(c, f"/api/sites/{SITE}/export", {"to_store": True}, csrf)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["skipped_frames"] == ["F1/DJI_0001.JPG"] and out["images"] == 0  # F0001 there is unreviewed
    assert out["store_prefix"] == f"reviews/{SITE}/{out['export_id']}/"
    assert "out" not in out  # no server paths to the browser
    assert review_env.store.exists(out["store_prefix"] + "export.json")
