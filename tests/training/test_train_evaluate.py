"""End to end on the tiny data set: train (Lightning), evaluate, load_run, report, predict."""

from __future__ import annotations

import json
import logging
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from training_helpers import tiny_config

from mtlswin.config import load_config
from mtlswin.evaluation.evaluate import evaluate_run
from mtlswin.evaluation.predict import predict_files
from mtlswin.evaluation.report import write_report
from mtlswin.runs import Run
from mtlswin.training.train import train


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


TRAIN_MESSAGES: list[str] = []  # every warning and Lightning info line of the fixture's training run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data):
    """A trained and evaluated run. Read-only: a test that writes into a run works on a copy (``_copy``)."""
    tmp = tmp_path_factory.mktemp("train")
    path = tiny_config(tmp, tiny_data, "mtl", train={"epochs": 4, "lr": 0.05}, data={"augment": "none"})
    records = _Records()
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    lightning_log.addHandler(records)
    level = lightning_log.level
    lightning_log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = train(load_config(path))
    finally:
        lightning_log.removeHandler(records)
        lightning_log.setLevel(level)
    TRAIN_MESSAGES[:] = [str(w.message) for w in caught] + records.messages
    evaluate_run(run, n_boot=200)
    return run


def _copy(run, tmp_path):
    """A copy of the shared run for a test that writes into it (metrics.json, predictions/)."""
    return shutil.copytree(run, tmp_path / run.name)


def test_lightning_noise_is_silenced_but_the_run_still_reports(trained_run):
    noise = ("exists and is not empty", "smaller than the logging interval", "LeafSpec", "litlogger")
    assert [m for m in TRAIN_MESSAGES if any(n in m for n in noise)] == []
    assert any("max_epochs=4" in m for m in TRAIN_MESSAGES)  # Lightning's other lines still come through


def _epochs(run) -> pd.DataFrame:
    log = pd.read_csv(run / "logs" / "metrics.csv")
    cols = [
        "train/loss_epoch",
        "train/cls_epoch",
        "train/seg_epoch",
        "train/rec_epoch",
        "val/auc",
        "val/iou",
        "val/loss",
    ]
    return log.groupby("epoch")[cols].last()


