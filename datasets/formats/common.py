"""The records every format reader produces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets.yolo import DatasetError


@dataclass(frozen=True)
class ForeignBox:
    """One box of a foreign set: its class name and ``(x0, y0, x1, y1)`` in pixels (0-based edges)."""

    name: str
    xyxy: tuple[float, float, float, float]
    crowd: bool = False
    difficult: bool = False


@dataclass(frozen=True)
class ForeignImage:
    """One image of a foreign set: file, path to keep under ``images/`` (``rel``), size (0 = unknown), boxes."""

    path: Path
    rel: str
    width: int
    height: int
    boxes: list[ForeignBox] = field(default_factory=list)


def locate_image(name: str, roots: Sequence[Path], where: str) -> Path:
    """The first ``root / name`` (or ``root / basename``) that exists.

    Raises:
        DatasetError: no candidate exists (the message lists where it looked).
    """
    if not name:
        raise DatasetError(f"{where}: no image file name")
    candidates = []
    for root in roots:
        candidates += [root / name, root / Path(name).name]
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(dict.fromkeys(str(c.parent) for c in candidates))
    raise DatasetError(f"{where}: image {name!r} not found (looked in {looked})")
