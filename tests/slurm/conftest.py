"""A real one-node Slurm for the tests of this folder: the session fixture ``slurm_cluster``.

``tests/slurm/cluster.sh start`` installs Debian's slurm-wlm and munge if they are absent (root), starts munged,
slurmctld and slurmd on the loopback and waits until the node is idle; the fixture does that once per session,
points Slurm's clients at the cluster (``SLURM_CONF`` in ``os.environ``, which ``sbatch`` passes on to the jobs
with the rest of the environment) and stops the daemons at the end, unless they were running before the session
(a cluster started by hand stays up). Every test that uses the fixture gets the ``slurm`` marker, so
``pytest -m "not slurm"`` leaves the cluster alone.

Failing to start is an error, not a skip, wherever the tests run as root, as in CI; only a user who is not root
and has no Slurm installed is skipped (installing needs root).

There is no accounting database: ``sacct`` fails ("accounting storage is disabled") and submitit's
``job.state`` stays ``UNKNOWN``; ``SlurmCluster.job_state`` asks slurmctld (``scontrol show job``), which
keeps a finished job for MinJobAge = 120 s.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).with_name("cluster.sh")
STATE_DIR = Path(os.environ.get("MTLSWIN_SLURM_DIR", "/tmp/mtlswin-slurm"))
# Debian's daemons are in /usr/sbin, which a non-root PATH may lack
_DAEMONS = ("munged", "slurmctld", "slurmd")
_CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")


def _installed() -> bool:
    sbin = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return all(shutil.which(p, path=sbin) for p in _DAEMONS) and all(shutil.which(p) for p in _CLIENTS)


def _cluster(command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "MTLSWIN_SLURM_DIR": str(STATE_DIR)}
    return subprocess.run(
        ["bash", str(CLUSTER_SH), command], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    """The running cluster: its one partition, state folder (config, logs, spool) and ``slurm.conf``."""

    partition: str
    state_dir: Path
    conf: Path

    def job_state(self, job_id: str | int) -> str | None:
        """``JobState`` of a job as slurmctld knows it (``PENDING``, ``RUNNING``, ``COMPLETED``, ...), None once
        slurmctld has forgotten it (MinJobAge after it ended) or never knew it."""
        out = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True)
        found = re.search(r"\bJobState=(\S+)", out.stdout)
        return found.group(1) if out.returncode == 0 and found else None

    def wait_state(self, job_id: str | int, states: tuple[str, ...] = ("COMPLETED",), timeout: float = 60) -> str:
        """Poll until the job is in one of ``states`` and return it; fail the test (with the job's record and the
        daemons' log tails) after ``timeout`` seconds or if it ends in another state."""
        ended = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in states:
                return state
            if state in ended:
                break
            time.sleep(0.2)
        pytest.fail(f"job {job_id} is {state}, not one of {states} (waited up to {timeout} s)\n{self.diagnose(job_id)}")

    def diagnose(self, job_id: str | int | None = None) -> str:
        """The job's record and the tails of the daemons' logs, for a failure message."""
        parts = []
        if job_id is not None:
            out = subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True)
            parts.append(out.stdout + out.stderr)
        for name in _DAEMONS:
            log = self.state_dir / f"{name}.log"
            if log.is_file():
                parts.append(f"--- tail of {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start the one-node cluster once per session (see the module docstring); yield a :class:`SlurmCluster`."""
    if not _installed() and os.geteuid() != 0:
        pytest.skip(
            "slurm-wlm and munge are not installed and installing them needs root: run as root, or "
            "`sudo apt-get install slurm-wlm munge`"
        )
    was_running = _cluster("status", timeout=30).returncode == 0
    started = _cluster("start")
    if started.returncode != 0:
        if not was_running:
            _cluster("stop", timeout=120)  # the daemons that did start
        pytest.fail(
            f"tests/slurm/cluster.sh start failed (exit {started.returncode}):\n{started.stdout}{started.stderr}"
        )
    cluster = SlurmCluster(partition="debug", state_dir=STATE_DIR, conf=STATE_DIR / "slurm.conf")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SLURM_CONF", str(cluster.conf))
        yield cluster
    if not was_running:
        stopped = _cluster("stop", timeout=120)
        assert stopped.returncode == 0, f"tests/slurm/cluster.sh stop failed:\n{stopped.stdout}{stopped.stderr}"


def pytest_collection_modifyitems(items):
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)
