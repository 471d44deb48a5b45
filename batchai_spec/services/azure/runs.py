"""A job's runs on its file shares: each run (one job incarnation) writes into its own uuid directory,
`{prefix}/{sub}/{rg}/workspaces/{ws}/experiments/{exp}/jobs/{job}/{uuid}/` (`stdouterr/`, `outputs/{suffix}/`), and
that directory stays on the share when the job is replaced or deleted (Batch AI's layout, which batchai-spec's
launcher writes on Azure Batch too). This module finds those runs, lists and
downloads their files through the Azure Files SDK (no SAS needed), records a run's end on its directory (metadata)
before the tool deletes its job, and counts what a share holds of runs, for destroy to warn before it deletes one.

The live job (if any) is the newest run; earlier runs have no job object any more: what is known of them is what
`record_run` wrote on their directory when the tool deleted their job, or else only the directory's time.
No CLI here: the commands are in `batchai_spec/cli/day2.py`.
"""

from __future__ import annotations

import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from azure.core.exceptions import ResourceNotFoundError

from batchai_spec.errors import UserError
from batchai_spec.graph import Graph, Resource
from batchai_spec.job_inputs import share_path
from batchai_spec.services.azure.clients import Clients
from batchai_spec.statuses import STDOUTERR, JobStatus

# Directory metadata a run's uuid directory gets when the tool deletes its job (Azure metadata names are C#
# identifiers: letters, digits and underscores).
EXIT_CODE_METADATA = "batchaispec_exit_code"
STATE_METADATA = "batchaispec_state"
START_METADATA = "batchaispec_start"
END_METADATA = "batchaispec_end"
ERROR_METADATA = "batchaispec_error"  # the code of the service's first error (JobTerminated, JobFailed...)

OUTPUTS = "outputs"
# The uuid the service names each run's directory with.
_RUN_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_WORKERS = 8


@dataclass(frozen=True)
class ShareLocation:
    """A directory of a file share: `path` inside the share, '' for its root."""

    resource_group: str  # the storage account's
    account: str
    share: str
    path: str

    def join(self, *parts: str) -> ShareLocation:
        path = "/".join(part.strip("/") for part in (self.path, *parts) if part.strip("/"))
        return replace(self, path=path)

    def __str__(self) -> str:
        return f"{self.share}/{self.path}" if self.path else self.share


@dataclass(frozen=True)
class RunDirectory:
    """One output directory of a job (or `stdouterr`): in each run at `prefix/segment/{uuid}/inside`."""

    directory_id: str
    prefix: ShareLocation  # where the directory's path prefix lies on the share
    inside: str  # 'stdouterr', 'outputs' or 'outputs/SUFFIX'


@dataclass(frozen=True)
class JobLayout:
    """Where the runs of one job lie. `segment` is `{sub}/{rg}/workspaces/{ws}/experiments/{exp}/jobs/{job}`,
    the service's `jobOutputDirectoryPathSegment` without the run's uuid."""

    address: str
    segment: str
    directories: tuple[RunDirectory, ...]
    # Prefixes of the job that are on no share of the spec (external shares, blob containers, file servers).
    elsewhere: tuple[str, ...] = ()

    @property
    def roots(self) -> tuple[ShareLocation, ...]:
        """The directories holding one uuid directory per run, each once."""
        return tuple(dict.fromkeys(directory.prefix.join(self.segment) for directory in self.directories))


@dataclass(frozen=True)
class JobRun:
    run_id: str
    start: datetime | None
    end: datetime | None
    state: str | None  # None: unknown (no record and no job)
    exit_code: int | None
    errors: tuple[str, ...] = ()
    recorded: bool = False  # `record_run` wrote its end on its directory
    live: bool = False  # the run of the job that exists now
    size: int = 0  # bytes of its files on the spec's shares
    directory_time: datetime | None = None  # when its directory was made, for runs without a record

    @property
    def time(self) -> datetime | None:
        """When it started, as far as is known."""
        return self.start or self.directory_time or self.end

    @property
    def known(self) -> bool:
        return self.live or self.recorded


@dataclass(frozen=True)
class RunFile:
    directory_id: str  # an output directory id, 'stdouterr', or '.' for a file in neither (path: in the run)
    path: str  # relative to that directory
    size: int
    location: ShareLocation  # the file itself


# -- layouts ------------------------------------------------------------------------------------------------------


def segment_of(subscription_id: str, ids: dict[str, str]) -> str:
    return (
        f"{subscription_id}/{ids['resource_group']}/workspaces/{ids['workspace']}/experiments/{ids['experiment']}"
        f"/jobs/{ids['job']}"
    )


