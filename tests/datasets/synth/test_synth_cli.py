from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from skyinspect.cli import cli


def test_synth_command_writes_a_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYINSPECT_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "flight"
    res = CliRunner().invoke(
        cli,
        [
            "synth",
            "--kind",
            "pv-rgb",
            "--images",
            "3",
            "--seed",
            "2",
            "--out",
            str(out),
            "--image-size",
            "400x300",
            "--quiet",
            "--site-id",
            "PLANT-7",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "3 images" in res.output
    synth = json.loads((out / "synth.json").read_text())
    assert synth["site_id"] == "PLANT-7" and synth["flight_id"] == "PLANT-7-F0002"
    assert synth["camera"]["width"] == 400
    assert len(list((out / "flight").glob("DJI_*.JPG"))) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-size", "big"], "WIDTHxHEIGHT"),
        (["--image-size", "10x10"], "at least 64x64"),
        (["--front-overlap", "1.5"], "overlaps must be in"),
        (["--kind", "sonar"], "Invalid value for '--kind'"),
    ],
)
def test_synth_command_rejects_bad_options(
    tmp_path: Path, monkeypatch, args: list[str], message: str
) -> None:
    monkeypatch.setenv("SKYINSPECT_DATA_DIR", str(tmp_path / "data"))
    base = ["synth", "--kind", "pv-thermal", "--images", "1", "--out", str(tmp_path / "o"), "--quiet"]
    res = CliRunner().invoke(cli, base + args)
    assert res.exit_code != 0
    assert message in res.output
