"""The review web application (Starlette, server-rendered Jinja pages, a little vanilla JS).

Pages (login required; viewer: read, reviewer: decide, admin: import and export too)::

    GET  /login, POST /login, POST /logout
    GET  /                                   sites in the database; open a site by id
    GET  /sites/{site}?severity=&class=&status=&flight=     findings list, map, crops (imports on demand)
    GET  /sites/{site}/{flight}/{finding}    frames with boxes, actions, audit trail
    POST /sites/{site}/{flight}/{finding}    a decision from the page's forms (CSRF field, version field)
    POST /sites/{site}/import                admin: re-import the site's findings from the store
    GET  /img/{site}/{flight}/{finding}/crop            the finding's crop (current box), PNG
    GET  /img/{site}/{flight}/{finding}/frame/{n}       evidence frame n (thermal rendered to PNG)

JSON API (same cookie session; POSTs need the ``X-CSRF-Token`` header)::

    GET  /api/sites/{site}/findings?...      GET  /api/sites/{site}/{flight}/{finding}  (with audit trail)
    POST /api/sites/{site}/{flight}/{finding}/decision   {"action", "version", "class_name", "severity",
                                                          "xyxy", "comment"} -> 200 | 400 | 404 | 409
    GET  /api/sites/{site}/status?flight=F   POST /api/sites/{site}/export {"to_store": bool} (admin)

Images go through the app (a proxy of the object store): no store URL or credential ever reaches the browser.
Errors are a clear 4xx (JSON under /api, a page elsewhere), never a stack trace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from detection.taxonomy import Domain, TaxonomyError, by_name, class_names, classes
from objectstore import keys
from objectstore.client import ObjectNotFound, ObjectStore, ObjectStoreError
from review import auth, db
from review.decisions import Conflict, Decision, DecisionError, NotFound, apply_decision
from review.images import ImageError, crop_png, decode_bgr, display_image
from review.importer import import_site
from skyinspect.config import Settings

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "skyinspect_review"
PRE_COOKIE = "skyinspect_review_login"
FINDING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
IMPORT_EVERY_S = 60.0
SEVERITY_COLOURS = {
    "critical": "#d70015",
    "major": "#ff6a00",
    "moderate": "#f5b800",
    "minor": "#34c759",
    "ungraded": "#8e8e93",
}
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; "
        b"form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Pure ASGI middleware adding a strict CSP and friends to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                names = {h[0].lower() for h in message["headers"]}
                message["headers"] = list(message["headers"]) + [
                    h for h in SECURITY_HEADERS if h[0] not in names
                ]
            await send(message)

        await self.app(scope, receive, wrapped)


@dataclass
class ReviewState:
    settings: Settings
    engine: sa.Engine
    store: ObjectStore
    signer: auth.Signer
    secure_cookie: bool
    imported: dict[str, float]
    frame_cache: OrderedDict[str, bytes]
    lock: threading.Lock


# ------------------------------------------------------------------------------------------------ helpers
def _state(request: Request) -> ReviewState:
    return request.app.state.review


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _check_ids(site: str, flight: str | None = None, finding: str | None = None) -> None:
    try:
        keys.validate_id(site, "site")
        if flight is not None:
            keys.validate_id(flight, "flight")
    except keys.InvalidKey as exc:
        raise HTTPException(400, str(exc)) from None
    if finding is not None and not FINDING_ID.match(finding):
        raise HTTPException(400, f"finding id {finding!r} is not a valid id (like F0001)")


def current_user(request: Request) -> tuple[auth.User, str] | None:
    """(user, session id) of the request's valid session cookie, else None."""
    st = _state(request)
    got = st.signer.read(request.cookies.get(COOKIE))
    if got is None:
        return None
    user = auth.load_user(st.engine, got[0])
    return (user, got[1]) if user is not None else None


