"""The ``skyinspect`` command line: one entry point whose sub-commands live with their stages.

Sub-commands are imported lazily (only the one you run is imported), so ``skyinspect --help`` is fast and a
command never pays for torch or dagster it does not use.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from skyinspect.config import ConfigError, Settings, load_settings
from skyinspect.log import setup_logging

# name -> "module:attribute" of a click command or group. Each stage owns its own CLI module.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "store": ("objectstore.cli:store", "Run the embedded S3 object store (up / down / status)."),
    "ingest": ("ingest.cli:ingest", "Upload a drone flight's imagery into the object store."),
    "synth": ("datasets.synth.cli:synth", "Render a synthetic inspection flight with exact ground truth."),
    "dataset": ("datasets.cli:dataset", "Build, import, validate and preview YOLO datasets."),
    "train": ("detection.cli:train", "Train a YOLO defect detector (offline)."),
    "evaluate": ("detection.cli:evaluate", "Evaluate a PyTorch or ONNX model on a YOLO dataset."),
    "predict": ("detection.cli_predict:predict", "Detect defects in images with the project's inference core."),
    "models": ("detection.cli:models", "The model registry: list, promote, rollback."),
    "export": ("onnx_export.cli:export", "Export a model to ONNX (FP32 / FP16 / INT8) and verify it."),
    "report": ("findings.cli:report", "Findings, fault warnings and reports for an ingested flight."),
    "score": ("findings.cli:score", "Score a synthetic flight's findings against its ground truth."),
    "site": ("findings.cli:site", "A site's as-built layout (PV module GeoJSON, turbine positions)."),
    "review": ("review.cli:review", "Engineers' review web application and label export."),
    "run": ("pipelines.cli:run", "Process one ingested flight through the Dagster job, in-process."),
    "pipelines": ("pipelines.cli:pipelines", "Dagster webserver and daemon for the whole flow."),
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command's module only when that sub-command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return _unavailable(cmd_name, target[1], f"not built yet ({module_name} is missing)")
            return _unavailable(cmd_name, target[1], f"needs {exc.name}: install the full extra")
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, help_text: str, why: str) -> click.Command:
    @click.command(name=name, help=f"{help_text} (unavailable: {why})")
    def _cmd() -> None:
        raise click.ClickException(f"'skyinspect {name}' is unavailable: {why}")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="TOML config file (default: $SKYINSPECT_CONFIG or ~/.config/skyinspect/config.toml).",
)
@click.version_option(package_name="skyinspect")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, config_file: str | None) -> None:
    """skyinspect: from a drone flight over a wind farm or PV plant to graded, located fault findings.

    Settings come from the config file and SKYINSPECT_* environment variables (see README).
    """
    from pathlib import Path

    try:
        settings = load_settings(config_file=Path(config_file) if config_file else None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    setup_logging("DEBUG" if verbose else settings.log_level)
    logging.getLogger(__name__).debug("settings: %s", settings.redacted())
    ctx.obj = settings


def get_settings(ctx: click.Context | None = None) -> Settings:
    """The settings loaded by the top-level group (or loaded now, for commands invoked on their own)."""
    ctx = ctx or click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, Settings):
            return ctx.obj
        ctx = ctx.parent
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="skyinspect")


if __name__ == "__main__":
    main()
