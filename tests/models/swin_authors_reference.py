"""An independent, functional re-implementation of the authors' models over THEIR state-dict keys.

Test helper only. It re-states, with plain torch ops, the forward of ko-hirata/Swin-Multitask's
``SwinTransformerSysMTL`` (MTL-Swin-Unet) and ``SwinTransformerJoint`` (Joint-SwinTransformer): Swin v1
blocks on ``(B, L, C)`` tokens with their own window partition / shift / mask / relative position
index, v1 patch merging at the END of a stage, PatchExpand / FinalPatchExpand_X4 written as explicit
slice assignments, a 3-channel patch embedding fed ``x.repeat(1, 3, 1, 1)``. It shares no code with
``mtlswin.models``, so agreement of the two is evidence that the converters map every key right.

It also generates the authors' key layout (names and shapes) for any size: at the default size it
must reproduce the ``.tsv`` files in ``shared/reference`` key for key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Arch:
    img_size: int = 224
    patch_size: int = 4
    in_chans: int = 3
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    n_classes: int = 2

    def res(self, i: int) -> int:
        return self.img_size // self.patch_size // 2**i

    def window(self, i: int) -> tuple[int, int]:
        """(window, shift) of an odd block at stage i: the authors clamp the window to the resolution."""
        r = self.res(i)
        return (r, 0) if r <= self.window_size else (self.window_size, self.window_size // 2)


# ---------------------------------------------------------------- buffers the authors save
@functools.lru_cache
def rel_position_index(w: int) -> torch.Tensor:
    """index[a, b] = (dh + w - 1) * (2w - 1) + (dw + w - 1) for tokens a, b of a w x w window (row-major)."""
    row, col = torch.arange(w * w) // w, torch.arange(w * w) % w
    dh = row[:, None] - row[None, :] + w - 1
    dw = col[:, None] - col[None, :] + w - 1
    return dh * (2 * w - 1) + dw


def shift_mask(r: int, w: int, s: int) -> torch.Tensor:
    """(nW, w*w, w*w) attention mask of a shifted window block: -100 between different regions."""
    region = torch.zeros(r, r)
    bounds = [(0, r - w), (r - w, r - s), (r - s, r)]
    label = 0
    for h0, h1 in bounds:
        for w0, w1 in bounds:
            region[h0:h1, w0:w1] = label
            label += 1
    win = region.view(r // w, w, r // w, w).permute(0, 2, 1, 3).reshape(-1, w * w)
    diff = win[:, None, :] - win[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


# ---------------------------------------------------------------- key layout
def _block_keys(p: str, dim: int, heads: int, w: int, mlp: int, mask: tuple | None) -> list[tuple[str, tuple]]:
    keys = []
    if mask is not None:
        keys.append((p + "attn_mask", mask))
    keys += [(p + "norm1.weight", (dim,)), (p + "norm1.bias", (dim,))]
    keys += [(p + "attn.relative_position_bias_table", ((2 * w - 1) ** 2, heads))]
    keys += [(p + "attn.relative_position_index", (w * w, w * w))]
    keys += [(p + "attn.qkv.weight", (3 * dim, dim)), (p + "attn.qkv.bias", (3 * dim,))]
    keys += [(p + "attn.proj.weight", (dim, dim)), (p + "attn.proj.bias", (dim,))]
    keys += [(p + "norm2.weight", (dim,)), (p + "norm2.bias", (dim,))]
    keys += [(p + "mlp.fc1.weight", (mlp, dim)), (p + "mlp.fc1.bias", (mlp,))]
    keys += [(p + "mlp.fc2.weight", (dim, mlp)), (p + "mlp.fc2.bias", (dim,))]
    return keys


def _stage_blocks(a: Arch, prefix: str, i: int, depth: int) -> list[tuple[str, tuple]]:
    dim, keys = a.embed_dim * 2**i, []
    for j in range(depth):
        w, s = a.window(i) if j % 2 else (min(a.window_size, a.res(i)), 0)
        mask = ((a.res(i) // w) ** 2, w * w, w * w) if s else None
        keys += _block_keys(f"{prefix}blocks.{j}.", dim, a.num_heads[i], w, int(dim * a.mlp_ratio), mask)
    return keys


def swin_unet_keys(a: Arch, prefix: str, heads: tuple[str, ...] = ("seg", "rec")) -> list[tuple[str, tuple]]:
    """(key, shape) of the authors' SwinTransformerSysMTL state dict, in their order."""
    n, c = len(a.depths), a.embed_dim
    keys = [(prefix + "patch_embed.proj.weight", (c, a.in_chans, a.patch_size, a.patch_size))]
    keys += [(prefix + "patch_embed.proj.bias", (c,)), (prefix + "patch_embed.norm.weight", (c,))]
    keys += [(prefix + "patch_embed.norm.bias", (c,))]
    for i in range(n):
        keys += _stage_blocks(a, f"{prefix}layers.{i}.", i, a.depths[i])
        if i < n - 1:
            d = c * 2**i
            keys += [(f"{prefix}layers.{i}.downsample.reduction.weight", (2 * d, 4 * d))]
            keys += [(f"{prefix}layers.{i}.downsample.norm.weight", (4 * d,))]
            keys += [(f"{prefix}layers.{i}.downsample.norm.bias", (4 * d,))]
    for u in range(n):
        k, d = n - 1 - u, c * 2 ** (n - 1 - u)
        if u == 0:
            keys += [(f"{prefix}layers_up.0.expand.weight", (2 * d, d))]
            keys += [(f"{prefix}layers_up.0.norm.weight", (d // 2,)), (f"{prefix}layers_up.0.norm.bias", (d // 2,))]
            continue
        keys += _stage_blocks(a, f"{prefix}layers_up.{u}.", k, a.depths[k])
        if u < n - 1:
            keys += [(f"{prefix}layers_up.{u}.upsample.expand.weight", (2 * d, d))]
            keys += [(f"{prefix}layers_up.{u}.upsample.norm.weight", (d // 2,))]
            keys += [(f"{prefix}layers_up.{u}.upsample.norm.bias", (d // 2,))]
    for u in range(1, n):
        d = c * 2 ** (n - 1 - u)
        keys += [(f"{prefix}concat_back_dim.{u}.weight", (d, 2 * d)), (f"{prefix}concat_back_dim.{u}.bias", (d,))]
    top = c * 2 ** (n - 1)
    keys += [(prefix + "head_cls.weight", (a.n_classes, top)), (prefix + "head_cls.bias", (a.n_classes,))]
    keys += [(prefix + "norm.weight", (top,)), (prefix + "norm.bias", (top,))]
    keys += [(prefix + "norm_up.weight", (c,)), (prefix + "norm_up.bias", (c,))]
    keys += [
        (prefix + "up.expand.weight", (16 * c, c)),
        (prefix + "up.norm.weight", (c,)),
        (prefix + "up.norm.bias", (c,)),
    ]
    if "seg" in heads:
        keys += [(prefix + "output.weight", (a.n_classes, c, 1, 1))]
    if "rec" in heads:
        keys += [(prefix + "output_reconstruction.weight", (1, c, 1, 1))]
    return keys


def joint_keys(a: Arch) -> list[tuple[str, tuple]]:
    """(key, shape) of the authors' SwinTransformerJoint state dict."""
    keys = swin_unet_keys(a, "representation_extractor.", heads=("seg",))
    keys += swin_unet_keys(a, "swin_unet.", heads=("seg",))
    top = 2 * a.embed_dim * 2 ** (len(a.depths) - 1)
    return [*keys, ("head_cls.weight", (a.n_classes, top)), ("head_cls.bias", (a.n_classes,))]


def random_state(layout: list[tuple[str, tuple]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values in a layout; buffers get their true values (the authors save them)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout:
        if key.endswith("relative_position_index"):
            out[key] = rel_position_index(round(shape[0] ** 0.5)).clone()
        elif key.endswith("attn_mask"):
            w, r = round(shape[1] ** 0.5), round(shape[0] ** 0.5) * round(shape[1] ** 0.5)
            out[key] = shift_mask(r, w, w // 2)
        elif ".norm" in key or key.startswith("norm") or "norm1" in key or "norm2" in key:
            base = 1.0 if key.endswith("weight") else 0.0
            out[key] = base + 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = 0.2 * torch.randn(shape, generator=g)
    return out


# ---------------------------------------------------------------- forward
def _ln(x, sd, p):
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps=1e-5)


def _lin(x, sd, p):
    return F.linear(x, sd[p + ".weight"], sd.get(p + ".bias"))


def swin_block(x, sd, p, r, heads, window, shift):
    """Swin v1 block on (B, L, C) tokens of an r x r grid."""
    if r <= window:
        window, shift = r, 0
    b, length, c = x.shape
    shortcut = x
    x = _ln(x, sd, p + "norm1").view(b, r, r, c)
    if shift:
        x = torch.roll(x, (-shift, -shift), (1, 2))
    nw = r // window
    xw = x.view(b, nw, window, nw, window, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)
    bw, n, _ = xw.shape
    qkv = _lin(xw, sd, p + "attn.qkv").reshape(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
    attn = q @ k.transpose(-2, -1)
    table = sd[p + "attn.relative_position_bias_table"]
    attn = attn + table[rel_position_index(window).view(-1)].view(n, n, -1).permute(2, 0, 1)[None]
    if shift:
        mask = shift_mask(r, window, shift)
        attn = (attn.view(bw // mask.shape[0], mask.shape[0], heads, n, n) + mask[None, :, None]).view(-1, heads, n, n)
    out = _lin((attn.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c), sd, p + "attn.proj")
    out = out.view(b, nw, nw, window, window, c).permute(0, 1, 3, 2, 4, 5).reshape(b, r, r, c)
    if shift:
        out = torch.roll(out, (shift, shift), (1, 2))
    x = shortcut + out.reshape(b, length, c)
    hidden = F.gelu(_lin(_ln(x, sd, p + "norm2"), sd, p + "mlp.fc1"))
    return x + _lin(hidden, sd, p + "mlp.fc2")


def _merge(x, sd, p, r):
    b, _, c = x.shape
    x = x.view(b, r, r, c)
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1).view(b, -1, 4 * c)
    return F.linear(_ln(x, sd, p + "norm"), sd[p + "reduction.weight"])


def _expand(x, sd, p, r, s):
    """Linear, then channel group (p1, p2) -> pixel (h*s + p1, w*s + p2), then LayerNorm."""
    x = F.linear(x, sd[p + "expand.weight"])
    b, _, cs = x.shape
    c = cs // (s * s)
    x = x.view(b, r, r, cs)
    out = x.new_zeros(b, r * s, r * s, c)
    for p1 in range(s):
        for p2 in range(s):
            g = p1 * s + p2
            out[:, p1::s, p2::s, :] = x[..., g * c : (g + 1) * c]
    return _ln(out.view(b, -1, c), sd, p + "norm")


def _layer(x, sd, p, a, i):
    for j in range(a.depths[i]):
        x = swin_block(
            x, sd, f"{p}blocks.{j}.", a.res(i), a.num_heads[i], a.window_size, a.window_size // 2 if j % 2 else 0
        )
    return x


def encode(x, sd, p, a):
    """Authors' forward_features: (norm(bottleneck) (B, L, C), skips)."""
    x = x.repeat(1, 3, 1, 1)
    x = F.conv2d(x, sd[p + "patch_embed.proj.weight"], sd[p + "patch_embed.proj.bias"], stride=a.patch_size)
    x = _ln(x.flatten(2).transpose(1, 2), sd, p + "patch_embed.norm")
    skips = []
    for i in range(len(a.depths)):
        skips.append(x)
        x = _layer(x, sd, f"{p}layers.{i}.", a, i)
        if i < len(a.depths) - 1:
            x = _merge(x, sd, f"{p}layers.{i}.downsample.", a.res(i))
    return _ln(x, sd, p + "norm"), skips


def mtl_forward(x, sd, a, p="swin_unet."):
    """(cls logits, seg logits, reconstruction) of the authors' MTL-Swin-Unet on a (B, 1, H, W) image."""
    z, skips = encode(x, sd, p, a)
    n = len(a.depths)
    y = _expand(z, sd, f"{p}layers_up.0.", a.res(n - 1), 2)
    for u in range(1, n):
        k = n - 1 - u
        y = _lin(torch.cat([y, skips[k]], -1), sd, f"{p}concat_back_dim.{u}")
        y = _layer(y, sd, f"{p}layers_up.{u}.", a, k)
        if u < n - 1:
            y = _expand(y, sd, f"{p}layers_up.{u}.upsample.", a.res(k), 2)
    y = _expand(_ln(y, sd, p + "norm_up"), sd, p + "up.", a.res(0), 4)
    pix = y.view(x.shape[0], a.img_size, a.img_size, -1).permute(0, 3, 1, 2)
    seg = F.conv2d(pix, sd[p + "output.weight"])
    rec = F.conv2d(pix, sd[p + "output_reconstruction.weight"])
    return _lin(z.mean(1), sd, p + "head_cls"), seg, rec


def joint_forward(x, sd, a):
    """Logits of the authors' Joint-SwinTransformer: [trainable, frozen] bottlenecks, concat, mean, head."""
    rep, _ = encode(x, sd, "representation_extractor.", a)
    own, _ = encode(x, sd, "swin_unet.", a)
    return _lin(torch.cat([own, rep], dim=2).mean(1), sd, "head_cls")
