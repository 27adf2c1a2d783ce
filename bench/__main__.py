"""Benchmark runner: ``python -m bench [NAME ...] [--quick] [--list]``.

Discovers ``bench/bench_*.py``; each module has ``NAME: str`` and ``run(quick: bool) -> dict`` returning
``{"title": str, "rows": [dict, ...], "notes": [str, ...]}``. For each bench the runner prints a markdown table
and writes ``bench/results/<name>-<UTC timestamp>.json`` and ``.md``, plus ``bench/results/latest-<name>.md``.
Benches needing S3 start their own embedded store (``bench._support.embedded_store``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def discover() -> dict[str, ModuleType]:
    """NAME → module for every ``bench/bench_*.py``."""
    found: dict[str, ModuleType] = {}
    for path in sorted(HERE.glob("bench_*.py")):
        module = importlib.import_module(f"bench.{path.stem}")
        name = getattr(module, "NAME", None)
        if not isinstance(name, str) or not callable(getattr(module, "run", None)):
            raise SystemExit(f"{path}: a bench module needs NAME: str and run(quick: bool) -> dict")
        found[name] = module
    return found


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "\\|")


def to_markdown(result: dict[str, Any]) -> str:
    """One bench result as a markdown section: title, table (columns = union of row keys), notes."""
    rows = result.get("rows", [])
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    lines = [f"## {result.get('title', result.get('name', 'bench'))}", ""]
    if rows:
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join("---" for _ in columns) + "|")
        lines.extend("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows)
        lines.append("")
    lines.extend(f"- {note}" for note in result.get("notes", []))
    return "\n".join(lines).rstrip() + "\n"


def validate(name: str, result: Any) -> dict[str, Any]:
    if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
        raise TypeError(f"bench {name}: run() must return a dict with 'title', 'rows' (list) and 'notes'")
    result.setdefault("title", name)
    result.setdefault("notes", [])
    return result


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "host": platform.node(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benches to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--list", action="store_true", help="list the benches and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    benches = discover()
    if args.list:
        for name, module in benches.items():
            print(f"{name}: {(module.__doc__ or '').strip().splitlines()[0] if module.__doc__ else ''}")
        return 0
    unknown = [n for n in args.names if n not in benches]
    if unknown:
        print(f"unknown bench(es): {', '.join(unknown)}; known: {', '.join(benches)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    failed = 0
    for name in args.names or list(benches):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        started = time.perf_counter()
        try:
            result = validate(name, benches[name].run(args.quick))
        except Exception:
            failed += 1
            print(f"bench {name} failed:\n{traceback.format_exc()}", file=sys.stderr)
            continue
        result.update(
            name=name,
            quick=args.quick,
            utc=stamp,
            seconds=round(time.perf_counter() - started, 2),
            env=environment(),
        )
        text = (
            to_markdown(result)
            + f"\n_{stamp}, quick={args.quick}, {result['env']['cpus']} CPUs, {result['env']['platform']}_\n"
        )
        print(text)
        (RESULTS / f"{name}-{stamp}.json").write_text(json.dumps(result, indent=1, default=str))
        (RESULTS / f"{name}-{stamp}.md").write_text(text)
        (RESULTS / f"latest-{name}.md").write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
