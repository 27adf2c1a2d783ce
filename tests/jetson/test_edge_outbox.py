"""The SQLite outbox: durability pragmas, one-transaction result + source state, idempotent replays, sync state."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from jetson.outbox import Outbox, OutboxError, result_id


@pytest.fixture
def outbox(tmp_path: Path):
    box = Outbox(tmp_path / "q" / "queue.sqlite")
    yield box
    box.close()


def test_wal_and_full_synchronous(outbox: Outbox) -> None:
    db = outbox._conn()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_result_ids_are_deterministic_and_distinct() -> None:
    assert result_id("src", 0, "m") == result_id("src", 0, "m")
    ids = {result_id(s, f, m) for s in ("a", "b") for f in (0, 1) for m in ("m1", "m2")}
    assert len(ids) == 8 and all(len(i) == 32 for i in ids)


def test_image_result_finishes_its_source_and_a_replay_adds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    with Outbox(path) as box:
        box.begin_source("s1", "image", "/card/a.jpg", 10, 99)
        assert box.add_result("r1", "s1", 0, {"result_id": "r1"}, source_done=True)
        assert box.finished_origins() == {("/card/a.jpg", 10, 99)}
    with Outbox(path) as box:  # reopened: everything is still there
        assert box.source("s1").state == "done"
        assert not box.add_result("r1", "s1", 0, {"result_id": "r1", "other": 1}, source_done=True)
        assert box.counts()["results"] == 1
        assert box.due(10)[0].payload == {"result_id": "r1"}


def test_video_frames_advance_last_frame_until_finished(outbox: Outbox) -> None:
    outbox.begin_source("v", "video", "/v.mp4", 1, 1)
    for frame in (0, 5, 10):
        outbox.add_result(f"r{frame}", "v", frame, {})
    state = outbox.source("v")
    assert (state.state, state.last_frame) == ("pending", 10)
    outbox.finish_source("v")
    assert outbox.source("v").state == "done"


def test_error_result_marks_the_source_failed(outbox: Outbox) -> None:
    outbox.begin_source("bad", "image", "/card/bad.jpg", 3, 4)
    outbox.add_result(
        "e1", "bad", 0, {"status": "error"}, status="error", source_done=True, source_error="corrupt"
    )
    state = outbox.source("bad")
    assert (state.state, state.error) == ("error", "corrupt")
    assert outbox.counts()["frame_errors"] == 1
    assert ("/card/bad.jpg", 3, 4) in outbox.finished_origins()


def test_failed_upload_waits_for_its_backoff_then_syncs(outbox: Outbox) -> None:
    outbox.begin_source("s", "image", "/x.jpg", 1, 1)
    outbox.add_result("r", "s", 0, {"n": 1}, source_done=True)
    outbox.mark_failed("r", "store down", retry_in_s=60)
    assert outbox.due(10) == []
    item = outbox.due(10, now=10**12)[0]
    assert item.attempts == 1
    assert outbox.counts()["retrying"] == 1
    assert outbox.get_state("last_sync_error") == "store down"
    outbox.mark_synced("r")
    assert outbox.due(10, now=10**12) == []
    counts = outbox.counts()
    assert (counts["synced"], counts["unsynced"]) == (1, 0)
    assert outbox.get_state("last_sync") is not None


def test_export_flags(outbox: Outbox) -> None:
    outbox.begin_source("s", "image", "/x.jpg", 1, 1)
    outbox.add_result("a", "s", 0, {"result_id": "a"})
    outbox.add_result("b", "s", 1, {"result_id": "b"})
    assert [r for r, _ in outbox.unexported()] == ["a", "b"]
    outbox.mark_exported(["a"])
    assert [r for r, _ in outbox.unexported()] == ["b"]


def test_two_threads_write_concurrently(outbox: Outbox) -> None:
    outbox.begin_source("s", "video", "/v.mp4", 1, 1)
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for i in range(50):
                outbox.add_result(f"r{offset + i}", "s", offset + i, {})
                if i % 5 == 0:
                    outbox.mark_synced(f"r{offset + i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert outbox.counts()["results"] == 100


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "queue.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxError, match=str(bad)):
        Outbox(bad)
    assert sqlite3.sqlite_version  # the module is the stdlib one
