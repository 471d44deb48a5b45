"""Where emulated nodes keep their files: everything under `<state dir>/batchai/`.

    nodes/<node id>/mounts/<relativeMountPath>      -> AZ_BATCHAI_MOUNT_ROOT (cluster mounts, symlinks)
    nodes/<node id>/setup/                          setup task script and exit file
    nodes/<node id>/jobs/                           -> AZ_BATCHAI_JOB_TEMP_DIR (wiped when the node starts a job)
    nodes/<node id>/jobs/<job uuid>/                -> AZ_BATCHAI_JOB_TEMP (task scripts, MPI host file)
    nodes/<node id>/jobs/<job uuid>/mounts/         -> AZ_BATCHAI_JOB_MOUNT_ROOT (job-level mounts)
    shared/<job uuid>/                              -> AZ_BATCHAI_SHARED_JOB_TEMP (one directory for all nodes)
    blob/<account>/<container>/, fileservers/<id>/  what blob containers and file servers mount
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NodeLayout:
    root: Path

    @property
    def mount_root(self) -> Path:
        return self.root / "mounts"

    @property
    def setup_dir(self) -> Path:
        return self.root / "setup"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    def job_temp(self, job_uuid: str) -> Path:
        return self.jobs_dir / job_uuid

    def job_mount_root(self, job_uuid: str) -> Path:
        return self.job_temp(job_uuid) / "mounts"


@dataclass(frozen=True)
class Layout:
    root: Path  # <state dir>/batchai

    def node(self, node_id: str) -> NodeLayout:
        return NodeLayout(self.root / "nodes" / node_id)

    def shared_job_temp(self, job_uuid: str) -> Path:
        return self.root / "shared" / job_uuid
