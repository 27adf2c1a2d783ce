"""The retraining job end to end on a toy scale (slow): dataset → candidate → ONNX + holdout → first champion."""

from __future__ import annotations

import pytest

from detection.model_meta import ModelMeta
from detection.operating_point import CONF_GRID
from pipelines.definitions import build_definitions
from pipelines.retraining import HOLDOUT_NAME

TOY = {
    "base_flights": 2,
    "images_per_flight": 3,
    "holdout_images": 2,
    "image_size": [320, 256],
    "tile": None,
    "epochs": 1,
    "imgsz": 320,
    "batch": 2,
}


@pytest.mark.slow
def test_retrain_job_registers_exports_evaluates_and_promotes_the_first_champion(
    pipeline_resources: dict,
) -> None:
    defs = build_definitions(resources=pipeline_resources)
    job = defs.resolve_job_def("retrain_job")
    ops = ("training_dataset", "candidate_model", "holdout_evaluation", "model_promotion")
    run_config = {"ops": {op: {"config": TOY} for op in ops}}
    result = job.execute_in_process(partition_key="pv-thermal", run_config=run_config, raise_on_error=False)
    failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    assert result.success, failures

    registry = pipeline_resources["models"].registry()
    aliases = registry.aliases("pv-thermal")
    versions = registry.versions("pv-thermal")
    assert len(versions) == 1 and aliases["champion"] == versions[0] and aliases["candidate"] is None
    card = registry.card("pv-thermal", versions[0])
    assert card["promotion"]["promote"] is True and "no champion yet" in card["promotion"]["reason"]
    assert {a["kind"] for a in card["artifacts"].values()} >= {"pytorch", "onnx"}
    assert card["evaluations"][HOLDOUT_NAME]["map50_95"] is not None
    # the candidate's ONNX carries its operating point, chosen on the holdout flight and kept in the card
    (onnx_entry,) = [a for a in card["artifacts"].values() if a["kind"] == "onnx"]
    point = onnx_entry["operating_point"]
    assert 0 < point["conf"] < 1 and [row["conf"] for row in point["grid"]] == sorted(CONF_GRID)
    # the flight job now finds this champion in the registry
    resolved = pipeline_resources["models"].resolve("pv-thermal")
    assert (
        resolved.source == "registry" and resolved.version == versions[0] and resolved.path.suffix == ".onnx"
    )
    assert ModelMeta.from_onnx(resolved.path).conf == point["conf"]