def require(request: Request, role: str = "viewer") -> tuple[auth.User, str]:
    """The logged-in user with at least ``role``; 401 (pages: redirect to login) or 403 otherwise."""
    got = current_user(request)
    if got is None:
        raise HTTPException(401, "log in first")
    if not got[0].may(role):
        raise HTTPException(403, f"user {got[0].name} ({got[0].role}) may not do this: needs role {role}")
    return got


def _check_csrf(request: Request, sid: str, token: str | None) -> None:
    if not _state(request).signer.check_csrf(sid, token):
        raise HTTPException(403, "missing or invalid CSRF token: reload the page and try again")


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


def _ensure_imported(st: ReviewState, site: str, force: bool = False) -> dict[str, Any] | None:
    """Import the site's findings when it was not imported in the last minute (or ``force``)."""
    with st.lock:
        last = st.imported.get(site, 0.0)
        if not force and time.monotonic() - last < IMPORT_EVERY_S:
            return None
        st.imported[site] = time.monotonic()
    try:
        return import_site(st.engine, st.store, site).to_dict()
    except ObjectStoreError as exc:
        log.warning("on-demand import of %s failed: %s", site, exc)
        return {"site": site, "problems": [f"object store unavailable: {exc.code or 'error'}"]}


def _frame_bytes(st: ReviewState, key: str) -> bytes:
    with st.lock:
        if key in st.frame_cache:
            st.frame_cache.move_to_end(key)
            return st.frame_cache[key]
    data = st.store.get_bytes(key)
    with st.lock:
        st.frame_cache[key] = data
        while len(st.frame_cache) > 32:
            st.frame_cache.popitem(last=False)
    return data


def _load_finding(st: ReviewState, site: str, flight: str, finding: str) -> dict[str, Any]:
    """The finding's row; a site not imported in the last minute is imported first when the row is missing."""
    with st.engine.connect() as conn:
        row = db.get_finding(conn, site, flight, finding)
    if row is None and _ensure_imported(st, site) is not None:
        with st.engine.connect() as conn:
            row = db.get_finding(conn, site, flight, finding)
    if row is None:
        raise HTTPException(404, f"finding {finding} of {site}/{flight} is not in the review database")
    return row


def _filters(request: Request) -> dict[str, str]:
    """The list filters from the query string, checked (400 on an unknown value)."""
    q = request.query_params
    out = {k: q.get(k, "").strip() for k in ("severity", "class", "status", "flight")}
    if out["severity"] and out["severity"] not in db.SEVERITIES:
        raise HTTPException(400, f"severity {out['severity']!r} is not one of {', '.join(db.SEVERITIES)}")
    if out["status"] and out["status"] not in db.STATUSES:
        raise HTTPException(400, f"status {out['status']!r} is not one of {', '.join(db.STATUSES)}")
    known = {c.name for d in Domain for c in classes(d)}
    if out["class"] and out["class"] not in known:
        raise HTTPException(400, f"class {out['class']!r} is not a taxonomy class")
    if out["flight"]:
        _check_ids("x", out["flight"])
    return out


def _list(st: ReviewState, site: str, flt: dict[str, str]) -> list[dict[str, Any]]:
    t = db.findings
    query = sa.select(t).where(t.c.site == site)
    if flt.get("severity"):
        query = query.where(t.c.severity == flt["severity"])
    if flt.get("class"):
        query = query.where(t.c.class_name == flt["class"])
    if flt.get("status"):
        query = query.where(t.c.status == flt["status"])
    if flt.get("flight"):
        query = query.where(t.c.flight == flt["flight"])
    with st.engine.connect() as conn:
        return [db.row_view(r) for r in conn.execute(query.order_by(t.c.flight, t.c.finding_id))]


def _api_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("doc", "frames")}
    out["asset"] = row["doc"].get("asset")
    out["location"] = row["doc"].get("location")
    out["evidence"] = [{"image": e["image"], "xyxy": e["xyxy"]} for e in row["doc"]["evidence"]]
    return out


