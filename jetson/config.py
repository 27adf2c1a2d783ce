"""The edge runtime's inference settings: ``edge.yaml`` (or ``edge.toml``), never hard-coded in the code.

Connection settings (S3 endpoint, keys, bucket, ``data_dir``) stay in :mod:`skyinspect.config`; this file holds what
the on-site runtime does with frames. Where it is looked for (first found wins):

1. ``--edge-config PATH`` on the command line,
2. ``$SKYINSPECT_EDGE_CONFIG``,
3. ``$XDG_CONFIG_HOME/skyinspect/edge.yaml`` (or ``edge.toml``),
4. none: every key takes its default (below).

``upload_thumbnails`` and ``output.thumbnails`` both have to be on for thumbnails to reach the store.

Every key, with its default (``jetson/deploy/edge.example.yaml`` is the same, commented)::

    device: ""                 # device id in object keys edge/{device}/...; "" = the host name (made key-safe)
    conf: null                 # keep detections scoring above this (null = the model's operating point, its
                               #   skyinspect.conf metadata chosen on its validation flight; else 0.25)
    iou: 0.45                  # NMS IoU threshold
    max_det: 300               # at most this many detections per frame
    batch_size: 8              # tiles / frames per model call
    backend: auto              # auto = onnxruntime (TensorRT -> CUDA -> CPU); OpenVINO only when onnxruntime is
                               #   missing; or onnxruntime / openvino (edge-x86 extra; not faster on the reference CPU)
    intra_op_threads: null     # threads inside one operator, onnxruntime or OpenVINO (null = one per core)
    performance_hint: latency  # OpenVINO: latency (one stream, frames one at a time) or throughput (streams)
    providers: null            # null = automatic: TensorRT -> CUDA -> CPU, the available ones; or e.g. [cuda, cpu]
    provider_options: {}       # per provider, merged over the defaults, e.g. {TensorrtExecutionProvider: {trt_max_workspace_size: 2147483648}}
    fp16: true                 # TensorRT builds FP16 engines
    int8: auto                 # auto = INT8 only for a QDQ model or one shipped with a calibration table; true / false
    cache_dir: null            # TensorRT engine + timing caches (null = <data_dir>/edge/trt-cache)
    model_kind: onnx           # registry artifact `update` installs: onnx, onnx-fp16 or onnx-int8
    tiling:
      mode: auto               # auto = slice frames larger than min_pixels; always; never
      min_pixels: 4000000      # auto mode: frames with more pixels than this are sliced
      tile: null               # tile size in frame px (null = the model's: its training scale, else its input size)
      overlap: 0.2             # fraction shared by neighbouring tiles
      merge: greedy            # greedy (NMS + merge boxes cut by tile borders) or nms
      full_frame: false        # add a whole-frame pass (objects larger than a tile)
    source:
      poll_s: 1.0              # folder polling interval
      stable_s: 2.0            # a new file is read only after its size and mtime were unchanged this long
      recursive: true          # watch sub-folders too
      video_every_n: 0         # video/stream: take every N-th frame (0 = use video_fps)
      video_fps: 1.0           # video/stream: take this many frames per second of video
      queue_size: 4            # decoded frames waiting for the model (bounded: memory stays flat)
    output:
      jsonl: true              # write <out>/detections.jsonl (one line per frame, with result_id)
      thumbnails: true         # write annotated JPEG thumbnails <out>/thumbnails/<result_id>.jpg
      thumbnail_px: 1024       # longest side of a thumbnail
      jpeg_quality: 85
    sync:
      enabled: true            # upload results to the object store when it is reachable
      upload_images: false     # also upload each source image (edge/{device}/images/...)
      upload_thumbnails: true  # also upload thumbnails (edge/{device}/thumbnails/...)
      interval_s: 5.0          # pause between sync rounds when idle
      batch: 64                # results per sync round
      backoff_base_s: 2.0      # first retry delay after a failed upload; doubles per failure...
      backoff_max_s: 300.0     # ...up to this
    storage:
      min_free_mb: 500         # stop taking frames when the data disk has less free space than this
      queue: null              # SQLite queue file (null = <data_dir>/edge/queue.sqlite)
      models: null             # installed models (null = <data_dir>/edge/models)

Unknown keys are refused (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

ENV_EDGE_CONFIG = "SKYINSPECT_EDGE_CONFIG"


class EdgeConfigError(ValueError):
    """An edge config file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class TilingConfig:
    mode: str = "auto"
    min_pixels: int = 4_000_000
    tile: int | None = None
    overlap: float = 0.2
    merge: str = "greedy"
    full_frame: bool = False


