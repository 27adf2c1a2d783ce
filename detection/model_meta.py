"""``ModelMeta``: what a model file says about itself, read from ONNX ``metadata_props``.

ultralytics writes ``names`` (a Python-literal dict ``{0: 'a', 1: 'b'}``), ``imgsz`` (``[640, 640]``), ``stride``,
``task``, ``batch``, ``end2end``, ``channels``, ``args``. skyinspect's export stage adds keys prefixed
``skyinspect.`` (see :data:`SKYINSPECT_KEYS`). No label list is kept anywhere else: the runtime reads it here.
"""

from __future__ import annotations

import ast
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detection import radiometry, taxonomy

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("names", "imgsz", "stride", "task")
PREFIX = "skyinspect."
SKYINSPECT_KEYS = (
    "domain",
    "taxonomy_version",
    "input_kind",
    "thermal_window_c",
    "normalisation",
    "model_version",
    "dataset_version",
    "metrics",
    "export",
)
OPTIONAL_SKYINSPECT_KEYS = ("slice_tile", "conf")
"""Written only where they apply: ``slice_tile`` for models trained on tiles (see :func:`slice_tile_for`); ``conf``,
the model's operating point (confidence threshold) chosen on its validation flight (``detection.default_models``)."""
INPUT_KINDS = ("rgb", "thermal")
DEFAULT_CONF = 0.25
"""The confidence threshold of a model whose metadata has no ``skyinspect.conf`` (see :func:`resolve_conf`)."""


class ModelMetadataError(ValueError):
    """A model's metadata is missing required keys or has unreadable values; the message names keys and file."""


