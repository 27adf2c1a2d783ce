"""detection.evaluate.SizeRecall: recall of small objects vs the rest at one operating point."""

from __future__ import annotations

import numpy as np
import pytest

from detection.evaluate import SizeRecall

FRAME = (3000, 4000)  # h, w: small = longest side < 100 px
SMALL = [100.0, 100.0, 150.0, 140.0]  # 50 × 40 px
LARGE = [1000.0, 1000.0, 1400.0, 1300.0]  # 400 × 300 px


def _arr(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


@pytest.mark.parametrize(
    ("dets", "conf", "cls", "small_found", "other_found"),
    [
        ([], [], [], 0, 0),  # nothing detected
        ([SMALL, LARGE], [0.9, 0.9], [0, 1], 1, 1),  # both found
        ([SMALL, LARGE], [0.1, 0.9], [0, 1], 0, 1),  # small one below the operating point
        ([SMALL, LARGE], [0.9, 0.9], [1, 1], 0, 1),  # small one with the wrong class
        ([[100, 100, 300, 300], LARGE], [0.9, 0.9], [0, 1], 0, 1),  # small one badly placed (IoU < 0.5)
        ([SMALL, SMALL, LARGE], [0.9, 0.8, 0.9], [0, 0, 1], 1, 1),  # a duplicate matches nothing more
    ],
)
def test_size_buckets(dets: list, conf: list, cls: list, small_found: int, other_found: int) -> None:
    sr = SizeRecall(conf=0.25)
    sr.add(_arr(dets), np.asarray(conf), np.asarray(cls, dtype=np.int64), _arr([SMALL, LARGE]),
           np.asarray([0, 1]), FRAME)  # fmt: skip
    out = sr.to_dict()
    assert (out["small"]["objects"], out["other"]["objects"]) == (1, 1)
    assert (out["small"]["found"], out["other"]["found"]) == (small_found, other_found)
    assert out["small"]["recall"] == small_found


def test_small_is_relative_to_the_frame() -> None:
    """The same 50 px box is small on a 4000 px frame and not on a 640 px one."""
    big, little = SizeRecall(0.25), SizeRecall(0.25)
    for sr, hw in ((big, (3000, 4000)), (little, (512, 640))):
        sr.add(_arr([]), np.zeros(0), np.zeros(0, dtype=np.int64), _arr([SMALL]), np.asarray([0]), hw)
    assert big.to_dict()["small"]["objects"] == 1 and little.to_dict()["other"]["objects"] == 1
    assert big.to_dict()["other"]["recall"] is None


def test_bad_operating_point() -> None:
    with pytest.raises(ValueError, match=r"recall_conf must be in 0\.\.1"):
        SizeRecall(conf=1.5)
