"""Scheduled retraining, one partition per domain: dataset → candidate → holdout evaluation → promotion decision.

* ``training_dataset``: base synthetic flights (``datasets.synth.generate_flight``, seeded) plus every reviewed
  YOLO set exported under ``reviews/`` in the store whose class names are this domain's (the review app comes
  later; none is fine), built into one YOLO set (``datasets.build.build_dataset``, split by flight).
* ``candidate_model``: ``detection.train.train`` on it, registered as the domain's ``candidate``.
* ``holdout_evaluation``: candidate and champion scored on the FIXED holdout flight (synthetic, seed
  :data:`HOLDOUT_SEED`, regenerated identically when missing) with ``detection.evaluate``; the candidate is first
  exported to ONNX and verified against its weights (``onnx_export``), and its ONNX is what gets scored and
  stored as the version's ``onnx`` artifact (what the flight job and the on-site runtime run), carrying the
  candidate's operating point (``skyinspect.conf``: the confidence threshold with the best findings F1 on the
  holdout flight, ``detection.operating_point``; also in the artifact's info in the card).
* ``model_promotion``: :func:`decide_promotion` — the candidate becomes champion only when its holdout mAP50-95
  beats the champion's; otherwise it stays the candidate and the reason is written into its model card
  (``card["promotion"]``).

Work folders live under ``{data_dir}/retraining/{domain}/``.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from detection.taxonomy import Domain
from pipelines.resources import ModelRegistryResource, ObjectStoreResource

GROUP = "retraining"
HOLDOUT_SEED = 424242
HOLDOUT_NAME = f"holdout-seed{HOLDOUT_SEED}"
REVIEWS_PREFIX = "reviews/"
METRIC = "map50_95"
DEFAULT_CRON = "0 3 * * 1"
domain_partitions = dg.StaticPartitionsDefinition([d.value for d in Domain])


# -------------------------------------------------------------------------------------------------- decision
@dataclass(frozen=True)
class PromotionDecision:
    """Whether to promote, and why (recorded in the model card either way)."""

    promote: bool
    reason: str
    candidate_score: float | None
    champion_score: float | None
    metric: str = METRIC

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "metric": self.metric,
            "candidate": self.candidate_score,
            "champion": self.champion_score,
        }


def decide_promotion(
    candidate: float | None, champion: float | None, *, min_gain: float = 0.0, metric: str = METRIC
) -> PromotionDecision:
    """Promote only when the candidate's holdout score beats the champion's by more than ``min_gain``.

    Args:
        candidate: the candidate's holdout score (None: it could not be evaluated).
        champion: the current champion's score on the same holdout (None: there is no champion).
        min_gain: how much better the candidate must be (absolute, same units as the metric).

    Raises:
        ValueError: a negative ``min_gain`` or a score outside 0..1.
    """
    if min_gain < 0:
        raise ValueError(f"min_gain must be >= 0, got {min_gain}")
    for name, value in (("candidate", candidate), ("champion", champion)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} {metric} must be in 0..1, got {value}")
    if candidate is None:
        return PromotionDecision(False, "the candidate has no holdout score", candidate, champion, metric)
    if champion is None:
        return PromotionDecision(
            True, f"no champion yet; candidate {metric} {candidate:.4f}", candidate, None, metric
        )
    if candidate > champion + min_gain:
        return PromotionDecision(
            True,
            f"candidate {metric} {candidate:.4f} beats champion {champion:.4f} (min gain {min_gain})",
            candidate,
            champion,
            metric,
        )
    return PromotionDecision(
        False,
        f"candidate {metric} {candidate:.4f} does not beat champion {champion:.4f} (min gain {min_gain})",
        candidate,
        champion,
        metric,
    )


# -------------------------------------------------------------------------------------------------- config
class RetrainConfig(dg.Config):
    """Sizes of a retraining run (the defaults are a small CPU run; raise them on a GPU box)."""

    base_flights: int = Field(default=3, description="Synthetic base flights (>= 2; the last is val).")
    images_per_flight: int = Field(default=12, description="Images per synthetic flight.")
    holdout_images: int = Field(default=12, description="Images in the fixed holdout flight.")
    image_size: list[int] | None = Field(
        default=None, description="[w, h] of synthetic frames (None: camera)."
    )
    tile: int | None = Field(default=640, description="Tile size for the training set (None: whole frames).")
    model: str = Field(default="yolo11n", description="Architecture, or a .pt to fine-tune.")
    epochs: int = Field(default=30)
    imgsz: int = Field(default=640)
    batch: int = Field(default=8)
    device: str = Field(default="cpu")
    min_gain: float = Field(default=0.0, description="Candidate must beat the champion by more than this.")


def work_dir(store: ObjectStoreResource, domain: str) -> Path:
    return store.settings.get().data_dir / "retraining" / domain


def holdout_flight(store: ObjectStoreResource, domain: str, images: int, size: list[int] | None) -> Path:
    """The fixed holdout flight of ``domain`` (generated once, deterministically, from :data:`HOLDOUT_SEED`)."""
    from datasets.synth.generate import generate_flight

    root = store.settings.get().data_dir / "retraining" / "holdout" / f"{domain}-{images}"
    if not (root / "synth.json").is_file():
        opts = {"image_size": tuple(size)} if size else {}
        generate_flight(domain, images, HOLDOUT_SEED, root, progress=False, **opts)
    return root


def download_reviewed_sets(client: Any, domain: str, dest: Path) -> list[Path]:
    """Every YOLO set under ``reviews/`` whose data.yaml names are ``domain``'s classes, downloaded to ``dest``."""
    import yaml

    from detection import taxonomy

    names = taxonomy.class_names(domain)
    objects = list(client.list(REVIEWS_PREFIX))
    roots = [
        o.key[: -len("data.yaml")]
        for o in objects
        if o.key.endswith("/data.yaml") or o.key == "reviews/data.yaml"
    ]
    sets = []
    for root in roots:
        spec = yaml.safe_load(client.get_bytes(root + "data.yaml")) or {}
        listed = spec.get("names")
        listed = [listed[k] for k in sorted(listed)] if isinstance(listed, dict) else listed
        if listed != names:
            continue
        target = dest / root[len(REVIEWS_PREFIX) :].strip("/").replace("/", "__")
        for obj in objects:
            if obj.key.startswith(root):
                client.download_file(obj.key, target / obj.key[len(root) :])
        sets.append(target)
    return sets


