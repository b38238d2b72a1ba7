"""Foreign checkpoints -> our models: one pure function per source format, each returning a :class:`LoadReport`.

"Pure": no file I/O (see :mod:`mtlswin.models.conversion.files` for files); a converter maps the given state
dict onto the given model's keys, loads it, and raises if the load would be partial (any ``missing``
or ``unexpected`` key) unless ``allow_partial=True``. Formats:

- ``swin-imagenet``: official Swin v1 checkpoints (``{"model": sd}``, patch merging at the END of a
  stage) or timm-layout ones, into ``model.encoder``. Key mapping by timm's own
  ``checkpoint_filter_fn``; the RGB patch kernel is summed over its input channels (= repeating the
  gray channel). Blocks beyond the model's depth and the 1000-class head are dropped (reported), as
  Swin-Unet does. Every decoder gets the Swin-Unet mirrored copy (encoder stage ``k`` blocks ->
  ``layers_up[n-1-k]``); other decoder/head weights keep their initialisation (``kept_init``).
- ``authors-mtl`` / ``swin-unet``: ``swin_unet.*`` (optionally ``module.``-prefixed) Swin-Unet layout:
  encoder, decoder (copied into every decoder of ours), ``head_cls`` -> ``head``, ``output`` ->
  ``seg_head``, ``output_reconstruction`` -> ``rec_head`` (1x1 conv kernels flattened to Linear weights).
- ``authors-joint``: ``swin_unet.*`` -> ``encoder``, ``representation_extractor.*`` -> ``frozen_encoder``,
  ``head_cls`` -> ``head``; their unused decoders and per-encoder heads are ignored (reported).
Buffers (``relative_position_index``, ``attn_mask``) are rebuilt by timm and always listed as ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch
from timm.models.swin_transformer import checkpoint_filter_fn
from torch import nn

from mtlswin.models.load_report import LoadReport, gray_kernel

__all__ = [
    "CONVERTERS",
    "FORMATS",
    "check_shapes",
    "detect_format",
    "from_authors_joint",
    "from_authors_mtl",
    "from_swin_imagenet",
    "from_swin_unet",
    "infer_swin_unet_config",
    "map_encoder_state",
    "strip_prefixes",
]

FORMATS = ("swin-imagenet", "authors-mtl", "authors-joint", "swin-unet")
_BUFFERS = ("relative_position_index", "attn_mask")
_ENCODER_PREFIXES = ("patch_embed.", "layers.", "norm.")
_DECODER_PREFIXES = ("layers_up.", "concat_back_dim.", "norm_up.", "up.")
_HEADS = {"head_cls.": "head.", "output.": "seg_head.", "output_reconstruction.": "rec_head."}
_REBUILT = "buffer, rebuilt at construction"


def strip_prefixes(state_dict: Mapping[str, torch.Tensor], *prefixes: str) -> dict[str, torch.Tensor]:
    """Remove each of ``prefixes``, in order, from the keys that start with it (e.g. ``module.``)."""
    out = dict(state_dict)
    for prefix in prefixes:
        out = {k.removeprefix(prefix): v for k, v in out.items()}
    return out


def _is_buffer(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in _BUFFERS


def map_encoder_state(src: Mapping[str, torch.Tensor], encoder: nn.Module) -> tuple[dict, dict, list, list]:
    """Map encoder keys (official v1 or timm layout, relative to the encoder) onto a ``SwinEncoder``.

    Returns ``(state, ignored, extra, unexpected)``: ``state`` in the encoder's own key names (the RGB
    patch kernel summed to 1 channel); ``ignored`` buffers; ``extra`` blocks/stages beyond the
    encoder's depth; ``unexpected`` keys that are not encoder keys. Raises on shape mismatches.
    """
    v1 = "layers.0.downsample.reduction.weight" in src  # timm's own test: v1 merges at the end of stage 0
    depths = encoder.depths
    kept, ignored, extra, unexpected = {}, {}, [], []
    for key, value in src.items():
        if _is_buffer(key):
            ignored[key] = _REBUILT
            continue
        if not key.startswith(_ENCODER_PREFIXES):
            unexpected.append(key)
            continue
        m = re.match(r"layers\.(\d+)\.(?:blocks\.(\d+)|downsample)\.", key)
        if m:
            stage = int(m[1]) + (1 if v1 and m[2] is None else 0)  # v1 layer i's merging starts timm stage i+1
            if stage >= len(depths) or (m[2] is not None and int(m[2]) >= depths[stage]):
                extra.append(key)
                continue
        kept[key] = value
    state = {}
    for key, value in checkpoint_filter_fn(kept, encoder.timm_view()).items():
        key = re.sub(r"^layers\.", "stages.", key)
        if key == "patch_embed.proj.weight":
            value = _gray_patch_kernel(value, encoder.patch_embed.proj.in_channels)
        state[key] = value
    check_shapes(state, encoder.state_dict(), "encoder")
    return state, ignored, extra, unexpected


def _gray_patch_kernel(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """The file's patch kernel for a model with ``in_chans`` input channels (RGB summed to gray, see :func:`gray_kernel`)."""
    if weight.shape[1] == in_chans:
        return weight
    gray = gray_kernel(weight, in_chans)
    if gray is None:
        raise ValueError(f"patch embedding has {weight.shape[1]} input channels in the file, the model {in_chans}")
    return gray