def _directories(
    prefixes: Iterable[tuple[str, str, str]], resolve: Callable[[str], ShareLocation | None]
) -> tuple[tuple[RunDirectory, ...], tuple[str, ...]]:
    found, elsewhere = [], []
    for directory_id, prefix, inside in prefixes:
        location = resolve(prefix)
        if location is None:
            elsewhere.append(prefix)
        else:
            found.append(RunDirectory(directory_id, location, inside))
    return tuple(found), tuple(dict.fromkeys(elsewhere))


def _job_prefixes(stdouterr_prefix: str | None, outputs: Iterable[Any]) -> list[tuple[str, str, str]]:
    """(directory id, path prefix, place inside a run's directory) of stdouterr and each output directory."""
    prefixes = [(STDOUTERR, stdouterr_prefix, STDOUTERR)] if stdouterr_prefix else []
    for output in outputs:
        suffix = (_get(output, "path_suffix") or "").strip("/")
        prefixes.append((_get(output, "id"), _get(output, "path_prefix"), posixpath.join(OUTPUTS, suffix) if suffix else OUTPUTS))
    return prefixes


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def spec_layout(graph: Graph, job: Resource, subscription_id: str) -> JobLayout:
    """The layout of a job of the spec, its prefixes resolved with the spec's mounts (the graph's mount tables)."""
    shares = {resource.ids["share"]: resource.ids for resource in graph.by_kind("file_share")}

    def resolve(prefix: str) -> ShareLocation | None:
        on_share = share_path(prefix, job.extra.get("mounts", {}))
        if on_share is None or on_share[0] not in shares:
            return None
        ids = shares[on_share[0]]
        return ShareLocation(ids["resource_group"], ids["account"], ids["share"], on_share[1])

    outputs = job.extra["outputs"]
    directories, elsewhere = job_directories(outputs["std_out_err_path_prefix"], outputs["output_directories"], resolve)
    return JobLayout(job.address, segment_of(subscription_id, job.ids), directories, elsewhere)


def job_directories(
    stdouterr_prefix: str | None, outputs: Iterable[Any], resolve: Callable[[str], ShareLocation | None]
) -> tuple[tuple[RunDirectory, ...], tuple[str, ...]]:
    """The run directories of a job's stdouterr and output directories (given as a service holds them), each
    prefix resolved to a place on a share; the prefixes on no share of the spec apart."""
    return _directories(_job_prefixes(stdouterr_prefix, outputs), resolve)


# -- reading the share --------------------------------------------------------------------------------------------


def _directory(clients: Clients, location: ShareLocation):
    share = clients.share_service(location.resource_group, location.account).get_share_client(location.share)
    return share.get_directory_client(location.path)


def walk(clients: Clients, location: ShareLocation, relative: str = "") -> list[tuple[str, int]]:
    """(path relative to `location`, size) of every file under it; [] when it is not there."""
    found: list[tuple[str, int]] = []
    try:
        items = list(_directory(clients, location.join(relative)).list_directories_and_files())
    except ResourceNotFoundError:
        return found
    for item in items:
        path = posixpath.join(relative, item["name"]) if relative else item["name"]
        if item["is_directory"]:
            found += walk(clients, location, path)
        else:
            found.append((path, item["size"] or 0))
    return found


def _subdirectories(clients: Clients, location: ShareLocation, *, timestamps: bool = False) -> list[Any]:
    try:
        options = {"include": ["timestamps"]} if timestamps else {}
        return [item for item in _directory(clients, location).list_directories_and_files(**options) if item["is_directory"]]
    except ResourceNotFoundError:
        return []


def _accounts_reachable(clients: Clients, layout: JobLayout) -> bool:
    """Whether the shares' accounts still exist (their keys come from ARM)."""
    try:
        for root in layout.roots:
            clients.share_service(root.resource_group, root.account)
    except ResourceNotFoundError:
        return False
    return True


def live_run(status: JobStatus | None) -> JobRun | None:
    """What the live job (as its service's Watch reads it) says of its run."""
    if status is None or not status.run_id:
        return None
    return JobRun(
        run_id=status.run_id,
        start=status.start_time,
        end=status.end_time,
        state=status.execution_state,
        exit_code=status.exit_code,
        errors=tuple(error["code"] for error in status.errors if error.get("code")),
        live=True,
    )