# -------------------------------------------------------------------------------------------------- assets
@dg.asset(
    partitions_def=domain_partitions,
    group_name=GROUP,
    kinds={"yolo"},
    description="YOLO training set: synthetic base flights + reviewed labels under reviews/.",
)
def training_dataset(
    context: dg.AssetExecutionContext, config: RetrainConfig, store: ObjectStoreResource
) -> dg.MaterializeResult:
    from datasets.build import TileOptions, build_dataset
    from datasets.synth.generate import generate_flight

    domain = context.partition_key
    root = work_dir(store, domain)
    flights = []
    opts = {"image_size": tuple(config.image_size)} if config.image_size else {}
    for i in range(config.base_flights):
        out = root / "flights" / f"base-{i:02d}"
        if not (out / "synth.json").is_file():
            generate_flight(domain, config.images_per_flight, 1000 + i, out, progress=False, **opts)
        flights.append(out)
    reviews_dir = root / "reviews"
    shutil.rmtree(reviews_dir, ignore_errors=True)
    with store.client() as client:
        reviewed = download_reviewed_sets(client, domain, reviews_dir)
    # the last base flight is pinned to val, so the split never depends on how many flights there are
    result = build_dataset(
        flights[:-1],
        root / "dataset",
        import_sets=reviewed,
        val_flights=flights[-1:],
        seed=0,
        domain=domain,
        overwrite=True,
        progress=False,
        tiles=TileOptions(size=config.tile) if config.tile else None,
    )
    return dg.MaterializeResult(
        metadata={
            "data_yaml": dg.MetadataValue.path(str(result.data_yaml)),
            "base_flights": len(flights),
            "reviewed_sets": len(reviewed),
            "dataset_version": result.version,
            "splits": {k: v.as_dict() for k, v in result.splits.items()},
        }
    )


