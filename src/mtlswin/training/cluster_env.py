"""Which Lightning cluster environment a run trains under, chosen here rather than by Lightning's detection.

Inside a Slurm job step (``srun``: ``SLURM_JOB_ID`` and ``SLURM_NTASKS`` set, not an interactive ``bash`` job) it
is ``SLURMEnvironment(auto_requeue=False)``: the job's requeue on preemption or timeout belongs to one layer, the
executor that submitted it (:mod:`mtlswin.pipeline.executors.slurm`: submitit checkpoints and requeues the job,
and the run resumes from its ``last.ckpt``); Lightning must not requeue it a second time. Under ``torchrun`` (or
LSF) it is the environment Lightning would detect. Anywhere else it is ``LightningEnvironment()``:
Lightning's own detection would then look for Slurm and warn "The `srun` command is available on your system but
is not used" on any machine where srun is installed, although no Slurm job runs there (``Trainer.fit`` still asks
once, for an HPC checkpoint; :mod:`.quiet` drops that warning).
"""

from __future__ import annotations

import os

from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    LightningEnvironment,
    LSFEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)

__all__ = ["cluster_environment", "in_slurm_step"]

_INTERACTIVE_JOB_NAMES = ("bash", "interactive")  # Lightning's rule: such a job launches its processes itself


def in_slurm_step() -> bool:
    """This process is a task of a Slurm job step (launched by ``srun`` inside an allocation)."""
    env = os.environ
    return "SLURM_JOB_ID" in env and "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in _INTERACTIVE_JOB_NAMES


def cluster_environment() -> ClusterEnvironment:
    """The cluster environment of this process (module docstring)."""
    if in_slurm_step():
        return SLURMEnvironment(auto_requeue=False)
    for kind in (TorchElasticEnvironment, LSFEnvironment):
        if kind.detect():
            return kind()
    return LightningEnvironment()
