"""Task files and node files: list (`recursive`), GET (with `ocp-range`, answered 200 with the range as the service
does), HEAD (length and the `ocp-*` headers), DELETE (`recursive` for a directory).

A task's files are its directory on its node, which the runner records as `runtime.taskDir` (`stdout.txt`,
`stderr.txt`, `wd/...`); a node's are under its `runtime.root`. Paths are relative, `/` or `\\` separated, and never
leave that directory.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from batchai_spec.emulator.batch import store
from batchai_spec.emulator.batch.dataplane import odata
from batchai_spec.emulator.batch.dataplane.rows import job_row, loads, task_row
from batchai_spec.emulator.batch.dataplane.wire import (
    BatchError, Request, answer, check_conditions, conflict, not_found,
)
from batchai_spec.emulator.clock import iso8601, rfc1123

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


# --- where the files are ---------------------------------------------------------------------------------------


def _task_root(request: Request) -> tuple[Path, str]:
    db = request.state.connection()
    job = job_row(db, request.account, request.params["job"])
    row = task_row(db, request.account, job["job_id"], request.params["task"])
    directory = loads(row["runtime"]).get("taskDir")
    if not directory:
        raise conflict("TaskFilesUnavailable", "The files of the specified task are unavailable.")
    root = Path(directory)
    if not root.is_dir():
        raise conflict("TaskFilesCleanedup", "The files of the specified task are cleanedup.")
    return root, request.url("jobs", job["job_id"], "tasks", row["task_id"]) + "/files"


def _node_root(request: Request) -> tuple[Path, str]:
    db = request.state.connection()
    pool = store.get_pool(db, request.account, request.params["pool"])
    if pool is None:
        raise not_found("PoolNotFound", "pool")
    node = store.get_node(db, request.account, pool.name, request.params["node"])
    if node is None:
        raise not_found("NodeNotFound", "node")
    directory = node.runtime.get("root")
    if not directory or not Path(directory).is_dir():
        raise conflict("NodeBeingCreated", "The specified node is being created")
    return Path(directory), request.url("pools", pool.name, "nodes", node.node_id) + "/files"


def _resolve(root: Path, relative: str) -> tuple[Path, str]:
    parts = [part for part in relative.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise not_found("FileNotFound", "file")
    path = root.joinpath(*parts)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise not_found("FileNotFound", "file") from None
    if not path.exists() and not path.is_symlink():
        raise not_found("FileNotFound", "file")
    return path, "/".join(parts)


# --- listing ---------------------------------------------------------------------------------------------------


def _entry(path: Path, name: str, prefix: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "url": f"{prefix}/{name}", "isDirectory": path.is_dir()}
    if not entry["isDirectory"]:
        info = path.stat()
        entry["properties"] = {
            "creationTime": iso8601(_created(info)), "lastModified": iso8601(info.st_mtime),
            "contentLength": str(info.st_size), "contentType": _content_type(name), "fileMode": _mode(info),
        }
    return entry


def _list(request: Request, root: Path, prefix: str) -> Response:
    recursive = request.query.get("recursive", "").lower() == "true"
    found: list[tuple[int, str, Path]] = []
    if recursive:
        for directory, names, files in os.walk(root):
            for name in names + files:
                path = Path(directory, name)
                relative = path.relative_to(root).as_posix()
                found.append((relative.count("/"), relative, path))
    else:
        found = [(0, path.name, path) for path in root.iterdir()]
    found.sort(key=lambda item: (item[0], item[1]))
    return odata.page(request, [_entry(path, name, prefix) for _, name, path in found if path.exists()], "files")


def list_task_files(request: Request) -> Response:
    return _list(request, *_task_root(request))


def list_node_files(request: Request) -> Response:
    return _list(request, *_node_root(request))


# --- one file --------------------------------------------------------------------------------------------------


def _created(info: os.stat_result) -> float:
    return getattr(info, "st_birthtime", None) or min(info.st_ctime, info.st_mtime)


def _mode(info: os.stat_result) -> str:
    return f"0{info.st_mode:o}"


def _content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _headers(path: Path, name: str, prefix: str) -> dict[str, str]:
    info = path.stat()
    return {
        "Content-Type": _content_type(name),
        "Last-Modified": rfc1123(info.st_mtime),
        "ocp-creation-time": rfc1123(_created(info)),
        "ocp-batch-file-isdirectory": "True" if stat.S_ISDIR(info.st_mode) else "False",
        "ocp-batch-file-url": quote(f"{prefix}/{name}", safe=""),
        "ocp-batch-file-mode": _mode(info),
    }


def _read(request: Request, root: Path, prefix: str) -> Response:
    path, name = _resolve(root, request.params["path"])
    headers = _headers(path, name, prefix)
    check_conditions(request.call, "", path.stat().st_mtime)
    if path.is_dir():
        if request.call.method == "HEAD":
            return answer(200, b"", {**headers, "Content-Length": "0"})
        raise BatchError(400, "InvalidUri", "The requested URI names a directory, not a file.")
    size = path.stat().st_size
    start, end = 0, size - 1
    text = request.call.headers.get("ocp-range")
    if text:
        match = _RANGE.match(text.strip())
        if match is None:
            raise BatchError(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct"
                             " format.", [("HeaderName", "ocp-range"), ("HeaderValue", text)])
        start = int(match.group(1))
        end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        if start >= size or end < start:
            raise BatchError(416, "InvalidRange", "The range specified is invalid for the current size of the"
                             " resource.")
    if request.call.method == "HEAD":
        return answer(200, b"", {**headers, "Content-Length": str(size)})
    with path.open("rb") as handle:
        handle.seek(start)
        content = handle.read(max(0, end - start + 1))
    return answer(200, content, headers)


def _delete(request: Request, root: Path) -> Response:
    path, _ = _resolve(root, request.params["path"])
    if path.is_dir() and not path.is_symlink():
        if request.query.get("recursive", "").lower() == "true":
            shutil.rmtree(path)
        elif any(path.iterdir()):
            raise conflict("DirectoryNotEmpty", "The directory is not empty; delete it with recursive=true.")
        else:
            path.rmdir()
    else:
        path.unlink()
    return answer(200)


def get_task_file(request: Request) -> Response:
    return _read(request, *_task_root(request))


def delete_task_file(request: Request) -> Response:
    return _delete(request, _task_root(request)[0])


def get_node_file(request: Request) -> Response:
    return _read(request, *_node_root(request))


def delete_node_file(request: Request) -> Response:
    return _delete(request, _node_root(request)[0])
