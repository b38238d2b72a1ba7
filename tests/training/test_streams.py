"""``train.rng``: one generator per source of randomness (mtlswin.training.streams).

``shared`` (the default) must train exactly what the code before ``train.rng`` trained; ``paired`` rows of one seed
start from the same encoder and see the same batches; ``independent`` rows share neither; a paired run resumed
after a SIGKILL ends where the uninterrupted one does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from training_helpers import kill_at_step, last_weights, run_cli, tiny_config

from micro_runs import MICRO_RUN, set_args
from mtlswin.cli import main
from mtlswin.config import load_config
from mtlswin.data.datamodule import CTDataModule
from mtlswin.models import test_overrides
from mtlswin.runs import config_digest
from mtlswin.training.streams import SOURCES, build_with_streams, config_streams, run_streams, stream_seed
from mtlswin.training.train import build_datamodule, build_model, train

# Computed with the code of the parent commit (9f6f0f1, before train.rng) on tiny_config(..., "mtl") at seed 0:
# the initial weights (seed_everything(0) + build_model) and the weights in last.ckpt after its 2 epochs, trained
# on ONE torch thread (the sums of a matmul split over 2 threads round differently: f611ec4a... there; the test
# sets 1 thread itself, since earlier tests in the same process leave the count at 1 or 2).
BEFORE_INITIAL = "5763e5a5d2f82ee633452c384faf5ba814755c7d56923a7c86d85cc056c73614"
BEFORE_TRAINED = "7e37275ad8cc3f6084ee78358e70a7009236faebf347aef72d1aa450c5a5a317"


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _row(tmp: Path, tiny, name: str, model: str, rng: str | None, seed: int = 0, **extra) -> Path:
    """A tiny run of ``model`` (the three-stage test encoder, the same for every row) under ``train.rng``."""
    opts = {k: list(v) if isinstance(v, tuple) else v for k, v in test_overrides("mtl_swin_unet").items()}
    model_section = {"name": model, **opts, **({"tasks": "cls+seg"} if model == "mtl_swin_unet" else {})}
    train_section = {"seed": seed, **({"rng": rng} if rng else {})}
    return tiny_config(tmp, tiny, name, model=model_section, train=train_section, **extra)


def _initial(path: Path):
    config = load_config(path)
    streams = config_streams(config)
    pl.seed_everything(streams.train, workers=True)  # as train() does
    return build_with_streams(lambda: build_model(config), streams)


def _first_batches(path: Path, n: int = 2) -> list[dict]:
    data = build_datamodule(load_config(path))
    batches = iter(CTDataModule.train_dataloader(data))  # the CPU loader train() wraps
    return [next(batches) for _ in range(n)]


def _same_batches(a: list[dict], b: list[dict]) -> bool:
    return all(
        x["patient_id"] == y["patient_id"] and torch.equal(x["image"], y["image"]) for x, y in zip(a, b, strict=True)
    )


def test_rng_accepts_three_values_and_names_them(tmp_path, tiny_data):
    for rng in ("shared", "paired", "independent"):
        assert load_config(_row(tmp_path, tiny_data, "ok", "swin", rng)).train.rng == rng
    with pytest.raises(ValueError, match=r"train\.rng must be one of 'shared', 'paired', 'independent', got 'pair'"):
        load_config(_row(tmp_path, tiny_data, "bad", "swin", "pair"))


def test_shared_is_the_default_and_keeps_the_config_digest(tmp_path, tiny_data):
    unset = load_config(_row(tmp_path, tiny_data, "run", "swin", None))
    assert unset.train.rng == "shared"
    assert config_digest(unset) == config_digest(load_config(_row(tmp_path, tiny_data, "run", "swin", "shared")))
    assert config_digest(unset) != config_digest(load_config(_row(tmp_path, tiny_data, "run", "swin", "paired")))
    assert run_streams(7) == run_streams(7, "shared", "any") and set(vars(run_streams(7)).values()) == {"shared", 7}


def test_shared_trains_bit_identical_to_the_code_before_train_rng(tmp_path, tiny_data):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_shared_against_the_pins(tmp_path, tiny_data)
    finally:
        torch.set_num_threads(threads)


def _check_shared_against_the_pins(tmp_path, tiny_data):
    config = load_config(tiny_config(tmp_path, tiny_data, "mtl"))
    assert config.train.rng == "shared"
    pl.seed_everything(0, workers=True)
    assert _digest(build_with_streams(lambda: build_model(config), config_streams(config)).state_dict()) == (
        BEFORE_INITIAL
    )
    run = train(config)
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert _digest(state) == BEFORE_TRAINED


def test_stream_seeds_are_stable_and_distinct():
    seeds = [stream_seed(0, s) for s in SOURCES]
    assert len(set(seeds)) == len(SOURCES) and all(0 <= s < 2**32 for s in seeds)
    assert stream_seed(0, "encoder") == stream_seed(0, "encoder")  # no process-dependent hash
    assert stream_seed(0, "encoder") != stream_seed(1, "encoder") != stream_seed(0, "encoder", "swin-seed0")
    with pytest.raises(ValueError, match="source must be one of"):
        stream_seed(0, "decoder")


@pytest.mark.parametrize("rng", ["shared", "paired"])
def test_rows_of_a_seed_share_the_encoder_and_the_batches(tmp_path, tiny_data, rng):
    # Every Swin model builds its encoder first: under shared, seed_everything(seed) alone already gives the
    # rows of a seed the same encoder; paired gives it by construction (its own stream).
    swin, mtl = (_row(tmp_path, tiny_data, f"{m}-seed0", m, rng) for m in ("swin", "mtl_swin_unet"))
    a, b = _initial(swin), _initial(mtl)
    assert _digest(a.encoder.state_dict()) == _digest(b.encoder.state_dict())
    assert _same_batches(_first_batches(swin), _first_batches(mtl))


def test_independent_rows_share_neither_encoder_nor_batches(tmp_path, tiny_data):
    swin, mtl = (_row(tmp_path, tiny_data, f"{m}-seed0", m, "independent") for m in ("swin", "mtl_swin_unet"))
    assert _digest(_initial(swin).encoder.state_dict()) != _digest(_initial(mtl).encoder.state_dict())
    a, b = _first_batches(swin), _first_batches(mtl)
    assert not _same_batches(a, b)
    assert a[0]["patient_id"] != b[0]["patient_id"]  # another order, not only other augmentation


def test_paired_streams_differ_from_shared_and_between_seeds(tmp_path, tiny_data):
    paired = _initial(_row(tmp_path, tiny_data, "p", "swin", "paired"))
    assert _digest(paired.encoder.state_dict()) != _digest(
        _initial(_row(tmp_path, tiny_data, "s", "swin", None)).encoder.state_dict()
    )
    other = _initial(_row(tmp_path, tiny_data, "p1", "swin", "paired", seed=1))
    assert _digest(paired.encoder.state_dict()) != _digest(other.encoder.state_dict())


def test_the_heads_stream_leaves_the_encoder_alone(tmp_path, tiny_data):
    config = load_config(_row(tmp_path, tiny_data, "mtl", "mtl_swin_unet", "paired"))
    streams = config_streams(config)
    base = build_with_streams(lambda: build_model(config), streams)
    moved = build_with_streams(lambda: build_model(config), type(streams)(**{**vars(streams), "heads": 12345}))
    assert _digest(base.encoder.state_dict()) == _digest(moved.encoder.state_dict())
    for name in ("decoders", "head", "seg_head"):
        assert _digest(getattr(base, name).state_dict()) != _digest(getattr(moved, name).state_dict())
    before = torch.get_rng_state()
    build_with_streams(lambda: build_model(config), streams)
    assert torch.equal(before, torch.get_rng_state())  # the global generator is left as it was


def test_paired_run_killed_mid_epoch_and_resumed_ends_as_the_uninterrupted_one(tmp_path, tiny_data):
    model = {"drop_path_rate": 0.1}  # stochastic depth on: the train stream must redraw the same masks
    full_cfg = tiny_config(tmp_path, tiny_data, "full", model=model, train={"rng": "paired"})
    killed_cfg = tiny_config(tmp_path, tiny_data, "killed", model=model, train={"rng": "paired"})
    marker, kill_step = tmp_path / "stalled", 8  # the 4th batch of epoch 1 (5 batches per epoch)
    assert kill_at_step(killed_cfg, kill_step, marker) == (1, 3)  # really in the middle of an epoch
    run_cli("train", str(killed_cfg), "--resume")
    run_cli("train", str(full_cfg))
    a, b = last_weights(tmp_path / "runs" / "full"), last_weights(tmp_path / "runs" / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_reproduce_applies_train_rng_to_every_row(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["reproduce", "--preset", "demo", "--out", str(out), "--slices", "300", "--seeds", "0",
            "--rows", "swin,mtl_cls_seg", "--set", "train.rng=paired"]  # fmt: skip
    assert main([*args, *set_args([*MICRO_RUN, "train.epochs=1"])]) == 0
    assert "2 of 2 runs done" in capsys.readouterr().out
    for row in ("swin", "mtl_cls_seg"):
        assert load_config(out / "runs" / f"{row}-seed0" / "config.yaml").train.rng == "paired"
