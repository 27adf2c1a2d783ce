"""``make demo``: the main job on the embedded defaults, start to finish, in a few minutes on a laptop.

1. starts the embedded object store (SeaweedFS; a running one is reused);
2. renders three small synthetic flights — PV thermal, PV RGB, wind blades — with ``datasets.synth``;
3. ingests them (``ingest.api.ingest_flight``) and uploads each site's as-built layout;
4. runs each through the Dagster flight job in this process (``pipelines.runner.run_flight``: manifest →
   detections → findings → reports, with the asset checks) using the domain's champion from the registry, else
   the default model shipped under ``models/``;
5. prints a short summary and where the HTML reports are.

A domain without a model is not faked: its flight is ingested, the demo says which model is missing and what to
run (``make models``), and the other domains still run. Everything goes under ``{data_dir}/demo`` and the store.

    python -m skyinspect.demo [--images-scale 1.0] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("skyinspect.demo")


@dataclass(frozen=True)
class DemoFlight:
    """One demo flight: what to render and the ids it is ingested under."""

    kind: str
    site: str
    flight: str
    images: int
    seed: int


FLIGHTS = (
    DemoFlight("pv-thermal", "demo-pv-plant", "thermal-001", 8, 3001),
    DemoFlight("pv-rgb", "demo-pv-plant", "rgb-001", 3, 3002),
    DemoFlight("wind-rgb", "demo-wind-farm", "blades-001", 3, 3003),
)


def _say(text: str = "") -> None:
    print(text, flush=True)


def render(spec: DemoFlight, root: Path, images: int) -> Path:
    """Render the flight once (kept for the next demo run) → its folder."""
    from datasets.synth.generate import generate_flight

    out = root / f"{spec.kind}-{spec.seed}-{images}"
    if not (out / "synth.json").is_file():
        generate_flight(spec.kind, images, spec.seed, out, progress=sys.stderr.isatty(), site_id=spec.site,
                        flight_id=spec.flight)  # fmt: skip
    return out


def run_demo(scale: float = 1.0, models_dir: Path | None = None) -> dict[str, Any]:
    """Run the demo (module docstring) → a JSON-able summary."""
    from findings.api import import_layout
    from ingest.api import ingest_flight
    from objectstore.client import ObjectStore
    from pipelines.cli import ensure_store
    from pipelines.definitions import resources_for
    from pipelines.resources import ModelNotAvailable, ModelRegistryResource, SettingsResource
    from pipelines.runner import run_flight
    from skyinspect.config import load_settings

    started = time.perf_counter()
    settings = load_settings()
    _say(f"skyinspect demo — data under {settings.data_dir}")
    was_started = ensure_store(settings)
    _say(
        f"object store: s3://{settings.s3_bucket} at {settings.s3_endpoint} ({'started' if was_started else 'running'})"
    )
    resources = resources_for(SettingsResource.from_settings(settings))
    if models_dir is not None:
        resources["models"] = ModelRegistryResource(store=resources["store"], models_dir=str(models_dir))
    work = settings.data_dir / "demo"
    summary: dict[str, Any] = {"store": settings.s3_endpoint, "bucket": settings.s3_bucket, "flights": []}
    with ObjectStore.from_settings(settings) as store:
        for spec in FLIGHTS:
            n = max(1, round(spec.images * scale))
            entry: dict[str, Any] = {"kind": spec.kind, "site": spec.site, "flight": spec.flight, "images": n}
            summary["flights"].append(entry)
            t0 = time.perf_counter()
            folder = render(spec, work, n)
            ingest_flight(folder / "flight", spec.site, spec.flight, store=store, settings=settings, kind=spec.kind,
                          progress=False)  # fmt: skip
            layout = folder / "site" / "layout.geojson"
            if layout.is_file():
                import_layout(store, spec.site, layout.read_bytes(), str(layout))
            _say(f"\n{spec.kind}: rendered + ingested {n} images as {spec.site}/{spec.flight} "
                 f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
            try:
                model = resources["models"].resolve(spec.kind)
            except ModelNotAvailable as exc:
                entry.update(status="no model", reason=str(exc))
                _say(f"  NO MODEL for {spec.kind}: {exc}")
                continue
            _say(f"  model: {model.reason}")
            t0 = time.perf_counter()
            result = run_flight(settings, spec.site, spec.flight, resources=resources, log_level="CRITICAL")
            entry.update(status="done" if result.success else "failed", seconds=round(time.perf_counter() - t0, 1),
                         model=model.to_dict(), **_digest(result))  # fmt: skip
            _print_result(entry)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    _say(
        f"\ndemo finished in {summary['seconds']:.0f} s; the store keeps running (`skyinspect store down` stops it)"
    )
    missing = [f["kind"] for f in summary["flights"] if f.get("status") == "no model"]
    if missing:
        _say(f"no model for: {', '.join(missing)} — train the shipped defaults with `make models` "
             "(writes models/<domain>/best.pt), then run `make demo` again")  # fmt: skip
    return summary


def _digest(result: Any) -> dict[str, Any]:
    det = result.metadata.get("flight_detections", {})
    fnd = result.metadata.get("flight_findings", {})
    return {
        "run_id": result.run_id,
        "detections": det.get("detections"),
        "unreadable": det.get("errors"),
        "findings": fnd.get("findings"),
        "by_severity": fnd.get("by_severity"),
        "by_class": fnd.get("by_class"),
        "suppressed": fnd.get("suppressed") or 0,
        "warnings": fnd.get("warnings"),
        "checks_failed": [k for k, c in result.checks.items() if not c["passed"]],
        "failures": [f.splitlines()[0][:300] for f in result.failures],
        "html_reports": result.outputs.get("html_reports", []),
        "results": f"s3://{result.outputs['bucket']}/{result.outputs['findings'].rsplit('/', 1)[0]}/",
    }


def _print_result(entry: dict[str, Any]) -> None:
    if entry["status"] != "done":
        _say(f"  FAILED: {'; '.join(entry['failures'] or entry['checks_failed'])}")
        return
    sev = ", ".join(f"{v} {k}" for k, v in (entry.get("by_severity") or {}).items()) or "none"
    held = f"; {entry['suppressed']} more suppressed by the findings checks" if entry.get("suppressed") else ""
    _say(f"  {entry['detections']} detections → {entry['findings']} findings ({sev}{held}), "
         f"{entry['warnings']} fault warnings, in {entry['seconds']:.0f} s")  # fmt: skip
    for name, count in sorted((entry.get("by_class") or {}).items()):
        _say(f"    {count:3d} × {name}")
    for path in entry["html_reports"]:
        _say(f"  report: {path}")
    _say(f"  results: {entry['results']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skyinspect.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images-scale", type=float, default=1.0, help="Scale the demo's image counts.")
    parser.add_argument("--json", action="store_true", help="Print the summary as JSON at the end.")
    parser.add_argument(
        "--models-dir", type=Path, default=None, help="Shipped models folder (default: models/)."
    )
    args = parser.parse_args(argv)
    if args.images_scale <= 0:
        parser.error("--images-scale must be > 0")
    from skyinspect.log import setup_logging

    setup_logging("WARNING")
    summary = run_demo(args.images_scale, args.models_dir)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    return 1 if any(f.get("status") == "failed" for f in summary["flights"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
