"""``skyinspect train``, ``skyinspect evaluate`` and ``skyinspect models …`` (the model registry)."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from skyinspect.cli import get_settings


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send ultralytics' log lines and progress bars to stderr, so ``--json`` output on stdout stays clean."""
    moved = [
        h for h in logging.getLogger("ultralytics").handlers
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stdout
    ]  # fmt: skip
    for h in moved:
        h.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for h in moved:
            h.setStream(sys.stdout)


# ------------------------------------------------------------------------------------------------------ train
@click.command()
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="YOLO data.yaml (or a folder holding one).",
)
@click.option(
    "--model",
    default="yolo11n",
    show_default=True,
    help="Architecture (yolo11n, yolo26n, …: built from YAML, nothing downloaded) or a .pt to start from.",
)
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--imgsz", default=640, show_default=True, type=click.IntRange(min=32))
@click.option("--batch", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    default=Path("runs/train"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Project folder; the run goes to OUT/NAME.",
)
@click.option("--name", default=None, help="Run name (default: <model>-<data folder>).")
@click.option("--device", default="cpu", show_default=True, help="cpu, 0, cuda:0 …")
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=0), help="Dataloader workers."
)
@click.option("--patience", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--amp/--no-amp", default=False, show_default=True, help="Mixed precision (CUDA only, bf16).")
@click.option("--plots/--no-plots", default=False, show_default=True, help="ultralytics' training plots.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other ultralytics training argument, e.g. --set mosaic=0 --set lr0=0.005 (YAML values).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
def train(data: Path, model: str, epochs: int, imgsz: int, batch: int, seed: int, out: Path, name: str | None,
          device: str, workers: int, patience: int, amp: bool, plots: bool, overrides: tuple[str, ...],
          as_json: bool) -> None:  # fmt: skip
    """Train a YOLO defect detector offline; writes best.pt and run.json (the run record) side by side."""
    import yaml

    from detection.train import TrainConfig, TrainError
    from detection.train import train as run_train

    extra: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        extra[key.strip()] = yaml.safe_load(value)
    cfg = TrainConfig(data=data, model=model, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed, out=out,
                      name=name, device=device, workers=workers, patience=patience, amp=amp, plots=plots,
                      overrides=extra)  # fmt: skip
    from detection.offline import ensure_offline

    settings = get_settings()
    try:
        with _stdout_to_stderr() if as_json else contextlib.nullcontext():
            ensure_offline(settings)  # imports ultralytics: inside, so its import-time messages avoid stdout
            result = run_train(cfg, settings=settings, command=["skyinspect", *sys.argv[1:]])
    except TrainError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.record, indent=2))
        return
    m = result.record.get("metrics", {})
    click.echo(f"weights:    {result.weights}")
    click.echo(f"run record: {result.record_path}")
    click.echo(f"mAP50 {_fmt(m.get('map50'))}  mAP50-95 {_fmt(m.get('map50_95'))}  "
               f"({result.record['wall_time_s']:.0f} s)")  # fmt: skip


# ------------------------------------------------------------------------------------------------------ evaluate
@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="data.yaml, a folder with one, or a flight folder (flight/ + truth/labels/).",
)
@click.option("--split", default="val", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--conf", default=0.001, show_default=True, type=click.FloatRange(0, 1))
@click.option("--iou", default=0.6, show_default=True, type=click.FloatRange(0, 1), help="NMS IoU threshold.")
@click.option("--max-det", default=300, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--imgsz", default=None, type=click.IntRange(min=32), help="Input size for dynamic-input models."
)
@click.option("--slice", "sliced", is_flag=True, help="Tile full frames (tile = model input) and merge.")
@click.option("--overlap", default=0.2, show_default=True, type=click.FloatRange(0, 0.95))
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write metrics.json, pr_curve.png and confusion_matrix.png here.",
)
@click.option("--ap-method", default="coco", show_default=True, type=click.Choice(["coco", "ultralytics"]))
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Only the first N images.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the report) and nothing else.")
def evaluate(model: Path, data: Path, split: str, conf: float, iou: float, max_det: int, imgsz: int | None,
             sliced: bool, overlap: float, batch: int, device: str, out: Path | None, ap_method: str,
             limit: int | None, as_json: bool) -> None:  # fmt: skip
    """Evaluate MODEL (.pt or .onnx) through skyinspect's own inference path; mAP50, mAP50-95, per class."""
    from detection.backends import BackendError
    from detection.evaluate import EvalConfig, EvaluateError
    from detection.evaluate import evaluate as run_evaluate
    from detection.model_meta import ModelMetadataError

    cfg = EvalConfig(model=model, data=data, split=split, conf=conf, iou=iou, max_det=max_det, imgsz=imgsz,
                     slice=sliced, overlap=overlap, batch=batch, device=device, out=out, ap_method=ap_method,
                     limit=limit)  # fmt: skip
    try:
        with _stdout_to_stderr() if as_json else contextlib.nullcontext():
            if model.suffix.lower() == ".pt":
                from detection.offline import ensure_offline

                ensure_offline(get_settings())
            result = run_evaluate(cfg)
    except (EvaluateError, BackendError, ModelMetadataError) as exc:
        raise click.ClickException(str(exc)) from exc
    report = result.report
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(
        f"{report['model']}  ({report['backend']}, {report['images']} images, dataset {report['dataset_version']})"
    )
    click.echo(f"{'class':<28}{'support':>8}{'P':>8}{'R':>8}{'AP50':>8}{'AP50-95':>9}")
    for name, c in report["per_class"].items():
        if c["support"] or c["predictions"]:
            click.echo(f"{name:<28}{c['support']:>8}{_fmt(c['precision']):>8}{_fmt(c['recall']):>8}"
                       f"{_fmt(c['ap50']):>8}{_fmt(c['ap50_95']):>9}")  # fmt: skip
    click.echo(f"{'all':<28}{'':>8}{_fmt(report['precision']):>8}{_fmt(report['recall']):>8}"
               f"{_fmt(report['map50']):>8}{_fmt(report['map50_95']):>9}")  # fmt: skip
    for kind, path in result.files.items():
        click.echo(f"{kind}: {path}")