def _site_map(rows: list[dict[str, Any]], layout: dict[str, Any] | None, site: str) -> dict[str, Any] | None:
    """An SVG-ready map: layout shapes and finding dots in a 640 x 420 view (equirectangular, metres)."""
    pts: list[tuple[float, float]] = []
    shapes: list[tuple[str, list[tuple[float, float]], str]] = []
    for f in (layout or {}).get("features", []):
        geom = f.get("geometry") or {}
        props = f.get("properties") or {}
        label = str(props.get("module_id") or props.get("turbine_id") or props.get("id") or "")
        if geom.get("type") == "Polygon" and geom.get("coordinates"):
            ring = [(float(c[0]), float(c[1])) for c in geom["coordinates"][0]]
            shapes.append(("poly", ring, label))
            pts.extend(ring)
        elif geom.get("type") == "Point":
            c = geom["coordinates"]
            shapes.append(("point", [(float(c[0]), float(c[1]))], label))
            pts.append((float(c[0]), float(c[1])))
    dots = []
    for r in rows:
        loc = r["doc"].get("location") or {}
        if loc.get("lat") is not None and loc.get("lon") is not None:
            dots.append((r, (float(loc["lon"]), float(loc["lat"]))))
            pts.append((float(loc["lon"]), float(loc["lat"])))
    if not pts:
        return None
    lon0 = sum(p[0] for p in pts) / len(pts)
    lat0 = sum(p[1] for p in pts) / len(pts)
    kx, ky = 111_320.0 * math.cos(math.radians(lat0)), 110_540.0

    def proj(p: tuple[float, float]) -> tuple[float, float]:
        return (p[0] - lon0) * kx, (p[1] - lat0) * ky

    xy = [proj(p) for p in pts]
    x0, x1 = min(p[0] for p in xy), max(p[0] for p in xy)
    y0, y1 = min(p[1] for p in xy), max(p[1] for p in xy)
    w, h, m = 640.0, 420.0, 20.0
    s = min((w - 2 * m) / max(x1 - x0, 1.0), (h - 2 * m) / max(y1 - y0, 1.0))

    def view(p: tuple[float, float]) -> tuple[float, float]:
        e, n = proj(p)
        return round(m + (e - x0) * s, 1), round(h - m - (n - y0) * s, 1)

    out_shapes = []
    for kind, ring, label in shapes:
        v = [view(p) for p in ring]
        out_shapes.append(
            {
                "kind": kind,
                "points": " ".join(f"{a},{b}" for a, b in v),
                "x": v[0][0],
                "y": v[0][1],
                "label": label,
            }
        )
    out_dots = [
        {
            "x": view(p)[0],
            "y": view(p)[1],
            "id": r["finding_id"],
            "flight": r["flight"],
            "colour": SEVERITY_COLOURS.get(r["severity"], "#8e8e93"),
            "status": r["status"],
            "href": f"/sites/{site}/{r['flight']}/{r['finding_id']}",
            "title": f"{r['finding_id']} ({r['flight']}): {r['class_name']}, {r['severity']}, {r['status']}",
        }
        for r, p in dots
    ]
    return {
        "width": int(w),
        "height": int(h),
        "shapes": out_shapes,
        "dots": out_dots,
        "scale_m": round(100 / s, 1),
    }


def _layout(st: ReviewState, site: str) -> dict[str, Any] | None:
    try:
        doc = st.store.get_json(keys.site_layout_key(site))
    except (ObjectNotFound, ValueError):
        return None
    except ObjectStoreError as exc:
        log.warning("no layout for %s: %s", site, exc)
        return None
    return doc if isinstance(doc, dict) else None


