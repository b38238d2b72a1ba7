"""timm's ImageNet weights: from the local Hugging Face cache, or downloaded, failing at once when offline.

A model config's ``pretrained`` field is ``None`` (random init), ``"timm"`` (timm's own ImageNet weights,
downloaded or from the local Hugging Face cache) or a path to a local ``.pth``/``.pt``/``.bin``/
``.safetensors`` file; :func:`resolve_pretrained` turns it into a state dict. The Swin models take timm's
ImageNet Swin that fits their sizes (:func:`timm_name_for`); the CNN baselines load theirs with
:func:`mtlswin.models.conversion.cnn.load_weights_into`.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any
from urllib.parse import urlparse

import timm
from torch import Tensor

from mtlswin.models.conversion.files import read_state_dict

try:
    from huggingface_hub import try_to_load_from_cache
except ImportError:  # pragma: no cover - huggingface_hub ships with timm; without it the cache is not looked up
    try_to_load_from_cache = None

__all__ = [
    "LOCAL_ALTERNATIVE",
    "hub_reachable",
    "resolve_pretrained",
    "timm_name_for",
    "timm_pretrained_state_dict",
]

LOCAL_ALTERNATIVE = "pretrained: /path/to/weights.pth"
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TIMM_OFFLINE")


def timm_name_for(config: Any) -> str:
    """The timm ImageNet Swin whose weights fit ``config`` (Swin-T weights for the paper's 2-2-2-2, as Swin-Unet)."""
    deepest = max(config.depths)
    names = {96: "swin_tiny_patch4_window7_224" if deepest <= 6 else "swin_small_patch4_window7_224"}
    names |= {128: "swin_base_patch4_window7_224", 192: "swin_large_patch4_window7_224"}
    if config.embed_dim not in names:
        raise ValueError(
            f"no ImageNet Swin in timm has embed_dim {config.embed_dim}; use 96, 128 or 192, "
            "or set pretrained to a local checkpoint file"
        )
    return names[config.embed_dim]


def _env_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in _OFFLINE_ENV)


def hub_reachable(host: str = "huggingface.co", port: int = 443, timeout: float = 1.5) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds (DNS included).

    The connection runs in a daemon thread joined with a timeout, because name resolution is not
    bounded by the socket timeout; so the answer comes within ``timeout`` seconds even offline.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _pretrained_source(timm_name: str) -> tuple[str | None, str]:
    """(hf_hub_id or None, host) of timm's default pretrained weights for ``timm_name``."""
    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(
            f"timm has no pretrained weights for {timm_name!r}; use a model timm lists with "
            f"timm.list_pretrained(), or {LOCAL_ALTERNATIVE}"
        )
    if cfg.hf_hub_id:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        return cfg.hf_hub_id, urlparse(endpoint).hostname or "huggingface.co"
    return None, urlparse(cfg.url).hostname or ""


def _cached_hub_file(hf_hub_id: str) -> str | None:
    """Path of the weights of ``hf_hub_id`` in the local Hugging Face cache, if already downloaded."""
    if try_to_load_from_cache is None:  # pragma: no cover - huggingface_hub ships with timm
        return None
    repo_id = hf_hub_id.split("@")[0]
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        path = try_to_load_from_cache(repo_id, filename)
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def _timm_weights(timm_name: str, cached_file: str | None) -> dict[str, Tensor]:
    """Build ``timm_name`` with timm's pretrained weights (from ``cached_file`` if given) and return its state dict."""
    overlay = {"file": cached_file} if cached_file else None
    model = timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay=overlay)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def timm_pretrained_state_dict(timm_name: str, timeout: float = 1.5) -> dict[str, Tensor]:
    """timm's ImageNet weights of ``timm_name`` (e.g. ``"resnet152"``) as a state dict (3-channel, 1000 classes).

    Uses the local Hugging Face cache when the weights are there; otherwise timm downloads them.
    Offline (``HF_HUB_OFFLINE=1``, or the weights' host does not answer within ``timeout`` seconds)
    it raises a ``ConnectionError`` at once, naming the local-file alternative, instead of waiting for
    the retries of the download.
    """
    hf_hub_id, host = _pretrained_source(timm_name)
    cached = _cached_hub_file(hf_hub_id) if hf_hub_id else None
    if cached:
        return _timm_weights(timm_name, cached)
    if _env_offline() or not hub_reachable(host, timeout=timeout):
        why = "offline mode is set (HF_HUB_OFFLINE)" if _env_offline() else f"{host} cannot be reached"
        raise ConnectionError(
            f"cannot download timm's pretrained weights of {timm_name!r}: {why} and they are not in the "
            f"local cache. Download them on a machine that is online (timm.create_model({timm_name!r}, "
            f"pretrained=True) and torch.save(model.state_dict(), 'weights.pth')), then set "
            f"`{LOCAL_ALTERNATIVE}` in the model config, or pretrained: null for random init."
        )
    return _timm_weights(timm_name, None)


def resolve_pretrained(pretrained: str | None, timm_name: str) -> tuple[dict[str, Tensor], str] | None:
    """``(state_dict, source)`` for a config's ``pretrained`` value, or ``None`` for random init."""
    if pretrained is None or pretrained == "":
        return None
    if pretrained == "timm":
        return timm_pretrained_state_dict(timm_name), f"timm:{timm_name}"
    return read_state_dict(pretrained), str(pretrained)
