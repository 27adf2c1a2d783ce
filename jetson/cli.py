"""``skyinspect-edge``: the on-site runtime's command line (run, sync, status, update, rollback, install, models, bench).

Connection settings come from :func:`skyinspect.config.load_settings` (``--config`` / ``SKYINSPECT_*``); inference
settings from the edge config file (``--edge-config`` / ``SKYINSPECT_EDGE_CONFIG`` / ``edge.yaml``, see
:mod:`jetson.config`). Imports no torch, ultralytics or dagster.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from jetson.config import EdgeConfig, EdgeConfigError, as_dict, load_edge_config
from skyinspect.config import ConfigError, Settings, load_settings

logger = logging.getLogger(__name__)

EXIT_DISK_FULL = 3
STREAM_RETRY_S = 5.0


@dataclass
class EdgeContext:
    """Settings, edge config and the local folders derived from them."""

    settings: Settings
    cfg: EdgeConfig

    @property
    def base(self) -> Path:
        return self.settings.data_dir / "edge"

    @property
    def queue_path(self) -> Path:
        return self.cfg.storage.queue or self.base / "queue.sqlite"

    @property
    def models_dir(self) -> Path:
        return self.cfg.storage.models or self.base / "models"

    @property
    def cache_dir(self) -> Path:
        return self.cfg.cache_dir or self.base / "trt-cache"

    @property
    def spool_dir(self) -> Path:
        return self.base / "spool"

    @property
    def device(self) -> str:
        return self.cfg.device_id()

    def store(self) -> Any:
        from objectstore.client import ObjectStore

        return ObjectStore.from_settings(self.settings)

    def outbox(self) -> Any:
        from jetson.outbox import Outbox, OutboxError

        try:
            return Outbox(self.queue_path)
        except OutboxError as exc:
            raise click.ClickException(str(exc)) from exc

    def models(self) -> Any:
        from jetson.models import LocalModels

        return LocalModels(self.models_dir)


def _ctx() -> EdgeContext:
    obj = click.get_current_context().find_object(EdgeContext)
    if obj is None:  # pragma: no cover - the group always sets it
        raise click.ClickException("internal: no edge context")
    return obj


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="skyinspect TOML settings (S3 endpoint, keys, data_dir) [default: $SKYINSPECT_CONFIG].",
)
@click.option(
    "--edge-config",
    "edge_config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Edge inference settings, YAML or TOML [default: $SKYINSPECT_EDGE_CONFIG or "
    "~/.config/skyinspect/edge.yaml].",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, config_file: Path | None, edge_config: Path | None) -> None:
    """skyinspect on-site runtime: detect defects on the drone crew's Jetson, offline first, sync when online."""
    from skyinspect.log import setup_logging

    try:
        settings = load_settings(config_file=config_file)
        cfg = load_edge_config(edge_config)
    except (ConfigError, EdgeConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    setup_logging("DEBUG" if verbose else settings.log_level)
    logger.debug("settings: %s; edge config: %s", settings.redacted(), as_dict(cfg))
    ctx.obj = EdgeContext(settings, cfg)


def _open_model(ec: EdgeContext, model: str) -> tuple[Any, Any]:
    """``--model`` (path or local alias) → (Detector, ModelInfo). Errors become ClickExceptions naming the cause."""
    from detection.backends import BackendError
    from detection.model_meta import ModelMetadataError
    from jetson.engine import file_sha256, open_detector
    from jetson.models import ModelStoreError
    from jetson.pipeline import ModelInfo

    path = Path(model)
    if path.is_dir():
        onnx = sorted(path.glob("*.onnx"))
        if len(onnx) != 1:
            raise click.ClickException(
                f"--model {model}: expected one .onnx in the folder, found {len(onnx)}"
            )
        path = onnx[0]
    if not path.is_file():
        try:
            installed = ec.models().resolve(model)
        except ModelStoreError as exc:
            raise click.ClickException(str(exc)) from exc
        path, sha = installed.path, installed.sha256
    else:
        sha = file_sha256(path)
    try:
        detector = open_detector(path, ec.cfg, ec.cache_dir)
    except ModelMetadataError as exc:
        raise click.ClickException(f"model refused: {exc}") from exc
    except BackendError as exc:
        raise click.ClickException(str(exc)) from exc
    meta = detector.meta
    info = ModelInfo(str(path), sha, meta.model_version, meta.domain.value if meta.domain else None)
    return detector, info


def _install_signal_handlers(*events: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        logger.info("signal %d: finishing the current frame and stopping", signum)
        for e in events:
            e.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


@cli.command()
@click.option(
    "--source",
    required=True,
    help="A folder to watch (e.g. where the SD card is copied), an image, a video file, or rtsp://… stream.",
)
@click.option(
    "--model",
    required=True,
    help="An .onnx file, or an installed alias: current, previous, DOMAIN[:VERSION].",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="detections.jsonl and thumbnails/ go here [default: <data_dir>/edge/out].",
)
@click.option(
    "--once", is_flag=True, help="Process what is there (waiting for files still being written), sync, exit."
)
@click.option(
    "--sync/--no-sync", "do_sync", default=None, help="Upload to the object store [default: sync.enabled]."
)
@click.option(
    "--sync-timeout", default=120.0, show_default=True, help="--once: seconds to keep syncing at the end."
)
def run(
    model: str, source: str, out_dir: Path | None, once: bool, do_sync: bool | None, sync_timeout: float
) -> None:
    """Detect defects in new frames from SOURCE; queue results durably and sync them when the store is reachable."""
    from jetson.engine import FrameRunner
    from jetson.pipeline import DiskFullError, Pipeline
    from jetson.sources import VIDEO_SUFFIXES, is_stream, iter_folder, iter_video
    from jetson.sync import Syncer

    ec = _ctx()
    cfg = ec.cfg
    stream = is_stream(source)
    src_path = Path(source).resolve() if not is_stream(source) else Path(source)
    if not stream and not src_path.exists():
        raise click.ClickException(f"--source {source}: no such file or folder")
    detector, info = _open_model(ec, model)
    outbox = ec.outbox()
    outbox.set_state(
        "current_model", json.dumps({"path": info.path, "sha256": info.sha256, "version": info.version})
    )
    out = out_dir or ec.base / "out"
    pipeline = Pipeline(
        FrameRunner.build(detector, cfg),
        outbox,
        cfg,
        ec.device,
        info,
        out,
        ec.spool_dir,
        watch_paths=[] if stream else [src_path],
    )
    if stream and not once:

        def frames(stop: threading.Event) -> Any:  # a live stream that drops is reopened until stopped
            while not stop.is_set():
                try:
                    yield from iter_video(source, cfg.source, outbox, stop)
                except OSError as exc:
                    logger.warning("%s; retrying in %.0f s", exc, STREAM_RETRY_S)
                stop.wait(STREAM_RETRY_S)
    elif stream or src_path.suffix.lower() in VIDEO_SUFFIXES:

        def frames(stop: threading.Event) -> Any:
            return iter_video(source, cfg.source, outbox, stop)
    else:

        def frames(stop: threading.Event) -> Any:
            return iter_folder(src_path, cfg.source, outbox, stop, once=once, decode=pipeline.decode)

    stop, sync_stop = threading.Event(), threading.Event()
    _install_signal_handlers(stop, sync_stop)
    syncer, sync_thread = None, None
    if cfg.sync.enabled if do_sync is None else do_sync:
        syncer = Syncer(outbox, ec.store(), ec.device, cfg.sync)
        sync_thread = threading.Thread(
            target=syncer.run_forever, args=(sync_stop,), name="edge-sync", daemon=True
        )
        sync_thread.start()
    logger.info(
        "device %s: watching %s with %s; out %s; queue %s", ec.device, source, info.path, out, outbox.path
    )
    code = 0
    try:
        stats = pipeline.run(frames, stop, once=once)
    except DiskFullError as exc:
        click.echo(f"error: {exc}", err=True)
        stats, code = pipeline.stats, EXIT_DISK_FULL
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        sync_stop.set()
        if sync_thread is not None:
            sync_thread.join(timeout=30)
    if syncer is not None and once and code == 0:
        report = syncer.drain(deadline_s=time.monotonic() + sync_timeout)
        if report.store_down:
            click.echo("object store unreachable: results stay queued for the next sync", err=True)
    counts = outbox.counts()
    outbox.close()
    click.echo(
        f"{stats.frames} frame(s) processed, {stats.errors} unreadable, {stats.detections} detection(s); "
        f"queue: {counts['unsynced']} unsynced of {counts['results']}"
    )
    if code:
        sys.exit(code)


@cli.command()
@click.option("--timeout", default=600.0, show_default=True, help="Stop after this many seconds.")
def sync(timeout: float) -> None:
    """Upload queued results now (until the queue is empty, the store is down, or --timeout)."""
    from jetson.sync import Syncer

    ec = _ctx()
    outbox = ec.outbox()
    stop = threading.Event()
    _install_signal_handlers(stop)
    syncer = Syncer(outbox, ec.store(), ec.device, ec.cfg.sync)
    report = syncer.drain(deadline_s=time.monotonic() + timeout)
    counts = outbox.counts()
    outbox.close()
    click.echo(f"uploaded {report.uploaded}, failed {report.failed}; {counts['unsynced']} still queued")
    if report.store_down:
        raise click.ClickException("object store unreachable or refusing uploads; results stay queued")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Queue depth, last sync, current model(s), execution providers."""
    import onnxruntime as ort

    ec = _ctx()
    outbox = ec.outbox()
    last = outbox.get_state("last_sync")
    doc = {
        "device": ec.device,
        "queue": str(outbox.path),
        "counts": outbox.counts(),
        "last_sync": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(last))) if last else None,
        "last_sync_error": outbox.get_state("last_sync_error"),
        "model_in_use": json.loads(outbox.get_state("current_model") or "null"),
        "installed_models": ec.models().summary(),
        "providers_available": ort.get_available_providers(),
        "edge_config": str(ec.cfg.path) if ec.cfg.path else None,
    }
    outbox.close()
    if as_json:
        click.echo(json.dumps(doc, indent=1))
        return
    c = doc["counts"]
    click.echo(f"device        {doc['device']}")
    click.echo(
        f"queue         {c['unsynced']} unsynced / {c['results']} results ({c['frame_errors']} frame errors, "
        f"{c['retrying']} retrying)  [{doc['queue']}]"
    )
    click.echo(f"last sync     {doc['last_sync'] or 'never'}")
    if doc["last_sync_error"]:
        click.echo(f"sync error    {doc['last_sync_error']}")
    click.echo(f"model in use  {(doc['model_in_use'] or {}).get('path', 'none')}")
    for dom, m in doc["installed_models"].items():
        click.echo(f"installed     {dom}: current {m['current']}, previous {m['previous'] or '-'}")
    click.echo(f"providers     {', '.join(doc['providers_available'])}")


@cli.command()
@click.option(
    "--domain", "domains", multiple=True, help="Domain(s) to update [default: every installed domain]."
)
@click.option("--ref", default="champion", show_default=True, help="Registry alias or version to pull.")
@click.option(
    "--kind", default="onnx", show_default=True, help="Artifact kind: onnx, onnx-fp16 or onnx-int8."
)
def update(domains: tuple[str, ...], ref: str, kind: str) -> None:
    """Pull the registry's champion, verify its sha256 and metadata, and swap it in (the old one is kept)."""
    from detection.registry import RegistryError
    from jetson.models import EDGE_KINDS, ModelStoreError, pull_and_install
    from objectstore.client import ObjectStoreError

    ec = _ctx()
    kind = kind or ec.cfg.model_kind
    if kind not in EDGE_KINDS:
        raise click.ClickException(f"--kind {kind}: expected one of {', '.join(EDGE_KINDS)}")
    models = ec.models()
    targets = list(domains) or models.domains()
    if not targets:
        raise click.ClickException("no domain installed yet: give --domain (pv-thermal, pv-rgb, wind-rgb)")
    store = ec.store()
    for dom in targets:
        try:
            m = pull_and_install(models, store, dom, ref, kind)
        except (RegistryError, ModelStoreError, ObjectStoreError) as exc:
            raise click.ClickException(f"update {dom}: {exc}") from exc
        click.echo(f"{m.domain}: {m.version} is current ({m.path.name}, sha256 {m.sha256[:12]}…)")


@cli.command()
@click.option("--domain", default=None, help="Domain to roll back [default: the only installed one].")
def rollback(domain: str | None) -> None:
    """Make the previous model current again (and the current one previous)."""
    from jetson.models import ModelStoreError

    models = _ctx().models()
    if domain is None:
        installed = models.domains()
        if len(installed) != 1:
            raise click.ClickException(f"give --domain; installed: {', '.join(installed) or 'none'}")
        domain = installed[0]
    try:
        old, new = models.rollback(domain)
    except ModelStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{domain}: rolled back from {old} to {new}")


@cli.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--version", default=None, help="Version name [default: from the metadata, else the sha256 prefix]."
)
def install(model_file: Path, version: str | None) -> None:
    """Install a local ONNX file (e.g. copied from a USB stick when offline) and make it current."""
    from jetson.models import ModelStoreError

    try:
        m = _ctx().models().install_file(model_file, version)
    except ModelStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{m.domain}: {m.version} is current ({m.path})")


@cli.command(name="models")
def models_cmd() -> None:
    """List installed models."""
    summary = _ctx().models().summary()
    if not summary:
        click.echo("no models installed")
    for dom, m in summary.items():
        for v in m["versions"]:
            tag = " (current)" if v == m["current"] else " (previous)" if v == m["previous"] else ""
            click.echo(f"{dom}:{v}{tag}")


@cli.command()
@click.option("--model", required=True, help="An .onnx file or an installed alias.")
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Images to use [default: synthetic 4000×3000 frames].",
)
@click.option("--n", default=50, show_default=True, type=click.IntRange(1), help="Timed frames per step.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0), help="Untimed frames first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench(model: str, images: Path | None, n: int, warmup: int, as_json: bool) -> None:
    """p50/p95 latency and throughput on this device: decode+detect and detect alone, with the edge config."""
    from jetson.bench import bench_runner, load_images
    from jetson.engine import FrameRunner

    ec = _ctx()
    detector, info = _open_model(ec, model)
    runner = FrameRunner.build(detector, ec.cfg)
    try:
        data = load_images(images, n)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    timings = bench_runner(lambda img: runner(img)[0], data, n, warmup, decode_detect=runner.detect_encoded)
    doc = {"model": info.path, "providers": detector.backend.providers, "rows": [t.row() for t in timings]}
    if as_json:
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(f"{info.path} on {', '.join(doc['providers'])}")
    for r in doc["rows"]:
        click.echo(
            f"{r['step']:>14}: p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, {r['frames_per_s']:.2f} frames/s (n={r['n']})"
        )


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="skyinspect-edge")


if __name__ == "__main__":
    main()