def _frame_size(st: ReviewState, row: dict[str, Any], rel: str) -> tuple[int, int]:
    info = row["frames"].get(rel) or {}
    if info.get("width") and info.get("height"):
        return int(info["width"]), int(info["height"])
    img = decode_bgr(
        _frame_bytes(st, info.get("key") or keys.image_key(row["site"], row["flight"], rel)), rel
    )
    return int(img.shape[1]), int(img.shape[0])


# ------------------------------------------------------------------------------------------------ pages
def _page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
    got = current_user(request)
    base = {
        "user": got[0] if got else None,
        "csrf": _state(request).signer.csrf_token(got[1]) if got else "",
        "colours": SEVERITY_COLOURS,
    }
    return request.app.state.templates.TemplateResponse(request, name, {**base, **ctx}, status_code=status)


def _login_form(request: Request, nxt: str, error: str = "", status: int = 200) -> Response:
    """The login page with a fresh pre-session CSRF token (cookie + the form's field, bound by HMAC)."""
    st = _state(request)
    pre = secrets.token_urlsafe(16)
    resp = _page(
        request,
        "login.html",
        {"next": nxt, "error": error, "login_csrf": st.signer.csrf_token("login|" + pre)},
        status,
    )
    resp.set_cookie(
        PRE_COOKIE, pre, max_age=3600, httponly=True, samesite="strict", secure=st.secure_cookie, path="/"
    )
    return resp


async def login_page(request: Request) -> Response:
    return _login_form(request, _safe_next(request.query_params.get("next")))


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def login(request: Request) -> Response:
    st = _state(request)
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    nxt = _safe_next(str(form.get("next", "/")))
    pre = request.cookies.get(PRE_COOKIE, "")
    if not pre or not st.signer.check_csrf("login|" + pre, str(form.get("csrf_token", ""))):
        return _login_form(
            request, nxt, "The login form expired or was not served by this app: try again.", 403
        )
    user = await _run(auth.authenticate, st.engine, name, password)
    if user is None:
        log.info("failed login for %r from %s", name[:64], request.client.host if request.client else "?")
        return _login_form(request, nxt, "Unknown user or wrong password.", 401)
    cookie, _sid = st.signer.issue(user.name)
    resp = RedirectResponse(nxt, status_code=303)
    resp.delete_cookie(PRE_COOKIE, path="/")
    resp.set_cookie(
        COOKIE,
        cookie,
        max_age=st.signer.ttl_s,
        httponly=True,
        samesite="strict",
        secure=st.secure_cookie,
        path="/",
    )
    log.info("login %s (%s)", user.name, user.role)
    return resp


async def logout(request: Request) -> Response:
    _user, sid = require(request)
    form = await request.form()
    _check_csrf(request, sid, form.get("csrf_token"))  # type: ignore[arg-type]
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


async def index(request: Request) -> Response:
    require(request)
    st = _state(request)
    if request.query_params.get("site"):
        site = request.query_params["site"].strip()
        _check_ids(site)
        return RedirectResponse(f"/sites/{site}", status_code=303)
    t = db.findings
    with st.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.site, sa.func.count(), sa.func.sum(sa.case((t.c.status == "pending", 1), else_=0)))
            .group_by(t.c.site)
            .order_by(t.c.site)
        ).all()
    sites = [{"site": r[0], "findings": r[1], "pending": r[2] or 0} for r in rows]
    return _page(request, "index.html", {"sites": sites})


async def site_page(request: Request) -> Response:
    require(request)
    st = _state(request)
    site = request.path_params["site"]
    _check_ids(site)
    flt = _filters(request)
    imported = await _run(_ensure_imported, st, site)
    rows = await _run(_list, st, site, flt)
    all_rows = rows if not any(flt.values()) else await _run(_list, st, site, {})
    layout = await _run(_layout, st, site)
    doms = sorted({r["domain"] for r in all_rows})
    return _page(
        request,
        "site.html",
        {
            "site": site,
            "rows": rows,
            "filters": flt,
            "flights": sorted({r["flight"] for r in all_rows}),
            "class_options": [c for d in doms for c in class_names(d)],
            "severities": db.SEVERITIES,
            "statuses": db.STATUSES,
            "map": _site_map(rows, layout, site),
            "total": len(all_rows),
            "problems": (imported or {}).get("problems", []),
        },
    )


