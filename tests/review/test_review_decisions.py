"""Decisions without HTTP: box checks (table-driven), a real two-thread race on one version, password hashes and
signed cookies."""

from __future__ import annotations

import os
import threading

import pytest

from review import auth
from review.decisions import Conflict, Decision, DecisionError, apply_decision, parse_box
from review.importer import import_site
from tests.review.conftest import SITE


@pytest.mark.parametrize(
    ("values", "size", "expected"),
    [
        ([1, 2, 3, 4], (10, 10), (1.0, 2.0, 3.0, 4.0)),
        ("1 2 3 4", (10, 10), (1.0, 2.0, 3.0, 4.0)),
        ("1,2,3.5,4", (None, None), (1.0, 2.0, 3.5, 4.0)),
        ([0, 0, 10, 10], (10, 10), (0.0, 0.0, 10.0, 10.0)),
        ([0, 0, 10.5, 10], (10, 10), "outside"),
        ([-1, 0, 5, 5], (10, 10), "outside"),
        ([5, 0, 5, 5], (10, 10), "x1 < x2"),
        ([0, 6, 5, 5], (10, 10), "y1 < y2"),
        ([0, 0, 5], (10, 10), "four finite"),
        ([0, 0, 5, "inf"], (10, 10), "four finite"),
        ("a b c d", (10, 10), "four numbers"),
        (None, (10, 10), "four numbers"),
    ],
)
def test_parse_box(values, size, expected) -> None:
    if isinstance(expected, str):
        with pytest.raises(DecisionError, match=expected):
            parse_box(values, *size)
    else:
        assert parse_box(values, *size) == expected


def test_two_reviewers_racing_on_one_version(review_env) -> None:
    engine = review_env.app.state.review.engine
    import_site(engine, review_env.store, SITE)
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def decide(user: str, action: str) -> None:
        barrier.wait()
        try:
            results[user] = apply_decision(engine, SITE, "F1", "F0002", Decision(action, 1), user)["status"]
        except Conflict as exc:
            results[user] = exc

    threads = [threading.Thread(target=decide, args=a) for a in (("rev1", "confirm"), ("rev2", "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    won = [u for u, r in results.items() if isinstance(r, str)]
    lost = [u for u, r in results.items() if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert f"changed by {won[0]}" in str(results[lost[0]])
    with engine.connect() as conn:
        from review import db

        row = db.get_finding(conn, SITE, "F1", "F0002")
        trail = db.audit_trail(conn, SITE, "F1", "F0002")
    assert row["version"] == 2 and row["reviewer"] == won[0]
    assert [e["user"] for e in trail] == ["import", won[0]]


def test_password_hash_and_signer(tmp_path) -> None:
    h = auth.hash_password("s3cret-enough")
    assert h.startswith("scrypt$") and "s3cret-enough" not in h
    assert auth.hash_password("s3cret-enough") != h  # salted
    assert auth.verify_password("s3cret-enough", h) and not auth.verify_password("s3cret-enougH", h)
    assert not auth.verify_password("x", "garbage")
    secret = auth.load_secret(tmp_path)
    assert auth.load_secret(tmp_path) == secret and len(secret) == 32
    signer = auth.Signer(secret)
    cookie, sid = signer.issue("alice")
    assert signer.read(cookie) == ("alice", sid)
    assert signer.read(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    assert auth.Signer(b"other" * 8).read(cookie) is None
    assert signer.check_csrf(sid, signer.csrf_token(sid)) and not signer.check_csrf(sid, "")
    expired = auth.Signer(secret, ttl_s=-1)
    assert expired.read(expired.issue("alice")[0]) is None


@pytest.mark.skipif(
    not os.environ.get("REVIEW_TEST_POSTGRES_URL"),
    reason="set REVIEW_TEST_POSTGRES_URL=postgresql://user:pw@127.0.0.1/throwaway_db to test PostgreSQL",
)
def test_postgresql_import_decide_race_status(review_env) -> None:
    """The same flow on PostgreSQL (tables are created and dropped again: point it at a throwaway database)."""
    from review import db
    from review.status import review_status

    url = os.environ["REVIEW_TEST_POSTGRES_URL"]
    engine = db.connect(url)
    try:
        assert import_site(engine, review_env.store, SITE).inserted == 5
        assert import_site(engine, review_env.store, SITE).unchanged == 5
        apply_decision(
            engine, SITE, "F1", "F0003", Decision("reclassify", 1, class_name="delamination"), "rev1"
        )
        with pytest.raises(Conflict, match="changed by rev1"):
            apply_decision(engine, SITE, "F1", "F0003", Decision("reject", 1), "rev2")
        errors: list[BaseException] = []

        def decide(user: str) -> None:
            try:
                apply_decision(engine, SITE, "F2", "F0001", Decision("confirm", 1), user)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=decide, args=(u,)) for u in ("rev1", "rev2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(errors) == 1 and isinstance(errors[0], Conflict)
        got = review_status(SITE, "F1", db_url=url)
        assert got["F0003"]["status"] == "confirmed" and got["F0003"]["class_name"] == "delamination"
        with engine.connect() as conn:
            trail = db.audit_trail(conn, SITE, "F1", "F0003")
        assert [(e["user"], e["action"]) for e in trail] == [("import", "import"), ("rev1", "reclassify")]
        assert trail[-1]["before"]["class_name"] == "snail_trail"
    finally:
        db.metadata.drop_all(engine)
        engine.dispose()
