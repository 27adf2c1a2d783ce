"""Datasets: synthetic flights (datasets.synth) and the YOLO dataset tooling (build, import, validate, gallery,
version). ``datasets.dataset_version(path)`` gives a dataset's content hash for training records."""

from __future__ import annotations

from typing import Any

__all__ = ["dataset_version"]


def __getattr__(name: str) -> Any:  # lazy: importing datasets.synth must not pull in the tooling
    if name == "dataset_version":
        from datasets.version import dataset_version

        return dataset_version
    raise AttributeError(f"module 'datasets' has no attribute {name!r}")