def _parse_time(value: datetime | str | None) -> datetime | None:
    """A datetime (UTC when it names no zone) from the SDKs' datetimes or ISO 8601 text: the Files listings give
    their timestamps as text with seven fraction digits (`2024-05-01T12:00:03.1234567Z`)."""
    if isinstance(value, str):
        text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _from_record(run_id: str, metadata: dict[str, str], directory_time: datetime | None) -> JobRun:
    metadata = {key.lower(): value for key, value in (metadata or {}).items()}
    recorded = STATE_METADATA in metadata
    exit_code = metadata.get(EXIT_CODE_METADATA)
    return JobRun(
        run_id=run_id,
        start=_parse_time(metadata.get(START_METADATA)),
        end=_parse_time(metadata.get(END_METADATA)),
        state=metadata.get(STATE_METADATA) if recorded else None,
        exit_code=int(exit_code) if exit_code and exit_code.lstrip("-").isdigit() else None,
        errors=(metadata[ERROR_METADATA],) if metadata.get(ERROR_METADATA) else (),
        recorded=recorded,
        directory_time=directory_time,
    )


def list_runs(clients: Clients, layout: JobLayout, status: JobStatus | None) -> list[JobRun]:
    """Every run of the job still on the spec's shares, and the live job's run (even before it has a directory),
    newest first. A share or account that is gone holds no run."""
    current = live_run(status)
    if not _accounts_reachable(clients, layout):
        return [current] if current else []
    # run id -> (root, its listing entry) for each root that holds it
    places: dict[str, list[tuple[ShareLocation, Any]]] = {}
    for root in layout.roots:
        for item in _subdirectories(clients, root, timestamps=True):
            if _RUN_ID.match(item["name"]):
                places.setdefault(item["name"].lower(), []).append((root, item))
    if current is not None:
        places.setdefault(current.run_id.lower(), [])

    def describe(run_id: str) -> JobRun:
        where = places[run_id]
        size = sum(size for root, item in where for _, size in walk(clients, root.join(item["name"])))
        if current is not None and run_id == current.run_id.lower():
            return replace(current, size=size)
        metadata: dict[str, str] = {}
        # The listing's creation times are precise; Last-Modified is whole seconds (two runs of one second would
        # tie, and come out in any order), so it is the last resort.
        precise, coarse = [item.get("creation_time") for _, item in where], []
        for root, item in where:
            try:
                properties = _directory(clients, root.join(item["name"])).get_directory_properties()
            except ResourceNotFoundError:
                continue
            metadata = metadata or dict(properties.metadata or {})
            precise.append(properties.get("creation_time"))
            coarse += [item.get("last_modified"), properties.get("last_modified")]
        known_times = [moment for moment in map(_parse_time, precise) if moment is not None] or [
            moment for moment in map(_parse_time, coarse) if moment is not None
        ]
        return replace(_from_record(where[0][1]["name"], metadata, min(known_times) if known_times else None), size=size)

    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="runs") as pool:
        runs = list(pool.map(describe, sorted(places)))
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    # Ordered by their directories' times, which one clock gave (a recorded start came from another, the service's;
    # mixing the two misordered runs a second apart), then by what else is known; the live run is the newest.
    return sorted(runs, key=lambda run: (run.live, run.directory_time or run.time or oldest), reverse=True)


def select_run(runs: list[JobRun], wanted: str | None, address: str) -> JobRun:
    """The run `wanted` names (its uuid or a unique prefix of it), or the newest."""
    if not runs:
        raise UserError(f"{address} has no run: no job, and no run directory of it on the spec's shares")
    if wanted is None:
        return runs[0]
    matches = [run for run in runs if run.run_id.lower().startswith(wanted.strip().lower())] if wanted.strip() else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(f"run {wanted!r} of {address} is ambiguous: it starts " + ", ".join(run.run_id for run in matches))
    raise UserError(f"{address} has no run {wanted!r} (runs: " + ", ".join(run.run_id for run in runs[:10]) + ")")


def run_files(clients: Clients, layout: JobLayout, run_id: str) -> list[RunFile]:
    """The files of one run, walked on the share: each under the output directory (or stdouterr) it lies in;
    a file in none of them (an output directory since removed from the spec) under '.' with its path in the run.
    Hidden directories at the top of a run are bookkeeping, not outputs (the Azure Batch launcher's `.ranks`)."""
    found: list[RunFile] = []
    for root in layout.roots:
        run_directory = root.join(run_id)
        # The deepest directory first: `outputs/Models` before a directory without suffix (`outputs`).
        directories = sorted(
            (d for d in layout.directories if d.prefix.join(layout.segment) == root), key=lambda d: -len(d.inside)
        )
        for relative, size in sorted(walk(clients, run_directory)):
            if relative.startswith(".") and "/" in relative:
                continue
            owner = next((d for d in directories if relative.startswith(d.inside + "/")), None)
            directory_id, path = (owner.directory_id, relative[len(owner.inside) + 1:]) if owner else (".", relative)
            found.append(RunFile(directory_id, path, size, run_directory.join(relative)))
    return found


