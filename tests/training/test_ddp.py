"""Two CPU processes with Lightning DDP (gloo) train a few steps and end with identical weights."""

from __future__ import annotations

import json

import pandas as pd
from training_helpers import run_cli, tiny_config

from mtlswin.evaluation.evaluate import evaluate_run
from mtlswin.models.conversion.files import read_state_dict

DDP = ["--set", "trainer.devices=2", "--set", "trainer.strategy=ddp", "--set", "trainer.num_nodes=1",
       "--set", "trainer.deterministic=false"]  # fmt: skip


def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path, tiny_data):
    data = {"cache_dir": str(tmp_path / "cache")}
    config = tiny_config(tmp_path, tiny_data, "ddp", train={"epochs": 1, "checkpoint_every_n_steps": 0}, data=data)
    run_cli("train", str(config), *DDP, timeout=400)
    sync = json.loads((tmp_path / "runs" / "ddp" / "ddp_sync.json").read_text())
    print(f"DDP: {sync}")
    assert sync["world_size"] == 2
    assert sync["max_abs_diff"] == 0.0
    # Each rank trained on its half of the 40 train slices: ceil(20 / 8) = 3 steps (5 without sharding).
    assert sync["global_step"] == 3
    assert (tmp_path / "runs" / "ddp" / "model.safetensors").is_file()
    # Validation is sharded, not repeated: each rank evaluated half of the split, and the metrics
    # gathered from the two halves equal those of one process evaluating the whole split.
    n_val = int((pd.read_csv(tiny_data.splits)["split"] == "val").sum())
    assert sorted(sync["val_samples_per_rank"]) == [n_val // 2, n_val - n_val // 2]
    logged = pd.read_csv(tmp_path / "runs" / "ddp" / "logs" / "metrics.csv")
    logged = logged.dropna(subset=["val/auc"]).iloc[-1]
    whole = evaluate_run(tmp_path / "runs" / "ddp", ["val"], n_boot=10)["val"]
    print(f"DDP val: logged auc {logged['val/auc']:.6f} iou {logged['val/iou']:.6f}; one process {whole}")
    assert abs(logged["val/auc"] - whole["auc"]) < 1e-6
    assert abs(logged["val/iou"] - whole["iou"]) < 1e-6

    # The device cache shards the same way: each rank builds its own half's batches, same weights at the end.
    run_cli("train", str(config), *DDP, "--set", "data.device_cache=true", "--set", "output.name=ddp-device-cache",
            timeout=400)  # fmt: skip
    sync = json.loads((tmp_path / "runs" / "ddp-device-cache" / "ddp_sync.json").read_text())
    assert (sync["world_size"], sync["max_abs_diff"], sync["global_step"]) == (2, 0.0, 3)
    a, b = (read_state_dict(tmp_path / "runs" / name / "model.safetensors") for name in ("ddp", "ddp-device-cache"))
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    print(f"DDP device cache vs CPU loader: max abs weight difference {diff:.3g}")
    assert diff <= 1e-5
