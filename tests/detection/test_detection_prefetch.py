"""detection.prefetch: ordered, bounded background loading; errors and early stops; prepared images."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from fixtures_inference import synthetic_frame

from detection.inference import Detector
from detection.prefetch import background, prefetch_map


@pytest.mark.parametrize(("workers", "window", "n"), [(1, None, 0), (1, 1, 5), (2, 3, 12), (4, 8, 30)])
def test_prefetch_map_keeps_order_and_bounds_the_window(workers, window, n) -> None:
    rng = np.random.default_rng(n)
    delays = rng.uniform(0, 0.01, n)
    lock = threading.Lock()
    started, consumed, ahead = [0], [0], [0]

    def load(i: int) -> tuple[int, str]:
        with lock:
            started[0] += 1
            ahead[0] = max(ahead[0], started[0] - consumed[0])
        time.sleep(delays[i])
        return i, threading.current_thread().name

    out = []
    for i, name in prefetch_map(load, range(n), workers=workers, window=window, name="unit"):
        consumed[0] += 1
        out.append(i)
        assert name.startswith("unit")
    assert out == list(range(n))
    assert ahead[0] <= (window or 2 * workers)


def test_prefetch_map_reraises_at_the_failing_item() -> None:
    def load(i: int) -> int:
        if i == 3:
            raise ValueError("item 3 is broken")
        return i

    got = []
    with pytest.raises(ValueError, match="item 3 is broken"):
        for i in prefetch_map(load, range(10), workers=2):
            got.append(i)
    assert got == [0, 1, 2]


@pytest.mark.parametrize(("kwargs", "match"), [({"workers": 0}, "workers"), ({"window": 0}, "window")])
def test_prefetch_map_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        list(prefetch_map(str, [1], **kwargs))


def test_background_prepares_in_the_reader_and_keeps_order() -> None:
    main = threading.current_thread().name
    out = list(
        background(
            lambda stop: iter(range(20)), prepare=lambda i: (i, threading.current_thread().name), maxsize=2
        )
    )
    assert [i for i, _ in out] == list(range(20))
    assert {name for _, name in out} == {"reader"} != {main}


def test_background_reraises_after_the_queued_items() -> None:
    def produce(stop: threading.Event):
        yield from range(3)
        raise OSError("video stream lost")

    got = []
    with pytest.raises(OSError, match="video stream lost"):
        for i in background(produce):
            got.append(i)
    assert got == [0, 1, 2]


def test_background_early_stop_ends_the_producer() -> None:
    stop = threading.Event()
    produced = []

    def produce(ev: threading.Event):
        i = 0
        while not ev.is_set():
            produced.append(i)
            yield i
            i += 1

    items = background(produce, stop, maxsize=2, poll_s=0.01)
    for i in items:
        if i == 5:
            break
    items.close()
    assert stop.is_set()
    n = len(produced)
    time.sleep(0.1)
    assert len(produced) == n <= 5 + 1 + 2 + 1  # consumed + the one being put + the queue + one in hand


def test_background_argument_check() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        next(background(lambda stop: iter([1]), maxsize=0))


def test_predict_prepared_equals_predict_batch(onnx_model) -> None:
    det = Detector.from_onnx(onnx_model.path, conf=0.05, iou=0.45, batch_size=2, backend="onnxruntime")
    imgs = [synthetic_frame(h, w, seed=i) for i, (h, w) in enumerate([(512, 640), (300, 400), (3000, 4000)])]
    prepared = list(prefetch_map(det.prepare_one, imgs))
    assert prepared[0].tensor.shape == (3, 320, 320) and prepared[0].tensor.dtype == np.float32
    got = det.predict_prepared(prepared)
    want = det.predict_batch(imgs)
    assert sum(len(d) for d in want) > 0
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.confidence, b.confidence)