async def _finding_and_trail(request: Request) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """The state, the finding named by the path (ids checked) and its audit trail; the caller is logged in."""
    require(request)
    st = _state(request)
    p = request.path_params
    _check_ids(p["site"], p["flight"], p["finding"])
    row = await _run(_load_finding, st, p["site"], p["flight"], p["finding"])
    with st.engine.connect() as conn:
        trail = db.audit_trail(conn, p["site"], p["flight"], p["finding"])
    return st, row, trail


async def finding_page(request: Request) -> Response:
    st, row, trail = await _finding_and_trail(request)
    frames = []
    for n, ev in enumerate(row["doc"]["evidence"]):
        try:
            w, h = await _run(_frame_size, st, row, ev["image"])
        except (ImageError, ObjectStoreError) as exc:
            log.warning("frame %s: %s", ev["image"], exc)
            w, h = 0, 0
        best = ev["image"] == row["best_image"]
        frames.append(
            {
                "n": n,
                "image": ev["image"],
                "width": w,
                "height": h,
                "best": best,
                "box": row["xyxy"] if best else ev["xyxy"],
                "orig": row["orig_xyxy"] if best else ev["xyxy"],
            }
        )
    return _page(
        request,
        "finding.html",
        {
            "row": row,
            "frames": frames,
            "trail": trail,
            "classes": classes(row["domain"]),
            "severities": db.SEVERITIES,
            "message": request.query_params.get("saved", ""),
            "colour": by_name(row["domain"], row["class_name"]).colour,
        },
    )


def _decision_from(data: dict[str, Any]) -> Decision:
    try:
        version = int(str(data.get("version", "")).strip())
    except ValueError:
        raise DecisionError(
            f"version {data.get('version')!r}: expected the integer version you loaded"
        ) from None
    box: Any = data.get("xyxy")
    if box is None and all(data.get(k) not in (None, "") for k in ("x1", "y1", "x2", "y2")):
        box = [data[k] for k in ("x1", "y1", "x2", "y2")]
    return Decision(
        action=str(data.get("action", "")),
        version=version,
        class_name=(str(data["class_name"]) if data.get("class_name") else None),
        severity=(str(data["severity"]) if data.get("severity") else None),
        xyxy=box,
        comment=str(data.get("comment") or ""),
    )


async def _decide(request: Request, data: dict[str, Any], user: auth.User) -> dict[str, Any]:
    st = _state(request)
    p = request.path_params
    try:
        return await _run(
            apply_decision, st.engine, p["site"], p["flight"], p["finding"], _decision_from(data), user.name
        )
    except DecisionError as exc:
        raise HTTPException(400, str(exc)) from None
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None


async def finding_post(request: Request) -> Response:
    p = request.path_params
    _check_ids(p["site"], p["flight"], p["finding"])
    user, sid = require(request, "viewer")
    form = dict(await request.form())
    _check_csrf(request, sid, form.get("csrf_token"))  # type: ignore[arg-type]
    if not user.may("reviewer"):
        raise HTTPException(
            403, f"user {user.name} ({user.role}) may not change findings: needs role reviewer"
        )
    try:
        row = await _decide(request, form, user)
    except Conflict as exc:
        return _page(
            request, "error.html", {"status": 409, "message": str(exc), "back": request.url.path}, 409
        )
    q = urlencode({"saved": f"{form.get('action')} saved (version {row['version']})"})
    return RedirectResponse(f"{request.url.path}?{q}", status_code=303)