def _literal(key: str, raw: Any, source: str) -> Any:
    """Parse a metadata value written as JSON or as a Python literal; non-strings pass through."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ModelMetadataError(
            f"{source}: metadata key {key!r} is not a JSON or Python literal: {raw!r}"
        ) from exc


def _bool(key: str, raw: Any, source: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no", "none", ""}:
        return False
    raise ModelMetadataError(f"{source}: metadata key {key!r} should be true/false, got {raw!r}")


@dataclass(frozen=True)
class ModelMeta:
    """A detection model's facts.

    Attributes:
        names: class id → class name (taxonomy names for skyinspect models).
        imgsz: (height, width) the model was exported for.
        stride: the largest stride of the network (padding multiple).
        task: always ``detect`` here.
        batch: the exported batch size (ignored when the input batch dimension is dynamic).
        end2end: the output is already suppressed (B, max_det, 6).
        channels: input channels (3).
        domain: taxonomy domain, from ``skyinspect.domain`` or inferred from ``names`` (None if neither).
        input_kind: ``rgb`` or ``thermal``.
        thermal_window_c: (low, high) °C mapped onto 0–255 for thermal models.
        slice_tile: (height, width) frame pixels per tile when a large frame is sliced, so tiles reach the model at
            the scale it was trained at (a model trained on 640 px tiles resized to 320 slices 640 px tiles);
            ``None``: tiles of the input size (pixels 1:1).
        conf: the model's operating point, ``skyinspect.conf``: the confidence threshold in (0, 1) chosen on its
            validation flight, used wherever no threshold is configured (:func:`resolve_conf`); ``None``: absent.
        source: where the metadata came from (a file path), for messages.
        extra: every other key, parsed where it is JSON (``skyinspect.metrics``, ``args``…), prefix kept.
    """

    names: dict[int, str]
    imgsz: tuple[int, int]
    stride: int = 32
    task: str = "detect"
    batch: int = 1
    end2end: bool = False
    channels: int = 3
    domain: taxonomy.Domain | None = None
    taxonomy_version: str | None = None
    input_kind: str = "rgb"
    thermal_window_c: tuple[float, float] = radiometry.DEFAULT_WINDOW_C
    slice_tile: tuple[int, int] | None = None
    conf: float | None = None
    normalisation: str = "0-1"
    model_version: str | None = None
    dataset_version: str | None = None
    source: str = "<memory>"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def nc(self) -> int:
        return len(self.names)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], source: str | Path = "<memory>") -> ModelMeta:
        """Parse a ``custom_metadata_map`` (all values strings, as ONNX stores them).

        Raises:
            ModelMetadataError: required keys (names, imgsz, stride, task=detect) are missing or unreadable;
                the message lists every missing key and names ``source``.
        """
        src = str(source)
        missing = [k for k in REQUIRED_KEYS if k not in metadata or metadata[k] in (None, "")]
        if missing:
            raise ModelMetadataError(
                f"{src}: model metadata lacks required key(s) {', '.join(missing)} "
                f"(has: {', '.join(sorted(metadata)) or 'nothing'}); export the model with ultralytics or "
                "skyinspect's export stage, which write them"
            )
        names_raw = _literal("names", metadata["names"], src)
        if isinstance(names_raw, list):
            names_raw = dict(enumerate(names_raw))
        if not isinstance(names_raw, dict) or not names_raw:
            raise ModelMetadataError(
                f"{src}: metadata key 'names' must be a non-empty dict or list, got {names_raw!r}"
            )
        try:
            names = {int(k): str(v) for k, v in names_raw.items()}
        except (TypeError, ValueError) as exc:
            raise ModelMetadataError(
                f"{src}: metadata key 'names' has non-integer ids: {names_raw!r}"
            ) from exc
        if sorted(names) != list(range(len(names))):
            raise ModelMetadataError(
                f"{src}: metadata key 'names' ids must be 0..{len(names) - 1}, got {sorted(names)}"
            )

        imgsz_raw = _literal("imgsz", metadata["imgsz"], src)
        if isinstance(imgsz_raw, int):
            imgsz_raw = [imgsz_raw, imgsz_raw]
        if not isinstance(imgsz_raw, (list, tuple)) or len(imgsz_raw) != 2:
            raise ModelMetadataError(
                f"{src}: metadata key 'imgsz' must be [height, width], got {metadata['imgsz']!r}"
            )
        try:
            imgsz = (int(imgsz_raw[0]), int(imgsz_raw[1]))
            stride_raw = _literal("stride", metadata["stride"], src)
            stride = int(max(stride_raw) if isinstance(stride_raw, (list, tuple)) else stride_raw)
            batch = int(_literal("batch", metadata.get("batch", 1), src))
            channels = int(_literal("channels", metadata.get("channels", 3), src))
        except (TypeError, ValueError) as exc:
            raise ModelMetadataError(
                f"{src}: metadata imgsz/stride/batch/channels are not integers: {exc}"
            ) from exc
        task = str(metadata["task"]).strip()
        if task != "detect":
            raise ModelMetadataError(
                f"{src}: metadata key 'task' is {task!r}; skyinspect runs 'detect' models only"
            )
        end2end = _bool("end2end", metadata.get("end2end", False), src)

        sky = {k[len(PREFIX) :]: v for k, v in metadata.items() if k.startswith(PREFIX)}
        dom: taxonomy.Domain | None = None
        if sky.get("domain"):
            try:
                dom = taxonomy.domain(sky["domain"])
            except taxonomy.TaxonomyError as exc:
                raise ModelMetadataError(f"{src}: metadata key 'skyinspect.domain': {exc}") from exc
        else:
            try:
                dom = taxonomy.domain_of_names(names)
            except taxonomy.TaxonomyError:
                dom = None
        input_kind = str(sky.get("input_kind") or ("thermal" if dom is taxonomy.Domain.PV_THERMAL else "rgb"))
        if input_kind not in INPUT_KINDS:
            raise ModelMetadataError(
                f"{src}: metadata key 'skyinspect.input_kind' must be one of {INPUT_KINDS}, got {input_kind!r}"
            )
        window = radiometry.DEFAULT_WINDOW_C
        if sky.get("thermal_window_c"):
            raw = _literal("skyinspect.thermal_window_c", sky["thermal_window_c"], src)
            if not isinstance(raw, (list, tuple)) or len(raw) != 2 or not float(raw[1]) > float(raw[0]):
                raise ModelMetadataError(
                    f"{src}: metadata key 'skyinspect.thermal_window_c' must be [low, high] °C, got {raw!r}"
                )
            window = (float(raw[0]), float(raw[1]))
        slice_tile: tuple[int, int] | None = None
        if sky.get("slice_tile"):
            raw = _literal("skyinspect.slice_tile", sky["slice_tile"], src)
            if (
                not isinstance(raw, (list, tuple))
                or len(raw) != 2
                or not all(isinstance(v, int) and v >= 32 for v in raw)
            ):
                raise ModelMetadataError(
                    f"{src}: metadata key 'skyinspect.slice_tile' must be [height, width] pixels >= 32, got {raw!r}"
                )
            slice_tile = (int(raw[0]), int(raw[1]))
        conf = parse_conf(sky["conf"], src) if sky.get("conf") not in (None, "") else None

        try:
            args = _literal("args", metadata["args"], src) if metadata.get("args") else {}
        except ModelMetadataError:
            args = {}
        if isinstance(args, dict) and args.get("nms") is True:
            end2end = (
                True  # ultralytics writes end2end=False for nms=True exports, whose output is (B, max_det, 6)
            )

        known = {*REQUIRED_KEYS, "batch", "channels", "end2end"}
        known |= {PREFIX + k for k in ("domain", "input_kind", "thermal_window_c", "taxonomy_version")}
        known |= {PREFIX + k for k in OPTIONAL_SKYINSPECT_KEYS}
        known |= {PREFIX + k for k in ("normalisation", "model_version", "dataset_version")}
        extra: dict[str, Any] = {}
        for key, value in metadata.items():
            if key in known:
                continue
            if key in {"args", PREFIX + "metrics", PREFIX + "export"}:
                try:
                    value = _literal(key, value, src)
                except ModelMetadataError:
                    logger.warning("%s: metadata key %r is not parseable, kept as text", src, key)
            extra[key] = value
        return cls(
            names=names,
            imgsz=imgsz,
            stride=stride,
            task=task,
            batch=batch,
            end2end=end2end,
            channels=channels,
            domain=dom,
            taxonomy_version=sky.get("taxonomy_version") or None,
            input_kind=input_kind,
            thermal_window_c=window,
            slice_tile=slice_tile,
            conf=conf,
            normalisation=str(sky.get("normalisation") or "0-1"),
            model_version=sky.get("model_version") or None,
            dataset_version=sky.get("dataset_version") or None,
            source=src,
            extra=extra,
        )

    @classmethod
    def from_onnx(cls, path: str | Path) -> ModelMeta:
        """Read the metadata of an ONNX file through onnxruntime (no ``onnx`` package needed).

        Raises:
            FileNotFoundError: no such file.
            ModelMetadataError: see :meth:`from_metadata`.
        """
        import onnxruntime as ort

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"model file {p} does not exist")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
        return cls.from_metadata(session.get_modelmeta().custom_metadata_map, p)

    def tile_for(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        """Frame pixels per tile when slicing for a model run at ``input_hw``: ``slice_tile`` scaled to that input
        (so tiles keep the training scale), or ``input_hw`` itself (1:1) when the model has no ``slice_tile``."""
        if self.slice_tile is None:
            return input_hw
        return (
            round(self.slice_tile[0] * input_hw[0] / self.imgsz[0]),
            round(self.slice_tile[1] * input_hw[1] / self.imgsz[1]),
        )

    @property
    def metrics(self) -> dict[str, Any]:
        value = self.extra.get(PREFIX + "metrics")
        return value if isinstance(value, dict) else {}

    def to_metadata(self) -> dict[str, str]:
        """The ``custom_metadata_map`` this meta would be read from (strings; ultralytics-compatible keys)."""
        out = {
            "names": repr(self.names),
            "imgsz": json.dumps(list(self.imgsz)),
            "stride": str(self.stride),
            "task": self.task,
            "batch": str(self.batch),
            "end2end": str(self.end2end),
            "channels": str(self.channels),
            PREFIX + "input_kind": self.input_kind,
            PREFIX + "thermal_window_c": json.dumps(list(self.thermal_window_c)),
            PREFIX + "normalisation": self.normalisation,
        }
        if self.slice_tile is not None:
            out[PREFIX + "slice_tile"] = json.dumps(list(self.slice_tile))
        if self.conf is not None:
            out[PREFIX + "conf"] = json.dumps(self.conf)
        if self.domain is not None:
            out[PREFIX + "domain"] = self.domain.value
        for key in ("taxonomy_version", "model_version", "dataset_version"):
            if getattr(self, key):
                out[PREFIX + key] = str(getattr(self, key))
        for key, value in self.extra.items():
            out[key] = value if isinstance(value, str) else json.dumps(value)
        return out


def parse_conf(raw: Any, source: str | Path = "<memory>") -> float:
    """The value of a ``skyinspect.conf`` key (a JSON number as text, or a number) → a float in (0, 1).

    Raises:
        ModelMetadataError: not a number, or not strictly between 0 and 1; the message names ``source`` and the key.
    """
    src = str(source)
    value = _literal(PREFIX + "conf", raw, src)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value < 1
    ):
        raise ModelMetadataError(
            f"{src}: metadata key {PREFIX + 'conf'!r} must be a confidence threshold in (0, 1), got {raw!r}"
        )
    return float(value)


def resolve_conf(explicit: float | None, meta: ModelMeta | None) -> tuple[float, str]:
    """The confidence threshold to run ``meta``'s model at, and where it came from: ``(explicit, "config")`` when
    one was configured (command line, run config, edge.yaml), else ``(meta.conf, "model")`` when the model carries
    its operating point (``skyinspect.conf``), else ``(DEFAULT_CONF, "default")``."""
    if explicit is not None:
        return float(explicit), "config"
    if meta is not None and meta.conf is not None:
        return meta.conf, "model"
    return DEFAULT_CONF, "default"


def slice_tile_for(
    input_hw: tuple[int, int], train_imgsz: int, train_tile: int | None
) -> tuple[int, int] | None:
    """The ``slice_tile`` of a model run at ``input_hw`` that was trained on ``train_tile`` px tiles resized to
    ``train_imgsz``: the frame pixels that reach it at its training scale. ``None`` when it was not trained on
    tiles (whole frames resized: no fixed scale to keep)."""
    if not train_tile:
        return None
    scale = train_tile / train_imgsz
    return round(input_hw[0] * scale), round(input_hw[1] * scale)


def data_yaml_facts(data_yaml: str | Path | None) -> dict[str, Any]:
    """A training set's ``data.yaml`` as a dict; ``{}`` when it is missing or unreadable (provenance unknown)."""
    if not data_yaml or not Path(data_yaml).is_file():
        return {}
    import yaml

    try:
        raw = yaml.safe_load(Path(data_yaml).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def train_tile_of(data_yaml: str | Path | None) -> int | None:
    """The tile size (px) a YOLO set was cut into (``tile`` in a skyinspect ``data.yaml``); ``None`` when the set
    is not tiled, unknown or unreadable."""
    tile = data_yaml_facts(data_yaml).get("tile")
    return int(tile) if isinstance(tile, int) and tile > 0 else None
