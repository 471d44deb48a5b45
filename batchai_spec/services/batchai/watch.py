"""Reads that follow running work: cluster allocation, job state, output files and their bytes (ranged)."""

from __future__ import annotations

import contextlib
import posixpath
import shutil
from pathlib import Path
from typing import Any, Iterator

import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.mgmt.batchai import models as batchai_models

from batchai_spec.errors import UserError
from batchai_spec.services.azure.clients import Clients
from batchai_spec.statuses import STDOUTERR, ClusterStatus, JobStatus, OutputFile


def run_id_of(job: batchai_models.Job) -> str | None:
    """The uuid of the job's run: the last part of its output directories' segment (a job created again under the
    same name is another run)."""
    return (job.job_output_directory_path_segment or "").strip("/").rsplit("/", 1)[-1] or None


class Watch:
    """Batch AI's answers to what following running work reads (batchai_spec/statuses.py)."""

    def __init__(self, clients: Clients):
        self.clients = clients
        self._http = requests.Session()
        self._verify = clients.endpoint.connection_verify

    def cluster(self, ids: dict[str, str]) -> ClusterStatus:
        cluster = self.clients.batchai.clusters.get(ids["resource_group"], ids["workspace"], ids["cluster"])
        counts = cluster.node_state_counts.as_dict() if cluster.node_state_counts else {}
        return ClusterStatus(
            cluster.allocation_state,
            cluster.current_node_count or 0,
            counts,
            [error.as_dict() for error in cluster.errors or []],
        )

    def job(self, ids: dict[str, str]) -> JobStatus:
        job = self.clients.batchai.jobs.get(ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"])
        info = job.execution_info
        return JobStatus(
            job.execution_state,
            info.exit_code if info else None,
            [error.as_dict() for error in (info.errors if info and info.errors else [])],
            info.start_time if info else None,
            info.end_time if info else None,
            tuple(directory.id for directory in job.output_directories or []),
            run_id_of(job),
        )

    def output_files(self, ids: dict[str, str], directory_id: str, directory: str = ".") -> list[OutputFile]:
        """Every file of one output directory (or `stdouterr`), walking its sub-directories."""
        options = batchai_models.JobsListOutputFilesOptions(outputdirectoryid=directory_id, directory=directory)
        found: list[OutputFile] = []
        items = self.clients.batchai.jobs.list_output_files(
            ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"], options
        )
        for item in items:
            path = item.name if directory == "." else posixpath.join(directory, item.name)
            if item.file_type == "directory":
                found += self.output_files(ids, directory_id, path)
            else:
                found.append(OutputFile(directory_id, path, item.download_url, item.content_length or 0))
        return found

    @contextlib.contextmanager
    def _get(self, url: str | None, **options: Any) -> Iterator[requests.Response]:
        """A GET on a SAS URL, its failures as the azure-core errors the rest of the tool classifies."""
        if not url:  # the emulator lists the files of blob containers without one
            raise UserError("the service gave no download URL for an output file (on a blob container?); read it there")
        # verify is passed on every call: a session-level value loses to REQUESTS_CA_BUNDLE in requests.
        try:
            with self._http.get(url, verify=self._verify, timeout=300, **options) as response:
                if response.status_code >= 400 and response.status_code != 416:
                    error = HttpResponseError(f"GET of an output file answered HTTP {response.status_code}")
                    error.status_code = response.status_code
                    raise error
                yield response
        except requests.RequestException as error:
            raise ServiceRequestError(f"GET of an output file failed: {type(error).__name__}") from error

    def read_from(self, url: str, offset: int) -> bytes:
        """The bytes of a file from `offset` on (a ranged GET on its SAS URL), b'' when there is nothing new."""
        with self._get(url, headers={"Range": f"bytes={offset}-"}) as response:
            return b"" if response.status_code == 416 else response.content

    def download(self, files: list[OutputFile], root: Path) -> None:
        """Each file to root/DIRECTORY_ID/PATH; a name from the service can never write outside root."""
        root = root.resolve()
        for file in files:
            destination = (root / file.directory_id / file.path).resolve()
            if not destination.is_relative_to(root):
                raise UserError(f"refusing to download {file.directory_id}/{file.path}: it leads outside {root}")
            try:
                destination.parent.mkdir(parents=True, exist_ok=True)
                with self._get(file.url, stream=True) as response, destination.open("wb") as handle:
                    shutil.copyfileobj(response.raw, handle)
            except OSError as error:
                raise UserError(f"cannot write {destination}: {error.strerror or error}") from error

    def job_or_none(self, ids: dict[str, str]) -> JobStatus | None:
        """The job's state, None when it (or its workspace, experiment or group) does not exist."""
        try:
            return self.job(ids)
        except ResourceNotFoundError:
            return None

    def tail(self, ids: dict[str, str], name: str, lines: int = 20, directory_id: str = STDOUTERR) -> str | None:
        """The last `lines` lines of one file of a job's output directory (a ranged read of its end); None when
        the file is not there."""
        files = {f.path: f for f in self.output_files(ids, directory_id)}
        file = files.get(name)
        if file is None:
            return None
        offset = max(0, file.size - 16384)
        text = self.read_from(file.url, offset).decode(errors="replace") if file.size else ""
        kept = text.splitlines()[1:] if offset else text.splitlines()  # the first line read may be cut
        return "\n".join(kept[-lines:])

    def begin_terminate(self, ids: dict[str, str]) -> Any:
        """Asks the service to stop a queued or running job (POST terminate): the poller of that operation."""
        return self.clients.batchai.jobs.begin_terminate(ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"])