@dg.asset(
    partitions_def=domain_partitions,
    group_name=GROUP,
    deps=[training_dataset],
    kinds={"pytorch"},
    description="A model trained on the training set, registered as the domain's candidate.",
)
def candidate_model(
    context: dg.AssetExecutionContext,
    config: RetrainConfig,
    store: ObjectStoreResource,
    models: ModelRegistryResource,
) -> dg.MaterializeResult:
    from detection.train import TrainConfig, train

    domain = context.partition_key
    root = work_dir(store, domain)
    result = train(
        TrainConfig(
            data=root / "dataset" / "data.yaml",
            model=config.model,
            epochs=config.epochs,
            imgsz=config.imgsz,
            batch=config.batch,
            device=config.device,
            out=root / "runs",
            name=f"retrain-{context.run.run_id[:8]}",
            workers=0,
        ),
        settings=store.settings.get(),
        command=["dagster", "retrain_job", domain],
    )
    card = models.registry().register(
        domain, result.weights, candidate=True, note=f"retrain run {context.run.run_id}"
    )
    return dg.MaterializeResult(
        metadata={
            "version": card["version"],
            "weights": dg.MetadataValue.path(str(result.weights)),
            "validator_metrics": card.get("metrics") or {},
        }
    )


def export_and_verify(weights: Path, out: Path, holdout: Path, imgsz: int | None = None) -> tuple[Path, dict]:
    """Export the candidate to FP32 ONNX (``onnx_export.export.export_model``) and verify it against its PyTorch
    weights on the holdout flight (``onnx_export.verify.verify_or_raise``) → (ONNX path, verification summary).

    Raises:
        onnx_export.errors.ExportError: the export failed.
        onnx_export.errors.VerificationFailed: the ONNX model disagrees with the checkpoint beyond the gates.
    """
    from onnx_export.export import ExportConfig, export_model
    from onnx_export.source import from_file
    from onnx_export.verify import verify_or_raise

    source = from_file(weights)
    result = export_model(source, ExportConfig(out=out, imgsz=(imgsz, imgsz) if imgsz else None))
    onnx = next(v.path for v in result.variants if v.precision == "fp32" and not v.dynamic_batch)
    report = verify_or_raise(weights, [onnx], holdout, opencv=False)
    return onnx, {"passed": report.passed, "torch_map50_95": report.torch_map50_95, "images": report.images}


