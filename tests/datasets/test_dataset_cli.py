"""``skyinspect dataset ...``: help everywhere, JSON results, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from datasets.cli import dataset
from datasets.version import dataset_version


@pytest.mark.parametrize("args", [[], ["build"], ["import"], ["validate"], ["gallery"], ["version"]])
def test_help_everywhere(args):
    result = CliRunner().invoke(dataset, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_build_validate_version_through_the_cli(make_flight, tmp_path):
    flights = [make_flight(n, frames=[(48, 32, [(0, 4, 4, 20, 20)])] * 2) for n in ("a", "b", "c")]
    out = tmp_path / "ds"
    runner = CliRunner()
    args = ["build", "--out", str(out), "--seed", "2", "--json", "--split", "train=0.6,val=0.4"]
    for f in flights:
        args += ["--flight", str(f / "flight")]  # OUT/flight is accepted as well as OUT
    result = runner.invoke(dataset, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert set(payload["splits"]) == {"train", "val"}
    assert sorted(g for s in payload["splits"].values() for g in s["groups"]) == ["a", "b", "c"]
    assert runner.invoke(dataset, ["validate", str(out)]).exit_code == 0
    version = runner.invoke(dataset, ["version", str(out)])
    assert version.exit_code == 0 and version.output.strip() == payload["version"] == dataset_version(out)
    (out / "labels" / "train.cache").write_bytes(b"ultralytics writes these while training")
    assert runner.invoke(dataset, ["version", str(out), "--verify"]).exit_code == 0
    label = next((out / "labels" / "train").iterdir())
    label.write_text("")
    verify = runner.invoke(dataset, ["version", str(out), "--verify"])
    assert verify.exit_code == 1 and "content changed" in verify.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--split", "train=1"], "train and val need a share"),
        (["--background-ratio", "lots"], "a number or 'all'"),
        (["--thermal-window", "50,20"], "low must be below high"),
        ([], "cannot split by flight with 1 flight"),
    ],
)
def test_build_errors_are_one_clear_line(make_flight, tmp_path, args, message):
    flight = make_flight("a")
    result = CliRunner().invoke(
        dataset, ["build", "--flight", str(flight), "--out", str(tmp_path / "o"), *args]
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_version_of_a_foreign_set_without_manifest_follows_its_labels(make_yolo_set):
    root = make_yolo_set("s", ["a"], {"x.jpg": (32, 32, [(0, 2, 2, 10, 10)])})
    v1 = dataset_version(root)
    assert v1 == dataset_version(root)
    (root / "labels" / "x.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    assert dataset_version(root) != v1


def test_top_level_cli_finds_the_dataset_group(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("SKYINSPECT_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "skyinspect.cli", "dataset", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for command in ("build", "import", "validate", "gallery", "version"):
        assert command in result.stdout
