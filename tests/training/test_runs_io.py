"""One run API (mtlswin.runs), atomic outputs (mtlswin.io), batches that go on (predict/gradcam), honest warnings."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from training_helpers import tiny_config

from data_fixtures import write_ct_dicom
from mtlswin.cli import main
from mtlswin.config import load_config
from mtlswin.io import atomic_path, atomic_write_text, created_dir
from mtlswin.runs import Run, config_digest, resolve_data_path
from mtlswin.training.csv_log import merge_csv_log, take_csv_log
from mtlswin.training.train import train

UIDS = ("1.2.840.113619.2.55.3.1001", "1.2.840.113619.2.55.3.1002")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data) -> Path:
    """A 1-epoch tiny mtl_swin_unet, trained from a project folder with data paths relative to it."""
    tmp = tmp_path_factory.mktemp("proj")
    shutil.copytree(tiny_data.root, tmp / "data")
    cfg = tiny_config(tmp, tiny_data, "mtl", train={"epochs": 1}, trainer={"limit_val_batches": 2})
    raw = yaml.safe_load(cfg.read_text())
    raw["data"].update(manifest="data/manifest.csv", splits="data/splits.csv")
    raw["output"]["dir"] = "runs"
    cfg.write_text(yaml.safe_dump(raw))
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        run = train(load_config(cfg))
    finally:
        os.chdir(cwd)
    return (tmp / run).resolve()


def _test_a_masked_images(run: Path, n: int = 2) -> tuple[list[str], list[str]]:
    config = Run.open(run).config
    table = pd.read_csv(config.data.manifest, keep_default_na=False)
    splits = pd.read_csv(config.data.splits)
    rows = table.iloc[splits.loc[splits["split"] == "test_a", "index"].to_numpy()]
    rows = rows[rows["mask"] != ""].head(n)
    root = Path(config.data.manifest).parent
    return [str(root / p) for p in rows["image"]], [str(root / p) for p in rows["mask"]]


def _all_commands(run: Path, tmp: Path) -> dict:
    """evaluate, audit, gradcam and predict on ``run`` (from the current folder); returns what they wrote."""
    images, masks = _test_a_masked_images(run)
    assert main(["evaluate", str(run), "--bootstrap", "20"]) == 0
    assert main(["audit", str(run), "--out", str(tmp / "audit"), "--n-resamples", "20"]) == 0
    assert main(["gradcam", str(run), *images, "--out", str(tmp / "cams"), "--mask", *masks]) == 0
    assert main(["predict", str(run), *images, "--out", str(tmp / "pred")]) == 0
    return {
        "metrics": json.loads((run / "metrics.json").read_text()),
        "audit": pd.read_csv(tmp / "audit" / "audit.csv"),
        "cams": sorted(p.name for p in (tmp / "cams").glob("*_cam.npy")),
        "pred": pd.read_csv(tmp / "pred" / "predictions.csv"),
    }


# --- atomic files and folders ---------------------------------------------------------------------------------


def test_atomic_path_replaces_whole_or_leaves_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temp file left
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_created_dir_removes_only_what_this_call_created(tmp_path):
    with pytest.raises(ValueError):
        with created_dir(tmp_path / "a" / "b") as out:
            (out / "part.csv").write_text("x")
            raise ValueError("failed")
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("mine")
    with pytest.raises(ValueError):
        with created_dir(tmp_path / "kept"):
            raise ValueError("failed")
    assert (tmp_path / "kept" / "old.txt").read_text() == "mine"


def test_failed_train_leaves_no_run_folder(tmp_path, tiny_data):
    cfg = tiny_config(tmp_path, tiny_data, "broken", data={"manifest": str(tmp_path / "missing.csv")})
    config = load_config(cfg)
    with pytest.raises((ValueError, FileNotFoundError)):
        train(config)
    assert not config.run_dir.exists()
    assert not (tmp_path / "runs").exists()


# --- the data-path rule -------------------------------------------------------------------------------------------


def test_resolve_data_path_rule(tmp_path):
    run = tmp_path / "exp" / "runs" / "r"
    (run).mkdir(parents=True)
    (tmp_path / "exp" / "data").mkdir()
    (tmp_path / "exp" / "data" / "m.csv").write_text("x")
    # relative: against the run folder
    assert resolve_data_path("../../data/m.csv", run) == tmp_path / "exp" / "data" / "m.csv"
    # absolute and existing: as it is
    assert resolve_data_path(tmp_path / "exp" / "data" / "m.csv", run) == tmp_path / "exp" / "data" / "m.csv"
    # absolute, gone, the run moved: the same place relative to the run folder
    shutil.move(tmp_path / "exp", tmp_path / "moved")
    moved = tmp_path / "moved" / "runs" / "r"
    old_data = tmp_path / "exp" / "data" / "m.csv"
    got = resolve_data_path(old_data, moved, stored_root=tmp_path / "exp" / "runs" / "r")
    assert got == tmp_path / "moved" / "data" / "m.csv"
    # ... but only when it exists there; else the stored path stays (and its error names it)
    (got).unlink()
    assert resolve_data_path(old_data, moved, stored_root=tmp_path / "exp" / "runs" / "r") == old_data


def test_train_stores_absolute_data_paths_and_a_config_digest(trained_run):
    raw = yaml.safe_load((trained_run / "config.yaml").read_text())
    for key in ("manifest", "splits"):
        assert Path(raw["data"][key]).is_absolute() and Path(raw["data"][key]).is_file()
    assert Path(raw["output"]["dir"]) == trained_run.parent
    digest = (trained_run / "config.sha256").read_text().strip()
    assert digest == config_digest(load_config(trained_run / "config.yaml"))
    assert digest != config_digest(load_config(trained_run / "config.yaml", ["train.lr=0.2"]))


# --- the commands on a run from anywhere --------------------------------------------------------------------------


def test_commands_on_an_absolute_run_path_from_another_folder(trained_run, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    got = _all_commands(trained_run, tmp_path)
    assert {"test_a", "test_b"} <= set(got["metrics"]) and got["metrics"]["test_a"]["n"] > 0
    assert got["audit"]["model"].iloc[0] == "mtl" and got["audit"]["n"].iloc[0] >= 1
    assert len(got["cams"]) == 2 and len(got["pred"]) == 2
    assert list(elsewhere.iterdir()) == []  # nothing written relative to the working folder


def test_commands_on_a_moved_run_folder(trained_run, tmp_path, monkeypatch):
    reference = (
        json.loads((trained_run / "metrics.json").read_text()) if (trained_run / "metrics.json").is_file() else None
    )
    moved = tmp_path / "somewhere" / "else" / "mtl"
    shutil.copytree(trained_run, tmp_path / "copy")
    shutil.move(tmp_path / "copy", moved)  # the run folder alone moves; its data stays where it was
    (moved / "metrics.json").unlink(missing_ok=True)
    monkeypatch.chdir(tmp_path)
    got = _all_commands(moved, tmp_path)
    assert Run.open(moved).root == moved
    if reference is not None:
        assert got["metrics"]["test_a"]["auc"] == reference["test_a"]["auc"]
    assert got["audit"]["model"].iloc[0] == "mtl"


def test_a_moved_experiment_folder_data_and_runs_together(trained_run, tmp_path, monkeypatch):
    """Data and runs in one folder, moved as a whole and the original gone: the stored absolute paths are re-based."""
    exp = tmp_path / "exp"
    data_root = Path(Run.open(trained_run).config.data.manifest).parent
    shutil.copytree(data_root, exp / "data")
    shutil.copytree(trained_run, exp / "runs" / "mtl")
    raw = yaml.safe_load((exp / "runs" / "mtl" / "config.yaml").read_text())
    raw["data"].update(manifest=str(exp / "data" / "manifest.csv"), splits=str(exp / "data" / "splits.csv"))
    raw["output"]["dir"] = str(exp / "runs")
    (exp / "runs" / "mtl" / "config.yaml").write_text(yaml.safe_dump(raw))
    shutil.move(exp, tmp_path / "moved-exp")
    run = tmp_path / "moved-exp" / "runs" / "mtl"
    config = Run.open(run).config
    assert Path(config.data.manifest) == tmp_path / "moved-exp" / "data" / "manifest.csv"
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(run), "--bootstrap", "20"]) == 0
    assert json.loads((run / "metrics.json").read_text())["test_a"]["n"] > 0


# --- predict / gradcam batches -----------------------------------------------------------------------------------


def _mixed_folder(root: Path, tiny_png: Path) -> Path:
    folder = root / "inputs"
    (folder / "series").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for uid in UIDS:  # UID-named DICOMs: `name.split(".")[0]` would call both "1"
        write_ct_dicom(
            folder / "series" / f"{uid}.dcm", rng.integers(900, 1200, (32, 32)).astype(np.int16), sop_uid=uid
        )
    shutil.copy(tiny_png, folder / "slice.png")
    np.save(folder / "slice.npy", rng.integers(-100, 100, (32, 32)).astype(np.int16))  # HU
    (folder / "broken.dcm").write_bytes(b"not a dicom at all")
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


def test_predict_folder_takes_every_kind_skips_unreadable_and_names_uniquely(trained_run, tiny_data, tmp_path, capsys):
    folder = _mixed_folder(tmp_path, tiny_data.root / "images" / "00000.png")
    out = tmp_path / "pred"
    assert main(["predict", str(trained_run), str(folder), "--out", str(out)]) == 0
    table = pd.read_csv(out / "predictions.csv")
    assert sorted(table["name"]) == sorted([f"series__{u}" for u in UIDS] + ["slice", "slice-2"])
    assert table["probability"].between(0, 1).all()
    skipped = pd.read_csv(out / "skipped.csv")
    assert list(skipped["file"]) == [str(folder / "broken.dcm")]
    assert "skipped" in capsys.readouterr().err
    overlays = sorted(p.stem for p in (out / "overlays").glob("*.png"))
    assert overlays == sorted(table["name"])


def test_two_uid_named_dicoms_give_two_gradcam_outputs(trained_run, tiny_data, tmp_path):
    folder = _mixed_folder(tmp_path, tiny_data.root / "images" / "00000.png")
    out = tmp_path / "cams"
    assert main(["gradcam", str(trained_run), str(folder / "series"), "--out", str(out)]) == 0
    cams = sorted(p.name for p in out.glob("*_cam.npy"))
    assert cams == [f"{u}_cam.npy" for u in UIDS]  # the path relative to the input folder, suffix dropped
    a, b = (np.load(out / c) for c in cams)
    assert a.shape == b.shape == (32, 32)
    overlays = [(out / c.replace("_cam.npy", "_overlay.png")).read_bytes() for c in cams]
    assert overlays[0] != overlays[1]  # two images, two overlays: neither overwrote the other


def test_predict_with_nothing_readable_fails_and_leaves_no_output(trained_run, tmp_path, capsys):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"garbage")
    (folder / "b.png").write_bytes(b"garbage")
    assert main(["predict", str(trained_run), str(folder), "--out", str(tmp_path / "pred")]) == 1
    err = capsys.readouterr().err
    assert "none of the 2 inputs could be read" in err and "Traceback" not in err
    assert not (tmp_path / "pred").exists()


def test_gradcam_counts_all_zero_maps(trained_run, tiny_data, tmp_path, monkeypatch):
    import mtlswin.explain.files as files

    monkeypatch.setattr(files, "compute_cam", lambda model, image, *a, **k: np.zeros((1, 32, 32), np.float32))
    lines: list[str] = []
    images, _ = _test_a_masked_images(trained_run)
    files.gradcam_files(trained_run, images, tmp_path / "cams", log=lines.append)
    assert any(line.startswith("2 of 2 maps are all zero") for line in lines), lines
    assert not any("not evidence" in line for line in lines)  # a Swin's default method is eligible


def test_gradcam_says_when_a_familys_maps_are_not_evidence(trained_run, tmp_path, monkeypatch):
    import mtlswin.explain.files as files

    monkeypatch.setattr(files, "not_evidence", lambda model: "no candidate passes the gate test")
    lines: list[str] = []
    images, _ = _test_a_masked_images(trained_run)
    files.gradcam_files(trained_run, images[:1], tmp_path / "cams", log=lines.append)
    assert any(line.startswith("these maps are not evidence of where") and "gate test" in line for line in lines)


# --- warnings that mean something --------------------------------------------------------------------------------


def test_auc_undefined_is_explained():
    from mtlswin.evaluation.evaluate import split_metrics

    table = pd.DataFrame({"index": range(4), "label": [0, 0, 0, 0], "prob": [0.1, 0.2, 0.3, 0.4]})
    out = split_metrics(table, None, n_boot=10)
    assert out["auc_undefined"] == "AUC undefined: the split has no positive slice (0 of 4); make larger splits"
    table["label"] = [0, 1, 0, 1]
    assert "auc_undefined" not in split_metrics(table, None, n_boot=10)


def test_split_warns_about_test_sets_with_few_positives(tiny_data):
    from mtlswin.data.splits import split_warnings

    table = pd.read_csv(tiny_data.manifest, keep_default_na=False)
    splits = pd.read_csv(tiny_data.splits)
    n_pos = {
        s: int(table.loc[splits.loc[splits["split"] == s, "index"], "hypodensity"].sum()) for s in ("test_a", "test_b")
    }
    warnings = split_warnings(table, splits, "hypodensity")
    assert len(warnings) == sum(v < 10 for v in n_pos.values()) > 0
    assert warnings[0].startswith(f"warning: test_a has {n_pos['test_a']} positive slice(s)")
    assert split_warnings(table, splits, "hypodensity", min_positives=0) == []


# --- reproduce's done-checks, resume log, synth ------------------------------------------------------------------


def test_reproduce_done_needs_a_valid_model_and_the_same_config(trained_run, tmp_path):
    from mtlswin.pipeline.run_state import has_logits as _has_logits
    from mtlswin.pipeline.run_state import run_done as _run_ok
    from mtlswin.pipeline.run_state import run_evaluated as _evaluated
    from mtlswin.pipeline.run_state import set_aside as _set_aside

    run = tmp_path / "runs" / "mtl"
    shutil.copytree(trained_run, run)
    digest = (run / "config.sha256").read_text().strip()
    assert _run_ok(run, digest) and _has_logits(run)
    assert not _run_ok(run, "0" * 64)  # other --set overrides: not done
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[:50])  # truncated: not done
    assert not _run_ok(run, digest)
    (run / "metrics.json").write_text('{"test_a": {"auc": 0.7}, "test_b"')  # a torn write
    assert not _evaluated(run)
    (run / "metrics.json").write_text(json.dumps({"test_a": {}, "test_b": {}}))
    assert _evaluated(run)
    lines: list[str] = []
    _set_aside(run, "f" * 64, lines.append)
    assert not run.exists() and (run.parent / f"mtl.replaced-{digest[:12]}").is_dir() and "moved" in lines[0]


def test_resume_keeps_the_old_metrics_csv_until_merged(trained_run, tmp_path):
    run = tmp_path / "mtl"
    shutil.copytree(trained_run, run)
    before = pd.read_csv(run / "logs" / "metrics.csv")
    old, step, kept = take_csv_log(run)
    assert not (run / "logs" / "metrics.csv").exists() and kept.is_file()
    pd.testing.assert_frame_equal(pd.read_csv(kept), before)
    # a crash before the merge: the next resume finds the kept history again
    again = take_csv_log(run)
    assert again is not None and len(again[0]) == len(before)
    pd.DataFrame({"step": [step], "epoch": [1], "train/loss": [0.1]}).to_csv(run / "logs" / "metrics.csv", index=False)
    merge_csv_log(run, old, step, kept)
    merged = pd.read_csv(run / "logs" / "metrics.csv")
    assert len(merged) == int((before["step"] < step).sum()) + 1 and not kept.exists()


def test_synth_refuses_a_non_empty_folder_unless_overwrite(tmp_path, monkeypatch):
    from mtlswin.cli.synth import prepare_out

    out = tmp_path / "phantom"
    out.mkdir()
    (out / "old.dcm").write_text("stale")
    with pytest.raises(ValueError, match="not empty"):
        prepare_out(out, overwrite=False)
    assert (out / "old.dcm").is_file()
    prepare_out(out, overwrite=True)
    assert not out.exists()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(ValueError, match="refuses to clear"):
        prepare_out(tmp_path, overwrite=True)  # the folder above the working folder: never cleared
    assert (tmp_path / "work").is_dir()
