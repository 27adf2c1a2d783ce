"""``skyinspect export``: export a model to ONNX (``skyinspect export MODEL ...``) and verify exports
(``skyinspect export verify MODEL --onnx A.onnx --data DATA``).

``export`` is a click group whose default action is the export itself: a first argument that is not a
sub-command name is the MODEL to export, so both spellings of the issue work.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import click

from onnx_export.errors import ExportError, VerificationFailed

logger = logging.getLogger(__name__)

DEFAULT_COMMAND = "model"


class DefaultCommandGroup(click.Group):
    """A group that runs :data:`DEFAULT_COMMAND` when its first argument is not a sub-command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "MODEL [OPTIONS]")
        formatter.write_usage(
            ctx.command_path, "verify MODEL [--onnx FILE ...] --data DATA [OPTIONS]", "   or: "
        )

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        cmd = self.commands[DEFAULT_COMMAND]
        sub = click.Context(cmd, info_name=ctx.info_name, parent=ctx.parent)
        rows = [
            rec
            for p in cmd.get_params(sub)
            if isinstance(p, click.Option) and (rec := p.get_help_record(sub)) is not None
        ]
        with formatter.section("Export options (skyinspect export MODEL [OPTIONS])"):
            formatter.write_dl(rows)


def _settings() -> Any:
    from skyinspect.cli import get_settings

    return get_settings()


def _registry() -> Any:
    from detection.registry import ModelRegistry

    return ModelRegistry.from_settings(_settings())


def parse_imgsz(text: str | None) -> tuple[int, int] | None:
    """``640`` → (640, 640); ``384x640`` or ``384,640`` → (384, 640) (height, width).

    Raises:
        click.BadParameter: anything else.
    """
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x,]\s*(\d+)\s*)?", text)
    if not m:
        raise click.BadParameter(f"{text!r}: expected N or HxW, e.g. 640 or 384x640", param_hint="--imgsz")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def _register_target(text: str) -> tuple[str, str]:
    from detection import taxonomy

    head, sep, tail = text.replace(":", "/").partition("/")
    if not sep or not head or not tail:
        raise click.BadParameter(f"{text!r}: expected DOMAIN/VERSION, e.g. pv-rgb/20261129-101500-ab12cd34",
                                 param_hint="--register")  # fmt: skip
    try:
        return taxonomy.domain(head).value, tail
    except taxonomy.TaxonomyError as exc:
        raise click.BadParameter(str(exc), param_hint="--register") from exc


@click.group(name="export", cls=DefaultCommandGroup, no_args_is_help=True,
             context_settings={"help_option_names": ["-h", "--help"]})  # fmt: skip
def export() -> None:
    """Export a model to ONNX (FP32 / FP16 / INT8, static and dynamic batch) and verify it.

    \b
    skyinspect export best.pt --dynamic-batch --half --int8 --calib sets/pv-rgb/data.yaml
    skyinspect export pv-rgb:candidate --int8 --calib sets/pv-rgb/data.yaml   (stored in that version)
    skyinspect export verify best.pt --onnx out/pv-rgb-fp32.onnx --data sets/pv-rgb/data.yaml
    skyinspect export verify pv-rgb:candidate --data sets/pv-rgb/data.yaml    (all ONNX files of the version)

    MODEL is a .pt checkpoint or a registry reference DOMAIN:ALIAS / DOMAIN:VERSION.
    """


@export.command(name=DEFAULT_COMMAND, hidden=True)
@click.argument("model")
@click.option("--imgsz", default=None, help="Input size N or HxW (default: the training size).")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
@click.option("--dynamic-batch", is_flag=True, help="Also write dynamic-batch variants (batched tiles).")
@click.option(
    "--half", is_flag=True, help="Also write FP16 variants (onnxruntime float16 converter, fp32 I/O)."
)
@click.option(
    "--int8", is_flag=True, help="Also write INT8 variants (QDQ static quantization; needs --calib)."
)
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Calibration data: the model's training set (data.yaml or folder).")  # fmt: skip
@click.option(
    "--calib-count", type=int, default=128, show_default=True, help="Calibration images (seeded sample)."
)
@click.option(
    "--calib-split", default="train", show_default=True, help="Split the calibration images come from."
)
@click.option("--calib-method", type=click.Choice(["minmax", "percentile", "entropy"]), default="minmax",
              show_default=True, help="Activation range calibration.")  # fmt: skip
@click.option("--int8-exclude", type=click.Choice(["none", "decode", "head", "head+stem"]), default="head+stem",
              show_default=True,
              help="Nodes kept in float: the head's decode (DFL, box/score maths), + the last box/class convs, "
                   "+ the stem conv.")  # fmt: skip
@click.option(
    "--int8-ops",
    type=click.Choice(["conv", "all"]),
    default="conv",
    show_default=True,
    help="Quantize only convolutions, or every operator onnxruntime can.",
)
@click.option("--int8-activations", type=click.Choice(["s8", "u8"]), default="s8", show_default=True,
              help="s8: symmetric int8 (TensorRT / Jetson); u8: asymmetric uint8 (onnxruntime on x86 CPUs).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: <data_dir>/exports/<domain>-<model version>).")  # fmt: skip
@click.option("--register", "register", default=None,
              help="Store the files in this registry version, DOMAIN/VERSION (default for a registry MODEL: its own version).")  # fmt: skip
@click.option(
    "--no-register", is_flag=True, help="Do not store a registry MODEL's exports back into the registry."
)
@click.option("--verify-data", type=click.Path(path_type=Path), default=None,
              help="Verify the exports on this validation set before storing them (fail = nothing stored).")  # fmt: skip
