"""Train the default models shipped in ``models/`` (``make models`` runs ``python -m detection.default_models``).

For each domain (pv-thermal, pv-rgb, wind-rgb):

1. render synthetic training flights (``datasets.synth.generate_flight``, seeds from 1000 up), a validation
   flight, and one held-out evaluation flight whose seed (2000 up) is used nowhere in training;
2. build a YOLO set from the training and validation flights (``datasets.build.build_dataset``; the 4000×3000
   RGB frames are cut into model-sized tiles, thermal frames are used whole);
3. train a small model from its architecture YAML (nothing downloaded) for a fixed number of epochs sized so each
   domain fits 60 CPU-minutes on a 2-core machine (the card records the CPU time it took);
4. evaluate the best weights on the held-out flight through the project's own inference path (tiled for RGB);
5. export ``models/<domain>/<domain>-fp32-dynbatch.onnx`` (what the pipelines and the on-site runtime run) and
   evaluate THAT file on the held-out flight; for sliced domains also compare small-defect recall of sliced
   inference with one resized full-frame pass (:func:`compare_slicing`);
6. choose the model's operating point (confidence threshold) on the VALIDATION flight, never the held-out one
   (``detection.operating_point``): the grid value whose findings — built and scored as the flight job and
   ``skyinspect score`` build and score them — have the best unique-defect F1, written into the ONNX file as
   ``skyinspect.conf`` (the default threshold of the flight job, ``skyinspect predict`` and the on-site runtime)
   and into the card as ``operating_point``;
7. write ``models/<domain>/best.pt`` (≤ 15 MB), ``models/<domain>/card.json`` (exact command, dataset version,
   metrics, CPU time, targets) and ``models/<domain>/eval/`` (metrics.json, PR curve, confusion matrix).

``--evaluate-only`` reruns steps 5–7 on the shipped weights without training.

``--quick`` runs the same steps at toy sizes (a few small frames, one epoch) into a scratch folder: a smoke test
of the plumbing, not a model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from detection import taxonomy
from detection.operating_point import choose_operating_point, write_conf

logger = logging.getLogger(__name__)

MAX_WEIGHTS_BYTES = 15 * 1024 * 1024
CARD_FORMAT = "skyinspect-default-model/2"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Profile:
    """How one domain's default model is made. Seeds: training ≥ 1000, held-out ≥ 2000, never shared."""

    domain: str
    train_seeds: tuple[int, ...]
    train_images: int
    """Frames per training flight."""
    val_seed: int
    val_images: int
    heldout_seed: int
    heldout_images: int
    image_size: tuple[int, int] | None
    """Rendered frame size (w, h); ``None`` = the synthetic camera's native size."""
    tile: int | None
    """Training tile size (``None``: whole frames) — also the tile when evaluating sliced."""
    imgsz: int
    """Training input size."""
    epochs: int
    """Fixed, so a rerun on a busy machine trains the same model (a wall-clock budget would not); sized so that
    training fits 60 CPU-minutes on the 2-core reference machine (the card records the CPU time it took)."""
    batch: int
    target_map50: float
    model: str = "yolo11p"
    """``yolo11p``: YOLO11 at half the nano's width (detection/arch/yolo11p.yaml) — twice the steps per CPU-minute."""
    background_ratio: float = 0.25
    slice_eval: bool = False
    train_defect_rate: float | None = None
    """Defect rate of the training/validation flights (``None``: the generator's default). The held-out flight
    always uses the default, so it is scored on a realistic defect density."""
    export_imgsz: tuple[int, int] | None = None
    """(h, w) input of the exported ONNX (``None``: ``imgsz`` square). A camera whose frames are not square runs
    faster on an input of its own shape: the letterbox then adds little or no padding for the model to process."""
    train_args: dict[str, Any] = field(default_factory=dict)
    """Further ultralytics training arguments (augmentation, caching), recorded in the card. ``nbs`` (nominal
    batch) = ``batch``: ultralytics otherwise accumulates gradients up to 64 images per optimiser step, which leaves
    a CPU budget only a few hundred steps — too few to learn from scratch."""