def check_shapes(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], where: str) -> None:
    bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if bad:
        raise ValueError(
            f"{len(bad)} {where} weight(s) have another shape than the model: {bad[:10]}; build the model with the "
            "checkpoint's sizes (embed_dim, depths, num_heads, window_size, n_classes, ...)"
        )


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    return getattr(model, name, None) if isinstance(getattr(model, name, None), nn.Module) else None


def _finish(model: nn.Module, state: dict, report: LoadReport, allow_partial: bool) -> LoadReport:
    """Check shapes, fill ``missing``/``kept_init``, refuse partial loads, then load ``state`` into ``model``."""
    own = model.state_dict()
    check_shapes(state, own, "model")
    report.unexpected += [k for k in state if k not in own]
    mirrored = set(report.mirrored)
    report.loaded = [k for k in state if k in own and k not in mirrored]
    kept = set(report.kept_init)
    report.missing = [k for k in own if k not in state and k not in kept]
    report.kept_init = [k for k in own if k in kept and k not in state]
    report.check(allow_partial)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return report


def _load_encoder_into(
    state: dict, report: LoadReport, src: Mapping, encoder: nn.Module, prefix: str, sp: str, extra_ok: bool
) -> dict:
    """Map encoder keys ``src`` into ``state`` under ``prefix``; report source keys with the prefix ``sp``."""
    mapped, ignored, extra, unexpected = map_encoder_state(src, encoder)
    state.update({prefix + k: v for k, v in mapped.items()})
    kernel = "patch_embed.proj.weight"
    if kernel in src and kernel in mapped and src[kernel].shape != mapped[kernel].shape:
        report.summed_rgb.append(prefix + kernel)
    report.used += [sp + k for k in src if k not in ignored and k not in extra and k not in unexpected]
    report.ignored.update({sp + k: why for k, why in ignored.items()})
    report.unexpected += [sp + k for k in unexpected]
    if extra_ok:
        report.ignored.update(
            {sp + k: "block or stage beyond the model's depths (dropped, as Swin-Unet does)" for k in extra}
        )
    else:
        report.unexpected += [sp + k for k in extra]
    return mapped


def from_swin_imagenet(
    model: nn.Module, state_dict: Mapping, allow_partial: bool = False, source: str = "swin-imagenet"
) -> LoadReport:
    """ImageNet Swin weights (official ``{"model": sd}`` or timm layout) into ``model.encoder`` (+ decoder mirror)."""
    src = strip_prefixes(dict(state_dict.get("model", state_dict)), "module.")
    report = LoadReport(source)
    encoder = _submodule(model, "encoder")
    if encoder is None:
        raise ValueError(f"{type(model).__name__} has no Swin `encoder` to load ImageNet Swin weights into")
    heads = [k for k in src if k.startswith("head.")]
    report.ignored.update({k: "ImageNet classifier head" for k in heads})
    state: dict[str, torch.Tensor] = {}
    body = {k: v for k, v in src.items() if k not in heads}
    mapped = _load_encoder_into(state, report, body, encoder, "encoder.", "", True)
    decoders = _submodule(model, "decoders") or {}
    for name, decoder in decoders.items():
        for key, value in _mirror_into_decoder(mapped, decoder, len(encoder.depths)).items():
            state[f"decoders.{name}.{key}"] = value
            report.mirrored.append(f"decoders.{name}.{key}")
    report.kept_init = [k for k in model.state_dict() if not k.startswith("encoder.")]
    return _finish(model, state, report, allow_partial)


