"""The CLI's one error boundary: every expected failure is one line on stderr and a clear exit code.

Each row of ``CASES``: the arguments (``{cfg}``, ``{tmp}``, ... are filled in per test), the exit code
(2 for usage, 1 for config / data / files / checkpoints), a part of the one-line message, and the
folder that must not exist afterwards (no partial output). No row may print a traceback.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mtlswin.cli import main
from mtlswin.models import create_model, save_model, test_overrides
from mtlswin.models.configs import TEST_ENCODER

BROKEN_YAML = "model:\n  name: swin\ntrain: {epochs: 3\ndata:\n  batch_size: 2\n"

# argv template -> (exit code, part of the message on stderr, path that must not exist afterwards)
CASES = [
    ("train {cfg} --set train.epochs=abc", 1, "train.epochs must be int, got 'abc' (str)", "{tmp}/runs"),
    ("train {cfg} --set model.depths=2", 1, "model.depths must be list of int or None, got 2 (int)", "{tmp}/runs"),
    ("train {cfg} --set trainer.devices=two", 1, "trainer.devices must be 'auto', a number of devices", "{tmp}/runs"),
    ("train {cfg} --set trainer.precision=17", 1, "trainer.precision must be one of 64, 32, 16", "{tmp}/runs"),
    (
        "train {cfg} --set train.learning_rate=0.1",
        1,
        "unknown config key 'train.learning_rate'; did you mean 'lr'?",
        "{tmp}/runs",
    ),
    ("train {cfg} --set trainer.max_epochs=3", 1, "set train.epochs instead", "{tmp}/runs"),
    (
        "train {cfg} --set model.size=tiny",
        1,
        "'model': size 'tiny' means depths (2, 2, 6, 2), but depths (2, 2, 2)",
        "{tmp}/runs",
    ),
    ("train {cfg} --set data.augment=heavy", 1, "data.augment must be one of 'paper', 'authors', 'none'", "{tmp}/runs"),
    ("train {cfg} --set data.on_bad_row=drop", 1, "data.on_bad_row must be one of 'error', 'skip'", "{tmp}/runs"),
    (
        "train {cfg} --set data.cache_dtype=float32",
        1,
        "data.cache_dtype must be one of 'uint8', 'float16'",
        "{tmp}/runs",
    ),
    ("train {cfg} --set output.name=../escape", 1, "output.name must be a plain folder name", "{tmp}/escape"),
    (
        "train {cfg} --set data.manifest={tmp}/nothere.csv",
        1,
        "data.manifest: no file '{tmp}/nothere.csv'",
        "{tmp}/runs",
    ),
    ("train {cfg} --set train.epochs", 1, "must look like 'section.key=value'", "{tmp}/runs"),
    ("train --set train.epochs=abc {cfg}", 1, "train.epochs must be int", "{tmp}/runs"),  # config not swallowed
    ("train {cfg} --set train.lr=0.1 train.epochs=2", 2, "unrecognized arguments: train.epochs=2", "{tmp}/runs"),
    ("train {tmp}/broken.yaml", 1, "broken.yaml' line 4, column 5: not valid YAML (expected ','", "{tmp}/runs"),
    ("train {tmp}/nothere.yaml", 1, "config file '{tmp}/nothere.yaml' does not exist", "{tmp}/runs"),
    ("train", 2, "the following arguments are required: config", "{tmp}/runs"),
    ("synth --out {tmp}/phantom --slices 5", 1, "slices=5 is too small: need at least 11", "{tmp}/phantom"),
    ("synth --out {tmp}/phantom --slices five", 2, "argument --slices: invalid int value: 'five'", "{tmp}/phantom"),
    ("evaluate {tmp}/nothere", 1, "'{tmp}/nothere' does not exist", "{tmp}/nothere"),
    ("evaluate {tmp}/badrun", 1, "model.safetensors' is not a readable safetensors file", "{tmp}/badrun/metrics.json"),
    ("predict {tmp}/nothere {tmp}/x.dcm --out {tmp}/pred", 1, "does not exist", "{tmp}/pred"),
    ("gradcam {tmp}/nothere {tmp}/x.png --out {tmp}/cams", 1, "does not exist", "{tmp}/cams"),
    ("convert --from authors-mtl {tmp}/nothere.pth {tmp}/o.safetensors", 1, "no weight file at", "{tmp}/o.safetensors"),
    ("convert --from authors-mtl {tmp}/object.pth {tmp}/o.safetensors", 1, "weights_only=True", "{tmp}/o.safetensors"),
    ("split {tmp}/nothere.csv --out {tmp}/splits.csv", 1, "nothere.csv", "{tmp}/splits.csv"),
    (
        "validate {manifest} --splits {tmp}/misnamed.csv",
        1,
        "no column 'split'; a splits CSV needs",
        "{tmp}/skipped_rows.csv",
    ),
    ("reproduce --out {tmp}/repro --preset nope", 2, "argument --preset: invalid choice: 'nope'", "{tmp}/repro"),
    ("frobnicate", 2, "invalid choice: 'frobnicate'", "{tmp}/runs"),
    # a slice holding NaN or Inf: refused by the manifest row, naming how many voxels of each kind
    ("prepare {nan_manifest}", 1, "row 2 (s1.npy): image file: ", "{tmp}/nan/.mtlswin_cache"),
    (
        "train {cfg} --set data.manifest={nan_manifest}",
        1,
        "2 of 1024 voxels are not finite numbers (1 NaN, 1 -Inf)",
        "{tmp}/runs",
    ),
]


@pytest.fixture
def places(tmp_path, tiny_data):
    model = {"name": "mtl_swin_unet", **test_overrides("mtl_swin_unet")}
    config = {
        "model": {k: list(v) if isinstance(v, tuple) else v for k, v in model.items()},
        "data": {"manifest": str(tiny_data.manifest), "splits": str(tiny_data.splits), "num_workers": 0},
        "trainer": {"accelerator": "cpu"},
        "output": {"dir": str(tmp_path / "runs"), "name": "run"},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "broken.yaml").write_text(BROKEN_YAML)
    torch.save({"w": torch.zeros(1), "not_a_tensor": object.__new__(_Opaque)}, tmp_path / "object.pth")
    (tmp_path / "misnamed.csv").write_text("index,fold\n0,train\n")
    bad = tmp_path / "badrun"
    bad.mkdir()
    (bad / "config.yaml").write_text(yaml.safe_dump(config))
    (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{truncated")
    return {"tmp": str(tmp_path), "cfg": str(tmp_path / "cfg.yaml"), "manifest": str(tiny_data.manifest),
            "nan_manifest": str(_nan_manifest(tmp_path / "nan", tiny_data)), "ckpt": str(_checkpoint(tmp_path))}  # fmt: skip


def _nan_manifest(folder: Path, tiny_data) -> Path:
    """The tiny manifest with its second slice replaced by a ``.npy`` holding one NaN and one -Inf."""
    folder.mkdir()
    table = pd.read_csv(tiny_data.manifest, dtype=str, keep_default_na=False)
    table["image"] = [str(tiny_data.root / p) for p in table["image"]]
    table["mask"] = [str(tiny_data.root / p) if p else "" for p in table["mask"]]
    arr = np.full((32, 32), 0.5, np.float32)
    arr[3, 4], arr[5, 6] = np.nan, -np.inf
    np.save(folder / "s1.npy", arr)
    np.save(folder / "good.npy", np.full((32, 32), 0.5, np.float32))
    table.loc[1, ["image", "mask"]] = ["s1.npy", ""]
    table.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(create_model("swin", **TEST_ENCODER), tmp_path / "model.safetensors")


class _Opaque:
    pass


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: usage errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("argv", "code", "message", "absent"), CASES, ids=[c[0] for c in CASES])
def test_expected_failures_are_one_line_without_traceback(argv, code, message, absent, places, capsys, monkeypatch):
    monkeypatch.delenv("MTLSWIN_DEBUG", raising=False)
    got, err = _run(shlex.split(argv.format(**places)), capsys)
    assert got == code, err
    assert message.format(**places) in err
    assert "Traceback" not in err
    if code == 1:
        assert err.startswith("mtlswin ") and ": error: " in err and err.count("\n") == 1, err
    assert not Path(absent.format(**places)).exists()


def test_debug_flag_and_environment_show_the_traceback(places, monkeypatch):
    argv = ["train", places["cfg"], "--set", "train.epochs=abc"]
    with pytest.raises(ValueError, match=r"train\.epochs must be int"):
        main(["--debug", *argv])
    monkeypatch.setenv("MTLSWIN_DEBUG", "1")
    with pytest.raises(ValueError, match=r"train\.epochs must be int"):
        main(argv)


def test_a_bug_keeps_its_traceback(places, monkeypatch):
    import mtlswin.cli.train

    def boom(*_args, **_kwargs):
        raise ZeroDivisionError("a bug, not an input error")

    # where the command looks it up (its module-level import), or the patch misses and a real training runs
    monkeypatch.setattr(mtlswin.cli.train, "load_config", boom)
    with pytest.raises(ZeroDivisionError):
        main(["train", places["cfg"]])


@pytest.mark.parametrize("command", ["predict", "gradcam"])
def test_a_slice_with_nan_is_skipped_by_name_and_the_rest_goes_on(command, places, capsys):
    nan = places["nan_manifest"].replace("manifest.csv", "")
    out = f"{places['tmp']}/out"
    code, err = _run([command, places["ckpt"], f"{nan}s1.npy", f"{nan}good.npy", "--out", out], capsys)
    assert code == 0 and "Traceback" not in err
    assert "skipped " in err and "s1.npy: 2 of 1024 voxels are not finite numbers (1 NaN, 1 -Inf)" in err
    skipped = pd.read_csv(f"{out}/skipped.csv")
    assert skipped["file"].tolist() == [f"{nan}s1.npy"] and "NonFiniteError" in skipped["reason"][0]
    if command == "predict":
        table = pd.read_csv(f"{out}/predictions.csv")
        assert table["name"].tolist() == ["good"] and table["probability"].notna().all()
    else:
        assert sorted(p.name for p in Path(out).glob("*.npy")) == ["good_cam.npy"]
    # only the slice with NaN: the skip line, then the one error line; no output folder
    code, err = _run([command, places["ckpt"], f"{nan}s1.npy", "--out", f"{out}2"], capsys)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 2 and "(1 NaN, 1 -Inf)" in lines[0], err
    assert lines[1].startswith(f"mtlswin {command}: error: none of the 1 inputs could be read")
    assert not Path(f"{out}2").exists()


def test_validate_names_the_row_and_skips_it_when_asked(places, capsys):
    code, err = _run(["validate", places["nan_manifest"]], capsys)
    assert code == 1 and "row 2 (s1.npy): image file: " in err and "(1 NaN, 1 -Inf)" in err and "Traceback" not in err
    code, err = _run(["validate", places["nan_manifest"], "--on-bad-row", "skip"], capsys)
    assert code == 0, err
    skipped = pd.read_csv(places["nan_manifest"].replace("manifest.csv", "skipped_rows.csv"))
    assert skipped["row"].tolist() == [2] and "1 NaN, 1 -Inf" in skipped["problem"][0]