PROFILES: dict[str, Profile] = {
    # Thermal hotspots and junction boxes are ~6 px at 640×512, under the stride-8 anchor spacing: the P2 variant
    # gives them stride-4 anchors; reg_max 1 (yolo11p-p2-r1) makes its box branch 4× narrower. Trained on whole
    # frames at 640 (an offline string spans the frame height: 320 px crops never held one, string-offline AP50
    # 0.04), batch 2 so the steps per CPU-minute match 320 px crops at batch 8. Nadir views have no "up" (flipud);
    # scale jitter stays small so 6 px defects are not shrunk to nothing. Exported at 544×640 (h×w): a 640×512
    # frame plus half a stride of padding above and below (ultralytics' rule for rectangular validation); 640×640
    # takes 18 % more pixels, 512×640 (no padding) lost 5.8 points mAP50 on the held-out flight. Training flights
    # carry twice the defects of the old 0.08 (three times the boxes per frame at the same CPU cost per epoch):
    # on the GPU comparison (models/README.md) two seeds of each reached validation mAP50 0.82 / 0.79 against
    # 0.34 / 0.56 after 28 epochs, and 0.94 / 0.92 against 0.64 / 0.59 on the recipe-selection flight 2004. Ten
    # short flights rather than three long ones: each flight has its own weather (ambient 8–30 °C, 750–1000 W/m²),
    # and a model trained on three cool days (ambient ≤ 20 °C) fired on every module of a 30 °C flight.
    "pv-thermal": Profile(
        domain="pv-thermal", train_seeds=tuple(range(1020, 1030)), train_images=15, val_seed=1003, val_images=25,
        heldout_seed=2000, heldout_images=40, image_size=None, tile=None, imgsz=640, epochs=36,
        batch=2, target_map50=0.90, model="yolo11p-p2-r1", train_defect_rate=0.16, export_imgsz=(544, 640),
        train_args={"nbs": 2, "scale": 0.25, "flipud": 0.5, "hsv_v": 0.3, "close_mosaic": 5, "cache": "ram"},
    ),
    # PV RGB defects are 20–150 px on 4000×3000 frames: 320 px tiles keep them whole and train 4× cheaper than 640.
    "pv-rgb": Profile(
        domain="pv-rgb", train_seeds=(1100, 1101, 1102), train_images=8, val_seed=1103, val_images=3,
        heldout_seed=2100, heldout_images=4, image_size=None, tile=320, imgsz=320, epochs=20,
        batch=8, target_map50=0.80, slice_eval=True, train_defect_rate=0.08,
        train_args={"nbs": 8, "flipud": 0.5, "cache": "ram"},
    ),
    # Blade defects are 15–700 px on 4000×3000 frames: 640 px tiles keep them whole, and the model sees them at
    # half scale (input 320: 4× the steps per CPU-minute). Most tiles of a real sweep show sky, ground or clean
    # blade, so training keeps as many background tiles as defect tiles.
    "wind-rgb": Profile(
        domain="wind-rgb", train_seeds=(1200, 1201, 1202, 1204, 1205), train_images=24, val_seed=1203,
        val_images=12, heldout_seed=2200, heldout_images=24, image_size=None, tile=640, imgsz=320, epochs=40,
        batch=8, target_map50=0.80, slice_eval=True, train_defect_rate=3.0, background_ratio=1.0,
        train_args={"nbs": 8, "flipud": 0.5, "cache": "ram"},
    ),
}  # fmt: skip


