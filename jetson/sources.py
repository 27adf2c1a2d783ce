"""Where frames come from: a watched folder (the drone's SD card copied onto the device), a video file or a stream.

Each source yields :class:`Frame` objects, decoded, in a reader thread (see :mod:`jetson.pipeline`), so decoding
overlaps inference.

* Folder: polled every ``poll_s``. A file is read only once its size and mtime have been unchanged for
  ``stable_s`` seconds, so a file still being copied is never read half-written; hidden files and temporary names
  (``*.part``, ``*.tmp``, ``*.crdownload``) are ignored. The source id of an image is the SHA-256 of its bytes, so
  the same photo copied twice is processed once; files the queue already finished are skipped without reading.
* Video file: every ``video_every_n``-th frame, or ``video_fps`` frames per second of video time. Its source id is
  derived from path, size and mtime; after a restart frames up to the last stored one are skipped.
* Stream (``rtsp://``, ``http://``…): sampled the same way; live, so a restart opens a new session (source id
  from URL and start time) — frames missed while the runtime was down cannot be replayed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detection.images import IMAGE_SUFFIXES, ImageReadError, decode_image
from jetson.config import SourceConfig
from jetson.outbox import Outbox

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".m4v", ".ts"})
TEMP_SUFFIXES = frozenset({".part", ".tmp", ".crdownload", ".partial", ".swp"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass
class Frame:
    """One frame to process, or one that could not be read (``image`` None, ``error`` set).

    Attributes:
        source_id: stable id of the source (content hash for images).
        frame: frame index within the source (0 for an image).
        kind: ``image``, ``video`` or ``stream``.
        origin: file path or URL.
        image: (H, W, 3) uint8 BGR, (H, W) uint8, or (H, W) uint16 radiometric; None when unreadable.
        last: this is the source's last frame (the source is done once it is stored).
        timestamp_s: position in the video (s), or the file's mtime for images.
        data: the encoded bytes for images (kept for optional upload), else None.
    """

    source_id: str
    frame: int
    kind: str
    origin: str
    image: np.ndarray | None
    last: bool = True
    timestamp_s: float = 0.0
    error: str | None = None
    data: bytes | None = field(default=None, repr=False)
    suffix: str = ".jpg"
    full_shape: tuple[int, int] | None = None
    """The frame's (h, w) when ``image`` is a reduced decode of it (:data:`Decoder`), else ``None``."""

    @property
    def shape(self) -> tuple[int, int]:
        """The frame's full (h, w), whatever scale ``image`` was decoded at (needs ``image``)."""
        if self.full_shape is not None:
            return self.full_shape
        if self.image is None:
            raise ValueError(f"{self.origin}: an unreadable frame has no shape")
        return int(self.image.shape[0]), int(self.image.shape[1])


Decoder = Callable[[bytes, Path], tuple[np.ndarray, "tuple[int, int] | None"]]
"""Image bytes → (pixels, the full (h, w) when the pixels are a reduced decode): the on-site pipeline's
:meth:`jetson.pipeline.Pipeline.decode` (JPEGs detected whole decode at the scale the model needs)."""


def is_stream(source: str) -> bool:
    return source.lower().startswith(STREAM_SCHEMES)


def _wanted(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or path.suffix.lower() in TEMP_SUFFIXES:
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES


class FolderWatcher:
    """Finds new, completely written image files in a folder (see the module docstring).

    Args:
        root: the folder.
        cfg: polling / stability settings.
        clock: time source (tests pass a fake one).
    """

    def __init__(self, root: Path, cfg: SourceConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.cfg = cfg
        self.clock = clock
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, first seen with them)

    def _listing(self) -> list[Path]:
        it = self.root.rglob("*") if self.cfg.recursive else self.root.iterdir()
        out = []
        for p in it:
            if any(part.startswith(".") for part in p.relative_to(self.root).parts[:-1]):
                continue
            if _wanted(p):
                out.append(p)
        return sorted(out)

    def poll(self, skip: set[tuple[str, int, int]]) -> tuple[list[tuple[Path, int, int]], int]:
        """One scan → (files ready to read as (path, size, mtime_ns), number still settling).

        ``skip`` holds (path, size, mtime_ns) of files already finished.
        """
        now = self.clock()
        ready: list[tuple[Path, int, int]] = []
        settling = 0
        present = set()
        for path in self._listing():
            try:
                st = path.stat()
            except FileNotFoundError:  # moved away between listing and stat
                continue
            if not path.is_file():
                continue
            present.add(path)
            sig = (st.st_size, st.st_mtime_ns)
            if (str(path), *sig) in skip:
                continue
            prev = self._seen.get(path)
            if prev is None or prev[:2] != sig:
                self._seen[path] = (*sig, now)
                settling += 1
                continue
            if now - prev[2] >= self.cfg.stable_s and st.st_size > 0:
                ready.append((path, *sig))
            else:
                settling += 1
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready, settling

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)


