"""Frame sources: the folder watcher never reads a file still being written; video sampling and resume."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import frame, write_images

from jetson.config import SourceConfig
from jetson.outbox import Outbox
from jetson.sources import FolderWatcher, is_stream, iter_folder, iter_video, sample_step


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def outbox(tmp_path: Path):
    box = Outbox(tmp_path / "queue.sqlite")
    yield box
    box.close()


def test_a_growing_file_is_ready_only_after_it_stopped_changing(tmp_path: Path) -> None:
    clock = Clock()
    watcher = FolderWatcher(tmp_path, SourceConfig(stable_s=2.0), clock)
    target = tmp_path / "DJI_0001.JPG"
    target.write_bytes(b"x" * 100)
    assert watcher.poll(set()) == ([], 1)  # first sighting
    clock.now = 1.0
    with target.open("ab") as fh:  # still being copied
        fh.write(b"y" * 100)
    assert watcher.poll(set())[0] == []
    clock.now = 2.5  # unchanged since t=1.0, but only 1.5 s
    assert watcher.poll(set())[0] == []
    clock.now = 3.1
    ready, settling = watcher.poll(set())
    st = target.stat()
    assert ready == [(target, st.st_size, st.st_mtime_ns)] and settling == 0
    assert watcher.poll({(str(target), st.st_size, st.st_mtime_ns)}) == ([], 0)  # finished: skipped


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        ("a.jpg", True),
        ("b.TIFF", True),
        ("c.png", True),
        (".hidden.jpg", False),
        ("d.jpg.part", False),
        ("e.tmp", False),
        ("f.txt", False),
        ("sub/g.jpg", True),
        (".cache/h.jpg", False),
    ],
)
def test_which_files_are_watched(tmp_path: Path, name: str, wanted: bool) -> None:
    clock = Clock()
    watcher = FolderWatcher(tmp_path, SourceConfig(stable_s=0.0), clock)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"data")
    watcher.poll(set())
    clock.now = 1.0
    ready, _ = watcher.poll(set())
    assert [r[0] for r in ready] == ([path] if wanted else [])


def test_empty_files_wait(tmp_path: Path) -> None:
    clock = Clock()
    watcher = FolderWatcher(tmp_path, SourceConfig(stable_s=0.0), clock)
    (tmp_path / "empty.jpg").write_bytes(b"")
    watcher.poll(set())
    clock.now = 5.0
    assert watcher.poll(set()) == ([], 1)


def test_iter_folder_once_decodes_new_images_and_skips_copies(tmp_path: Path, outbox: Outbox) -> None:
    card = tmp_path / "card"
    paths = write_images(card, 3)
    (card / "copy").mkdir()
    (card / "copy" / "same.jpg").write_bytes(paths[0].read_bytes())  # the same photo copied twice
    (card / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    cfg = SourceConfig(stable_s=0.05, poll_s=0.02)
    frames = []
    for f in iter_folder(card, cfg, outbox, threading.Event(), once=True):
        frames.append(f)  # store as the pipeline does, so the copy is recognised when it is read
        outbox.add_result(f"r{len(frames)}", f.source_id, 0, {}, source_done=True, source_error=f.error)
    good = [f for f in frames if f.image is not None]
    bad = [f for f in frames if f.image is None]
    assert len(good) == 3 and len(bad) == 1
    assert "broken.jpg" in bad[0].origin and "not a decodable image" in bad[0].error
    assert all(f.image.shape == (96, 128, 3) and f.last for f in good)
    assert len({f.source_id for f in good}) == 3
    assert outbox.counts()["sources_done"] == 4  # three photos + the copy's path, remembered as done


@pytest.mark.parametrize(
    ("every_n", "fps", "native", "step"),
    [(0, 1.0, 30.0, 30), (0, 5.0, 25.0, 5), (3, 1.0, 30.0, 3), (0, 100.0, 30.0, 1), (0, 1.0, 0.0, 30)],
)
def test_sample_step(every_n: int, fps: float, native: float, step: int) -> None:
    assert sample_step(native, SourceConfig(video_every_n=every_n, video_fps=fps)) == step


def _video(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    assert writer.isOpened()
    for i in range(n):
        writer.write(frame(64, 96, seed=i))
    writer.release()
    return path


def test_video_sampling_and_resume_after_a_stop(tmp_path: Path, outbox: Outbox) -> None:
    video = _video(tmp_path / "flight.avi", 20)
    cfg = SourceConfig(video_every_n=4)
    frames = list(iter_video(str(video), cfg, outbox, threading.Event()))
    assert [f.frame for f in frames] == [0, 4, 8, 12, 16]
    assert [f.last for f in frames] == [False] * 4 + [True]
    assert all(isinstance(f.image, np.ndarray) and f.image.shape == (64, 96, 3) for f in frames)
    # pretend frames 0 and 4 were stored before a crash: a restart resumes after frame 4
    for f in frames[:2]:
        outbox.add_result(f"r{f.frame}", f.source_id, f.frame, {})
    again = list(iter_video(str(video), cfg, outbox, threading.Event()))
    assert [f.frame for f in again] == [8, 12, 16]
    outbox.add_result("r16", again[-1].source_id, 16, {}, source_done=True)
    assert list(iter_video(str(video), cfg, outbox, threading.Event())) == []


def test_unopenable_video_raises(tmp_path: Path, outbox: Outbox) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(OSError, match="cannot open video"):
        list(iter_video(str(bad), SourceConfig(), outbox, threading.Event()))


@pytest.mark.parametrize(
    ("source", "stream"), [("rtsp://10.0.0.2/live", True), ("/data/a.mp4", False), ("HTTP://x/y", True)]
)
def test_is_stream(source: str, stream: bool) -> None:
    assert is_stream(source) is stream