def quick_profile(profile: Profile) -> Profile:
    """The same profile at toy sizes (smoke test): 2 small frames per flight, one epoch at 128 px."""
    thermal = profile.domain == taxonomy.Domain.PV_THERMAL.value
    wind = profile.domain == taxonomy.Domain.WIND.value
    return replace(
        profile,
        train_seeds=profile.train_seeds[:1],
        train_images=3,
        val_images=2 if thermal else 4,  # a blade sweep shows defects in few frames
        heldout_images=2,
        image_size=(320, 256) if thermal else (640, 480),
        tile=None if thermal else 320,
        imgsz=128,
        export_imgsz=None,
        epochs=1,
        batch=4,
        train_defect_rate=5.0 if wind else 0.3,  # toy flights need some boxes
    )


def check_profile(p: Profile) -> None:
    """Raise ValueError when a profile would leak the held-out flight into training or is malformed."""
    taxonomy.domain(p.domain)
    training = {*p.train_seeds, p.val_seed}
    if p.heldout_seed in training:
        raise ValueError(f"{p.domain}: held-out seed {p.heldout_seed} is also a training/validation seed")
    if len(set(p.train_seeds)) != len(p.train_seeds) or p.val_seed in p.train_seeds:
        raise ValueError(
            f"{p.domain}: training and validation seeds must all differ: {p.train_seeds}, {p.val_seed}"
        )
    if p.tile is not None and p.tile % 32:
        raise ValueError(f"{p.domain}: tile {p.tile} must be a multiple of 32")
    sizes = [("imgsz", p.imgsz), *(("export_imgsz", s) for s in p.export_imgsz or ())]
    for name, size in sizes:
        if size % 32:
            raise ValueError(f"{p.domain}: {name} {size} must be a multiple of 32")


# -------------------------------------------------------------------------------------------------- steps
def _stale_flight(synth_json: Path, images: int, defect_rate: float | None) -> str | None:
    """Why a rendered flight does not match what the profile asks for (``None``: it does, reuse it).

    A profile change (more frames, another training defect rate) must not silently train on flights rendered for
    the old one. ``defect_rate`` ``None`` = the generator's default for the domain.
    """
    from datasets.synth.generate import DEFAULTS

    meta = json.loads(synth_json.read_text())
    if meta.get("images") != images:
        return f"{meta.get('images')} frames rendered, {images} wanted"
    want = defect_rate if defect_rate is not None else DEFAULTS[taxonomy.domain(meta["kind"])]["defect_rate"]
    if meta.get("defect_rate") is None or abs(float(meta["defect_rate"]) - want) > 1e-9:
        return f"defect rate {meta.get('defect_rate')} rendered, {want} wanted"
    return None


def render_flights(p: Profile, work: Path) -> dict[str, Any]:
    """Render training, validation and held-out flights under ``work/flights`` → {"train": [...], "val", "heldout"}."""
    from datasets.synth import generate_flight

    opts: dict[str, Any] = {"progress": False}
    if p.image_size is not None:
        opts["image_size"] = p.image_size

    def one(seed: int, images: int, training: bool = True) -> Path:
        out = work / "flights" / f"{p.domain}-{seed}"
        rate = {"defect_rate": p.train_defect_rate} if training and p.train_defect_rate is not None else {}
        if (out / "synth.json").is_file():
            stale = _stale_flight(out / "synth.json", images, rate.get("defect_rate"))
            if stale is None:
                logger.info("reusing flight %s", out)
                return out
            logger.info("re-rendering flight %s: %s", out, stale)
        if out.exists():
            shutil.rmtree(out)
        summary = generate_flight(p.domain, images, seed, out, **opts, **rate)
        logger.info("rendered %s seed %d: %d frames, %d boxes (%.0f s)", p.domain, seed, summary.images,
                    summary.boxes, summary.seconds)  # fmt: skip
        return out

    return {
        "train": [one(s, p.train_images) for s in p.train_seeds],
        "val": one(p.val_seed, p.val_images),
        "heldout": one(p.heldout_seed, p.heldout_images, training=False),
    }


