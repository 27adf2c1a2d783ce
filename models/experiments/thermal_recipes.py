"""pv-thermal training recipes side by side on a GPU machine (the tables in models/README.md).

Session 5 (set ``s5``): the old 320 px crops against whole frames, batch, epochs and ``reg_max``. Session 6 (set
``s6``, the default): variations of the shipped recipe (whole frames at 640, batch 2, ``yolo11p-p2`` with
``reg_max: 1``, 36 epochs — about 50 CPU-minutes here) at the same CPU cost: a second seed (how far two runs of
one recipe differ), 40 epochs, twice the flights for half the epochs, flights with twice the defect density, ReLU
in place of SiLU, and twice ultralytics' automatic AdamW learning rate — most of them with two seeds.

Each recipe is ultralytics directly (CUDA, all recipes in parallel, a few minutes) with the train command's
arguments otherwise (AdamW auto unless set, no AMP, the profile's ``train_args``). The datasets are what
``datasets.build.build_dataset`` makes (``tiles=None``) under ``$DATA_ROOT/data``:

- ``whole``: training flights 1000-1002, validation 1003 (the shipped profile's set);
- ``more``: flights 1004-1006 (same defect rate 0.08), used together with ``whole``;
- ``dense``: flights 1010-1012 rendered with ``defect_rate=0.16``, validation 1003.

The weights come back and are evaluated here on this project's CPU path through ``skyinspect evaluate``: first on
flight 2004 (a held-out seed used only to choose between recipes), then the chosen one on 2000 (the reported
held-out flight), so the recipe is not picked on the flight that scores it. Needs a ``polars`` module for
ultralytics' trainer (a stub was used on the GPU machine, which had none).

    DATA_ROOT=.gpu OUT=/tmp/out python models/experiments/thermal_recipes.py          # set s6 (GPU 0)
    DATA_ROOT=.gpu OUT=/tmp/out DEV=cpu EPOCHS=1 FRACTION=0.1 ONLY=r1_e36_s0 python models/experiments/thermal_recipes.py
"""

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(os.environ.get("DATA_ROOT", Path(__file__).resolve().parent)).resolve()
OUT = Path(os.environ.get("OUT", "/tmp/out"))
BASE = dict(scale=0.25, flipud=0.5, hsv_v=0.3, close_mosaic=5, cache="ram")
# name: (train datasets, imgsz, batch (= nbs), epochs, reg_max, extra ultralytics args / "act" / "seed")
SETS = {
    "s5": {
        "A_crops_b8_e20": (["crops"], 320, 8, 20, 16, {}),
        "B_whole_b2_e20": (["whole"], 640, 2, 20, 16, {}),
        "C_whole_b4_e20": (["whole"], 640, 4, 20, 16, {}),
        "D_whole_b2_e40": (["whole"], 640, 2, 40, 16, {}),
        "E_crops_b8_e60": (["crops"], 320, 8, 60, 16, {}),
        "G_whole_b2_e20_rm1": (["whole"], 640, 2, 20, 1, {}),
        "H_whole_b2_e40_rm1": (["whole"], 640, 2, 40, 1, {}),
    },
    "s6": {
        "r1_e36_s0": (["whole"], 640, 2, 36, 1, {}),
        "r1_e36_s1": (["whole"], 640, 2, 36, 1, {"seed": 1}),
        "r1_e40": (["whole"], 640, 2, 40, 1, {}),
        "r1_more_e18": (["whole", "more"], 640, 2, 18, 1, {}),
        "r1_dense_e36": (["dense"], 640, 2, 36, 1, {}),
        "r1_dense_e36_s1": (["dense"], 640, 2, 36, 1, {"seed": 1}),
        "r1_relu_e36": (["whole"], 640, 2, 36, 1, {"act": "nn.ReLU()"}),
        "r1_lr2_e36": (["whole"], 640, 2, 36, 1, {"optimizer": "AdamW", "lr0": 0.002}),
        "r1_e40_s1": (["whole"], 640, 2, 40, 1, {"seed": 1}),
        "r1_more_e18_s1": (["whole", "more"], 640, 2, 18, 1, {"seed": 1}),
        "r1_relu_e36_s1": (["whole"], 640, 2, 36, 1, {"act": "nn.ReLU()", "seed": 1}),
        "r1_lr2_e36_s1": (["whole"], 640, 2, 36, 1, {"optimizer": "AdamW", "lr0": 0.002, "seed": 1}),
        "r1_dense_lr2_e36": (["dense"], 640, 2, 36, 1, {"optimizer": "AdamW", "lr0": 0.002}),
    },
}
R = SETS[os.environ.get("SET", "s6")]


