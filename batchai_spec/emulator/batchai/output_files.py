"""listOutputFiles: one level of a job's stdouterr or output directory, with read SAS URLs for each file.

The directories are where the job's first node put them (recorded when it started); a job that has not started
yet lists nothing. Files lie in the share the directory was mounted from, so their `downloadUrl` is a file SAS
on the emulator's storage endpoint, valid `linkexpiryinminutes` (5-600, default 60). Files on mounts that are not
Azure File shares (blob containers, file servers) are listed without a URL: the emulator cannot serve them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from batchai_spec.emulator.batchai.errors import invalid
from batchai_spec.emulator.batchai.store import Resource
from batchai_spec.emulator.batchai.times import iso_seconds
from batchai_spec.emulator.files.sas import mint_file_sas_url
from batchai_spec.emulator.routing import ServiceError
from batchai_spec.emulator.state import State

STDOUTERR = "stdouterr"


def directory_location(job: Resource, output_directory_id: str) -> dict[str, str] | None:
    """Where the output directory is (None: the job has not started yet); 400 for an id the job does not have."""
    locations = job.runtime.get("locations")
    if output_directory_id.lower() == STDOUTERR:
        return locations["stdouterr"] if locations else None
    declared = {directory["id"].lower(): directory["id"] for directory in job.properties.get("outputDirectories") or []}
    if output_directory_id.lower() not in declared:
        raise ServiceError(
            400, "OutputDirectoryNotFound",
            f"The job {job.name} has no output directory with id '{output_directory_id}'; its ids are "
            + ", ".join(["stdouterr", *declared.values()]),
        )
    return locations["outputs"][declared[output_directory_id.lower()]] if locations else None


def list_files(state: State, location: dict[str, str] | None, directory: str, expiry_minutes: int) -> list[dict[str, Any]]:
    if location is None:
        return []
    relative = _relative(directory)
    folder = Path(location["path"]).joinpath(*relative.parts)
    if not folder.is_dir():
        return []
    expiry = datetime.now(timezone.utc) + timedelta(minutes=expiry_minutes)
    entries = sorted(folder.iterdir(), key=lambda entry: (entry.is_dir(), entry.name))
    listed = []
    for entry in entries:
        if entry.is_dir():
            listed.append({"name": entry.name, "fileType": "directory"})
            continue
        if not entry.is_file():
            continue
        size_and_time = entry.stat()
        item: dict[str, Any] = {
            "name": entry.name,
            "fileType": "file",
            "properties": {"lastModified": iso_seconds(size_and_time.st_mtime), "contentLength": size_and_time.st_size},
        }
        if "share" in location:
            inside = PurePosixPath(location["sharePath"], *relative.parts, entry.name).as_posix()
            item["downloadUrl"] = mint_file_sas_url(
                state, location["account"], location["share"], inside, expiry, permissions="rl"
            )
        listed.append(item)
    return listed


def _relative(directory: str) -> PurePosixPath:
    path = PurePosixPath(directory or ".")
    if path.is_absolute() or ".." in path.parts:
        raise invalid("directory", "expected a path inside the output directory")
    return path