@dg.asset(
    partitions_def=domain_partitions,
    group_name=GROUP,
    deps=[candidate_model],
    kinds={"onnx"},
    description="Candidate and champion scored on the fixed holdout flight.",
)
def holdout_evaluation(
    context: dg.AssetExecutionContext,
    config: RetrainConfig,
    store: ObjectStoreResource,
    models: ModelRegistryResource,
) -> dg.MaterializeResult:
    from detection.evaluate import EvalConfig, evaluate
    from detection.operating_point import choose_operating_point, write_conf

    domain = context.partition_key
    reg = models.registry()
    aliases = reg.aliases(domain)
    candidate = aliases.get("candidate")
    if not candidate:
        raise dg.Failure(description=f"{domain}: no candidate in the registry", allow_retries=False)
    holdout = holdout_flight(store, domain, config.holdout_images, config.image_size)
    root = work_dir(store, domain) / "eval"
    pulled = reg.pull(domain, candidate, root / candidate, kinds=["pytorch"])
    onnx, verification = export_and_verify(
        pulled.path("pytorch"), root / candidate / "onnx", holdout, config.imgsz
    )
    # Its operating point on the same fixed flight: the threshold only sets what the flight job and the edge keep;
    # the promotion below compares mAP50-95, which no threshold changes.
    point = choose_operating_point(onnx, holdout, domain)
    write_conf(onnx, point["conf"])
    context.log.info("%s %s: operating point conf %.2f (holdout findings F1 %.3f)", domain, candidate,
                     point["conf"], point["f1"])  # fmt: skip
    reg.add_artifact(
        domain, candidate, onnx, "onnx", info={"verification": verification, "operating_point": point}
    )
    report = evaluate(EvalConfig(model=onnx, data=holdout, out=None, plots=False)).report
    reg.add_evaluation(domain, candidate, HOLDOUT_NAME, report)
    champion_score = None
    champion = aliases.get("champion")
    if champion:
        card = reg.card(domain, champion)
        previous = (card.get("evaluations") or {}).get(HOLDOUT_NAME)
        if previous is None:
            champ = reg.pull(domain, champion, root / champion)
            kinds = {m.get("kind") for m in champ.card.get("artifacts", {}).values()}
            champ_file = champ.path("onnx") if "onnx" in kinds else champ.path("pytorch")
            previous = evaluate(EvalConfig(model=champ_file, data=holdout, out=None, plots=False)).report
            reg.add_evaluation(domain, champion, HOLDOUT_NAME, previous)
        champion_score = previous.get(METRIC)
    return dg.MaterializeResult(
        metadata={
            "candidate": candidate,
            "champion": champion,
            "candidate_" + METRIC: report.get(METRIC),
            "champion_" + METRIC: champion_score,
            "holdout": str(holdout),
            "onnx_verification": verification,
            "conf": point["conf"],
        }
    )


@dg.asset(
    partitions_def=domain_partitions,
    group_name=GROUP,
    deps=[holdout_evaluation],
    description="Promote the candidate to champion only when it beats the champion on the holdout.",
)
def model_promotion(
    context: dg.AssetExecutionContext, config: RetrainConfig, models: ModelRegistryResource
) -> dg.MaterializeResult:
    from detection.registry import card_key, cas_update

    domain = context.partition_key
    reg = models.registry()
    aliases = reg.aliases(domain)
    candidate, champion = aliases.get("candidate"), aliases.get("champion")
    if not candidate:
        raise dg.Failure(description=f"{domain}: no candidate to decide on", allow_retries=False)

    def score(version: str | None) -> float | None:
        if not version:
            return None
        value = ((reg.card(domain, version).get("evaluations") or {}).get(HOLDOUT_NAME) or {}).get(METRIC)
        return None if value is None else float(value)

    decision = decide_promotion(score(candidate), score(champion), min_gain=config.min_gain)
    record = {**decision.to_dict(), "champion_version": champion, "run_id": context.run.run_id}

    def note(card: dict[str, Any] | None) -> dict[str, Any]:
        if card is None:
            raise dg.Failure(description=f"{domain} {candidate}: card disappeared")
        card["promotion"] = record
        return card

    cas_update(reg.store, card_key(domain, candidate), note)
    if decision.promote:
        reg.promote(domain, candidate)
    context.log.info("%s %s: %s", domain, candidate, decision.reason)
    return dg.MaterializeResult(
        metadata={"candidate": candidate, **{k: v for k, v in record.items() if v is not None}}
    )


RETRAIN_ASSETS = [training_dataset, candidate_model, holdout_evaluation, model_promotion]
retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Retrain one domain's detector and promote it only if it beats the champion on the holdout.",
    tags={"skyinspect/job": "retrain"},
)


def build_retrain_schedule(cron: str = DEFAULT_CRON, timezone: str = "UTC") -> dg.ScheduleDefinition:
    """A schedule running ``retrain_job`` for every domain at ``cron`` (default weekly, Monday 03:00)."""

    @dg.schedule(
        job=retrain_job,
        cron_schedule=cron,
        execution_timezone=timezone,
        name="weekly_retrain",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        stamp = (
            context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
            if context.scheduled_execution_time
            else ""
        )
        return [
            dg.RunRequest(run_key=f"{d}@{stamp}", partition_key=d)
            for d in domain_partitions.get_partition_keys()
        ]

    return _schedule