def download_run(clients: Clients, files: list[RunFile], root: Path) -> None:
    """Each file to root/DIRECTORY_ID/PATH, as `Watch.download` does; a name found on the share can never write
    outside root."""
    root = root.resolve()
    for file in files:
        destination = (root / file.directory_id / file.path).resolve()
        if not destination.is_relative_to(root):
            raise UserError(f"refusing to download {file.directory_id}/{file.path}: it leads outside {root}")
        share = clients.share_service(file.location.resource_group, file.location.account).get_share_client(
            file.location.share
        )
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            with destination.open("wb") as handle:
                share.get_file_client(file.location.path).download_file().readinto(handle)
        except OSError as error:
            raise UserError(f"cannot write {destination}: {error.strerror or error}") from error


# -- recording a run before its job is deleted ----------------------------------------------------------------------


def run_record(status: JobStatus) -> dict[str, str]:
    """What is kept of a run on its directory: state, exit code, start and end (those known)."""
    record = {STATE_METADATA: status.execution_state or "unknown"}
    codes = [re.sub(r"[^A-Za-z0-9_.-]", "", error.get("code") or "") for error in status.errors]
    if any(codes):
        record[ERROR_METADATA] = next(code for code in codes if code)
    if status.exit_code is not None:
        record[EXIT_CODE_METADATA] = str(status.exit_code)
    if status.start_time is not None:
        record[START_METADATA] = status.start_time.isoformat()
    if status.end_time is not None:
        record[END_METADATA] = status.end_time.isoformat()
    return record


def record_run(clients: Clients, layout: JobLayout, run_id: str, record: dict[str, str]) -> int:
    """Set `record` as the metadata of the run's directory on each share root it has; a directory that is not
    there (the job never started, or the share is gone) is skipped. Setting the same metadata again changes
    nothing, so a retried delete may record again. Returns how many directories were recorded on."""
    recorded = 0
    for root in layout.roots:
        try:
            _directory(clients, root.join(run_id)).set_directory_metadata(record)
            recorded += 1
        except ResourceNotFoundError:
            continue
    return recorded


# -- what a share holds of runs -------------------------------------------------------------------------------------

# Below `{sub}`: `{rg}/workspaces/{ws}/experiments/{exp}/jobs/{job}/{uuid}`; None matches any name.
_LAYOUT_BELOW_SUBSCRIPTION = (None, "workspaces", None, "experiments", None, "jobs", None)
# A prefix is the path of a mount point inside the share: a few directories at most. Prefix levels are listed
# breadth first, at most MAX_PREFIX_LISTINGS directories in all, so a share of many uploaded directories costs
# a bounded number of requests.
MAX_PREFIX_DEPTH = 2
MAX_PREFIX_LISTINGS = 200


def share_outputs(
    clients: Clients, resource_group: str, account: str, share: str, subscription_id: str
) -> tuple[int, int]:
    """(job runs, their bytes) on a share: every `{prefix}/{sub}/{rg}/workspaces/*/experiments/*/jobs/*/{uuid}`
    directory, with `{sub}` this subscription, any resource group (the runs of any job write there), and a prefix of
    at most MAX_PREFIX_DEPTH directories (usually none: the share's root is the mount point). Below `{sub}` the walk
    follows only the names the layout allows, so uploaded data is never walked (only listed, at the prefix levels);
    the bytes are those of every file under each run directory. A share or account that is not there holds (0, 0)."""
    root = ShareLocation(resource_group, account, share, "")
    try:
        clients.share_service(resource_group, account)
    except ResourceNotFoundError:
        return 0, 0
    subscription_directories: list[ShareLocation] = []
    level, listings = [root], 0
    for depth in range(MAX_PREFIX_DEPTH + 1):
        below = []
        for directory in level[: MAX_PREFIX_LISTINGS - listings]:
            listings += 1
            for item in _subdirectories(clients, directory):
                location = directory.join(item["name"])
                if item["name"].lower() == subscription_id.lower():
                    subscription_directories.append(location)
                elif depth < MAX_PREFIX_DEPTH:
                    below.append(location)
        level = below
    job_directories = subscription_directories
    for expected in _LAYOUT_BELOW_SUBSCRIPTION:
        job_directories = [
            directory.join(item["name"])
            for directory in job_directories
            for item in _subdirectories(clients, directory)
            if expected is None or item["name"].lower() == expected
        ]
    runs = [
        directory.join(item["name"])
        for directory in job_directories
        for item in _subdirectories(clients, directory)
        if _RUN_ID.match(item["name"])
    ]
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="runs") as pool:
        sizes = list(pool.map(lambda run: sum(size for _, size in walk(clients, run)), runs))
    return len(runs), sum(sizes)
