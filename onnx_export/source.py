"""Where a model to export comes from: a ``.pt`` file, or a registry reference (``domain:alias``/``domain:version``).

Either way the result is a :class:`ModelSource`: a local, readable ultralytics detection checkpoint plus the facts
the exported files must carry (domain, class names, training size, dataset version, metrics, model version).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detection import radiometry, taxonomy
from detection.model_meta import data_yaml_facts, train_tile_of
from onnx_export.errors import ExportError

logger = logging.getLogger(__name__)

_REF_SEPARATORS = (":",)


@dataclass(frozen=True)
class ModelSource:
    """A checkpoint ready to export, and what is known about it.

    Attributes:
        weights: local ``.pt`` file (for a registry reference: the pulled, checksum-verified copy).
        sha256: of ``weights``.
        names: class id → name, from the checkpoint.
        domain: the taxonomy domain the names belong to.
        imgsz: (h, w) the model was trained at.
        stride: the network's largest stride.
        model_version: the registry version, or ``local-<sha256[:12]>`` for a plain file.
        dataset_version: the training set's version (run record / model card), ``None`` when unknown.
        metrics: the training-time metrics (validator), ``{}`` when unknown.
        thermal_window_c: the °C window of the training set (data.yaml ``thermal_window_c``) or the default.
        train_tile: the tile size (px) the training set was cut into (data.yaml ``tile``), ``None`` if not tiled.
        registry_ref: ``(domain, version)`` when the model came from the registry.
        card: the model card (registry) or the run record (file), for provenance.
    """

    weights: Path
    sha256: str
    names: dict[int, str]
    domain: taxonomy.Domain
    imgsz: tuple[int, int]
    stride: int
    model_version: str
    dataset_version: str | None
    metrics: dict[str, Any]
    thermal_window_c: tuple[float, float] = radiometry.DEFAULT_WINDOW_C
    train_tile: int | None = None
    registry_ref: tuple[str, str] | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def input_kind(self) -> str:
        """``thermal`` for the pv-thermal domain, else ``rgb``."""
        return input_kind_of(self.domain)


def input_kind_of(domain: taxonomy.Domain) -> str:
    return "thermal" if domain is taxonomy.Domain.PV_THERMAL else "rgb"


def parse_registry_ref(text: str) -> tuple[str, str] | None:
    """``pv-rgb:champion`` → ``("pv-rgb", "champion")``; ``None`` when ``text`` is not a registry reference.

    A reference is ``DOMAIN:ALIAS`` or ``DOMAIN:VERSION`` (``DOMAIN/VERSION`` is accepted too) whose domain is a
    taxonomy domain and which is not an existing file.

    Raises:
        ExportError: it looks like a reference (``x:y``) but names an unknown domain.
    """
    if Path(text).exists() or text.lower().endswith(".pt"):
        return None
    for sep in (":", "/"):
        head, found, tail = text.partition(sep)
        if found and head and tail and sep not in tail:
            try:
                dom = taxonomy.domain(head)
            except taxonomy.TaxonomyError as exc:
                if sep == ":":
                    raise ExportError(f"model reference {text!r}: {exc}") from exc
                return None
            return dom.value, tail
    return None


def sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: Path) -> Any:
    """Load an ultralytics detection checkpoint on the CPU (offline).

    Raises:
        ExportError: missing file, wrong suffix, unreadable/corrupt file, or not a detection model.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExportError(f"model file {path} does not exist")
    if path.suffix.lower() != ".pt":
        raise ExportError(
            f"model file {path}: expected a .pt checkpoint (or a registry reference DOMAIN:ALIAS)"
        )
    if path.stat().st_size == 0:
        raise ExportError(f"model file {path} is empty")
    from detection.offline import ensure_offline

    ensure_offline()
    from ultralytics.nn.tasks import load_checkpoint as ul_load

    try:
        model, ckpt = ul_load(str(path.resolve()), device="cpu", fuse=False)
    except Exception as exc:  # torch.load raises pickle/zip/runtime errors of many types for corrupt files
        raise ExportError(
            f"model file {path}: not a readable ultralytics checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    task = getattr(model, "task", None)
    if task != "detect":
        raise ExportError(f"model file {path}: a {task!r} model; skyinspect exports 'detect' models only")
    return model, ckpt


def _thermal_window_from_yaml(data_yaml: str | None) -> tuple[float, float] | None:
    window = data_yaml_facts(data_yaml).get("thermal_window_c")
    if isinstance(window, (list, tuple)) and len(window) == 2:
        return float(window[0]), float(window[1])
    return None


def from_file(
    path: Path, *, card: dict[str, Any] | None = None, registry_ref: tuple[str, str] | None = None
) -> ModelSource:
    """A :class:`ModelSource` for a local ``.pt`` (run record ``run.json`` beside it read when present).

    Raises:
        ExportError: see :func:`load_checkpoint`; class names that match no taxonomy domain.
    """
    path = Path(path).expanduser()
    model, ckpt = load_checkpoint(path)
    names = {int(k): str(v) for k, v in dict(model.names).items()}
    try:
        dom = taxonomy.domain_of_names(names)
    except taxonomy.TaxonomyError as exc:
        raise ExportError(f"model file {path}: {exc}; skyinspect exports taxonomy models only") from exc
    train_args = ckpt.get("train_args") or {}
    imgsz_raw = train_args.get("imgsz", 640)
    imgsz = (
        (int(imgsz_raw), int(imgsz_raw))
        if isinstance(imgsz_raw, int)
        else (int(imgsz_raw[0]), int(imgsz_raw[1]))
    )
    stride = int(max(model.stride.tolist())) if hasattr(model.stride, "tolist") else int(model.stride)
    record: dict[str, Any] = {}
    sidecar = path.parent / "run.json"
    if sidecar.is_file():
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning("%s: run record unreadable (%s); provenance will be incomplete", sidecar, exc)
    digest = sha256_file(path)
    card = card or {}
    provenance = card.get("provenance") or {}
    dataset = record.get("dataset") or {}
    dataset_version = provenance.get("dataset_version") or dataset.get("version")
    data_yaml = provenance.get("data_yaml") or dataset.get("data_yaml") or train_args.get("data")
    if not dataset_version and data_yaml and Path(str(data_yaml)).is_file():
        try:
            from datasets.version import dataset_version as version_of

            dataset_version = version_of(Path(str(data_yaml)))
        except Exception as exc:  # a foreign set that datasets cannot read: provenance stays unknown
            logger.warning("dataset version of %s unknown: %s", data_yaml, exc)
    metrics = card.get("metrics") or record.get("metrics") or {}
    window = _thermal_window_from_yaml(str(data_yaml) if data_yaml else None) or radiometry.DEFAULT_WINDOW_C
    version = registry_ref[1] if registry_ref else f"local-{digest[:12]}"
    return ModelSource(
        weights=path.resolve(),
        sha256=digest,
        names=names,
        domain=dom,
        imgsz=imgsz,
        stride=stride,
        model_version=version,
        dataset_version=str(dataset_version) if dataset_version else None,
        metrics=metrics,
        thermal_window_c=window,
        train_tile=train_tile_of(str(data_yaml) if data_yaml else None),
        registry_ref=registry_ref,
        card=card or record,
    )


def from_registry(domain: str, ref: str, registry: Any, dest: Path) -> ModelSource:
    """Pull a registry version's ``best.pt`` (checksum-verified) into ``dest`` → :class:`ModelSource`.

    Raises:
        ExportError: unknown alias/version, or a version without PyTorch weights.
    """
    from detection.registry import RegistryError

    try:
        version = registry.resolve(domain, ref)
        pulled = registry.pull(domain, version, Path(dest) / domain / version, kinds=["pytorch"])
        weights = pulled.path("pytorch")
    except RegistryError as exc:
        raise ExportError(f"model reference {domain}:{ref}: {exc}") from exc
    return from_file(weights, card=pulled.card, registry_ref=(domain, version))


def resolve(model: str, *, registry_factory: Any = None, cache_dir: Path | None = None) -> ModelSource:
    """``MODEL`` as given on the command line (a ``.pt`` path or ``DOMAIN:ALIAS``/``DOMAIN:VERSION``) → source.

    Args:
        registry_factory: zero-argument callable returning a ``ModelRegistry`` (only called for references).
        cache_dir: where pulled weights go (default ``<out>/.pulled`` chosen by the caller).

    Raises:
        ExportError: a missing/corrupt file, an unknown reference, or no registry configured.
    """
    ref = parse_registry_ref(model)
    if ref is None:
        return from_file(Path(model))
    if registry_factory is None:
        raise ExportError(f"model reference {model!r}: no model registry is configured")
    if cache_dir is None:
        raise ExportError("a cache folder is needed to pull registry models")
    return from_registry(ref[0], ref[1], registry_factory(), cache_dir)
