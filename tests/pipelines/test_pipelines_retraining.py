"""Retraining: the promotion decision (both ways), the schedule, and reviewed sets found under reviews/."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
import yaml

from detection import taxonomy
from pipelines.retraining import build_retrain_schedule, decide_promotion, download_reviewed_sets


@pytest.mark.parametrize(
    ("candidate", "champion", "min_gain", "promote", "why"),
    [
        (0.61, 0.55, 0.0, True, "beats champion"),
        (0.55, 0.55, 0.0, False, "does not beat"),
        (0.50, 0.55, 0.0, False, "does not beat"),
        (0.56, 0.55, 0.02, False, "does not beat"),
        (0.58, 0.55, 0.02, True, "beats champion"),
        (0.10, None, 0.0, True, "no champion yet"),
        (None, 0.55, 0.0, False, "no holdout score"),
        (None, None, 0.0, False, "no holdout score"),
    ],
)
def test_promotion_decision(candidate, champion, min_gain, promote, why) -> None:
    decision = decide_promotion(candidate, champion, min_gain=min_gain)
    assert decision.promote is promote
    assert why in decision.reason
    assert decision.to_dict()["candidate"] == candidate


@pytest.mark.parametrize(
    ("candidate", "champion", "min_gain"), [(1.2, 0.5, 0.0), (0.5, -0.1, 0.0), (0.5, 0.4, -1)]
)
def test_promotion_decision_refuses_impossible_inputs(candidate, champion, min_gain) -> None:
    with pytest.raises(ValueError):
        decide_promotion(candidate, champion, min_gain=min_gain)


def test_schedule_requests_one_run_per_domain() -> None:
    schedule = build_retrain_schedule("0 3 * * 1")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 30, 3, 0, tzinfo=UTC))
    requests = schedule(context)
    assert sorted(r.partition_key for r in requests) == sorted(d.value for d in taxonomy.Domain)
    assert len({r.run_key for r in requests}) == 3


def test_reviewed_sets_of_the_domain_are_downloaded(object_store, tmp_path) -> None:
    names = taxonomy.class_names("pv-rgb")
    object_store.put_bytes("reviews/pv-rgb/2026-11-01/data.yaml", yaml.safe_dump({"names": names}).encode())
    object_store.put_bytes("reviews/pv-rgb/2026-11-01/labels/a.txt", b"0 0.5 0.5 0.1 0.1\n")
    object_store.put_bytes("reviews/pv-rgb/2026-11-01/images/a.png", b"png")
    object_store.put_bytes(
        "reviews/wind/x/data.yaml", yaml.safe_dump({"names": taxonomy.class_names("wind-rgb")}).encode()
    )
    got = download_reviewed_sets(object_store, "pv-rgb", tmp_path)
    assert len(got) == 1
    assert (got[0] / "labels" / "a.txt").read_text() == "0 0.5 0.5 0.1 0.1\n"
    assert (got[0] / "data.yaml").is_file()
    assert download_reviewed_sets(object_store, "pv-thermal", tmp_path / "none") == []