def export_model_cmd(
    model: str,
    imgsz: str | None,
    opset: int | None,
    dynamic_batch: bool,
    half: bool,
    int8: bool,
    calib: Path | None,
    calib_count: int,
    calib_split: str,
    calib_method: str,
    int8_exclude: str,
    int8_ops: str,
    int8_activations: str,
    out: Path | None,
    register: str | None,
    no_register: bool,
    verify_data: Path | None,
) -> None:
    """Export MODEL (.pt or DOMAIN:ALIAS) to ONNX."""
    from onnx_export.export import (
        DEFAULT_OPSET,
        ExportConfig,
        check_register_target,
        export_model,
        register_variants,
    )
    from onnx_export.source import parse_registry_ref, resolve

    size = parse_imgsz(imgsz)
    target = _register_target(register) if register else None
    try:
        ref = parse_registry_ref(model)
        cache = _settings().data_dir / "registry-cache" if ref else None
        source = resolve(model, registry_factory=_registry, cache_dir=cache)
        if target is None and source.registry_ref and not no_register:
            target = source.registry_ref
        if target is not None:
            check_register_target(_registry(), target[0], target[1], source)  # fail before the slow part
        folder = out or _settings().data_dir / "exports" / f"{source.domain.value}-{source.model_version}"
        cfg = ExportConfig(
            out=folder, imgsz=size, opset=opset if opset is not None else DEFAULT_OPSET, dynamic_batch=dynamic_batch,
            half=half, int8=int8, calib=calib, calib_split=calib_split, calib_count=calib_count,
            calib_method=calib_method, int8_exclude=int8_exclude, int8_ops=int8_ops,
            int8_activations=int8_activations,
        )  # fmt: skip
        result = export_model(source, cfg)
        for v in result.variants:
            click.echo(
                f"{v.path}  {v.precision}{' dynamic-batch' if v.dynamic_batch else ''}  sha256 {v.sha256[:16]}"
            )
        click.echo(f"record: {result.record_path}")
        if verify_data is not None:
            from onnx_export.verify import verify_or_raise, write_report

            report = verify_or_raise(source.weights, [v.path for v in result.variants], verify_data)
            write_report(report, folder / "verify.json")
            click.echo(report.table())
        if target is not None:
            register_variants(_registry(), target[0], target[1], result)
            click.echo(f"stored {len(result.variants)} file(s) in registry version {target[0]}/{target[1]}")
    except (ExportError, VerificationFailed) as exc:
        raise click.ClickException(str(exc)) from exc


@export.command(name="verify")
@click.argument("model")
@click.option("--onnx", "onnx_files", multiple=True, type=click.Path(path_type=Path),
              help="ONNX file to verify (repeatable; default for a registry MODEL: all its ONNX artifacts).")  # fmt: skip
@click.option(
    "--data", type=click.Path(path_type=Path), required=True, help="Validation set (data.yaml or folder)."
)
@click.option("--split", default="val", show_default=True)
@click.option("--conf", type=float, default=0.001, show_default=True, help="Detection threshold for mAP.")
@click.option("--iou", type=float, default=0.6, show_default=True, help="NMS IoU.")
@click.option("--match-conf", type=float, default=0.25, show_default=True,
              help="PyTorch detections at or above this score are matched for the IoU check.")  # fmt: skip
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--limit", type=int, default=None, help="Only the first N images.")
@click.option("--threads", type=int, default=None, help="CPU threads per runtime.")
@click.option("--no-opencv", is_flag=True, help="Skip the OpenCV DNN parity check.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON report here.")  # fmt: skip
def verify_cmd(
    model: str,
    onnx_files: tuple[Path, ...],
    data: Path,
    split: str,
    conf: float,
    iou: float,
    match_conf: float,
    batch: int,
    limit: int | None,
    threads: int | None,
    no_opencv: bool,
    as_json: bool,
    report_path: Path | None,
) -> None:
    """Check ONNX exports of MODEL against the PyTorch model on a validation set; exit 1 when a gate fails."""
    from onnx_export.source import parse_registry_ref
    from onnx_export.verify import verify, write_report

    try:
        files = list(onnx_files)
        ref = parse_registry_ref(model)
        weights = Path(model)
        if ref is not None:
            from detection.registry import RegistryError

            registry = _registry()
            try:
                version = registry.resolve(ref[0], ref[1])
                kinds = ["pytorch"] if files else ["pytorch", "onnx", "onnx-fp16", "onnx-int8"]
                pulled = registry.pull(ref[0], version, _settings().data_dir / "registry-cache" / ref[0] / version,
                                       kinds=kinds)  # fmt: skip
                weights = pulled.path("pytorch")
            except RegistryError as exc:
                raise ExportError(f"model reference {model}: {exc}") from exc
            if not files:
                files = [p for name, p in sorted(pulled.files.items()) if name.endswith(".onnx")]
                if not files:
                    raise ExportError(
                        f"{ref[0]} {version} has no ONNX artifacts; run skyinspect export {model}"
                    )
        report = verify(weights, files, data, split=split, conf=conf, iou=iou, match_conf=match_conf, batch=batch,
                        limit=limit, opencv=not no_opencv, threads=threads)  # fmt: skip
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    if report_path is not None:
        write_report(report, report_path)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.table())
    if not report.passed:
        click.echo("export verification FAILED:\n  " + "\n  ".join(report.failures), err=True)
        sys.exit(1)
