"""The typed YAML config: paper rows, overrides, validation with suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mtlswin.config import load_config, save_config

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "configs" / "paper"
DEMO = ROOT / "configs" / "demo"
ROWS = {  # row: (model, epochs, batch, lr), SPEC.md "Training"
    "unet": ("unet", 200, 32, 0.01),
    "swin_unet": ("swin_unet", 200, 32, 0.01),
    "resnet152": ("resnet152", 600, 128, 0.01),
    "swin": ("swin", 600, 64, 0.01),
    "swin_tiny": ("swin_tiny", 600, 64, 0.01),
    "joint_learning": ("joint_learning", 600, 128, 0.004),
    "joint_swin": ("joint_swin", 600, 128, 0.004),
    "joint_swin_tiny": ("joint_swin_tiny", 600, 128, 0.004),
    "mtl_cls_rec": ("mtl_swin_unet", 600, 64, 0.01),
    "mtl_cls_seg": ("mtl_swin_unet", 600, 64, 0.01),
    "mtl_cls_seg_rec": ("mtl_swin_unet", 600, 64, 0.01),
    "mtl_tiny_cls_seg_rec": ("mtl_swin_unet", 600, 32, 0.01),
}


@pytest.mark.parametrize("row", sorted(ROWS))
def test_paper_rows_hold_the_paper_recipe(row):
    model, epochs, batch, lr = ROWS[row]
    c = load_config(PAPER / f"{row}.yaml")
    assert (c.model.name, c.train.epochs, c.data.batch_size, c.train.lr) == (model, epochs, batch, lr)
    assert (c.train.momentum, c.train.weight_decay, c.train.poly_power) == (0.9, 1e-4, 0.9)
    assert c.data.img_size == 224 and c.output.name == row


def test_mtl_rows_differ_in_tasks_and_size():
    tasks = {r: load_config(PAPER / f"{r}.yaml").model.options for r in ROWS if r.startswith("mtl_")}
    assert tasks["mtl_cls_rec"]["tasks"] == "cls+rec"
    assert tasks["mtl_cls_seg"]["tasks"] == "cls+seg"
    assert tasks["mtl_tiny_cls_seg_rec"] == {**tasks["mtl_tiny_cls_seg_rec"], "tasks": "cls+seg+rec", "size": "tiny"}


def test_every_paper_row_has_a_demo_counterpart():
    assert sorted(p.stem for p in PAPER.glob("*.yaml")) == sorted(ROWS)
    for row in ROWS:
        demo = load_config(DEMO / f"{row}.yaml")
        assert demo.model.name == ROWS[row][0] and demo.data.img_size == 64


def test_overrides_are_typed_and_applied():
    c = load_config(
        PAPER / "swin.yaml", ["train.lr=0.1", "trainer.devices=2", "data.window=[30, 60]", "model.embed_dim=48"]
    )
    assert c.train.lr == 0.1 and c.trainer["devices"] == 2 and c.data.window == (30, 60)
    assert c.model.options["embed_dim"] == 48


@pytest.mark.parametrize(
    ("override", "bad", "suggestion"),
    [
        ("train.lrr=0.1", "lrr", "lr"),
        ("data.batchsize=8", "batchsize", "batch_size"),
        ("trainer.devcies=2", "devcies", "devices"),
        ("model.embed_dimm=8", "embed_dimm", "embed_dim"),
        ("trian.lr=0.1", "trian", "train"),
    ],
)
def test_unknown_keys_name_the_closest_valid_key(override, bad, suggestion):
    with pytest.raises(ValueError, match=f"{bad}'.*'{suggestion}'"):
        load_config(PAPER / "swin.yaml", [override])


def test_img_size_defaults_to_the_model(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "swin", "img_size": 96, "window_size": 3}}))
    c = load_config(path)
    assert c.data.img_size == 96 and c.output.name == "c"


def test_resolved_config_round_trips(tmp_path):
    c = load_config(PAPER / "mtl_cls_seg_rec.yaml", ["train.seed=3"])
    save_config(c, tmp_path / "run" / "config.yaml")
    again = load_config(tmp_path / "run" / "config.yaml")
    assert again.to_dict() == c.to_dict()


def test_bad_values_are_rejected():
    with pytest.raises(ValueError, match=r"train\.epochs"):
        load_config(PAPER / "swin.yaml", ["train.epochs=0"])
    with pytest.raises(ValueError, match=r"section\.key=value"):
        load_config(PAPER / "swin.yaml", ["train.lr"])
    with pytest.raises(ValueError, match="does not exist"):
        load_config(PAPER / "nope.yaml")


def test_trainer_arguments_owned_by_mtlswin_are_refused():
    with pytest.raises(ValueError, match=r"trainer\.logger is set by mtlswin"):
        load_config(PAPER / "swin.yaml", ["trainer.logger=false"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=abc", "train.epochs must be int, got 'abc' (str)"),
        ("train.epochs=true", "train.epochs must be int, got True (bool)"),
        ("model.depths=2", "model.depths must be list of int, got 2 (int)"),
        ("trainer.devices=two", "trainer.devices must be 'auto', a number of devices"),
        ("trainer.precision=17", "trainer.precision must be one of 64, 32, 16"),
        ("train.loss_weights={cls: high}", "train.loss_weights must be mapping of str to float or None"),
        ("trainer.max_epochs=3", "trainer.max_epochs (3) would override train.epochs"),
        (
            "model.depths=[2, 2, 2, 2]",
            "config section 'model': size 'tiny' means depths (2, 2, 6, 2), but depths (2, 2, 2, 2) is given",
        ),
        ("data.augment=heavy", "data.augment must be one of 'paper', 'authors', 'none', got 'heavy'"),
        ("data.on_bad_row=drop", "data.on_bad_row must be one of 'error', 'skip', got 'drop'"),
        ("data.cache_dtype=float32", "data.cache_dtype must be one of 'uint8', 'float16', got 'float32'"),
        ("output.name=../elsewhere", "output.name must be a plain folder name"),
        ("output.name=a/b", "output.name must be a plain folder name"),
        ("train.lr=[1", "override 'train.lr=[1': the value '[1' is not valid YAML"),
    ],
)
def test_bad_values_are_errors_at_load_time_naming_the_key(override, message):
    config = PAPER / ("mtl_tiny_cls_seg_rec.yaml" if override.startswith("model.depths=[") else "swin.yaml")
    with pytest.raises(ValueError) as info:
        load_config(config, [override])
    assert message in str(info.value)


def test_device_cache_without_a_cache_dir_is_an_error_at_load_time():
    with pytest.raises(ValueError, match=r"data\.device_cache: true needs data\.cache_dir"):
        load_config(PAPER / "swin.yaml", ["data.cache_dir=null", "data.device_cache=true"])
    assert load_config(PAPER / "swin.yaml", ["data.device_cache=true"]).data.device_cache is True


def test_mtl_size_with_other_depths_is_an_error_in_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": "mtl_swin_unet", "size": "tiny", "depths": [2, 2, 2, 2]}}))
    with pytest.raises(ValueError, match=r"'model': size 'tiny' means depths .* give size or depths, not both"):
        load_config(path)


def test_numeric_strings_are_floats_and_good_values_pass():
    c = load_config(PAPER / "swin.yaml", ["train.lr=1e-4", "trainer.devices=0,1", "trainer.precision=16-mixed"])
    assert c.train.lr == 1e-4 and isinstance(c.train.lr, float)
    assert c.trainer["devices"] == "0,1" and c.trainer["precision"] == "16-mixed"


def test_learning_rate_suggests_lr():
    with pytest.raises(ValueError, match=r"'train\.learning_rate'; did you mean 'lr'"):
        load_config(PAPER / "swin.yaml", ["train.learning_rate=0.1"])


def test_broken_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  name: swin\ntrain: {epochs: 3\ndata:\n  batch_size: 2\n")
    with pytest.raises(ValueError, match=r"broken\.yaml' line \d+, column \d+: not valid YAML"):
        load_config(path)
