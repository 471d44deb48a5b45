"""Reading a job's files by URL (the SAS URLs a service or the tool makes): ranged reads while a job runs, the end
of a file, downloads into a directory. Each service's Watch lists the files; this is how they are read."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, Iterator

import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

from batchai_spec.errors import UserError
from batchai_spec.statuses import STDOUTERR, JobStatus, OutputFile


class CommonReads:
    """The reads of `statuses.Watch` that are the same on every service: a file's bytes by URL, its tail, downloads,
    a job that may be gone. A service's Watch lists the files (`output_files`) and reads its jobs (`job`)."""

    def __init__(self, connection_verify: str | bool):
        self._http = requests.Session()
        self._verify = connection_verify

    def output_files(self, ids: dict[str, str], directory_id: str, directory: str = ".") -> list[OutputFile]:
        raise NotImplementedError

    def job(self, ids: dict[str, str]) -> JobStatus:
        raise NotImplementedError

    def job_or_none(self, ids: dict[str, str]) -> JobStatus | None:
        """The job's state, None when it (or what holds it) does not exist."""
        try:
            return self.job(ids)
        except ResourceNotFoundError:
            return None

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