# ------------------------------------------------------------------------------------------------------ models
def _registry() -> Any:
    from detection.registry import ModelRegistry

    return ModelRegistry.from_settings(get_settings())


def _guard(fn: Any) -> Any:
    """Turn registry / store errors into clean CLI errors."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from detection.registry import RegistryError
        from detection.taxonomy import TaxonomyError
        from objectstore.client import ObjectStoreError

        try:
            return fn(*args, **kwargs)
        except (RegistryError, ObjectStoreError, TaxonomyError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group()
def models() -> None:
    """The model registry in the object store: list, show, register, promote, rollback, pull."""


@models.command("list")
@click.argument("domain")
@click.option("--json", "as_json", is_flag=True)
@_guard
def list_cmd(domain: str, as_json: bool) -> None:
    """Versions of DOMAIN (pv-thermal, pv-rgb, wind-rgb) with their metrics side by side."""
    reg = _registry()
    rows = reg.list(domain)
    aliases = reg.aliases(domain)
    if as_json:
        click.echo(json.dumps({
            "domain": aliases["domain"],
            "champion": aliases.get("champion"),
            "candidate": aliases.get("candidate"),
            "versions": [{"version": r.version, "aliases": r.aliases, "created": r.card.get("created"),
                          "map50": r.metrics.get("map50"), "map50_95": r.metrics.get("map50_95"),
                          "dataset_version": (r.card.get("provenance") or {}).get("dataset_version"),
                          "artifacts": sorted(r.card.get("artifacts", {}))} for r in rows],
        }))  # fmt: skip
        return
    if not rows:
        click.echo(f"no versions registered for {aliases['domain']}")
        return
    click.echo(
        f"{'version':<28}{'aliases':<20}{'mAP50':>8}{'mAP50-95':>10}  {'dataset':<18}{'created':<26}artifacts"
    )
    for r in rows:
        prov = r.card.get("provenance") or {}
        click.echo(f"{r.version:<28}{','.join(r.aliases) or '-':<20}{_fmt(r.metrics.get('map50')):>8}"
                   f"{_fmt(r.metrics.get('map50_95')):>10}  {_fmt(prov.get('dataset_version')):<18}"
                   f"{_fmt(r.card.get('created')):<26}{','.join(sorted(r.card.get('artifacts', {})))}")  # fmt: skip


@models.command()
@click.argument("domain")
@click.argument("ref", default="champion")
@_guard
def show(domain: str, ref: str) -> None:
    """The model card of REF (a version, or champion/candidate) as JSON."""
    reg = _registry()
    version = reg.resolve(domain, ref)
    card = reg.card(domain, version)
    card["aliases"] = [a for a in ("champion", "candidate") if reg.aliases(domain).get(a) == version]
    click.echo(json.dumps(card, indent=2))


@models.command()
@click.argument("domain")
@click.argument("weights", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", default=None, help="Version name (default: UTC time + weights hash).")
@click.option(
    "--eval-report",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A metrics.json from `skyinspect evaluate` to keep on the card.",
)
@click.option("--candidate/--no-candidate", default=True, show_default=True, help="Make it the candidate.")
@click.option("--note", default="", help="Free text kept on the card.")
@_guard
def register(domain: str, weights: Path, version: str | None, eval_report: Path | None, candidate: bool,
             note: str) -> None:  # fmt: skip
    """Register WEIGHTS (best.pt, with its run.json beside it) as a new version of DOMAIN."""
    reg = _registry()
    card = reg.register(domain, weights, version=version, candidate=candidate, note=note)
    if eval_report is not None:
        card = reg.add_evaluation(domain, card["version"], eval_report.stem,
                                  json.loads(eval_report.read_text(encoding="utf-8")))  # fmt: skip
    click.echo(card["version"])


@models.command()
@click.argument("domain")
@click.argument("version", required=False)
@_guard
def promote(domain: str, version: str | None) -> None:
    """Make the candidate (or VERSION) the champion."""
    doc = _registry().promote(domain, version)
    last = doc["history"][-1]
    click.echo(f"{doc['domain']}: champion {last['from'] or '-'} -> {last['to']}")


@models.command()
@click.argument("domain")
@_guard
def rollback(domain: str) -> None:
    """Return the champion to the previous champion."""
    doc = _registry().rollback(domain)
    last = doc["history"][-1]
    click.echo(f"{doc['domain']}: champion {last['from']} -> {last['to']} (rolled back)")


@models.command()
@click.argument("domain")
@click.argument("ref", default="champion")
@click.option("--dest", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--kind", "kinds", multiple=True, help="Only artifacts of this kind (pytorch, onnx, …); repeatable."
)
@_guard
def pull(domain: str, ref: str, dest: Path, kinds: tuple[str, ...]) -> None:
    """Download REF (version or alias) into DEST and verify every artifact's sha256."""
    pulled = _registry().pull(domain, ref, dest, kinds=kinds or None)
    click.echo(f"{pulled.domain} {pulled.version} -> {pulled.dest}")
    for name, path in sorted(pulled.files.items()):
        click.echo(f"  {name}: {path}")