def _mirror_into_decoder(encoder_state: Mapping[str, torch.Tensor], decoder: nn.Module, n: int) -> dict:
    """Swin-Unet's init: encoder stage ``k`` block ``j`` -> ``layers_up[n-1-k]`` block ``j`` where shapes match."""
    out = {}
    for key, param in decoder.state_dict().items():
        m = re.match(r"layers_up\.(\d+)\.blocks\.(.+)$", key)
        if m:
            src = encoder_state.get(f"stages.{n - 1 - int(m[1])}.blocks.{m[2]}")
            if src is not None and src.shape == param.shape:
                out[key] = src
    return out


def _split_swin_unet(src: Mapping) -> tuple[dict, dict, dict, dict]:
    """Split a de-prefixed Swin-Unet layout into (encoder, decoder, heads, other) key groups."""
    enc = {k: v for k, v in src.items() if k.startswith(_ENCODER_PREFIXES)}
    dec = {k: v for k, v in src.items() if k.startswith(_DECODER_PREFIXES)}
    heads = {k: v for k, v in src.items() if k.startswith(tuple(_HEADS))}
    other = {k: v for k, v in src.items() if k not in enc and k not in dec and k not in heads}
    return enc, dec, heads, other


def _from_swin_unet_layout(model: nn.Module, state_dict: Mapping, allow_partial: bool, source: str) -> LoadReport:
    sp = "swin_unet."
    src = {k.removeprefix(sp): v for k, v in strip_prefixes(state_dict, "module.").items()}
    enc, dec, heads, other = _split_swin_unet(src)
    report = LoadReport(source, unexpected=[sp + k for k in other])
    state: dict[str, torch.Tensor] = {}
    encoder = _submodule(model, "encoder")
    if encoder is None:
        raise ValueError(f"{type(model).__name__} has no Swin `encoder`; use a Swin model for {source} checkpoints")
    _load_encoder_into(state, report, enc, encoder, "encoder.", sp, False)
    decoders = _submodule(model, "decoders") or {}
    for key, value in dec.items():
        if _is_buffer(key):
            report.ignored[sp + key] = _REBUILT
        elif not decoders:
            report.unexpected.append(sp + key)
        else:
            report.used.append(sp + key)
            for name in decoders:  # the authors' decoder is shared: every decoder of ours gets a copy
                state[f"decoders.{name}.{key}"] = value
    own = model.state_dict()
    for key, value in heads.items():
        prefix = next(p for p in _HEADS if key.startswith(p))
        ours = _HEADS[prefix] + key[len(prefix) :]
        if ours in own:
            # 1x1 conv (out, C, 1, 1) -> our per-pixel Linear (out, C)
            state[ours] = value.flatten(1) if value.ndim == 4 and own[ours].ndim == 2 else value
            report.used.append(sp + key)
        else:  # the authors' model saves all three heads whatever tasks it was trained on
            report.ignored[sp + key] = "head of a task this model does not have"
    return _finish(model, state, report, allow_partial)


def from_authors_mtl(model: nn.Module, state_dict: Mapping, allow_partial: bool = False) -> LoadReport:
    """The authors' MTL-Swin-Unet ``state_dict()`` (``swin_unet.*``) into ``swin_unet`` / ``mtl_swin_unet``."""
    return _from_swin_unet_layout(model, state_dict, allow_partial, "authors-mtl")


def from_swin_unet(model: nn.Module, state_dict: Mapping, allow_partial: bool = False) -> LoadReport:
    """A Swin-Unet segmentation checkpoint (authors' layout without ``head_cls``/``output_reconstruction``)."""
    return _from_swin_unet_layout(model, state_dict, allow_partial, "swin-unet")


