"""detection.detections: validation, indexing, merging, records, the duck-typed ultralytics adapter."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from detection.detections import Detections


def make(n: int = 3, **data) -> Detections:
    xyxy = np.arange(n * 4, dtype=np.float64).reshape(n, 4)
    return Detections(xyxy, np.linspace(0.9, 0.5, n), np.arange(n), data)


def test_dtypes_are_coerced() -> None:
    d = make(3)
    assert (d.xyxy.dtype, d.confidence.dtype, d.class_id.dtype) == (np.float32, np.float32, np.int32)
    assert len(d) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"xyxy": np.zeros((2, 3))}, r"xyxy: expected shape \(N, 4\), got \(2, 3\)"),
        ({"xyxy": np.zeros(4)}, r"xyxy: expected shape \(N, 4\), got \(4,\)"),
        ({"confidence": np.zeros(3)}, r"confidence: expected shape \(2\) with N=2 from xyxy, got \(3,\)"),
        ({"class_id": np.zeros((2, 1))}, r"class_id: expected shape \(2\) with N=2 from xyxy, got \(2, 1\)"),
        ({"class_id": np.array([0.5, 1.0])}, r"class_id: expected whole numbers for int32, got float64"),
        ({"confidence": np.array(["a", "b"])}, r"confidence: expected dtype float32, got <U1"),
        ({"data": {"tile": np.zeros(5)}}, r"data\['tile'\]: expected first dimension N=2, got shape \(5,\)"),
        ({"data": [1, 2]}, r"data: expected a dict of arrays, got list"),
    ],
)
def test_validation_errors_show_expected_and_actual(kwargs, match) -> None:
    args = {"xyxy": np.zeros((2, 4)), "confidence": np.zeros(2), "class_id": np.zeros(2, int), "data": {}}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Detections(**args)


def test_empty() -> None:
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.to_records() == []


@pytest.mark.parametrize(
    ("index", "want"),
    [
        (1, [1]),
        (-1, [2]),
        (slice(0, 2), [0, 1]),
        (np.array([True, False, True]), [0, 2]),
        (np.array([2, 0]), [2, 0]),
        ([1], [1]),
        (np.array([], dtype=int), []),
    ],
)
def test_getitem_returns_detections(index, want) -> None:
    d = make(3, tile=np.array([10, 11, 12]))
    sub = d[index]
    assert isinstance(sub, Detections)
    assert sub.class_id.tolist() == want and sub.data["tile"].tolist() == [10 + w for w in want]


@pytest.mark.parametrize(
    ("index", "error"), [(3, IndexError), (-4, IndexError), (np.array([True, False]), IndexError)]
)
def test_getitem_errors(index, error) -> None:
    with pytest.raises(error):
        make(3)[index]


def test_merge() -> None:
    a, b = make(2, tile=np.array([0, 0])), make(3, tile=np.array([1, 1, 1]))
    m = Detections.merge([a, Detections.empty(), b])
    assert len(m) == 5 and m.data["tile"].tolist() == [0, 0, 1, 1, 1]
    assert len(Detections.merge([])) == 0
    with pytest.raises(ValueError, match="data keys differ"):
        Detections.merge([a, make(1)])


def test_records_round_trip_and_json_safe() -> None:
    d = make(2, tile=np.array([3, 4], dtype=np.int32), track=np.array([[1, 2], [3, 4]]))
    recs = d.to_records({0: "crack", 1: "contamination"})
    text = json.dumps(recs)  # JSON-safe: no numpy scalars
    back = Detections.from_records(json.loads(text))
    assert recs[0]["class_name"] == "crack" and recs[1]["class_name"] == "contamination"
    np.testing.assert_allclose(back.xyxy, d.xyxy, atol=0.01)
    np.testing.assert_allclose(back.confidence, d.confidence, atol=1e-5)
    assert back.class_id.tolist() == d.class_id.tolist()
    assert back.data["tile"].tolist() == [3, 4] and back.data["track"].tolist() == [[1, 2], [3, 4]]
    assert make(1).to_records(["only"])[0]["class_name"] == "only"


def test_from_records_names_missing_keys() -> None:
    with pytest.raises(ValueError, match="record 1 lacks confidence, class_id"):
        Detections.from_records(
            [{"xyxy": [0, 0, 1, 1], "confidence": 1, "class_id": 0}, {"xyxy": [0, 0, 1, 1]}]
        )


class FakeTensor:
    """Stands in for a torch tensor: only ``.cpu().numpy()`` is used by the adapter."""

    def __init__(self, value) -> None:
        self.value = np.asarray(value)

    def cpu(self) -> FakeTensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.value


@pytest.mark.parametrize("wrap", [FakeTensor, np.asarray])
def test_from_ultralytics_duck_typed(wrap) -> None:
    boxes = SimpleNamespace(
        xyxy=wrap([[1, 2, 3, 4], [5, 6, 7, 8]]), conf=wrap([0.9, 0.4]), cls=wrap([2.0, 0.0])
    )
    d = Detections.from_ultralytics(SimpleNamespace(boxes=boxes))
    assert d.xyxy.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and d.class_id.tolist() == [2, 0]
    assert len(Detections.from_ultralytics(SimpleNamespace(boxes=None))) == 0


def test_sorted_and_area() -> None:
    d = Detections(np.array([[0, 0, 2, 2], [0, 0, 3, 1]]), np.array([0.1, 0.7]), np.array([0, 1]))
    assert d.sorted().confidence.tolist() == pytest.approx([0.7, 0.1])
    assert d.area.tolist() == [4.0, 3.0]