async def import_post(request: Request) -> Response:
    user, sid = require(request, "viewer")
    form = await request.form()
    _check_csrf(request, sid, form.get("csrf_token"))  # type: ignore[arg-type]
    if not user.may("admin"):
        raise HTTPException(403, f"user {user.name} ({user.role}) may not import: needs role admin")
    site = request.path_params["site"]
    _check_ids(site)
    await _run(_ensure_imported, _state(request), site, True)
    return RedirectResponse(f"/sites/{site}", status_code=303)


# ------------------------------------------------------------------------------------------------ images
async def crop_image(request: Request) -> Response:
    require(request)
    st = _state(request)
    p = request.path_params
    _check_ids(p["site"], p["flight"], p["finding"])
    row = await _run(_load_finding, st, p["site"], p["flight"], p["finding"])
    rel = row["best_image"]
    key = (row["frames"].get(rel) or {}).get("key") or keys.image_key(row["site"], row["flight"], rel)
    colour = by_name(row["domain"], row["class_name"]).colour_bgr
    try:
        data = await _run(_frame_bytes, st, key)
        png = await _run(crop_png, data, rel, row["xyxy"], colour)
    except ObjectNotFound:
        raise HTTPException(404, f"frame {rel} of finding {row['finding_id']} is not in the store") from None
    except ImageError as exc:
        raise HTTPException(422, str(exc)) from None
    return Response(png, media_type="image/png", headers={"cache-control": "private, max-age=60"})


async def frame_image(request: Request) -> Response:
    require(request)
    st = _state(request)
    p = request.path_params
    _check_ids(p["site"], p["flight"], p["finding"])
    row = await _run(_load_finding, st, p["site"], p["flight"], p["finding"])
    evidence = row["doc"]["evidence"]
    n = p["n"]
    if not 0 <= n < len(evidence):
        raise HTTPException(
            404, f"finding {row['finding_id']} has evidence frames 0..{len(evidence) - 1}, not {n}"
        )
    rel = evidence[n]["image"]
    key = (row["frames"].get(rel) or {}).get("key") or keys.image_key(row["site"], row["flight"], rel)
    try:
        data = await _run(_frame_bytes, st, key)
        body, ctype = await _run(display_image, data, rel)
    except ObjectNotFound:
        raise HTTPException(404, f"frame {rel} is not in the store") from None
    except ImageError as exc:
        raise HTTPException(422, str(exc)) from None
    return Response(body, media_type=ctype, headers={"cache-control": "private, max-age=300"})


# ------------------------------------------------------------------------------------------------ API
async def api_findings(request: Request) -> Response:
    require(request)
    st = _state(request)
    site = request.path_params["site"]
    _check_ids(site)
    flt = _filters(request)
    await _run(_ensure_imported, st, site)
    rows = await _run(_list, st, site, flt)
    return JSONResponse({"site": site, "filters": flt, "findings": [_api_row(r) for r in rows]})


async def api_finding(request: Request) -> Response:
    _, row, trail = await _finding_and_trail(request)
    return JSONResponse({**_api_row(row), "audit": trail})


async def api_decision(request: Request) -> Response:
    p = request.path_params
    _check_ids(p["site"], p["flight"], p["finding"])
    user, sid = require(request)
    _check_csrf(request, sid, request.headers.get("x-csrf-token"))
    if not user.may("reviewer"):
        raise HTTPException(
            403, f"user {user.name} ({user.role}) may not change findings: needs role reviewer"
        )
    try:
        data = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "body must be a JSON object")
    try:
        row = await _decide(request, data, user)
    except Conflict as exc:
        return JSONResponse(
            {"error": str(exc), "status": 409, "current": _api_row(exc.current)}, status_code=409
        )
    return JSONResponse(_api_row(row))


async def api_status(request: Request) -> Response:
    require(request)
    site = request.path_params["site"]
    flight = request.query_params.get("flight", "")
    _check_ids(site, flight)
    rows = await _run(_list, _state(request), site, {"flight": flight})
    return JSONResponse(
        {
            r["finding_id"]: {"status": r["status"], "reviewer": r["reviewer"], "time": r["reviewed_at"]}
            for r in rows
        }
    )