def from_authors_joint(model: nn.Module, state_dict: Mapping, allow_partial: bool = False) -> LoadReport:
    """The authors' Joint-SwinTransformer ``state_dict()`` into ``joint_swin`` / ``joint_swin_tiny``."""
    src = strip_prefixes(state_dict, "module.")
    report = LoadReport("authors-joint")
    state: dict[str, torch.Tensor] = {}
    unused = "unused by Joint-SwinTransformer's forward (decoder / per-encoder head)"
    for theirs, ours in (("swin_unet.", "encoder"), ("representation_extractor.", "frozen_encoder")):
        encoder = _submodule(model, ours)
        if encoder is None:
            raise ValueError(f"{type(model).__name__} has no `{ours}`; authors-joint checkpoints need joint_swin*")
        enc, dec, heads, other = _split_swin_unet({k[len(theirs) :]: v for k, v in src.items() if k.startswith(theirs)})
        _load_encoder_into(state, report, enc, encoder, f"{ours}.", theirs, False)
        report.ignored.update({theirs + k: unused for k in [*dec, *heads]})
        report.unexpected += [theirs + k for k in other]
    for key, value in src.items():
        if key.startswith(("swin_unet.", "representation_extractor.")):
            continue
        if key.startswith("head_cls."):
            state["head." + key.removeprefix("head_cls.")] = value
            report.used.append(key)
        else:
            report.unexpected.append(key)
    return _finish(model, state, report, allow_partial)


def detect_format(state_dict: Mapping) -> str:
    """Guess the format of a foreign state dict: one of :data:`FORMATS`."""
    inner = state_dict["model"] if isinstance(state_dict.get("model"), Mapping) else state_dict
    keys = list(strip_prefixes(inner, "module."))
    if any(k.startswith("representation_extractor.") for k in keys):
        return "authors-joint"
    if any(k.startswith("swin_unet.") for k in keys):
        has_mtl_heads = any(k.startswith(("swin_unet.head_cls.", "swin_unet.output_reconstruction.")) for k in keys)
        return "authors-mtl" if has_mtl_heads else "swin-unet"
    if any(k.startswith(("layers.", "patch_embed.")) for k in keys):
        return "swin-imagenet"
    raise ValueError(f"cannot tell the checkpoint format from its keys (first: {keys[:5]}); name it explicitly")


def infer_swin_unet_config(state_dict: Mapping, prefix: str = "swin_unet.") -> dict:
    """Model options read off a Swin-Unet-layout state dict: sizes, ``n_classes``, ``n_seg_classes``.

    ``img_size`` comes from a saved shifted-window ``attn_mask`` (``nW = (r_i / window)**2``); it is
    left out when the file has none (then the model default, 224, applies unless overridden).
    """
    sd = {
        k.removeprefix(prefix): v
        for k, v in strip_prefixes(state_dict, "module.").items()
        if k.startswith(prefix) or not prefix
    }
    if "patch_embed.proj.weight" not in sd:
        raise ValueError(f"no '{prefix}patch_embed.proj.weight' in the checkpoint: not a Swin-Unet layout")
    proj = sd["patch_embed.proj.weight"]
    embed, patch = int(proj.shape[0]), int(proj.shape[-1])
    n = 1 + max(int(m[1]) for k in sd if (m := re.match(r"layers\.(\d+)\.", k)))
    depths = [1 + max(int(m[1]) for k in sd if (m := re.match(rf"layers\.{i}\.blocks\.(\d+)\.", k))) for i in range(n)]
    tables = [sd[f"layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(n)]
    window = (math.isqrt(int(tables[0].shape[0])) + 1) // 2
    out = {
        "patch_size": patch,
        "embed_dim": embed,
        "depths": tuple(depths),
        "num_heads": tuple(int(t.shape[1]) for t in tables),
        "window_size": window,
        "mlp_ratio": sd["layers.0.blocks.0.mlp.fc1.weight"].shape[0] / embed,
        "qkv_bias": "layers.0.blocks.0.attn.qkv.bias" in sd,
    }
    for key, mask in sd.items():
        m = re.match(r"layers\.(\d+)\.blocks\.\d+\.attn_mask$", key)
        if m:
            side = math.isqrt(int(mask.shape[0])) * math.isqrt(int(mask.shape[1]))  # r_i = sqrt(nW) * window
            out["img_size"] = side * 2 ** int(m[1]) * patch
            break
    if "head_cls.weight" in sd:
        out["n_classes"] = int(sd["head_cls.weight"].shape[0])
    if "output.weight" in sd:
        out["n_seg_classes"] = int(sd["output.weight"].shape[0])
    return out


CONVERTERS = {
    "swin-imagenet": from_swin_imagenet,
    "authors-mtl": from_authors_mtl,
    "authors-joint": from_authors_joint,
    "swin-unet": from_swin_unet,
}  # the keys are FORMATS, in that order