def build_set(p: Profile, flights: dict[str, Any], work: Path) -> Any:
    """The YOLO training set (validation flight pinned to val) → ``datasets.build.BuildResult``."""
    from datasets.build import TileOptions, build_dataset

    return build_dataset(
        flights["train"],
        work / "dataset",
        val_flights=[flights["val"]],
        tiles=TileOptions(size=p.tile) if p.tile else None,
        background_ratio=p.background_ratio,
        seed=0,
        domain=p.domain,
        overwrite=True,
        progress=False,
    )


def run_domain(p: Profile, out_dir: Path, work: Path, device: str = "cpu", workers: int = 2,
               command: str | None = None) -> dict[str, Any]:  # fmt: skip
    """All steps for one domain; returns the card written to ``out_dir/<domain>/card.json``.

    Raises:
        ValueError: a bad profile. RuntimeError: weights larger than 15 MB.
    """
    from detection.train import TrainConfig, train

    check_profile(p)
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    flights = render_flights(p, work)
    t_render = time.perf_counter() - t0
    built = build_set(p, flights, work)
    logger.info("%s dataset %s: %s", p.domain, built.version, {k: v.images for k, v in built.splits.items()})
    overrides: dict[str, Any] = {**p.train_args, **({"close_mosaic": 0} if p.epochs <= 2 else {})}
    result = train(
        TrainConfig(data=built.data_yaml, model=p.model, epochs=p.epochs, imgsz=p.imgsz, batch=p.batch, seed=0,
                    out=work / "runs", name=p.domain, device=device, workers=workers, patience=max(p.epochs // 4, 10),
                    overrides=overrides),
        command=shlex.split(command) if command else None,
    )  # fmt: skip
    size = result.weights.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise RuntimeError(
            f"{result.weights} is {size / 2**20:.1f} MB, above the 15 MB limit for shipped models"
        )

    dest = out_dir / p.domain
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(result.weights, dest / "best.pt")
    shutil.copy2(result.record_path, dest / "run.json")
    card = {
        "format": CARD_FORMAT,
        "domain": p.domain,
        "created": result.record["created"],
        "command": command or result.record["command"],
        "profile": asdict(p),
        "dataset": {
            "version": built.version,
            "version_method": "datasets.version.dataset_version",
            "splits": {k: v.as_dict() for k, v in built.splits.items()},
            "train_flight_seeds": list(p.train_seeds),
            "val_flight_seed": p.val_seed,
        },
        "validator_metrics": result.record.get("metrics"),
        "target_map50": p.target_map50,
        "weights": {"file": "best.pt", "sha256": result.record["weights"]["sha256"], "bytes": size},
        "names": taxonomy.class_names(p.domain),
        "imgsz": p.imgsz,
        "libraries": result.record.get("libraries"),
        "git": result.record.get("git"),
        "timing_s": {
            "render": round(t_render, 1),
            "train": result.record["wall_time_s"],
            "train_cpu": result.record.get("cpu_time_s"),
        },
    }
    _write_card(dest, card)  # training's provenance is on disk even if a later step fails (--evaluate-only)
    card = finish_domain(p, dest, flights, card)
    card["timing_s"]["total"] = round(time.perf_counter() - t0, 1)
    _write_card(dest, card)
    return card


def finish_domain(p: Profile, dest: Path, flights: dict[str, Any], card: dict[str, Any]) -> dict[str, Any]:
    """Steps after training, on ``dest/best.pt``: ONNX export, held-out evaluation of that ONNX file (sliced for
    RGB), and for sliced domains the small-defect recall of sliced vs one full-frame pass → the updated card
    (also written to ``dest/card.json``). ``--evaluate-only`` reruns just this on the shipped weights.
    """
    from detection.evaluate import EvalConfig, evaluate

    onnx_file = export_onnx(dest / "best.pt", dest, p.export_imgsz)
    t0 = time.perf_counter()
    point = choose_operating_point(onnx_file, flights["val"], p.domain)
    point["flight_seed"] = p.val_seed
    point["seconds"] = round(time.perf_counter() - t0, 1)
    write_conf(onnx_file, point["conf"])
    card["operating_point"] = point
    logger.info("%s: operating point conf %.2f (validation flight %d: recall %.3f, precision %.3f, F1 %.3f)",
                p.domain, point["conf"], p.val_seed, point["recall"], point["precision"], point["f1"])  # fmt: skip
    card["onnx"] = {"file": onnx_file.name, "sha256": _sha256(onnx_file), "bytes": onnx_file.stat().st_size,
                    "dynamic_batch": True, "precision": "fp32", "imgsz": list(input_hw(p)),
                    "conf": point["conf"]}  # fmt: skip
    if (dest / "eval").exists():
        shutil.rmtree(dest / "eval")
    (dest / "eval").mkdir(parents=True)
    heldout = evaluate(
        EvalConfig(model=onnx_file, data=flights["heldout"], slice=p.slice_eval, overlap=0.2, batch=8,
                   out=dest / "eval", imgsz=None)
    ).report  # fmt: skip
    map50 = heldout.get("map50")
    card["heldout"] = {
        "flight_seed": p.heldout_seed,
        "images": heldout["images"],
        "model": onnx_file.name,
        "sliced": p.slice_eval,
        "map50": map50,
        "map50_95": heldout.get("map50_95"),
        "precision": heldout.get("precision"),
        "recall": heldout.get("recall"),
        "per_class": heldout.get("per_class"),
        "recall_by_size": heldout.get("recall_by_size"),
        "dataset_version": heldout.get("dataset_version"),
        "ms_per_image": (heldout.get("timing") or {}).get("ms_per_image"),
    }
    card["meets_target"] = map50 is not None and map50 >= p.target_map50
    if p.slice_eval:
        card["slicing"] = compare_slicing(p, dest / "best.pt", flights["heldout"])
    _write_card(dest, card)
    logger.info("%s: held-out mAP50 %s (target %.2f) -> %s", p.domain, map50, p.target_map50, dest)
    return card


FULL_FRAME_IMGSZ = 640
"""The one resized full-frame pass that slicing is compared with runs at ultralytics' default 640."""


def compare_slicing(p: Profile, weights: Path, heldout: Path) -> dict[str, Any]:
    """Small-defect recall on the held-out full-resolution frames: sliced (tiles at the model's training scale,
    ``ModelMeta.slice_tile``) vs one full-frame pass at :data:`FULL_FRAME_IMGSZ` — same weights, same operating
    point (conf 0.25)."""
    from detection.evaluate import EvalConfig, evaluate

    out: dict[str, Any] = {"full_frame_imgsz": FULL_FRAME_IMGSZ, "overlap": 0.2}
    for mode, cfg in (
        ("sliced", EvalConfig(model=weights, data=heldout, slice=True, overlap=0.2, batch=8, plots=False)),
        ("full_frame", EvalConfig(model=weights, data=heldout, imgsz=FULL_FRAME_IMGSZ, batch=1, plots=False)),
    ):
        report = evaluate(cfg).report
        if mode == "sliced":
            out["tile"] = report["settings"]["tile"]
        out[mode] = {"map50": report.get("map50"), "recall_by_size": report.get("recall_by_size"),
                     "ms_per_image": (report.get("timing") or {}).get("ms_per_image")}  # fmt: skip
    small = [out[m]["recall_by_size"]["small"]["recall"] for m in ("sliced", "full_frame")]
    out["small_recall_gain_points"] = round(100 * (small[0] - small[1]), 1) if None not in small else None
    return out


def input_hw(p: Profile) -> tuple[int, int]:
    """The (h, w) input of the shipped ONNX file of profile ``p``."""
    return p.export_imgsz or (p.imgsz, p.imgsz)


def export_onnx(weights: Path, dest: Path, imgsz: tuple[int, int] | None = None) -> Path:
    """FP32 ONNX with a dynamic batch (batched tiles) next to the weights → ``dest/<domain>-fp32-dynbatch.onnx``;
    ``imgsz``: its (h, w) input (default: the training size)."""
    import tempfile

    from onnx_export.export import ExportConfig, export_model
    from onnx_export.source import from_file

    source = from_file(weights)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=dest) as tmp:
        result = export_model(source, ExportConfig(out=Path(tmp), imgsz=imgsz, dynamic_batch=True))
        chosen = next(v for v in result.variants if v.dynamic_batch and v.precision == "fp32")
        for old in dest.glob("*.onnx"):
            old.unlink()
        final = dest / chosen.path.name
        shutil.move(str(chosen.path), final)
    return final


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_card(dest: Path, card: dict[str, Any]) -> None:
    tmp = dest / "card.json.tmp"
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    tmp.replace(dest / "card.json")


