"""``Detections``: the one data contract for boxes, shared by the cloud pipeline and the on-site runtime.

Pure numpy; adapters to other libraries are duck-typed classmethods so this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _check_array(name: str, value: Any, dtype: type, shape: tuple[int | None, ...], where: str) -> np.ndarray:
    """Coerce ``value`` to ``dtype`` and check its shape (``None`` in ``shape`` matches any length).

    Raises:
        ValueError: wrong number of dimensions or wrong length, naming expected and actual shapes.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise ValueError(f"Detections.{name}: cannot convert to an array ({exc})") from exc
    expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape, strict=False))
    if not ok:
        raise ValueError(
            f"Detections.{name}: expected shape {expected}{where}, got {arr.shape} ({arr.dtype})"
        )
    if arr.dtype != dtype:
        if np.issubdtype(dtype, np.integer) and arr.size and np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise ValueError(
                    f"Detections.{name}: expected whole numbers for {np.dtype(dtype)}, got {arr.dtype}"
                )
        try:
            arr = arr.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Detections.{name}: expected dtype {np.dtype(dtype)}, got {arr.dtype} ({exc})"
            ) from exc
    return arr


@dataclass
class Detections:
    """Detected objects of one image.

    Attributes:
        xyxy: (N, 4) float32 boxes ``x1, y1, x2, y2`` in pixels of the image they were found in.
        confidence: (N,) float32 scores in 0..1.
        class_id: (N,) int32 class ids (the model's ``names`` map them to taxonomy classes).
        data: extra per-detection arrays, each with N as its first dimension (e.g. ``tile_index``).
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = _check_array("xyxy", self.xyxy, np.float32, (None, 4), "")
        n = len(self.xyxy)
        where = f" with N={n} from xyxy"
        self.confidence = _check_array("confidence", self.confidence, np.float32, (n,), where)
        self.class_id = _check_array("class_id", self.class_id, np.int32, (n,), where)
        if not isinstance(self.data, Mapping):
            raise ValueError(f"Detections.data: expected a dict of arrays, got {type(self.data).__name__}")
        data: dict[str, np.ndarray] = {}
        for key, value in self.data.items():
            arr = np.asarray(value)
            if arr.ndim == 0 or len(arr) != n:
                raise ValueError(
                    f"Detections.data[{key!r}]: expected first dimension N={n}, got shape {arr.shape}"
                )
            data[str(key)] = arr
        self.data = data

    # ------------------------------------------------------------------------------------------------ build
    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    @classmethod
    def merge(cls, items: Sequence[Detections]) -> Detections:
        """Concatenate detections (e.g. of several tiles); ``data`` keys must be the same in every non-empty item.

        Raises:
            ValueError: the items carry different ``data`` keys.
        """
        parts = [d for d in items if len(d)]
        if not parts:
            return cls.empty()
        keys = set(parts[0].data)
        for d in parts[1:]:
            if set(d.data) != keys:
                raise ValueError(f"Detections.merge: data keys differ: {sorted(keys)} vs {sorted(d.data)}")
        return cls(
            np.concatenate([d.xyxy for d in parts]),
            np.concatenate([d.confidence for d in parts]),
            np.concatenate([d.class_id for d in parts]),
            {k: np.concatenate([d.data[k] for d in parts]) for k in sorted(keys)},
        )

    @classmethod
    def from_ultralytics(cls, result: Any) -> Detections:
        """Build from one ultralytics ``Results`` (duck-typed: reads ``.boxes.xyxy / .conf / .cls``).

        Tensors are converted with ``.cpu().numpy()`` when they have it; ultralytics itself is never imported.
        """
        boxes = getattr(result, "boxes", None)
        if boxes is None:
            return cls.empty()

        def arr(value: Any) -> np.ndarray:
            if hasattr(value, "cpu"):
                value = value.cpu()
            if hasattr(value, "numpy"):
                value = value.numpy()
            return np.asarray(value)

        xyxy = arr(boxes.xyxy).reshape(-1, 4)
        return cls(xyxy, arr(boxes.conf).reshape(-1), np.rint(arr(boxes.cls).reshape(-1)).astype(np.int32))

    # ------------------------------------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int] | Sequence[bool]) -> Detections:
        """Select detections by int, slice, boolean mask (N,) or index array; always returns ``Detections``.

        Raises:
            IndexError: an int out of range, or a boolean mask of the wrong length.
        """
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= int(index) < n:
                raise IndexError(f"Detections index {index} out of range for {n} detections")
            idx: Any = [int(index)]
        elif isinstance(index, slice):
            idx = index
        else:
            idx = np.asarray(index)
            if idx.dtype == bool and idx.shape != (len(self),):
                raise IndexError(f"Detections boolean mask: expected shape ({len(self)},), got {idx.shape}")
            if idx.dtype != bool:
                idx = idx.astype(np.intp).reshape(-1)
        return Detections(
            self.xyxy[idx],
            self.confidence[idx],
            self.class_id[idx],
            {k: v[idx] for k, v in self.data.items()},
        )

    def __iter__(self) -> Iterator[tuple[np.ndarray, float, int]]:
        """Rows as (xyxy (4,), confidence, class_id)."""
        for i in range(len(self)):
            yield self.xyxy[i], float(self.confidence[i]), int(self.class_id[i])

    @property
    def area(self) -> np.ndarray:
        """(N,) float32 box areas in square pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def sorted(self) -> Detections:
        """The same detections, highest confidence first (stable)."""
        return self[np.argsort(-self.confidence, kind="stable")]

    def with_data(self, **arrays: np.ndarray) -> Detections:
        """A copy with extra ``data`` arrays added (each (N, ...))."""
        return Detections(self.xyxy, self.confidence, self.class_id, {**self.data, **arrays})

    # ------------------------------------------------------------------------------------------------ records
    def to_records(self, names: Mapping[int, str] | Sequence[str] | None = None) -> list[dict[str, Any]]:
        """JSON-safe list of dicts: ``xyxy`` (4 floats, 0.01 px), ``confidence``, ``class_id``, ``class_name``.

        ``data`` arrays are added per record as plain Python values (lists for multi-dimensional rows).
        """
        lookup = (
            dict(enumerate(names)) if isinstance(names, Sequence) and not isinstance(names, str) else names
        )
        out: list[dict[str, Any]] = []
        for i in range(len(self)):
            cid = int(self.class_id[i])
            rec: dict[str, Any] = {
                "xyxy": [round(float(v), 2) for v in self.xyxy[i]],
                "confidence": round(float(self.confidence[i]), 5),
                "class_id": cid,
            }
            if lookup is not None:
                rec["class_name"] = lookup.get(cid, str(cid))
            for key, arr in self.data.items():
                value = arr[i]
                rec[key] = value.tolist() if hasattr(value, "tolist") else value
            out.append(rec)
        return out

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Detections:
        """Inverse of :meth:`to_records` (``class_name`` is dropped; other extra keys become ``data``).

        Raises:
            ValueError: a record lacks ``xyxy``, ``confidence`` or ``class_id``.
        """
        rows = list(records)
        if not rows:
            return cls.empty()
        required = ("xyxy", "confidence", "class_id")
        for i, r in enumerate(rows):
            missing = [k for k in required if k not in r]
            if missing:
                raise ValueError(f"Detections.from_records: record {i} lacks {', '.join(missing)}")
        extra = [k for k in rows[0] if k not in (*required, "class_name")]
        return cls(
            np.asarray([r["xyxy"] for r in rows], np.float32),
            np.asarray([r["confidence"] for r in rows], np.float32),
            np.asarray([r["class_id"] for r in rows], np.int32),
            {k: np.asarray([r[k] for r in rows]) for k in extra},
        )
