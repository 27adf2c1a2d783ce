"""Fault warnings: critical findings raise a warning, recorded in warnings.json and POSTed to webhooks.

Critical = IEC TS 62446-3 CoA 3, wind category 4 or 5, or a string offline. A warning's id is stable for the
same site, flight, class and asset (``W`` + 16 hex of a SHA-256 of them; blade positions at 0.1 m; a second
defect of the same class on the same asset gets ``-2``), so re-processing a flight produces the same ids.

Delivery: each warning is POSTed as JSON to every configured URL, with retries (exponential back-off) on
connection errors, 5xx and 429 answers. A *sent-ledger* — one object per warning id in the store
(:func:`objectstore.keys.warning_sent_key`) or a local folder — records which URLs have acknowledged (2xx) it;
a URL that already did is never sent the warning again, so re-runs and retries never duplicate a send.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


def is_critical(f: dict[str, Any]) -> bool:
    return bool(f["grade"].get("critical")) or f["class"] == "string_offline"


def _asset_key(f: dict[str, Any]) -> str:
    a = f.get("asset") or {}
    if f["class"] == "string_offline" and a.get("string_id"):
        return f"string:{a['string_id']}"
    if a.get("module_id"):
        return f"module:{a['module_id']}"
    if a.get("turbine_id") and a.get("radius_m") is not None:
        return f"blade:{a['turbine_id']}/{a.get('blade')}/{a.get('side')}/{a['radius_m']:.1f}"
    loc = f.get("location") or {}
    if loc.get("located"):
        return f"at:{loc['lat']:.6f},{loc['lon']:.6f}"
    return f"finding:{f['id']}:{f['best']['image']}"


def warning_id(site: str, flight: str, f: dict[str, Any]) -> str:
    digest = hashlib.sha256(f"{site}|{flight}|{f['class']}|{_asset_key(f)}".encode()).hexdigest()
    return "W" + digest[:16]


def build_warnings(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The fault warnings of a findings document (one per critical finding)."""
    out = []
    site, flight = doc["site"], doc["flight"]
    seen: dict[str, int] = {}
    for f in doc["findings"]:
        if not is_critical(f):
            continue
        wid = warning_id(site, flight, f)
        seen[wid] = seen.get(wid, 0) + 1
        if seen[wid] > 1:  # two defects of one class on one asset (e.g. two burns near one tip)
            wid = f"{wid}-{seen[wid]}"
        a = f.get("asset") or {}
        where = (
            (a.get("string_id") if f["class"] == "string_offline" else a.get("module_id"))
            or (
                f"{a.get('turbine_id')} blade {a.get('blade')} {a.get('side')} at r={a.get('radius_m')} m"
                if a.get("turbine_id")
                else None
            )
            or "unlocated"
        )
        out.append(
            {
                "id": wid,
                "site": site,
                "flight": flight,
                "finding_id": f["id"],
                "class": f["class"],
                "grade": f["grade"]["label"],
                "severity": f["grade"]["severity"],
                "reason": f["grade"]["reason"],
                "asset": a,
                "location": f.get("location"),
                "message": f"{site}/{flight}: {f['display_name']} at {where} — {f['grade']['label']}: "
                f"{f['grade']['reason']}",
                "raised": doc.get("generated") or datetime.now(UTC).isoformat(timespec="seconds"),
                "validity": (f.get("thermal") or {}).get("validity"),
            }
        )
    return out


class Ledger(Protocol):
    def get(self, warning_id: str) -> dict[str, Any] | None: ...

    def put(self, warning_id: str, entry: dict[str, Any]) -> None: ...


class StoreLedger:
    """The sent-ledger in the object store: ``sites/{site}/warnings-sent/{id}.json``."""

    def __init__(self, store: Any, site: str) -> None:
        self.store, self.site = store, site

    def get(self, warning_id: str) -> dict[str, Any] | None:
        from objectstore.client import ObjectNotFound
        from objectstore.keys import warning_sent_key

        try:
            return self.store.get_json(warning_sent_key(self.site, warning_id))
        except ObjectNotFound:
            return None

    def put(self, warning_id: str, entry: dict[str, Any]) -> None:
        from objectstore.keys import warning_sent_key

        self.store.put_json(warning_sent_key(self.site, warning_id), entry)


class DirLedger:
    """The sent-ledger as files in a local folder (one JSON per warning id)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def get(self, warning_id: str) -> dict[str, Any] | None:
        p = self.root / f"{warning_id}.json"
        return json.loads(p.read_text("utf-8")) if p.exists() else None

    def put(self, warning_id: str, entry: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{warning_id}.tmp"
        tmp.write_text(json.dumps(entry, indent=1), "utf-8")
        tmp.replace(self.root / f"{warning_id}.json")


def post_json(
    url: str, payload: dict[str, Any], *, attempts: int, backoff_s: float, timeout_s: float
) -> dict:
    """POST ``payload`` with retries; returns ``{"ok", "status", "attempts", "error"}`` (never raises)."""
    body = json.dumps(payload).encode("utf-8")
    last_status, last_error = None, None
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": str(payload.get("id", ""))},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                last_status = resp.status
                if 200 <= resp.status < 300:
                    return {"ok": True, "status": resp.status, "attempts": attempt, "error": None}
        except urllib.error.HTTPError as exc:
            last_status, last_error = exc.code, f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                return {"ok": False, "status": exc.code, "attempts": attempt, "error": last_error}
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last_error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    return {"ok": False, "status": last_status, "attempts": attempts, "error": last_error}


def _shown(url: str) -> str:
    """The URL without credentials, query or fragment (safe to log and store)."""
    from urllib.parse import urlparse

    p = urlparse(url)
    port = f":{p.port}" if p.port else ""
    return f"{p.scheme}://{p.hostname}{port}{p.path}"


def _url_ref(url: str) -> str:
    """A stable reference to a full URL (which may carry a token) for the ledger: 16 hex of its SHA-256."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def send_warnings(
    warnings: list[dict[str, Any]],
    urls: list[str] | tuple[str, ...],
    ledger: Ledger,
    *,
    attempts: int = 3,
    backoff_s: float = 0.5,
    timeout_s: float = 5.0,
) -> list[dict[str, Any]]:
    """POST each warning to each URL that has not acknowledged it yet (see the module docstring).

    Returns one record per (warning, url): ``{"warning_id", "url", "status": "sent" | "already-sent" |
    "failed", "http_status", "attempts", "error"}``. URLs appear in results without credentials or query.
    """
    results = []
    for w in warnings:
        entry = ledger.get(w["id"]) or {"warning_id": w["id"], "sent": {}}
        for url in urls:
            shown, ref = _shown(url), _url_ref(url)
            if ref in entry["sent"]:
                results.append(
                    {
                        "warning_id": w["id"],
                        "url": shown,
                        "status": "already-sent",
                        "http_status": None,
                        "attempts": 0,
                        "error": None,
                    }
                )
                continue
            r = post_json(url, w, attempts=attempts, backoff_s=backoff_s, timeout_s=timeout_s)
            if r["ok"]:
                entry["sent"][ref] = {
                    "url": shown,
                    "time": datetime.now(UTC).isoformat(timespec="seconds"),
                    "status": r["status"],
                }
                ledger.put(w["id"], entry)
            else:
                log.warning("warning %s not delivered to %s: %s", w["id"], shown, r["error"])
            results.append(
                {
                    "warning_id": w["id"],
                    "url": shown,
                    "status": "sent" if r["ok"] else "failed",
                    "http_status": r["status"],
                    "attempts": r["attempts"],
                    "error": r["error"],
                }
            )
    return results