def evaluate_only(p: Profile, out_dir: Path, work: Path) -> dict[str, Any]:
    """Rerun :func:`finish_domain` on the shipped ``out_dir/<domain>`` (its card keeps training's provenance).

    Raises:
        FileNotFoundError: no shipped weights or card for the domain.
    """
    dest = out_dir / p.domain
    for name in ("best.pt", "card.json"):
        if not (dest / name).is_file():
            raise FileNotFoundError(f"{dest / name}: no shipped model to evaluate (run make models first)")
    card = json.loads((dest / "card.json").read_text(encoding="utf-8"))
    record = (
        json.loads((dest / "run.json").read_text(encoding="utf-8")) if (dest / "run.json").is_file() else {}
    )
    card["format"] = CARD_FORMAT
    card.setdefault("timing_s", {}).setdefault("train_cpu", record.get("cpu_time_s"))
    # the export shape belongs to the steps rerun here, not to training: the card follows today's profile
    card.setdefault("profile", {})["export_imgsz"] = list(p.export_imgsz) if p.export_imgsz else None
    return finish_domain(p, dest, render_flights(p, work), card)


# -------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detection.default_models", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--domain", action="append", choices=sorted(PROFILES), help="Only this domain (repeatable)."
    )
    parser.add_argument("--out", type=Path, default=None,
                        help="Where <domain>/best.pt and card.json go (default: models/ of this checkout; "
                             "with --quick a scratch folder).")  # fmt: skip
    parser.add_argument(
        "--work", type=Path, default=None, help="Flights, datasets and runs (default: <data_dir>)."
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="Dataloader workers.")
    parser.add_argument(
        "--quick", action="store_true", help="Toy sizes, one epoch: a smoke test of the steps."
    )
    parser.add_argument("--evaluate-only", action="store_true",
                        help="No training: re-export and re-evaluate the shipped <out>/<domain>/best.pt.")  # fmt: skip
    args = parser.parse_args(argv)

    from skyinspect.config import load_settings
    from skyinspect.log import setup_logging

    settings = load_settings()
    setup_logging(settings.log_level)
    argv_used = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "detection.default_models", *argv_used])
    work = args.work or (settings.data_dir / ("default-models-quick" if args.quick else "default-models"))
    out = args.out or (work / "models" if args.quick else REPO_ROOT / "models")
    summary = {}
    with contextlib.redirect_stdout(
        sys.stderr
    ):  # ultralytics binds its log stream at import: keep stdout clean
        from detection.offline import ensure_offline

        ensure_offline(settings)
        for name in args.domain or sorted(PROFILES):
            profile = quick_profile(PROFILES[name]) if args.quick else PROFILES[name]
            if args.evaluate_only:
                card = evaluate_only(profile, out, work / name)
            else:
                card = run_domain(
                    profile, out, work / name, device=args.device, workers=args.workers, command=command
                )
            summary[name] = {
                "heldout_map50": card["heldout"]["map50"],
                "target": card["target_map50"],
                "meets_target": card["meets_target"],
                "train_cpu_minutes": round((card["timing_s"].get("train_cpu") or 0) / 60, 1),
                "small_recall_gain_points": (card.get("slicing") or {}).get("small_recall_gain_points"),
                "conf": (card.get("operating_point") or {}).get("conf"),
            }
    print(json.dumps({"out": str(out), "domains": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
