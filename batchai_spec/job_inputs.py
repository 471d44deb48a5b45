"""Which uploaded files a job reads, and where its paths lie on the spec's shares: from the Batch AI node contract
(`$AZ_BATCHAI_MOUNT_ROOT`, `$AZ_BATCHAI_JOB_MOUNT_ROOT`, `$AZ_BATCHAI_INPUT_<ID>`), which every service realises
(the Azure Batch launcher reproduces it). A job depends on the files it reads, so changed inputs re-run it."""

from __future__ import annotations

import hashlib
import posixpath
import re
from typing import TYPE_CHECKING, Any, Iterable, Mapping, TypeVar

if TYPE_CHECKING:
    from batchai_spec.graph import Resource

_MOUNT_REFERENCE = re.compile(r"^\$(?:\{)?(AZ_BATCHAI_MOUNT_ROOT|AZ_BATCHAI_JOB_MOUNT_ROOT)(?:\})?/([^/]+)(?:/(.*))?$")
_DIRECTORY_REFERENCE = re.compile(r"^\$(?:\{)?AZ_BATCHAI_INPUT_([A-Za-z0-9_]+)(?:\})?(?:/(.*))?$")
T = TypeVar("T")


def mount_table(volumes) -> dict[str, str]:
    """relative mount path -> share name, for the shares of this spec a mount list (of the spec) makes visible."""
    if volumes is None:
        return {}
    return {mount.relative_mount_path: mount.share for mount in volumes.azure_file_shares if mount.share}


def job_mounts(cluster, job) -> dict[str, dict[str, str]]:
    """The mount tables a job's paths are read with: `$AZ_BATCHAI_MOUNT_ROOT` (its cluster's mounts) and
    `$AZ_BATCHAI_JOB_MOUNT_ROOT` (its own), each relative mount path -> share of this spec."""
    return {
        "AZ_BATCHAI_MOUNT_ROOT": mount_table(cluster.node_setup.mount_volumes if cluster.node_setup else None),
        "AZ_BATCHAI_JOB_MOUNT_ROOT": mount_table(job.mount_volumes),
    }


def run_outputs(job) -> dict[str, Any]:
    """Where a job's runs write, as the spec says (its stdout/stderr prefix and output directories): what finds its
    runs on the shares, whichever service runs it (services/azure/runs.py)."""
    return {
        "std_out_err_path_prefix": job.std_out_err_path_prefix,
        "output_directories": [
            {"id": output.id, "path_prefix": output.path_prefix, "path_suffix": output.path_suffix}
            for output in job.output_directories
        ],
    }


def share_path(path: str, mounts: Mapping[str, Mapping[str, T]]) -> tuple[T, str] | None:
    """`$AZ_BATCHAI_MOUNT_ROOT/afs/a/b` -> (what the table holds for mount `afs`, 'a/b'), for tables as
    `job_mounts` returns (or any value per relative mount path); None for a path on no mount of the tables."""
    match = _MOUNT_REFERENCE.match(path.rstrip("/"))
    if not match:
        return None
    share = mounts.get(match.group(1), {}).get(match.group(2))
    if share is None:
        return None
    return share, (match.group(3) or "").strip("/")


def by_share(files: Iterable[Resource]) -> dict[str, list[Resource]]:
    """The file resources of a graph by share, for `input_files` (made once for all the jobs of a spec)."""
    grouped: dict[str, list[Resource]] = {}
    for file in files:
        grouped.setdefault(file.ids["share"], []).append(file)
    return grouped


def input_files(job, cluster, files_by_share: Mapping[str, list[Resource]]) -> list[Resource]:
    """The uploaded files (file resources of the graph, by share) a job reads: those under its input directories,
    and those its scripts and command lines name, on the shares mounted for it."""
    mounts = job_mounts(cluster, job)
    paths = list(job.input_directories.values())
    _, toolkit = job.toolkit
    # Paths the job's commands name: script and config paths, and every word of its command lines.
    texts = [value for name, value in toolkit if isinstance(value, str) and name != "language_type"]
    if job.job_preparation is not None:
        texts.append(job.job_preparation.command_line)
    for word in (word for text in texts for word in text.split()):
        match = _DIRECTORY_REFERENCE.match(word)
        if match and match.group(1) in job.input_directories:
            word = posixpath.join(job.input_directories[match.group(1)], match.group(2) or "")
        paths.append(word)
    read: dict[str, Resource] = {}
    for path in paths:
        on_share = share_path(path, mounts)
        if on_share is None:
            continue
        share, prefix = on_share
        for file in files_by_share.get(share, []):
            file_path = file.ids["path"]
            if not prefix or file_path == prefix or file_path.startswith(prefix + "/"):
                read[file.address] = file
    return [read[address] for address in sorted(read)]


def inputs_digest(files: list[Resource]) -> str:
    """What a run read, in 16 hex digits: recorded with the job, compared by the next plan."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.address}\0{file.desired['sha256']}\n".encode())
    return digest.hexdigest()[:16]