@dataclass(frozen=True)
class SourceConfig:
    poll_s: float = 1.0
    stable_s: float = 2.0
    recursive: bool = True
    video_every_n: int = 0
    video_fps: float = 1.0
    queue_size: int = 4


@dataclass(frozen=True)
class OutputConfig:
    jsonl: bool = True
    thumbnails: bool = True
    thumbnail_px: int = 1024
    jpeg_quality: int = 85


@dataclass(frozen=True)
class SyncConfig:
    enabled: bool = True
    upload_images: bool = False
    upload_thumbnails: bool = True
    interval_s: float = 5.0
    batch: int = 64
    backoff_base_s: float = 2.0
    backoff_max_s: float = 300.0


@dataclass(frozen=True)
class StorageConfig:
    min_free_mb: float = 500.0
    queue: Path | None = None
    models: Path | None = None


@dataclass(frozen=True)
class EdgeConfig:
    """Inference and runtime settings of the on-site device (see the module docstring for every key)."""

    device: str = ""
    conf: float | None = None
    iou: float = 0.45
    max_det: int = 300
    batch_size: int = 8
    backend: str = "auto"
    intra_op_threads: int | None = None
    performance_hint: str = "latency"
    providers: tuple[str, ...] | None = None
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    fp16: bool = True
    int8: str = "auto"
    cache_dir: Path | None = None
    model_kind: str = "onnx"
    tiling: TilingConfig = field(default_factory=TilingConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    path: Path | None = None
    """The file these settings came from (None: defaults)."""

    def device_id(self) -> str:
        """The device id used in object keys: ``device``, or the host name made key-safe."""
        if self.device:
            return self.device
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", socket.gethostname()).strip("-._")[:64]
        return name or "edge"


_SECTIONS = {
    "tiling": TilingConfig,
    "source": SourceConfig,
    "output": OutputConfig,
    "sync": SyncConfig,
    "storage": StorageConfig,
}
_CHOICES = {("tiling", "mode"): ("auto", "always", "never"), ("tiling", "merge"): ("greedy", "nms")}


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Convert a parsed YAML/TOML value to the type of the field's default (None stays None)."""
    if value is None:
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise EdgeConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(value, bool):
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        raise EdgeConfigError(f"{where}: expected a whole number, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EdgeConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    return value


def _build(cls: type, data: Mapping[str, Any], where: str, prefix: str = "") -> Any:
    if not isinstance(data, Mapping):
        raise EdgeConfigError(
            f"{where}: {prefix.rstrip('.') or 'top level'}: expected a mapping of keys, got {type(data).__name__}"
        )
    known = {f.name: f for f in fields(cls) if f.name != "path"}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise EdgeConfigError(
            f"{where}: unknown key(s) {', '.join(prefix + k for k in unknown)}; known: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    defaults = cls()
    for name, raw in data.items():
        here = f"{where}: {prefix}{name}"
        if name in _SECTIONS and cls is EdgeConfig:
            values[name] = _build(_SECTIONS[name], raw or {}, where, f"{name}.")
            continue
        default = getattr(defaults, name)
        if name in ("queue", "models", "cache_dir"):
            values[name] = None if raw in (None, "") else Path(str(raw)).expanduser()
        elif name == "providers":
            if raw is None:
                values[name] = None
            elif isinstance(raw, str):
                values[name] = (raw,)
            elif isinstance(raw, list) and all(isinstance(p, str) for p in raw) and raw:
                values[name] = tuple(raw)
            else:
                raise EdgeConfigError(f"{here}: expected null or a list of provider names, got {raw!r}")
        elif name == "provider_options":
            if not isinstance(raw, Mapping) or not all(isinstance(v, Mapping) for v in raw.values()):
                raise EdgeConfigError(f"{here}: expected {{provider name: {{option: value}}}}, got {raw!r}")
            values[name] = {str(k): dict(v) for k, v in raw.items()}
        elif name == "int8":
            text = str(raw).lower()
            if text not in ("auto", "true", "false"):
                raise EdgeConfigError(f"{here}: expected auto, true or false, got {raw!r}")
            values[name] = text
        elif name in ("backend", "performance_hint"):
            values[name] = str(raw).strip().lower()
        elif name in ("device",):
            values[name] = "" if raw is None else str(raw)
        elif name == "conf":
            values[name] = None if raw is None else _coerce(raw, 0.0, here)
        elif name in ("intra_op_threads", "tile"):
            values[name] = None if raw is None else _coerce(raw, 1, here)
        else:
            values[name] = _coerce(raw, default, here)
    return cls(**values)


def _validate(cfg: EdgeConfig, where: str) -> None:
    checks = [
        (cfg.conf is None or 0.0 <= cfg.conf <= 1.0, "conf must be in 0..1 (or null: the model's)"),
        (
            cfg.model_kind in ("onnx", "onnx-fp16", "onnx-int8"),
            "model_kind must be onnx, onnx-fp16 or onnx-int8",
        ),
        (0.0 <= cfg.iou <= 1.0, "iou must be in 0..1"),
        (cfg.max_det >= 1, "max_det must be >= 1"),
        (cfg.batch_size >= 1, "batch_size must be >= 1"),
        (cfg.intra_op_threads is None or cfg.intra_op_threads >= 1, "intra_op_threads must be >= 1"),
        (cfg.backend in ("auto", "onnxruntime", "openvino"), "backend must be auto, onnxruntime or openvino"),
        (cfg.performance_hint in ("latency", "throughput"), "performance_hint must be latency or throughput"),
        (cfg.tiling.mode in _CHOICES[("tiling", "mode")], "tiling.mode must be auto, always or never"),
        (cfg.tiling.merge in _CHOICES[("tiling", "merge")], "tiling.merge must be greedy or nms"),
        (0.0 <= cfg.tiling.overlap < 1.0, "tiling.overlap must be in [0, 1)"),
        (cfg.tiling.tile is None or cfg.tiling.tile >= 32, "tiling.tile must be >= 32"),
        (cfg.source.poll_s > 0 and cfg.source.stable_s >= 0, "source.poll_s must be > 0, stable_s >= 0"),
        (
            cfg.source.video_every_n >= 0 and cfg.source.video_fps > 0,
            "source.video_every_n >= 0, video_fps > 0",
        ),
        (cfg.source.queue_size >= 1, "source.queue_size must be >= 1"),
        (cfg.output.thumbnail_px >= 64, "output.thumbnail_px must be >= 64"),
        (1 <= cfg.output.jpeg_quality <= 100, "output.jpeg_quality must be in 1..100"),
        (cfg.sync.batch >= 1 and cfg.sync.interval_s > 0, "sync.batch must be >= 1, interval_s > 0"),
        (0 < cfg.sync.backoff_base_s <= cfg.sync.backoff_max_s, "sync: 0 < backoff_base_s <= backoff_max_s"),
        (cfg.storage.min_free_mb >= 0, "storage.min_free_mb must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise EdgeConfigError(f"{where}: {message}")
    if cfg.device:
        from objectstore.keys import InvalidKey, validate_id

        try:
            validate_id(cfg.device, "device")
        except InvalidKey as exc:
            raise EdgeConfigError(f"{where}: {exc}") from exc


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$SKYINSPECT_EDGE_CONFIG``, else ``$XDG_CONFIG_HOME/skyinspect/edge.{yaml,yml,toml}`` if present."""
    env = os.environ if environ is None else environ
    if env.get(ENV_EDGE_CONFIG):
        return Path(env[ENV_EDGE_CONFIG]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "skyinspect"
    for name in ("edge.yaml", "edge.yml", "edge.toml"):
        if (base / name).is_file():
            return base / name
    return None


def parse_edge_config(data: Mapping[str, Any] | None, where: str = "edge config") -> EdgeConfig:
    """Build and validate an :class:`EdgeConfig` from already-parsed data (``None`` or ``{}``: defaults).

    Raises:
        EdgeConfigError: unknown keys, wrong types or out-of-range values (named with ``where``).
    """
    cfg = _build(EdgeConfig, data or {}, where)
    _validate(cfg, where)
    return cfg


def load_edge_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read the edge config (``.yaml``/``.yml`` or ``.toml``) from ``path`` or the default places.

    Raises:
        EdgeConfigError: the file is missing, unparseable, or has unknown / invalid keys.
    """
    path = path or default_config_path(environ)
    if path is None:
        return EdgeConfig()
    if not path.is_file():
        raise EdgeConfigError(f"edge config {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise EdgeConfigError(f"edge config {path}: cannot parse: {exc}") from exc
    cfg = parse_edge_config(data, f"edge config {path}")
    return _replace(cfg, path=path)


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def as_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain data (for ``status`` and logs)."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            value = as_dict(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