def read_image_frame(
    path: Path, size: int, mtime_ns: int, outbox: Outbox, decode: Decoder | None = None
) -> Frame | None:
    """Read and decode (``decode``, default full size) one image file → a :class:`Frame` (error frame when
    undecodable); None if already done."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        sid = hashlib.sha256(f"unreadable:{path}:{size}:{mtime_ns}".encode()).hexdigest()
        outbox.begin_source(sid, "image", str(path), size, mtime_ns)
        return Frame(sid, 0, "image", str(path), None, error=f"cannot read {path}: {exc.strerror or exc}")
    sid = hashlib.sha256(data).hexdigest()
    state = outbox.begin_source(sid, "image", str(path), size, mtime_ns)
    if state.state != "pending":
        # the same bytes were processed before (the card copied twice): remember this path as finished too
        logger.info("%s: already processed as source %s (%s), skipped", path, sid[:12], state.origin)
        alias = hashlib.sha256(f"copy:{path}:{size}:{mtime_ns}".encode()).hexdigest()
        outbox.begin_source(alias, "image", str(path), size, mtime_ns)
        outbox.finish_source(alias)
        return None
    try:
        image, full = decode(data, path) if decode is not None else (decode_image(data, path), None)
    except ImageReadError as exc:
        return Frame(sid, 0, "image", str(path), None, error=str(exc), data=data, suffix=path.suffix.lower())
    return Frame(sid, 0, "image", str(path), image, timestamp_s=mtime_ns / 1e9, data=data,
                 suffix=path.suffix.lower(), full_shape=full)  # fmt: skip


def iter_folder(
    root: Path,
    cfg: SourceConfig,
    outbox: Outbox,
    stop: threading.Event,
    once: bool = False,
    decode: Decoder | None = None,
) -> Iterator[Frame]:
    """Frames of new images under ``root`` until ``stop`` is set (``once``: until nothing is left to settle).

    A single image file as ``root`` yields that one frame. ``decode``: see :func:`read_image_frame`.
    """
    if root.is_file():
        st = root.stat()
        frame = read_image_frame(root, st.st_size, st.st_mtime_ns, outbox, decode)
        if frame is not None:
            yield frame
        return
    watcher = FolderWatcher(root, cfg)
    handed: set[tuple[str, int, int]] = (
        set()
    )  # given out in this session (their results may not be stored yet)
    while not stop.is_set():
        ready, settling = watcher.poll(outbox.finished_origins() | handed)
        for path, size, mtime_ns in ready:
            if stop.is_set():
                return
            watcher.forget(path)
            handed.add((str(path), size, mtime_ns))
            frame = read_image_frame(path, size, mtime_ns, outbox, decode)
            if frame is not None:
                yield frame
        if once and not ready and not settling:
            return
        if not ready:
            stop.wait(min(cfg.poll_s, max(cfg.stable_s, 0.05)) if once else cfg.poll_s)


def sample_step(native_fps: float, cfg: SourceConfig) -> int:
    """Take every ``step``-th frame: ``video_every_n`` if set, else native fps / ``video_fps`` (at least 1)."""
    if cfg.video_every_n > 0:
        return cfg.video_every_n
    fps = native_fps if native_fps and native_fps > 0 else 30.0
    return max(1, round(fps / cfg.video_fps))


def iter_video(source: str, cfg: SourceConfig, outbox: Outbox, stop: threading.Event) -> Iterator[Frame]:
    """Sampled frames of a video file or stream (see the module docstring).

    Raises:
        OSError: the video or stream cannot be opened.
    """
    import cv2

    stream = is_stream(source)
    if stream:
        sid = hashlib.sha256(f"stream:{source}:{time.time_ns()}".encode()).hexdigest()
        state = outbox.begin_source(sid, "stream", source)
    else:
        st = Path(source).stat()
        sid = hashlib.sha256(
            f"video:{Path(source).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()
        ).hexdigest()
        state = outbox.begin_source(sid, "video", source, st.st_size, st.st_mtime_ns)
        if state.state != "pending":
            logger.info("%s: already processed (%s), skipped", source, state.state)
            return
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        outbox.finish_source(sid, error=f"cannot open video {source}")
        raise OSError(f"cannot open video or stream {source}")
    try:
        step = sample_step(cap.get(cv2.CAP_PROP_FPS), cfg)
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        logger.info(
            "%s: taking every %d-th frame (%.1f fps native), resuming after frame %d",
            source,
            step,
            fps,
            state.last_frame,
        )
        index = -1
        pending: tuple[int, np.ndarray] | None = None
        while not stop.is_set():
            ok = cap.grab()
            if not ok:
                break
            index += 1
            if index % step or index <= state.last_frame:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                yield Frame(
                    sid,
                    index,
                    "stream" if stream else "video",
                    source,
                    None,
                    last=False,
                    error=f"frame {index} undecodable",
                )
                continue
            if pending is not None:
                yield Frame(
                    sid,
                    pending[0],
                    "stream" if stream else "video",
                    source,
                    pending[1],
                    last=False,
                    timestamp_s=pending[0] / fps if fps else 0.0,
                )
            pending = (index, image)
        if pending is not None:
            yield Frame(
                sid,
                pending[0],
                "stream" if stream else "video",
                source,
                pending[1],
                last=not stop.is_set(),
                timestamp_s=pending[0] / fps if fps else 0.0,
            )
        elif not stop.is_set():
            outbox.finish_source(sid)
    finally:
        cap.release()
