"""The speed paths give the outputs of the plain float32 eager forward.

- task selection (``model(x, tasks=...)``): the same values, exactly, and the decoders nobody asked for do not run;
- the attention path (``F.scaled_dot_product_attention`` or the explicit softmax in timm's Swin blocks): chosen by
  the input's device, SDPA anywhere but the CPU; both give the same outputs and gradients (1e-5);
- bf16 autocast: relative L2 error of every output <= 3% at the tiny size (bf16 keeps 8 bits of mantissa,
  unit round-off 2**-8 = 0.4%, compounded over the layers); the fused head stays float32;
- ``torch.compile``: one graph for the whole MTL training forward (no graph break), values and gradients equal
  eager. By default with the ``eager`` backend (TorchDynamo capture only): inductor (and even ``aot_eager``)
  take minutes on the tiny model on two shared cores; ``MTLSWIN_INDUCTOR_TEST=1`` runs inductor (1e-4), and
  ``benchmarks/gpu_check.sh`` compares inductor with eager on the GPU.
"""

from __future__ import annotations

import os

import pytest
import torch

from mtlswin.models import create_model, test_overrides
from mtlswin.models.attention_path import set_fused_attention

BF16_REL_TOL = 0.03


def _mtl(decoder: str = "shared", tasks: str = "cls+seg+rec", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("mtl_swin_unet", **test_overrides("mtl_swin_unet"), tasks=tasks, decoder=decoder).eval()


def _x(n: int = 2, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _count_calls(modules: list[torch.nn.Module]) -> list[int]:
    calls = [0]
    for module in modules:
        module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("decoder", ["shared", "separate"])
def test_cls_only_equals_the_full_logits_and_runs_no_decoder(decoder):
    model, x = _mtl(decoder), _x()
    with torch.no_grad():
        full = model(x)
        calls = _count_calls(list(model.decoders.values()))
        head_calls = _count_calls([model.head])
        cls_only = model(x, tasks=("cls",))
    assert set(cls_only) == {"logits"}
    assert torch.equal(cls_only["logits"], full["logits"])
    assert calls[0] == 0 and head_calls[0] == 1  # the hooks do fire: the head ran, the decoders did not
    with torch.no_grad():
        model(x)
    assert calls[0] == len(model.decoders) > 0


@pytest.mark.parametrize("decoder", ["shared", "separate"])
def test_pixel_task_subsets_equal_the_full_outputs(decoder):
    model, x = _mtl(decoder), _x()
    with torch.no_grad():
        full = model(x)
        calls = _count_calls(list(model.decoders.values()))
        cls_seg = model(x, tasks="cls+seg")
        rec = model(x, tasks=["rec"])
    assert set(cls_seg) == {"logits", "seg"} and set(rec) == {"rec"}
    assert torch.equal(cls_seg["logits"], full["logits"])
    assert torch.equal(cls_seg["seg"], full["seg"])
    assert torch.equal(rec["rec"], full["rec"])
    assert calls[0] == 2  # one decoder per call: the shared one, or the one of the task asked for


def test_tasks_the_model_lacks_are_refused_by_name():
    model = _mtl(tasks="cls+seg")
    with pytest.raises(ValueError, match=r"MTLSwinUnet has no task\(s\) \['rec'\]; its tasks are \['cls', 'seg'\]"):
        model(_x(), tasks=("cls", "rec"))
    with pytest.raises(ValueError, match="at least one"):
        model(_x(), tasks=())


@pytest.mark.parametrize("name", ["swin", "joint_swin", "swin_unet", "resnet152", "unet", "joint_learning"])
def test_every_model_takes_tasks(name):
    torch.manual_seed(0)
    model = create_model(name, **test_overrides(name)).eval()
    x = _x(size=int(model.config.img_size))
    with torch.no_grad():
        full = model(x)
        for task in model.tasks:
            key = {"cls": "logits"}.get(task, task)
            out = model(x, tasks=(task,))
            assert set(out) == {key}
            assert torch.equal(out[key], full[key]), (name, task)


def test_joint_learning_cls_only_skips_the_unet_decoder():
    torch.manual_seed(0)
    model = create_model("joint_learning", **test_overrides("joint_learning")).eval()
    calls = _count_calls([model.net.decoder])
    with torch.no_grad():
        model(_x(), tasks="cls")
    assert calls[0] == 0


def _attention_flags(model: torch.nn.Module) -> set[bool]:
    return {m.fused_attn for m in model.modules() if type(m).__name__ == "WindowAttention"}


def test_the_attention_path_follows_the_input_device_unless_pinned():
    model, x = _mtl("separate"), _x()
    with torch.no_grad():
        model(x)
        assert _attention_flags(model) == {False}  # the CPU: the explicit softmax, in the encoder and both decoders
        assert set_fused_attention(model, True) == 6 + 2 * 4  # depths 2-2-2: the encoder 6 blocks, each decoder 4
        model(x)
        assert _attention_flags(model) == {True}
        set_fused_attention(model, None)
        model(x)
        assert _attention_flags(model) == {False}
    meta = _mtl("shared").to("meta")  # off the CPU (the meta device: shapes only): SDPA, encoder and decoder
    for decoder in meta.decoders.values():
        decoder(meta.encoder(torch.empty(2, 1, 32, 32, device="meta")))
    assert _attention_flags(meta.encoder) == _attention_flags(meta.decoders) == {True}


def test_both_attention_paths_give_the_same_outputs_and_gradients():
    model, x = _mtl("separate"), _x()

    def run(fused: bool) -> tuple[dict, dict]:
        set_fused_attention(model, fused)
        model.zero_grad()
        out = model.train()(x)
        assert _attention_flags(model) == {fused}
        (out["logits"].square().sum() + out["seg"].square().mean() + out["rec"].abs().mean()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return {k: v.detach() for k, v in out.items()}, grads

    out_f, grad_f = run(True)
    out_e, grad_e = run(False)
    assert len(grad_f) == len(grad_e) > 100
    for key in out_e:
        assert (out_f[key] - out_e[key]).abs().max() < 1e-5, key
    for name in grad_e:
        scale = grad_e[name].abs().max().clamp_min(1.0)
        assert (grad_f[name] - grad_e[name]).abs().max() < 1e-5 * scale, name


def test_at_head_width_16_both_paths_give_the_same_bits_in_training():
    """SDPA's math path scales q and k by sqrt(scale) each; at head width 16 that is 1/2, a power of two, so it
    rounds exactly as the explicit path's q * 1/4 does: the demo's models (embed 16, 16 channels a head) train to
    the same weights whichever path runs (docs/speed.md)."""
    torch.manual_seed(0)
    sizes = {**test_overrides("mtl_swin_unet"), "embed_dim": 16, "num_heads": (1, 2, 4)}  # 16 channels a head
    model, x = create_model("mtl_swin_unet", **sizes, tasks="cls+seg").train(), _x()

    def run(fused: bool) -> list[torch.Tensor]:
        set_fused_attention(model, fused)
        model.zero_grad()
        out = model(x)
        (out["logits"].square().sum() + out["seg"].square().mean()).backward()
        return [out["logits"].detach(), out["seg"].detach()] + [p.grad.clone() for p in model.parameters()]

    fused, explicit = run(True), run(False)
    assert len(fused) > 100 and all(torch.equal(a, b) for a, b in zip(fused, explicit, strict=True))


def test_bf16_autocast_agrees_with_float32_within_tolerance():
    model, x = _mtl(), _x(4)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x)
    assert half["logits"].dtype == torch.bfloat16  # autocast did run the matmuls in bf16 ...
    assert half["seg"].dtype == half["rec"].dtype == torch.float32  # ... and the fused head in float32
    for key in ref:
        rel = (half[key].float() - ref[key]).norm() / ref[key].norm()
        assert 0 < rel < BF16_REL_TOL, (key, rel.item())


def _compiled_matches_eager(backend: str, tol: float) -> None:
    import torch._dynamo

    torch.manual_seed(0)  # two stages (4 encoder + 2 decoder blocks, shifted ones included): half the tracing
    options = {**test_overrides("mtl_swin_unet"), "depths": (2, 2), "num_heads": (1, 2)}
    model, x = create_model("mtl_swin_unet", **options), _x()
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = torch.compile(model, backend=backend)
    grads, outs = [], []
    for fn in (model, compiled):
        model.zero_grad()
        torch.manual_seed(0)
        out = fn.train()(x)
        (out["logits"].square().sum() + out["seg"].square().mean() + out["rec"].abs().mean()).backward()
        outs.append({k: v.detach() for k, v in out.items()})
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # the whole forward, no graph break
    for key in outs[0]:
        assert (outs[0][key] - outs[1][key]).abs().max() < tol, key
    for name in grads[0]:
        assert (grads[0][name] - grads[1][name]).abs().max() < tol * grads[0][name].abs().max().clamp_min(1.0), name


def test_compiled_training_forward_is_one_graph_and_equals_eager():
    """TorchDynamo captures the whole training forward (drop path, the fused head's autograd.Function) in one
    graph; backend ``eager`` runs that captured graph as it is, so this checks the capture, not code generation."""
    _compiled_matches_eager("eager", 1e-6)


@pytest.mark.skipif(
    not os.environ.get("MTLSWIN_INDUCTOR_TEST"), reason="inductor on CPU: minutes; MTLSWIN_INDUCTOR_TEST=1"
)
def test_inductor_training_step_equals_eager():
    _compiled_matches_eager("inductor", 1e-4)