def test_run_folder_layout(trained_run):
    for name in (
        "config.yaml",
        "model.safetensors",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "logs/metrics.csv",
    ):
        assert (trained_run / name).is_file(), name
    assert list((trained_run / "logs").glob("events.out.tfevents.*"))
    assert yaml.safe_load((trained_run / "config.yaml").read_text())["model"]["name"] == "mtl_swin_unet"
    assert sorted(p.name for p in (trained_run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no temp left


def test_training_loss_falls_and_validation_auc_beats_chance(trained_run):
    curves = _epochs(trained_run)
    print(curves.round(4).to_string())
    assert curves["train/loss_epoch"].iloc[-1] < curves["train/loss_epoch"].iloc[0]
    assert curves["val/auc"].iloc[-1] > 0.5
    # Every loss part is logged.
    assert curves[["train/cls_epoch", "train/seg_epoch", "train/rec_epoch"]].notna().all().all()


def test_lr_follows_the_poly_schedule(trained_run):
    log = pd.read_csv(trained_run / "logs" / "metrics.csv").dropna(subset=["train/lr"])
    max_iter = 4 * 5  # 4 epochs x 5 batches (40 train slices, batch 8)
    expected = [0.05 * (1 - s / max_iter) ** 0.9 for s in log["step"]]
    np.testing.assert_allclose(log["train/lr"], expected, rtol=1e-6)


def test_evaluate_writes_metrics_and_predictions(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert set(metrics) == {"test_a", "test_b"}
    a = metrics["test_a"]
    for key in ("iou", "acc", "precision", "recall", "f1_pos", "f1_macro", "auc", "sensitivity", "specificity"):
        assert key in a
    assert a["f1_macro"] == pytest.approx((a["f1_pos"] + a["f1_neg"]) / 2)
    low, high = a["auc_ci95"]
    assert low <= a["auc"] <= high
    assert "worst_group" in a["group_acc"]
    pred = pd.read_csv(trained_run / "predictions" / "test_a.csv")
    assert list(pred.columns[:5]) == ["index", "patient_id", "label", "prob", "pred"] and len(pred) == a["n"]
    assert ((pred["prob"] >= 0.5).astype(int) == pred["pred"]).all()


def test_run_open_from_folder_ckpt_and_safetensors_agree(trained_run):
    x = torch.rand(2, 1, 32, 32)
    outs = []
    for path in (trained_run, trained_run / "checkpoints" / "best.ckpt", trained_run / "model.safetensors"):
        run = Run.open(path)
        assert run.config is not None and run.config.model.name == "mtl_swin_unet"
        assert run.root == trained_run.absolute()
        with torch.no_grad():
            outs.append(run.model(x)["logits"])
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.testing.assert_close(outs[0], outs[2], rtol=0, atol=0)


def test_report_table_with_two_seeds(trained_run, tmp_path):
    second = tmp_path / "mtl-seed1"
    shutil.copytree(trained_run, second)
    cfg = yaml.safe_load((second / "config.yaml").read_text())
    cfg["output"]["name"] = "mtl-seed1"
    (second / "config.yaml").write_text(yaml.safe_dump(cfg))
    metrics = json.loads((second / "metrics.json").read_text())
    metrics["test_a"]["auc"] = metrics["test_a"]["auc"] - 0.1
    (second / "metrics.json").write_text(json.dumps(metrics))
    report = write_report([trained_run, second], tmp_path / "report")
    table = pd.read_csv(tmp_path / "report" / "table1.csv")
    assert list(table["row"]) == ["mtl"] and table["seeds"].iloc[0] == 2
    first_auc = json.loads((trained_run / "metrics.json").read_text())["test_a"]["auc"]
    assert table["test_a_auc"].iloc[0] == pytest.approx(first_auc - 0.05)
    assert table["test_a_auc_sd"].iloc[0] == pytest.approx(np.std([first_auc, first_auc - 0.1], ddof=1))
    md = (tmp_path / "report" / "table1.md").read_text()
    assert "| mtl | 2 |" in md and "±" in md
    for png in ("roc.png", "training_curves.png", "confusion.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5000
    assert report == tmp_path / "report" / "report.md"
    assert "| mtl | 2 |" in report.read_text() and "![roc](roc.png)" in report.read_text()


def test_report_includes_an_audit_folder(trained_run, tmp_path):
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "audit.md").write_text("Grad-CAM energy inside the mask: 0.42")
    (audit / "audit.csv").write_text("model,energy\nmtl,0.42\n")
    report = write_report([trained_run], tmp_path / "out", audit=audit)
    assert "energy inside the mask: 0.42" in report.read_text()
    assert (tmp_path / "out" / "audit.csv").is_file()


def test_predict_on_dicom_folder(trained_run, tmp_path):
    from mtlswin.data.phantom.generate import SynthConfig
    from mtlswin.data.phantom.writer import write_dataset

    write_dataset(SynthConfig(slices=11, size=32, seed=1), tmp_path / "dicoms")
    table = predict_files(trained_run, [tmp_path / "dicoms" / "images"], tmp_path / "pred")
    assert len(table) == 11 and table["name"].is_unique
    assert table["probability"].between(0, 1).all()
    assert ((table["probability"] >= 0.5).astype(int) == table["predicted_label"]).all()
    assert len(list((tmp_path / "pred" / "overlays").glob("*.png"))) == 11
    assert pd.read_csv(tmp_path / "pred" / "predictions.csv").shape == (11, 6)  # + scan, slice_index
    assert not (tmp_path / "pred" / "skipped.csv").exists()
    # Classification only (--no-masks): no decoder, no overlay, the same probabilities.
    cls_only = predict_files(trained_run, [tmp_path / "dicoms" / "images"], tmp_path / "pred_cls", masks=False)
    assert not (tmp_path / "pred_cls" / "overlays").exists()
    pd.testing.assert_frame_equal(cls_only, table)


def test_cli_evaluate_report_predict(trained_run, tmp_path, capsys):
    from mtlswin.cli import main

    run = _copy(trained_run, tmp_path)  # evaluate adds "val" to metrics.json: not in the shared run
    assert main(["evaluate", str(run), "--split", "val", "--bootstrap", "50"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"val", "test_a", "test_b"} <= set(metrics)
    assert (run / "predictions" / "val.csv").is_file()
    assert set(json.loads((trained_run / "metrics.json").read_text())) == {"test_a", "test_b"}
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    table = (tmp_path / "rep" / "table1.md").read_text()
    # test A is held-out slices of hospital 1, not "hospitals 1-4" (the paper's protocol)
    assert "test A (held-out slices of hospital 1" in table and "test A (hospitals 1-4)" not in table
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mtlswin evaluate: error:") and "not in" in err and "Traceback" not in err


def test_train_refuses_to_overwrite_and_resume_needs_a_checkpoint(trained_run, tmp_path, tiny_data):
    config = load_config(trained_run / "config.yaml")
    with pytest.raises(ValueError, match="--resume"):
        train(config)
    fresh = load_config(tiny_config(tmp_path, tiny_data, "fresh"))
    with pytest.raises(ValueError, match="no checkpoint"):
        train(fresh, resume=True)
