"""``skyinspect predict``: detect defects in images with the numpy inference core (no torch needed)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import click
import numpy as np

from detection.detections import Detections
from detection.images import IMAGE_SUFFIXES, ImageReadError, read_image

logger = logging.getLogger(__name__)

_FALLBACK_BGR = [(48, 59, 255), (0, 149, 255), (0, 204, 255), (89, 199, 52), (250, 200, 90), (222, 82, 175)]


def expand_images(paths: tuple[str, ...]) -> list[Path]:
    """Files as given, plus the images inside given folders (sorted; not recursive)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        else:
            out.append(p)
    return out


def class_colours(names: dict[int, str], domain: str | None) -> dict[int, tuple[int, int, int]]:
    """BGR colour per class id: the taxonomy's colours when the model's domain is known, else a fixed palette."""
    from detection import taxonomy

    colours = {i: _FALLBACK_BGR[i % len(_FALLBACK_BGR)] for i in names}
    if domain is not None:
        for i, name in names.items():
            try:
                colours[i] = taxonomy.by_name(domain, name).colour_bgr
            except taxonomy.TaxonomyError:
                pass
    return colours


def annotate(
    image: np.ndarray, dets: Detections, names: dict[int, str], colours: dict[int, tuple[int, int, int]]
) -> np.ndarray:
    """A copy of (H, W, 3) BGR ``image`` with boxes and ``name conf`` labels drawn (Hershey font: no files)."""
    import cv2

    out = image.copy()
    thick = max(1, round(max(out.shape[:2]) / 640))
    for xyxy, conf, cid in dets:
        x1, y1, x2, y2 = (round(float(v)) for v in xyxy)
        colour = colours.get(cid, _FALLBACK_BGR[0])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        label = f"{names.get(cid, str(cid))} {conf:.2f}"
        scale = 0.4 * thick
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = max(y1, th + base)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), colour, -1)
        cv2.putText(
            out, label, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA
        )
    return out


@click.command(name="predict")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@click.option(
    "--conf",
    default=None,
    type=click.FloatRange(0, 1),
    help="Confidence threshold [default: the model's operating point (its skyinspect.conf metadata), else 0.25].",
)
@click.option(
    "--iou", default=0.45, show_default=True, type=click.FloatRange(0, 1), help="NMS IoU threshold."
)
@click.option(
    "--max-det", default=300, show_default=True, type=click.IntRange(1), help="Detections per image."
)
@click.option(
    "--slice/--no-slice",
    "sliced",
    default=False,
    show_default=True,
    help="Cut large frames into overlapping model-sized tiles and merge (small defects on 4000×3000 frames).",
)
@click.option(
    "--tile", default=None, type=click.IntRange(32), help="Tile size in pixels [default: model input]."
)
@click.option(
    "--overlap", default=0.2, show_default=True, type=click.FloatRange(0, 0.9), help="Tile overlap."
)
@click.option(
    "--merge",
    type=click.Choice(["greedy", "nms"]),
    default="greedy",
    show_default=True,
    help="How sliced detections are merged: NMS, or NMS then greedy merging of boxes cut by tile borders.",
)
@click.option(
    "--full-frame/--no-full-frame", default=False, show_default=True, help="Sliced: add a full-frame pass."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per image on stdout.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write annotated images and predictions.jsonl here.",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    help="onnxruntime execution provider (repeatable: tensorrt, cuda, cpu) [default: best available].",
)
@click.option(
    "--threads", type=click.IntRange(1), default=None, help="onnxruntime intra-op threads [default: ORT's]."
)
def predict(
    model: Path,
    images: tuple[str, ...],
    conf: float | None,
    iou: float,
    max_det: int,
    sliced: bool,
    tile: int | None,
    overlap: float,
    merge: str,
    full_frame: bool,
    as_json: bool,
    out_dir: Path | None,
    providers: tuple[str, ...],
    threads: int | None,
) -> None:
    """Detect defects in IMAGES (files or folders) with the ONNX MODEL; class names come from the model itself."""
    from detection.backends import BackendError
    from detection.inference import Detector
    from detection.model_meta import DEFAULT_CONF, ModelMetadataError, resolve_conf
    from detection.preprocess import to_model_image
    from detection.slicing import SlicedDetector

    try:
        detector = Detector.from_onnx(
            model,
            conf=DEFAULT_CONF if conf is None else conf,
            iou=iou,
            max_det=max_det,
            providers=list(providers) or None,
            intra_op_threads=threads,
        )
    except (BackendError, ModelMetadataError) as exc:
        raise click.ClickException(str(exc)) from exc
    detector.conf, conf_from = resolve_conf(conf, detector.meta)
    if not as_json:
        click.echo(f"confidence threshold {detector.conf:g} (from {conf_from})", err=True)
    runner = (
        SlicedDetector(detector, tile=tile, overlap=overlap, full_frame=full_frame, merge=merge)  # type: ignore[arg-type]
        if sliced
        else detector
    )
    meta = detector.meta
    domain = meta.domain.value if meta.domain is not None else None
    colours = class_colours(meta.names, domain)
    files = expand_images(images)
    if not files:
        raise click.ClickException("no images found in the given paths")
    jsonl = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        jsonl = (out_dir / "predictions.jsonl").open("w", encoding="utf-8")
    failures = 0
    try:
        for path in files:
            try:
                image = read_image(path)
                t0 = time.perf_counter()
                dets = runner.predict(image)
                ms = (time.perf_counter() - t0) * 1000
            except (ImageReadError, ValueError) as exc:
                failures += 1
                click.echo(f"error: {exc}", err=True)
                continue
            record = {
                "image": str(path),
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
                "model": str(model),
                "model_version": meta.model_version,
                "domain": domain,
                "sliced": sliced,
                "conf": detector.conf,
                "conf_from": conf_from,
                "inference_ms": round(ms, 1),
                "detections": dets.to_records(meta.names),
            }
            line = json.dumps(record, ensure_ascii=False)
            if jsonl is not None:
                jsonl.write(line + "\n")
                view = to_model_image(image, meta.input_kind, meta.thermal_window_c)
                import cv2

                target = out_dir / f"{path.stem}.jpg"  # type: ignore[operator]
                ok, buf = cv2.imencode(".jpg", annotate(view, dets, meta.names, colours))
                if ok:
                    target.write_bytes(buf.tobytes())
            if as_json:
                click.echo(line)
            else:
                counts = Counter(meta.names.get(int(c), str(c)) for c in dets.class_id)
                summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
                click.echo(f"{path}: {len(dets)} detections ({summary}) in {ms:.0f} ms")
    finally:
        if jsonl is not None:
            jsonl.close()
    if failures:
        click.echo(f"{failures} of {len(files)} images could not be processed", err=True)
        sys.exit(1)
