"""The report names how the encoders were initialised: from scratch, or which pretrained file and its corpus."""

from __future__ import annotations

import torch
import yaml

from mtlswin.models.checkpoint import save_encoder
from mtlswin.pipeline.initialisation import initialisation_markdown


def _run(tmp_path, name, pretrained=None):
    run = tmp_path / name
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "swin", "pretrained": pretrained}}))
    return run


def test_from_scratch_runs_say_so(tmp_path):
    text = initialisation_markdown([_run(tmp_path, "swin-seed0"), _run(tmp_path, "mtl_cls_seg-seed0")])
    assert "from scratch" in text and "no encoder is pretrained" in text


def test_a_pretrained_encoder_is_named_with_its_corpus_and_length(tmp_path):
    enc = save_encoder(torch.nn.Linear(2, 2), tmp_path / "enc.safetensors", {"embed_dim": 2},
                       {"method": "SimMIM", "slices": 6000, "epochs": 20, "steps": 3760,
                        "corpus": ["runs/pretrain-corpus/manifest.csv"]})  # fmt: skip
    runs = [
        _run(tmp_path, "swin-seed0", str(enc)),
        _run(tmp_path, "swin-seed1", str(enc)),
        _run(tmp_path, "unet-seed0"),
    ]
    text = initialisation_markdown(runs)
    assert "SimMIM on 6000 unlabeled slices of `runs/pretrain-corpus/manifest.csv`, 20 epochs (3760 steps)" in text
    assert "swin-seed0, swin-seed1" in text
    assert "random weights (from scratch): unet-seed0" in text


def test_foreign_weights_are_named_without_a_made_up_history(tmp_path):
    foreign = tmp_path / "imagenet.pth"
    torch.save({"w": torch.zeros(1)}, foreign)
    text = initialisation_markdown([_run(tmp_path, "swin-seed0", str(foreign))])
    assert "no record of what they were trained on" in text
