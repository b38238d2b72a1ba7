"""The strict loader of ImageNet weights into the CNN baselines (U-Net, ResNet152, Joint-Learning).

:func:`load_weights_into` loads a state dict into a module and returns a :class:`LoadReport`; it refuses
partial loads: every key of the module must be filled except a classifier head (``head_prefixes``) whose
shape differs (e.g. 1000 ImageNet classes vs our 2), and no key of the file may be left over except
such head keys. A 3-channel (RGB) first convolution is loaded into our 1-channel one by summing its
kernel over the input channels (:func:`mtlswin.models.load_report.gray_kernel`). The state dict comes
from :func:`mtlswin.models.conversion.timm_hub.resolve_pretrained` (timm or a local file).
"""

from __future__ import annotations

import logging

from torch import Tensor, nn

from mtlswin.models.load_report import LoadReport, gray_kernel

__all__ = ["load_weights_into"]

logger = logging.getLogger(__name__)

_WRAPPER_PREFIXES = ("module.", "net.", "backbone.", "model.")


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
