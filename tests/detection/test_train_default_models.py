"""detection.default_models: profiles that never leak the held-out flight, and the whole recipe at toy sizes."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path

import pytest

from detection import taxonomy
from detection.default_models import (
    MAX_WEIGHTS_BYTES,
    PROFILES,
    Profile,
    _stale_flight,
    check_profile,
    evaluate_only,
    main,
    quick_profile,
    run_domain,
)
from detection.train import available_architectures


def test_every_domain_has_a_valid_profile() -> None:
    assert set(PROFILES) == {d.value for d in taxonomy.Domain}
    heldout = {p.heldout_seed for p in PROFILES.values()}
    training = {s for p in PROFILES.values() for s in (*p.train_seeds, p.val_seed)}
    for p in PROFILES.values():
        check_profile(p)
        check_profile(quick_profile(p))
        assert min(p.train_seeds) >= 1000 and p.heldout_seed >= 2000
        assert p.model in available_architectures() and p.epochs >= 10
    assert not heldout & training, "a held-out seed is used for training somewhere"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_seeds": (1000, 1001), "heldout_seed": 1000}, "held-out seed 1000 is also a training"),
        ({"train_seeds": (1000, 1001), "val_seed": 1001}, "must all differ"),
        ({"train_seeds": (1000, 1000)}, "must all differ"),
        ({"tile": 300}, "tile 300 must be a multiple of 32"),
        ({"domain": "solar"}, "unknown domain"),
    ],
)
def test_check_profile_rejects(change: dict, message: str) -> None:
    with pytest.raises((ValueError, KeyError), match=message):
        check_profile(replace(PROFILES["pv-thermal"], **change))


def test_quick_run_of_one_domain(tmp_path: Path) -> None:
    """Render → build → train (1 epoch) → held-out evaluation → models/<domain>/{best.pt, card.json, eval/}."""
    from datasets.version import dataset_version
    from detection.offline import ensure_offline

    ensure_offline()
    profile = quick_profile(PROFILES["pv-thermal"])
    card = run_domain(
        profile, tmp_path / "models", tmp_path / "work", workers=0, command="make models QUICK=1"
    )
    dest = tmp_path / "models" / "pv-thermal"
    assert json.loads((dest / "card.json").read_text()) == json.loads(json.dumps(card))
    assert card["command"] == "make models QUICK=1"
    assert card["dataset"]["version"] == dataset_version(tmp_path / "work" / "dataset")
    train_seed, val_seed, heldout_seed = profile.train_seeds[0], profile.val_seed, profile.heldout_seed
    assert (
        card["dataset"]["train_flight_seeds"] == [train_seed]
        and card["heldout"]["flight_seed"] == heldout_seed
    )
    assert 0 < (dest / "best.pt").stat().st_size <= MAX_WEIGHTS_BYTES
    assert card["weights"]["bytes"] == (dest / "best.pt").stat().st_size
    assert (dest / "eval" / "metrics.json").is_file() and (dest / "eval" / "pr_curve.png").is_file()
    assert card["names"] == taxonomy.class_names("pv-thermal") and card["target_map50"] == 0.9
    # The held-out flight is nowhere in the training set.
    manifest = json.loads((tmp_path / "work" / "dataset" / "manifest.json").read_text())
    flights = {f["source"]["flight"] for f in manifest["files"] if f.get("source")}
    assert flights == {f"pv-thermal-{train_seed}", f"pv-thermal-{val_seed}"}
    heldout_report = json.loads((dest / "eval" / "metrics.json").read_text())
    assert heldout_report["data"].endswith(f"pv-thermal-{heldout_seed}") and heldout_report["images"] == 2
    # The held-out figures are those of the exported ONNX file, the one pipelines and the edge runtime run.
    onnx_file = dest / card["onnx"]["file"]
    assert onnx_file.suffix == ".onnx" and heldout_report["model"] == str(onnx_file.resolve())
    assert card["heldout"]["recall_by_size"]["conf"] == 0.25 and card["timing_s"]["train_cpu"] > 0

    # --evaluate-only: same weights, training provenance kept, evaluation redone.
    again = evaluate_only(profile, tmp_path / "models", tmp_path / "work")
    assert again["dataset"] == card["dataset"] and again["weights"] == card["weights"]
    assert (
        again["onnx"]["file"] == card["onnx"]["file"]
        and again["heldout"]["map50"] == card["heldout"]["map50"]
    )


def test_evaluate_only_needs_shipped_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"pv-rgb/best\.pt: no shipped model"):
        evaluate_only(PROFILES["pv-rgb"], tmp_path / "models", tmp_path / "work")


@pytest.fixture(scope="module")
def rendered_flight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-frame pv-thermal flight at the generator's default defect rate (0.03)."""
    from datasets.synth import generate_flight

    out = tmp_path_factory.mktemp("flight") / "pv-thermal-7"
    generate_flight("pv-thermal", 2, 7, out, progress=False, image_size=(160, 128))
    return out / "synth.json"


@pytest.mark.parametrize(
    ("images", "defect_rate", "why"),
    [
        (2, None, None),  # the generator's default rate, as rendered
        (2, 0.03, None),  # the same rate asked for explicitly
        (3, None, "2 frames rendered, 3 wanted"),
        (2, 0.16, "defect rate 0.03 rendered, 0.16 wanted"),
    ],
)
def test_cached_flight_is_reused_only_when_it_matches(
    rendered_flight: Path, images: int, defect_rate: float | None, why: str | None
) -> None:
    """A profile change (frames, training defect rate) re-renders a cached flight instead of training on it."""
    assert _stale_flight(rendered_flight, images, defect_rate) == why


SHIPPED = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("domain", sorted(PROFILES))
def test_shipped_model_matches_its_recipe(domain: str) -> None:
    """The card of a shipped default model: made by today's profile, within 15 MB and 60 CPU-minutes of training."""
    card_path = SHIPPED / domain / "card.json"
    if not card_path.is_file():
        pytest.skip(f"no shipped model for {domain} in {SHIPPED}")
    card = json.loads(card_path.read_text())
    # The card's profile is the recipe today's PROFILES make; fields added later must hold their defaults.
    today = json.loads(json.dumps(asdict(PROFILES[domain])))
    defaults = {
        f.name: f.default_factory() if f.default_factory is not MISSING else f.default
        for f in fields(Profile)
    }
    assert {k: today[k] for k in card["profile"]} == card["profile"]
    assert all(today[k] == defaults[k] for k in today.keys() - card["profile"].keys())
    assert (SHIPPED / domain / "best.pt").stat().st_size == card["weights"]["bytes"] <= MAX_WEIGHTS_BYTES
    assert (
        (SHIPPED / domain / card["onnx"]["file"]).stat().st_size == card["onnx"]["bytes"] <= MAX_WEIGHTS_BYTES
    )
    assert 0 < card["timing_s"]["train_cpu"] <= 60 * 60
    assert card["meets_target"] == (card["heldout"]["map50"] >= card["target_map50"])


@pytest.mark.slow
def test_quick_main_all_domains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m detection.default_models --quick`` for the three domains (RGB ones tiled and sliced)."""
    assert main(["--quick", "--work", str(tmp_path), "--workers", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["domains"]) == set(PROFILES)
    for name in PROFILES:
        card = json.loads((tmp_path / "models" / name / "card.json").read_text())
        assert card["heldout"]["sliced"] is (name != "pv-thermal")
        assert ("slicing" in card) is (name != "pv-thermal")
