"""Expand the uploads of the spec's file shares into (share, destination, local file) triples, at plan time."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from batchai_spec.spec.base import KeyPath, format_key_path
from batchai_spec.spec.errors import SpecError
from batchai_spec.spec.model import Spec
from batchai_spec.spec.storage import ShareLayout, Upload, is_glob, path_problem

PROJECT_MARKERS = (".git", "pyproject.toml")

ErrorAt = Callable[[KeyPath, str], SpecError]


@dataclass(frozen=True)
class ResolvedUpload:
    share: str
    destination: str  # path of the file inside the share
    local_path: Path  # absolute
    loc: KeyPath  # key path of the upload entry, for errors found later


def project_root(spec_dir: Path) -> Path:
    """The tree upload sources must stay in: the nearest ancestor of the spec's directory (itself included)
    holding .git or pyproject.toml, else the spec's directory. So `../data` works for specs/ in a project."""
    spec_dir = spec_dir.resolve()
    for directory in (spec_dir, *spec_dir.parents):
        if any((directory / marker).exists() for marker in PROJECT_MARKERS):
            return directory
    return spec_dir


def resolve_uploads(
    spec: Spec,
    spec_dir: Path,
    *,
    error_at: ErrorAt | None = None,
    on_missing: Callable[[SpecError], None] | None = None,
) -> list[ResolvedUpload]:
    """Every file to upload, in spec order, globs expanded in sorted order.

    `error_at(loc, problem)` builds located errors (LoadedSpec.error); a source matching nothing raises, or is
    reported to `on_missing` and skipped when given (validate warns: data files may be produced later).
    A source outside the project tree (see project_root) without `allow_outside_spec_dir: true`, a directory
    source, two uploads landing on the same destination, a destination Azure Files refuses (a local file name
    holding ':', say), or one that is a file where the share needs a directory always raise.
    """
    error_at = error_at or (lambda loc, problem: SpecError(f"{format_key_path(loc)}: {problem}"))
    root = project_root(spec_dir)
    resolved: list[ResolvedUpload] = []
    for share_index, share in enumerate(spec.storage.file_shares if spec.storage else ()):
        share_loc = ("storage", "file_shares", share_index)
        destinations: dict[str, KeyPath] = {}
        layout = ShareLayout()  # the spec's own paths were checked when it loaded; these add the files found here
        for directory_index, directory in enumerate(share.directories):
            layout.add(directory, False, (*share_loc, "directories", directory_index))
        for upload_index, upload in enumerate(share.uploads):
            loc = (*share_loc, "uploads", upload_index)
            problem = upload.destination_is_directory and layout.add(upload.destination.rstrip("/"), False, (*loc, "destination"))
            if problem:
                raise error_at((*loc, "destination"), problem)
            for local_path, destination in _expand(upload, spec_dir, root, loc, error_at, on_missing):
                if destination.lower() in destinations:
                    raise error_at(
                        (*loc, "destination"),
                        f"'{destination}' is also the destination of {format_key_path(destinations[destination.lower()])}",
                    )
                problem = path_problem(destination)
                if problem:
                    shown = _shown_local(local_path, spec_dir)
                    raise error_at((*loc, "source"), f"{shown} would be uploaded as '{destination}': {problem}")
                problem = layout.add(destination, True, (*loc, "destination"))
                if problem:
                    raise error_at((*loc, "destination"), problem)
                destinations[destination.lower()] = loc
                resolved.append(ResolvedUpload(share.name, destination, local_path, loc))
    return resolved


def _shown_local(local_path: Path, spec_dir: Path) -> str:
    """The local file as an error names it: relative to the spec's directory, like sources; quoted, or escaped
    when the name holds what cannot be printed."""
    path = os.path.relpath(local_path, spec_dir.resolve())
    return f"'{path}'" if path.isprintable() else ascii(path)


def _expand(upload: Upload, spec_dir: Path, root: Path, loc: KeyPath, error_at: ErrorAt, on_missing) -> list[tuple[Path, str]]:
    pattern = spec_dir / upload.source
    if not is_glob(upload.source):
        _check_inside(pattern, upload, root, loc, error_at)
        if pattern.is_dir():
            raise error_at((*loc, "source"), f"'{upload.source}' is a directory; upload its files with a glob such as '{upload.source.rstrip('/')}/**/*'")
        if not pattern.is_file():
            return _missing(upload, loc, error_at, on_missing)
        destination = upload.destination + pattern.name if upload.destination_is_directory else upload.destination
        return [(pattern.resolve(), destination)]
    base = _fixed_directory(pattern)
    files = [Path(match) for match in sorted(glob.glob(str(pattern), recursive=True)) if Path(match).is_file()]
    for file in files:
        _check_inside(file, upload, root, loc, error_at)
    if not files:
        return _missing(upload, loc, error_at, on_missing)
    return [(file.resolve(), upload.destination + PurePosixPath(*file.relative_to(base).parts).as_posix()) for file in files]


def _fixed_directory(pattern: Path) -> Path:
    """The leading directories of a glob pattern that hold no wildcard."""
    fixed = Path(pattern.anchor) if pattern.is_absolute() else Path()
    for part in pattern.parts[len(fixed.parts) :]:
        if is_glob(part):
            break
        fixed /= part
    return fixed


def _check_inside(path: Path, upload: Upload, root: Path, loc: KeyPath, error_at: ErrorAt) -> None:
    if not upload.allow_outside_spec_dir and not path.resolve().is_relative_to(root):
        raise error_at(
            (*loc, "source"),
            f"'{upload.source}' leads outside the project tree {root}; set allow_outside_spec_dir: true to allow it",
        )


def _missing(upload: Upload, loc: KeyPath, error_at: ErrorAt, on_missing) -> list:
    hint = f"; produce it with: {upload.produced_by}" if upload.produced_by else ""
    error = error_at((*loc, "source"), f"'{upload.source}' matches no file{hint}")
    if on_missing is None:
        raise error
    on_missing(error)
    return []
