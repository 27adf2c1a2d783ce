"""pv-thermal training recipes side by side (the table in models/README.md, 2026-11-29 session 5).

Run once on a GPU machine (ultralytics directly, CUDA, 7 recipes in parallel, ~7 minutes) with the datasets that
``datasets.build.build_dataset`` makes from the training flights 1000-1002 and validation flight 1003:
``data/crops`` (320 px crops, the old profile's set) and ``data/whole`` (whole 640x512 frames, ``tiles=None``).
Same ultralytics arguments as ``detection.train`` otherwise (seed 0, AdamW auto, no AMP, the profile's
``train_args``). Each run's best weights were then evaluated on the held-out flight 2000 on this project's CPU path:
``skyinspect evaluate --model RUN.pt --data <data_dir>/default-models/pv-thermal/flights/pv-thermal-2000 --imgsz 640``.
Needs a ``polars`` module for ultralytics' trainer (a stub was used on the GPU machine, which had none).

    OUT=/tmp/out python models/experiments/thermal_recipes.py            # all recipes (GPU 0)
    OUT=/tmp/out DEV=cpu EPOCHS=1 FRACTION=0.1 ONLY=A_crops_b8_e20 python models/experiments/thermal_recipes.py
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUT = Path(os.environ.get("OUT", "/tmp/out"))
BASE = dict(nbs=8, scale=0.25, flipud=0.5, hsv_v=0.3, close_mosaic=5, cache="ram")
R = {  # name: (dataset, imgsz, batch (= nbs), epochs, reg_max)
    "A_crops_b8_e20": ("crops", 320, 8, 20, 16),
    "B_whole_b2_e20": ("whole", 640, 2, 20, 16),
    "C_whole_b4_e20": ("whole", 640, 4, 20, 16),
    "D_whole_b2_e40": ("whole", 640, 2, 40, 16),
    "E_crops_b8_e60": ("crops", 320, 8, 60, 16),
    "G_whole_b2_e20_rm1": ("whole", 640, 2, 20, 1),
    "H_whole_b2_e40_rm1": ("whole", 640, 2, 40, 1),
}


def one(name):
    data, imgsz, batch, epochs, reg_max = R[name]
    import yaml

    arch = yaml.safe_load((ROOT.parents[1] / "detection/arch/yolo11p-p2.yaml").read_text())
    arch["reg_max"] = reg_max
    arch["nc"] = 7
    a = ROOT / f"arch-{name}.yaml"
    a.write_text(yaml.safe_dump(arch))
    d = yaml.safe_load((ROOT / "data" / data / "data.yaml").read_text())
    d["path"] = str(ROOT / "data" / data)
    dy = ROOT / f"data-{name}.yaml"
    dy.write_text(yaml.safe_dump(d))
    from ultralytics import YOLO

    t = time.time()
    m = YOLO(str(a))
    args = {**BASE, "nbs": batch}
    m.train(
        data=str(dy),
        epochs=int(os.environ.get("EPOCHS", epochs)),
        fraction=float(os.environ.get("FRACTION", 1.0)),
        imgsz=imgsz,
        batch=batch,
        seed=0,
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
        **args,
    )
    print(name, "done", round(time.time() - t), "s", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        one(sys.argv[1])
        sys.exit(0)
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

    summary = {}
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
                torch.save(ck, OUT / f"{n}.pt")
                summary[n]["weights"] = w
                break
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        json.dumps(
            {
                n: (s["epochs_done"], s.get("weights"), s["csv"][-1][:200] if s["csv"] else None)
                for n, s in summary.items()
            },
            indent=1,
        )
    )
