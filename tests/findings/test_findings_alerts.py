"""Fault warnings: which findings raise one, and webhook delivery to a real local HTTP server.

The server (http.server on 127.0.0.1 in a thread) fails the first attempt for every warning with a 503, so the
retry path is exercised; the sent-ledger must prevent a second delivery on a re-run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from findings.alerts import DirLedger, build_warnings, is_critical, send_warnings, warning_id
from findings.config import FindingsConfig, FindingsConfigError


class Hook:
    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.accepted: list[dict] = []
        self.fail_first = True
        self.status = 200
        self.lock = threading.Lock()


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                n = state.attempts.get(body["id"], 0) + 1
                state.attempts[body["id"]] = n
                code = 503 if (state.fail_first and n == 1) else state.status
                if code == 200:
                    state.accepted.append(body)
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook?token=secret"
    finally:
        server.shutdown()
        server.server_close()


def test_critical_findings_raise_stable_warnings(built) -> None:
    for kind in ("pv-thermal", "wind-rgb"):
        doc = built(kind).doc
        warnings = build_warnings(doc)
        critical = [f for f in doc["findings"] if is_critical(f)]
        assert len(warnings) == len(critical) > 0
        assert len({w["id"] for w in warnings}) == len(warnings)
        assert [w["id"] for w in build_warnings(doc)] == [w["id"] for w in warnings]  # stable ids
        for w, f in zip(warnings, critical, strict=True):
            assert w["finding_id"] == f["id"] and w["id"].startswith(
                warning_id(doc["site"], doc["flight"], f)
            )
            assert f["grade"]["label"] in w["message"]
    thermal = build_warnings(built("pv-thermal").doc)
    assert any(w["class"] == "string_offline" for w in thermal) or any(w["grade"] == "CoA 3" for w in thermal)


def test_webhook_retries_then_never_sends_twice(hook, built, tmp_path) -> None:
    state, url = hook
    warnings = build_warnings(built("pv-thermal").doc)
    ledger = DirLedger(tmp_path / "ledger")
    results = send_warnings(warnings, [url], ledger, attempts=3, backoff_s=0.01, timeout_s=5)
    assert [r["status"] for r in results] == ["sent"] * len(warnings)
    assert all(r["attempts"] == 2 for r in results)  # the first attempt failed with 503
    assert all(state.attempts[w["id"]] == 2 for w in warnings)
    assert {b["id"] for b in state.accepted} == {w["id"] for w in warnings}
    assert all("secret" not in r["url"] for r in results)  # no token in results
    assert "secret" not in json.dumps([ledger.get(w["id"]) for w in warnings])  # nor in the ledger

    again = send_warnings(warnings, [url], ledger, attempts=3, backoff_s=0.01, timeout_s=5)
    assert [r["status"] for r in again] == ["already-sent"] * len(warnings)
    assert len(state.accepted) == len(warnings)
    assert sum(state.attempts.values()) == 2 * len(warnings)


def test_client_errors_are_not_retried_and_not_recorded(hook, built, tmp_path) -> None:
    state, url = hook
    state.fail_first, state.status = False, 400
    warnings = build_warnings(built("pv-thermal").doc)[:1]
    ledger = DirLedger(tmp_path / "ledger")
    results = send_warnings(warnings, [url], ledger, attempts=3, backoff_s=0.01)
    assert (
        results[0]["status"] == "failed" and results[0]["http_status"] == 400 and results[0]["attempts"] == 1
    )
    assert ledger.get(warnings[0]["id"]) is None
    state.status = 200
    assert send_warnings(warnings, [url], ledger, attempts=3, backoff_s=0.01)[0]["status"] == "sent"


def test_unreachable_webhook_fails_after_all_attempts(built, tmp_path) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    warnings = build_warnings(built("pv-thermal").doc)[:1]
    r = send_warnings(
        warnings, [f"http://127.0.0.1:{port}/x"], DirLedger(tmp_path), attempts=2, backoff_s=0.01, timeout_s=1
    )
    assert r[0]["status"] == "failed" and r[0]["attempts"] == 2 and r[0]["error"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, FindingsConfig()),
        (
            {"SKYINSPECT_WEBHOOK_URLS": "http://a/x, https://b/y"},
            FindingsConfig(webhook_urls=("http://a/x", "https://b/y")),
        ),
        ({"SKYINSPECT_MODULE_POWER_W": "550"}, FindingsConfig(module_power_w=550.0)),
    ],
)
def test_config_from_env(env: dict, expected: FindingsConfig) -> None:
    assert FindingsConfig.from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SKYINSPECT_WEBHOOK_URLS": "ftp://x"}, "not an http"),
        ({"SKYINSPECT_WEBHOOK_ATTEMPTS": "many"}, "WEBHOOK_ATTEMPTS"),
        ({"SKYINSPECT_MODULE_POWER_W": "-1"}, "must be positive"),
    ],
)
def test_config_errors(env: dict, message: str) -> None:
    with pytest.raises(FindingsConfigError, match=message):
        FindingsConfig.from_env(env)
