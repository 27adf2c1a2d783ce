"""The one CLI: --help works for the group and every sub-command, bad settings give a clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from skyinspect.cli import SUBCOMMANDS, cli


def test_group_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in SUBCOMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_bad_setting_is_a_clear_error_not_a_traceback() -> None:
    result = CliRunner().invoke(cli, ["store", "--help"], env={"SKYINSPECT_S3_ENDPOINT": "nope"})
    # --help short-circuits before settings load; a real command must fail cleanly
    result = CliRunner().invoke(cli, ["store", "status"], env={"SKYINSPECT_S3_ENDPOINT": "nope"})
    assert result.exit_code != 0
    assert "SKYINSPECT_S3_ENDPOINT" in result.output
    assert "Traceback" not in result.output


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from skyinspect.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'ultralytics', 'dagster') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