def one(name: str) -> None:
    sets, imgsz, batch, epochs, reg_max, extra = R[name]
    import yaml

    extra = dict(extra)
    arch = yaml.safe_load((REPO / "detection/arch/yolo11p-p2.yaml").read_text())
    arch["reg_max"] = reg_max
    arch["nc"] = 7
    if "act" in extra:
        arch["activation"] = extra.pop("act")
    seed = extra.pop("seed", 0)
    a = ROOT / f"arch-{name}.yaml"
    a.write_text(yaml.safe_dump(arch))
    d = yaml.safe_load((ROOT / "data" / sets[0] / "data.yaml").read_text())
    d["path"] = str(ROOT / "data")
    d["train"] = [f"{s}/images/train" for s in sets]
    d["val"] = f"{sets[0]}/images/val"
    dy = ROOT / f"data-{name}.yaml"
    dy.write_text(yaml.safe_dump(d))
    from ultralytics import YOLO

    t = time.time()
    m = YOLO(str(a))
    m.train(
        data=str(dy),
        epochs=int(os.environ.get("EPOCHS", epochs)),
        fraction=float(os.environ.get("FRACTION", 1.0)),
        imgsz=imgsz,
        batch=batch,
        nbs=batch,
        seed=seed,
        deterministic=False,
        workers=2,
        device=os.environ.get("DEV", "0"),
        project=str(ROOT / "runs"),
        name=name,
        exist_ok=True,
        patience=max(epochs // 4, 10),
        amp=False,
        plots=False,
        pretrained=False,
        val=True,
        verbose=False,
        **{**BASE, **extra},
    )
    print(name, "done", round(time.time() - t), "s", flush=True)


def main() -> None:
    names = os.environ.get("ONLY", ",".join(R)).split(",")
    procs = {
        n: subprocess.Popen(
            [sys.executable, __file__, n], stdout=open(ROOT / f"{n}.log", "w"), stderr=subprocess.STDOUT
        )
        for n in names
    }
    deadline = time.time() + float(os.environ.get("BUDGET_S", "420"))
    while time.time() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(5)
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    time.sleep(3)
    import torch

    OUT.mkdir(parents=True, exist_ok=True)
    summary = {}
    with tarfile.open(OUT / "weights.tar", "w") as tar:  # one file: the device returns at most 8
        for n in names:
            run = ROOT / "runs" / n
            csvp = run / "results.csv"
            rows = csvp.read_text().strip().splitlines() if csvp.exists() else []
            summary[n] = {
                "rc": procs[n].returncode,
                "epochs_done": max(0, len(rows) - 1),
                "csv": rows[:1] + rows[-3:],
                "log_tail": (ROOT / f"{n}.log").read_text()[-600:],
            }
            for w in ("best.pt", "last.pt"):
                f = run / "weights" / w
                if f.exists():
                    ck = torch.load(f, map_location="cpu", weights_only=False)
                    ck["model"] = ck.get("ema") or ck.get("model")
                    ck["ema"] = None
                    ck["optimizer"] = None
                    torch.save(ck, ROOT / f"{n}.pt")
                    tar.add(ROOT / f"{n}.pt", arcname=f"{n}.pt")
                    summary[n]["weights"] = w
                    break
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    brief = {
        n: (s["epochs_done"], s.get("weights"), s["csv"][-1][:200] if s["csv"] else None)
        for n, s in summary.items()
    }
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        one(sys.argv[1])
    else:
        main()
