"""Pretrained weights for the CNN baselines: timm's download, local files, and a strict loader.

A model config's ``pretrained`` field is ``None`` (random init), ``"timm"`` (timm's own ImageNet
weights, downloaded or from the local Hugging Face cache) or a path to a local ``.pth``/``.pt``/
``.bin``/``.safetensors`` file. Whatever the source, :func:`load_weights_into` loads the state dict
into a module and returns a :class:`LoadReport`; it refuses partial loads: every key of the module
must be filled except a classifier head (``head_prefixes``) whose shape differs (e.g. 1000 ImageNet
classes vs our 2), and no key of the file may be left over except such head keys.

A 3-channel (RGB) first convolution is loaded into our 1-channel one by summing its kernel over the
input channels (:func:`mtlswin.models.load_report.gray_kernel`). Files are read by
:func:`mtlswin.models.checkpoint.read_state_dict`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from urllib.parse import urlparse

from torch import Tensor, nn

from mtlswin.models.checkpoint import read_state_dict
from mtlswin.models.load_report import LoadReport, gray_kernel

__all__ = [
    "LOCAL_ALTERNATIVE",
    "hub_reachable",
    "load_weights_into",
    "resolve_pretrained",
    "timm_pretrained_state_dict",
]

logger = logging.getLogger(__name__)

LOCAL_ALTERNATIVE = "pretrained: /path/to/weights.pth"
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TIMM_OFFLINE")
_WRAPPER_PREFIXES = ("module.", "net.", "backbone.", "model.")


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
    import timm

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
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with timm
        return None
    repo_id = hf_hub_id.split("@")[0]
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        path = try_to_load_from_cache(repo_id, filename)
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def _timm_weights(timm_name: str, cached_file: str | None) -> dict[str, Tensor]:
    """Build ``timm_name`` with timm's pretrained weights (from ``cached_file`` if given) and return its state dict."""
    import timm

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


def _strip_wrapper_prefixes(state_dict: dict[str, Tensor], target_keys: set[str]) -> dict[str, Tensor]:
    """Remove ``module.``/``net.``/``backbone.``/``model.`` prefixes shared by every key (not in the target)."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state_dict) and not any(k.startswith(prefix) for k in target_keys):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def _is_head(key: str, head_prefixes: tuple[str, ...]) -> bool:
    return any(key.startswith(p) for p in head_prefixes)


def _fmt(keys: list[str], limit: int = 12) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _match_keys(
    target: dict[str, Tensor], sd: dict[str, Tensor], head_prefixes: tuple[str, ...], report: LoadReport
) -> tuple[dict[str, Tensor], list[str]]:
    """Tensors of ``sd`` that fit ``target`` (RGB first conv summed), and the shape mismatches.

    Fills ``report.ignored`` (head keys left out), ``report.unexpected`` and ``report.summed_rgb``.
    """
    head = "classifier head absent from the model or of another shape (kept at init)"
    mismatched: list[str] = []
    to_load: dict[str, Tensor] = {}
    for key, value in sd.items():
        if key not in target:
            if _is_head(key, head_prefixes):
                report.ignored[key] = head
            else:
                report.unexpected.append(key)
            continue
        want = target[key].shape
        gray = gray_kernel(value, want[1]) if len(want) == 4 else None
        if gray is not None:
            value = gray
            report.summed_rgb.append(key)
        if value.shape == want:
            to_load[key] = value
        elif _is_head(key, head_prefixes):
            report.ignored[key] = head
        else:
            mismatched.append(f"{key}: file {tuple(value.shape)} vs model {tuple(want)}")
    return to_load, mismatched


def load_weights_into(
    module: nn.Module, state_dict: dict[str, Tensor], source: str, head_prefixes: tuple[str, ...] = ()
) -> LoadReport:
    """Load ``state_dict`` into ``module`` strictly, except for classifier heads; return the report.

    - prefixes ``module.``/``net.``/``backbone.``/``model.`` shared by all keys are dropped;
    - a file kernel ``(O, 3, k, k)`` for a module kernel ``(O, 1, k, k)`` is summed over dim 1;
    - keys starting with one of ``head_prefixes`` are skipped when absent from the module or of
      another shape (their module counterparts keep their initialisation);
    - any other missing key, unexpected key or shape mismatch raises a ``ValueError`` listing them.
    """
    target = module.state_dict()
    sd = _strip_wrapper_prefixes(dict(state_dict), set(target))
    report = LoadReport(source=source)
    to_load, mismatched = _match_keys(target, sd, head_prefixes, report)
    report.missing = [k for k in target if k not in to_load]
    # BatchNorm step counters are absent from older torchvision files and do not affect outputs.
    bad_missing = [
        k
        for k in report.missing
        if k not in sd and not (_is_head(k, head_prefixes) or k.endswith("num_batches_tracked"))
    ]
    if mismatched or report.unexpected or bad_missing:
        raise ValueError(
            f"weights from {source} do not fit {type(module).__name__} (refusing a partial load): "
            f"{len(mismatched)} shape mismatches [{_fmt(mismatched)}]; {len(bad_missing)} missing keys "
            f"[{_fmt(bad_missing)}]; {len(report.unexpected)} unexpected keys [{_fmt(report.unexpected)}]. "
            "Check that the file was saved from the same architecture (encoder name, depth, classes)."
        )
    # nn.Module's own method: some smp encoders override load_state_dict and drop its result.
    result = nn.Module.load_state_dict(module, to_load, strict=False)
    if result.unexpected_keys or set(result.missing_keys) != set(report.missing):  # pragma: no cover - defensive
        raise RuntimeError(f"load_state_dict disagrees with the key check: {result}")
    report.loaded = sorted(to_load)
    logger.info(report.summary())
    return report
