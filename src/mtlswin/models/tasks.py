"""Task selection at call time: ``model(x, tasks=("cls",))`` computes only the outputs of those tasks.

Every registered model takes ``tasks`` (``None`` = all of ``model.tasks``). The Swin-Unet family then
skips the decoders whose heads nobody asked for (``tasks=("cls",)`` runs the encoder and the
classification head only), and ``joint_learning`` skips its U-Net decoder. The outputs that are
computed equal those of the full forward exactly: the same modules run on the same tensors.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["OUTPUT_KEYS", "select_tasks"]

OUTPUT_KEYS = {"cls": "logits", "seg": "seg", "rec": "rec"}  # task -> key of the output dict


def select_tasks(
    available: tuple[str, ...], tasks: Iterable[str] | str | None, model_name: str = "model"
) -> tuple[str, ...]:
    """``tasks`` checked against the model's ``available`` tasks, in the model's order; ``None`` = all.

    A single task may be given as a string (``"cls"``) or several as ``"cls+seg"``. Raises ``ValueError``
    naming the tasks the model lacks, or when no task is left.
    """
    if tasks is None:
        return tuple(available)
    if isinstance(tasks, str):
        tasks = tasks.split("+")
    wanted = set(tasks)
    unknown = sorted(wanted - set(available))
    if unknown:
        raise ValueError(f"{model_name} has no task(s) {unknown}; its tasks are {list(available)}")
    if not wanted:
        raise ValueError(f"{model_name}: tasks must name at least one of {list(available)}")
    return tuple(t for t in available if t in wanted)
