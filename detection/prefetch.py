"""Overlap reading with inference: ONE place for the background stages the cloud path and the edge runtime share.

Decoding a JPEG / TIFF (``cv2.imdecode``), thermal windowing and the letterbox (``cv2.resize``,
``cv2.copyMakeBorder``) release the GIL, so a thread doing them for the next frames runs in parallel with the
model working on this one. Two shapes of the same idea:

* :func:`prefetch_map` — ``load(item)`` for each item of a known list in a small thread pool, results in input
  order, at most ``window`` in flight (bounded memory however long the list). Used by
  :func:`detection.flight.detect_flight` (download + decode from the object store) and by the benches.
* :func:`background` — drain an iterator that produces work itself (a watched folder, a video) in one reader
  thread into a bounded queue; the consumer iterates, errors in the reader are re-raised in the consumer, and a
  ``stop`` event ends both. Used by :class:`jetson.pipeline.Pipeline`.

Both accept a ``prepare`` step run in the same background thread after loading — e.g.
:meth:`detection.inference.Detector.prepare_one` (model view + letterbox + float tensor) — so the model thread only
stacks prepared tensors, runs the model and decodes its output.

On a 2-core machine one loader thread is enough: the loader is a fraction of the model's time, and a second one
would take CPU from the model's own threads.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_END = object()


def prefetch_map(
    load: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    window: int | None = None,
    name: str = "prefetch",
) -> Iterator[R]:
    """Yield ``load(item)`` for every item, in order, computed ahead in ``workers`` threads.

    Args:
        load: the work per item (runs in a pool thread; exceptions are re-raised when that item is yielded).
        items: consumed lazily, as the window frees up.
        workers: pool threads.
        window: at most this many items loaded or loading ahead of the consumer (default ``2 * workers``).
        name: thread name prefix (visible in ``py-spy`` and logs).

    Raises:
        ValueError: ``workers`` or ``window`` below 1.
    """
    if workers < 1:
        raise ValueError(f"prefetch_map: workers must be >= 1, got {workers}")
    window = 2 * workers if window is None else int(window)
    if window < 1:
        raise ValueError(f"prefetch_map: window must be >= 1, got {window}")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(load, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()


def background(
    produce: Callable[[threading.Event], Iterable[T]],
    stop: threading.Event | None = None,
    maxsize: int = 4,
    prepare: Callable[[T], R] | None = None,
    name: str = "reader",
    poll_s: float = 0.2,
) -> Iterator[T | R]:
    """Iterate ``produce(stop)`` in a reader thread through a bounded queue (optionally ``prepare``-d there).

    The consumer gets the items in order. When the consumer stops early (``break``, an exception, closing the
    generator) ``stop`` is set and the reader ends at its next item. When the reader raises, the consumer gets the
    items queued before it, then the same exception.

    Args:
        produce: called once in the reader thread with the stop event; should return soon after it is set.
        stop: shared stop event (created when ``None``); set on exit either way.
        maxsize: queue bound: items read ahead of the consumer (memory stays flat).
        prepare: extra work per item in the reader thread (e.g. pre-processing for the model).
        name: the reader thread's name.
        poll_s: how often a blocked side re-checks ``stop``.

    Raises:
        ValueError: ``maxsize`` below 1.
        Exception: whatever ``produce`` or ``prepare`` raised in the reader.
    """
    if maxsize < 1:
        raise ValueError(f"background: maxsize must be >= 1, got {maxsize}")
    stop = threading.Event() if stop is None else stop
    q: queue.Queue[object] = queue.Queue(maxsize=maxsize)
    error: list[BaseException] = []

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=poll_s)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            for item in produce(stop):
                if stop.is_set() or not put(prepare(item) if prepare is not None else item):
                    return
        except BaseException as exc:
            error.append(exc)
        # the end marker, unless the consumer is gone (stop set) and nobody would read it
        while True:
            try:
                q.put(_END, timeout=poll_s)
                return
            except queue.Full:
                if stop.is_set():
                    return

    thread = threading.Thread(target=reader, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = q.get(timeout=poll_s * 2.5)
            except queue.Empty:
                if stop.is_set() or not thread.is_alive():
                    break
                continue
            if item is _END:
                break
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=10)
    if error:
        raise error[0]
