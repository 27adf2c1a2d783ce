"""Train a YOLO defect detector with ultralytics, offline, seeded, and leave a run record beside the weights.

    result = train(TrainConfig(data=Path("sets/pv-rgb/data.yaml"), model="yolo11n", epochs=50, imgsz=640))
    result.weights            # <out>/<name>/weights/best.pt
    result.record             # the run record (also <out>/<name>/weights/run.json)

``model`` is an architecture name (``yolo11n``, ``yolo26s``…: built from ultralytics' bundled YAML, random
initialisation, nothing downloaded), an architecture ``.yaml`` file, or a ``.pt`` checkpoint to start from.

The run record holds: the dataset version (``datasets.version.dataset_version``; if that package is missing, the
sha256 of data.yaml plus every label file — ``dataset_version_method`` says which), every training argument, the
validator's metrics of the best weights (mAP50, mAP50-95, precision, recall, per class), library versions, wall
time, the git commit of this checkout, the command line and the sha256 of ``best.pt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import yaml

from detection.offline import ensure_offline
from skyinspect.config import Settings

logger = logging.getLogger(__name__)

RUN_RECORD = "run.json"
RECORD_FORMAT = "skyinspect-train-run/1"
ARCH_RE = re.compile(r"^(yolo11|yolo26|yolov8|yolov10|yolo12)([nslmx])$")
"""Architecture names: family + scale (n, s, m, l, x)."""
_FAMILY_YAML = {
    "yolo11": ("11", "yolo11.yaml"),
    "yolo26": ("26", "yolo26.yaml"),
    "yolov8": ("v8", "yolov8.yaml"),
    "yolov10": ("v10", None),  # v10 has one YAML per scale (yolov10n.yaml …)
    "yolo12": ("12", "yolo12.yaml"),
}
PROJECT_ARCHITECTURES: dict[str, Path] = {
    name: Path(__file__).resolve().parent / "arch" / f"{name}.yaml" for name in ("yolo11p", "yolo11p-p2", "yolo11p-p2-r1")
}
"""Architectures this project adds to ultralytics' own: ``yolo11p`` (YOLO11 at half the nano's width) and
``yolo11p-p2`` (the same plus a stride-4 detection level, for defects under 8 px) and ``yolo11p-p2-r1`` (that with
reg_max 1: direct box regression, a 4× narrower box branch)."""
LIBRARIES = ("torch", "torchvision", "ultralytics", "numpy", "onnxruntime", "opencv-python", "onnx")


class TrainError(RuntimeError):
    """Training cannot start or did not produce weights; the message names the file/argument and the reason."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (recorded verbatim in the run record).

    Attributes:
        data: a YOLO ``data.yaml`` (relative ``path``/split entries are taken relative to the file's folder).
        model: ``yolo11n``-style architecture name, an architecture ``.yaml``, or a ``.pt`` checkpoint.
        epochs, imgsz, batch: as in ultralytics.
        seed: seeds python/numpy/torch; ``deterministic=True`` is always set.
        out: the project folder; the run goes to ``out/name`` (``name2``… if taken).
        name: run name (default ``<model stem>-<data folder name>``).
        device: ``cpu``, ``0``, ``cuda:0``…
        workers: dataloader workers (0 = load in the main process).
        patience: early-stopping patience in epochs.
        amp: mixed precision (CUDA only). Uses ``amp="bf16"`` so ultralytics skips its AMP check, which would
            download yolo26n.pt.
        plots: let ultralytics draw its plots (fonts are local, see :mod:`detection.offline`).
        overrides: any further ultralytics training arguments (augmentation: ``mosaic``, ``fliplr``…).
    """

    data: Path
    model: str = "yolo11n"
    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    seed: int = 0
    out: Path = Path("runs/train")
    name: str | None = None
    device: str = "cpu"
    workers: int = 2
    patience: int = 50
    amp: bool = False
    plots: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run left its files, and its record."""

    run_dir: Path
    weights: Path
    last: Path
    record_path: Path
    record: dict[str, Any]


# -------------------------------------------------------------------------------------------------- inputs
def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children (e.g. dataloader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ultralytics_cfg_dir() -> Path:
    """The installed ultralytics' bundled model YAMLs (``cfg/models``), found without importing ultralytics."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise TrainError("ultralytics is not installed; install skyinspect's 'full' extra")
    return Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"


def available_architectures() -> list[str]:
    """Architecture names: those ultralytics builds from its bundled YAMLs (``yolo11n``…) plus the project's."""
    root = ultralytics_cfg_dir()
    out = []
    for family, (folder, fname) in _FAMILY_YAML.items():
        for scale in "nslmx":
            path = root / folder / (fname or f"{family}{scale}.yaml")
            if path.is_file():
                out.append(f"{family}{scale}")
    return out + sorted(PROJECT_ARCHITECTURES)


def resolve_model(spec: str) -> tuple[str, str]:
    """What to hand ``ultralytics.YOLO``: ``(source, kind)`` with kind ``architecture``, ``yaml`` or ``weights``.

    Raises:
        TrainError: unknown name, a file that does not exist, or a wrong suffix.
    """
    text = str(spec).strip()
    if text.lower() in PROJECT_ARCHITECTURES:
        return str(PROJECT_ARCHITECTURES[text.lower()]), "yaml"
    match = ARCH_RE.match(text.lower())
    if match:
        name = match.group(0)
        if name not in available_architectures():
            raise TrainError(
                f"model {spec!r}: this ultralytics has no architecture YAML for it; "
                f"available: {', '.join(available_architectures())}"
            )
        return f"{name}.yaml", "architecture"  # ultralytics picks the scale from the name
    path = Path(text).expanduser()
    if path.suffix.lower() in {".yaml", ".yml"}:
        if not path.is_file():
            raise TrainError(f"model {spec!r}: architecture file {path} does not exist")
        return str(path.resolve()), "yaml"
    if path.suffix.lower() == ".pt":
        if not path.is_file():
            raise TrainError(f"model {spec!r}: weights file {path} does not exist (nothing is downloaded)")
        return str(path.resolve()), "weights"
    raise TrainError(
        f"model {spec!r}: expected an architecture name ({', '.join(available_architectures())}), "
        "an architecture .yaml or a .pt checkpoint"
    )


def load_checkpoint_model(path: Path) -> Any:
    """Load a ``.pt`` checkpoint as an ultralytics model (CPU), with a clear error for corrupt files.

    Raises:
        TrainError: the file is not a readable ultralytics checkpoint.
    """
    ensure_offline()
    from ultralytics import YOLO

    try:
        return YOLO(str(path), task="detect")
    except Exception as exc:  # torch.load / pickle / zip errors of all kinds
        raise TrainError(
            f"weights file {path}: not a readable ultralytics checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


@dataclass(frozen=True)
class DataSpec:
    """A data.yaml with its paths resolved."""

    yaml_path: Path
    root: Path
    splits: dict[str, list[str]]
    names: list[str]
    raw: dict[str, Any]


def load_data_yaml(path: Path) -> DataSpec:
    """Read a data.yaml; ``path`` relative to the file's folder (the project's rule; see datasets.yolo).

    Raises:
        TrainError: missing file, unreadable YAML, no ``names`` or no ``train``/``val`` entry.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "data.yaml"
    if not path.is_file():
        raise TrainError(f"data file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TrainError(f"data file {path}: cannot read YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise TrainError(f"data file {path}: expected a mapping, got {type(raw).__name__}")
    names_raw = raw.get("names")
    if isinstance(names_raw, dict):
        names = [str(names_raw[k]) for k in sorted(names_raw, key=int)]
    elif isinstance(names_raw, list) and names_raw:
        names = [str(n) for n in names_raw]
    else:
        raise TrainError(f"data file {path}: 'names' must be a non-empty list or id → name mapping")
    root = Path(str(raw.get("path") or "."))
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    splits: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        entry = raw.get(split)
        if entry:
            items = entry if isinstance(entry, list) else [entry]
            splits[split] = [str(i if Path(str(i)).is_absolute() else root / str(i)) for i in items]
    for split in ("train", "val"):
        if split not in splits:
            raise TrainError(f"data file {path}: no '{split}' entry")
    return DataSpec(yaml_path=path.resolve(), root=root, splits=splits, names=names, raw=raw)


def write_resolved_data_yaml(spec: DataSpec, dest: Path) -> Path:
    """A copy of the data.yaml with absolute paths, so ultralytics never resolves them against its own dirs."""
    data = dict(spec.raw)
    data["path"] = str(spec.root)
    for split, items in spec.splits.items():
        data[split] = items if len(items) > 1 else items[0]
    data["names"] = dict(enumerate(spec.names))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return dest


def fallback_dataset_version(spec: DataSpec) -> str:
    """sha256 (first 16 hex) of data.yaml's bytes plus every label file (path relative to root, and bytes)."""
    digest = hashlib.sha256(spec.yaml_path.read_bytes())
    labels = sorted(p for p in spec.root.rglob("*.txt") if "labels" in p.relative_to(spec.root).parts)
    for p in labels:
        digest.update(p.relative_to(spec.root).as_posix().encode())
        digest.update(b"\0")
        digest.update(p.read_bytes())
    return digest.hexdigest()[:16]


def dataset_version_of(spec: DataSpec) -> tuple[str, str]:
    """``(version, method)``: the datasets stage's content hash when available, else :func:`fallback_dataset_version`."""
    try:
        from datasets.version import dataset_version
    except ImportError:
        return fallback_dataset_version(spec), "sha256(data.yaml + label files)"
    return dataset_version(spec.yaml_path), "datasets.version.dataset_version"


# -------------------------------------------------------------------------------------------------- provenance
def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a model depends on (``None`` when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(root: Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the checkout holding this code, or ``None`` outside a git work tree."""
    root = root or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def validator_metrics(metrics: Any) -> dict[str, Any]:
    """ultralytics ``DetMetrics`` (from ``model.train``/``model.val``) → plain JSON-ready dict.

    Returns:
        ``{"map50", "map50_95", "precision", "recall", "per_class": {name: {precision, recall, ap50, ap50_95,
        support}}, "source": "ultralytics"}``.
    """
    if metrics is None:
        return {}
    box = metrics.box
    names = dict(metrics.names or {})
    support = getattr(metrics, "nt_per_class", None)
    per_class: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(list(getattr(box, "ap_class_index", []))):
        c = int(c)
        per_class[str(names.get(c, c))] = {
            "precision": float(box.p[i]),
            "recall": float(box.r[i]),
            "ap50": float(box.ap50[i]),
            "ap50_95": float(box.ap[i]),
            "support": int(support[c]) if support is not None and c < len(support) else None,
        }
    return {
        "map50": float(box.map50),
        "map50_95": float(box.map),
        "precision": float(box.mp),
        "recall": float(box.mr),
        "per_class": per_class,
        "source": "ultralytics validator",
    }


# -------------------------------------------------------------------------------------------------- train
def train(
    cfg: TrainConfig,
    settings: Settings | None = None,
    command: list[str] | None = None,
) -> TrainResult:
    """Train (see module docstring). ``command`` is recorded as the command line (default ``sys.argv``).

    Raises:
        TrainError: bad model spec or data file, unreadable checkpoint, or a run that saved no weights.
    """
    spec = load_data_yaml(cfg.data)
    source, kind = resolve_model(cfg.model)
    if cfg.epochs < 1 or cfg.imgsz < 32 or cfg.batch < 1 or cfg.workers < 0:
        raise TrainError(
            f"epochs, imgsz, batch must be positive (imgsz >= 32) and workers >= 0; got epochs={cfg.epochs}, "
            f"imgsz={cfg.imgsz}, batch={cfg.batch}, workers={cfg.workers}"
        )
    version, version_method = dataset_version_of(spec)
    ensure_offline(settings)
    from ultralytics import YOLO

    out = Path(cfg.out).resolve()
    name = cfg.name or f"{Path(source).stem}-{spec.yaml_path.parent.name}"
    out.mkdir(parents=True, exist_ok=True)
    resolved = write_resolved_data_yaml(spec, out / f".{name}.data.yaml")

    if kind == "weights":
        model = load_checkpoint_model(Path(source))
    else:
        try:
            model = YOLO(source, task="detect")
        except Exception as exc:
            raise TrainError(f"model {cfg.model!r}: cannot build the architecture {source}: {exc}") from exc

    use_cuda = str(cfg.device).lower() not in {"cpu", "mps"}
    amp: bool | str = "bf16" if (cfg.amp and use_cuda) else False
    if cfg.amp and not use_cuda:
        logger.warning(
            "amp requested on device %s: mixed precision is CUDA-only, training in FP32", cfg.device
        )
    args: dict[str, Any] = {
        "data": str(resolved),
        "epochs": cfg.epochs,
        "imgsz": cfg.imgsz,
        "batch": cfg.batch,
        "seed": cfg.seed,
        "deterministic": True,
        "workers": cfg.workers,
        "device": cfg.device,
        "project": str(out),
        "name": name,
        "exist_ok": False,
        "patience": cfg.patience,
        "amp": amp,
        "plots": cfg.plots,
        "pretrained": kind == "weights",
        "val": True,
        "verbose": False,
        **cfg.overrides,
    }
    logger.info(
        "training %s (%s) on %s: %s",
        cfg.model,
        kind,
        spec.yaml_path,
        {k: v for k, v in args.items() if k != "data"},
    )
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    started = datetime.now(UTC)
    metrics = model.train(**args)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0

    trainer = model.trainer
    run_dir = Path(trainer.save_dir)
    best, last = Path(trainer.best), Path(trainer.last)
    if not best.is_file():
        if not last.is_file():
            raise TrainError(f"training in {run_dir} finished without saving weights")
        best = last
    record = {
        "format": RECORD_FORMAT,
        "created": started.isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 2),
        "cpu_time_s": round(cpu, 1),
        "command": shlex.join(command if command is not None else sys.argv),
        "model": {"spec": cfg.model, "source": source, "kind": kind},
        "config": _jsonable(asdict(cfg)),
        "ultralytics_args": _jsonable(args | {"data": str(spec.yaml_path)}),
        "dataset": {
            "data_yaml": str(spec.yaml_path),
            "version": version,
            "version_method": version_method,
            "names": spec.names,
            "domain": spec.raw.get("domain"),
        },
        "names": spec.names,
        "imgsz": cfg.imgsz,
        "metrics": validator_metrics(metrics),
        "libraries": library_versions(),
        "git": git_commit(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count(), "device": cfg.device},
        "weights": {"best": best.name, "sha256": sha256_file(best), "bytes": best.stat().st_size},
    }
    record_path = best.parent / RUN_RECORD
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    logger.info("trained in %.1f s (%.1f CPU-min): %s (record %s)", wall, cpu / 60, best, record_path)
    return TrainResult(run_dir=run_dir, weights=best, last=last, record_path=record_path, record=record)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def read_run_record(weights: Path) -> dict[str, Any] | None:
    """The run record beside a ``best.pt`` (``None`` when there is none)."""
    path = Path(weights).parent / RUN_RECORD
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