async def api_export(request: Request) -> Response:
    user, sid = require(request)
    _check_csrf(request, sid, request.headers.get("x-csrf-token"))
    if not user.may("admin"):
        raise HTTPException(403, f"user {user.name} ({user.role}) may not export: needs role admin")
    site = request.path_params["site"]
    _check_ids(site)
    try:
        data = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(400, "body is not JSON") from None
    from review.export import export_site

    st = _state(request)
    try:
        result = await _run(
            export_site,
            st.engine,
            st.store,
            site,
            st.settings.data_dir / "review" / "exports" / site,
            to_store=bool(isinstance(data, dict) and data.get("to_store")),
        )
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    out = result.to_dict()
    out.pop("out")
    return JSONResponse(out)


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


# ------------------------------------------------------------------------------------------------ errors
async def http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    detail = str(getattr(exc, "detail", "")) or "error"
    if _is_api(request) or request.url.path.startswith("/img/"):
        return JSONResponse({"error": detail, "status": status}, status_code=status)
    if status == 401:
        return RedirectResponse("/login?next=" + quote(request.url.path), status_code=303)
    return _page(request, "error.html", {"status": status, "message": detail, "back": "/"}, status)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s: %s", request.method, request.url.path, exc, exc_info=exc)
    msg = "internal error; the server log has the details"
    if _is_api(request):
        return JSONResponse({"error": msg, "status": 500}, status_code=500)
    return Response(f"<!doctype html><title>500</title><h1>500</h1><p>{msg}</p>", 500, media_type="text/html")


def _taxonomy_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc), "status": 400}, status_code=400)


async def store_error(request: Request, exc: Exception) -> Response:
    """The object store failed: 503, without its endpoint, bucket or key in the answer (they are in the log)."""
    if isinstance(exc, ObjectNotFound):
        return await http_error(request, HTTPException(404, "not in the object store"))
    log.warning("object store error on %s %s: %s", request.method, request.url.path, exc)
    return await http_error(request, HTTPException(503, "the object store is unavailable: try again later"))


# ------------------------------------------------------------------------------------------------ app
def create_app(
    settings: Settings,
    *,
    db_url: str | None = None,
    store: ObjectStore | None = None,
    secure_cookie: bool = False,
) -> Starlette:
    """The review app for ``settings`` (database ``db_url`` or the default under ``settings.data_dir``)."""
    engine = db.connect(db_url or db.default_url(settings))
    state = ReviewState(
        settings=settings,
        engine=engine,
        store=store or ObjectStore.from_settings(settings),
        signer=auth.Signer(auth.load_secret(settings.data_dir)),
        secure_cookie=secure_cookie,
        imported={},
        frame_cache=OrderedDict(),
        lock=threading.Lock(),
    )
    ids = "{site}/{flight}/{finding}"
    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/", index),
        Route("/sites/{site}", site_page),
        Route("/sites/{site}/import", import_post, methods=["POST"]),
        Route(f"/sites/{ids}", finding_page, methods=["GET"]),
        Route(f"/sites/{ids}", finding_post, methods=["POST"]),
        Route(f"/img/{ids}/crop", crop_image),
        Route(f"/img/{ids}/frame/{{n:int}}", frame_image),
        Route("/api/sites/{site}/findings", api_findings),
        Route("/api/sites/{site}/status", api_status),
        Route("/api/sites/{site}/export", api_export, methods=["POST"]),
        Route(f"/api/sites/{ids}", api_finding),
        Route(f"/api/sites/{ids}/decision", api_decision, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            HTTPException: http_error,
            TaxonomyError: _taxonomy_error,
            ObjectStoreError: store_error,
            Exception: server_error,
        },
    )
    app.state.review = state
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    return app
