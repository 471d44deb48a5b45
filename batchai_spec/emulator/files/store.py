"""Shares, directories and files: contents as plain files on disk, properties and metadata in SQLite.

A share is the directory `files/ACCOUNT/SHARE` under the state dir, mirrored one to one, so a job that mounts the
share as a directory writes straight into it. Whatever is on disk is the truth about existence and size; a SQLite
row only adds what a file system cannot hold (content settings, metadata, a write counter for the ETag). Entries
written directly on disk have no row and get default properties.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from batchai_spec.emulator.clock import now
from batchai_spec.emulator.files.paths import RequestTarget, inside, valid_name
from batchai_spec.emulator.routing import ServiceError
from batchai_spec.emulator.state import State, register_schema

register_schema(
    "CREATE TABLE IF NOT EXISTS file_share_records (account TEXT NOT NULL, share TEXT NOT NULL, kind TEXT NOT NULL,"
    " key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (account, share, kind, key))"
)
register_schema(
    """
    CREATE TABLE IF NOT EXISTS file_shares (
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        quota INTEGER NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        modified_at REAL NOT NULL,
        serial INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, name)
    );
    CREATE TABLE IF NOT EXISTS file_entries (
        account TEXT NOT NULL,
        share TEXT NOT NULL,
        path TEXT NOT NULL,
        content_settings TEXT NOT NULL DEFAULT '{}',
        metadata TEXT NOT NULL DEFAULT '{}',
        serial INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, share, path)
    );
    """
)

DEFAULT_QUOTA_GIB = 5120
MAX_QUOTA_GIB = 102400
GIB = 1024**3
MAX_FILE_BYTES = 4 * 1024**4
# Share usage (the sum of its files' lengths, as ShareStats reports it) is costly to count on a large share, so a
# count is reused for this long, adjusted by the API's own size changes; a refusal always recounts first.
_USAGE_FRESH_S = 2.0
# Content settings a file keeps, by the name of the response header that returns each.
CONTENT_SETTINGS = (
    "Content-Type", "Content-Encoding", "Content-Language", "Content-Disposition", "Cache-Control", "Content-MD5",
)


@dataclass(frozen=True)
class Share:
    account: str
    name: str
    quota: int
    metadata: dict[str, str]
    modified_at: float
    serial: int
    directory: Path

    @property
    def etag(self) -> str:
        return f'"0x{int(self.modified_at * 1e7):X}{self.serial:04X}"'


@dataclass(frozen=True)
class Entry:
    """A directory or file of a share as the Files API reports it."""

    share: Share
    names: tuple[str, ...]
    path: Path
    is_directory: bool
    size: int
    modified_at: float
    created_at: float
    inode: int
    serial: int = 0
    content_settings: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def relative_path(self) -> str:
        return "/".join(self.names)

    @property
    def etag(self) -> str:
        return f'"0x{int(self.modified_at * 1e7):X}{self.serial:04X}"'


# --- shares -------------------------------------------------------------------------------------------------


def share_directory(state: State, account: str, share: str) -> Path:
    """The on-disk directory holding share `share` of `account`; LookupError if no such share exists."""
    return get_share(state, account, share, missing=LookupError).directory


def get_share(state: State, account: str, name: str, *, missing: type[Exception] | None = None) -> Share:
    row = state.connection().execute(
        "SELECT * FROM file_shares WHERE account = ? AND name = ?", (account, name)
    ).fetchone()
    if row is None:
        if missing is not None:
            raise missing(f"share {name} of account {account} does not exist")
        raise ServiceError(404, "ShareNotFound", "The specified share does not exist.")
    return _share(state, row)


def create_share(state: State, account: str, name: str, quota: int, metadata: dict[str, str]) -> Share:
    with state.transaction() as db:
        exists = db.execute("SELECT 1 FROM file_shares WHERE account = ? AND name = ?", (account, name)).fetchone()
        if exists:
            raise ServiceError(409, "ShareAlreadyExists", "The specified share already exists.")
        db.execute(
            "INSERT INTO file_shares (account, name, quota, metadata, modified_at) VALUES (?, ?, ?, ?, ?)",
            (account, name, quota, json.dumps(metadata), now()),
        )
        directory = _share_root(state, account, name)
        # A share deleted while a job kept files in it may have left the directory behind.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    _forget_usage(directory)
    return get_share(state, account, name)


def update_share(
    state: State, share: Share, *, quota: int | None = None, metadata: dict[str, str] | None = None
) -> Share:
    with state.transaction() as db:
        db.execute(
            "UPDATE file_shares SET quota = COALESCE(?, quota), metadata = COALESCE(?, metadata),"
            " modified_at = ?, serial = serial + 1 WHERE account = ? AND name = ?",
            (quota, None if metadata is None else json.dumps(metadata), now(), share.account, share.name),
        )
    return get_share(state, share.account, share.name)


def delete_share(state: State, share: Share) -> None:
    with state.transaction() as db:
        db.execute("DELETE FROM file_shares WHERE account = ? AND name = ?", (share.account, share.name))
        db.execute("DELETE FROM file_entries WHERE account = ? AND share = ?", (share.account, share.name))
        db.execute("DELETE FROM file_share_records WHERE account = ? AND share = ?", (share.account, share.name))
    shutil.rmtree(share.directory, ignore_errors=True)
    _forget_usage(share.directory)


def share_record(state: State, share: Share, kind: str, key: str) -> str | None:
    """A record a share keeps besides its files (its access policies, its SDDL permissions by key)."""
    row = state.connection().execute(
        "SELECT value FROM file_share_records WHERE account = ? AND share = ? AND kind = ? AND key = ?",
        (share.account, share.name, kind, key),
    ).fetchone()
    return None if row is None else row["value"]


def save_share_record(state: State, share: Share, kind: str, key: str, value: str) -> None:
    with state.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO file_share_records (account, share, kind, key, value) VALUES (?, ?, ?, ?, ?)",
            (share.account, share.name, kind, key, value),
        )


def list_shares(state: State, account: str, prefix: str, marker: str) -> list[Share]:
    rows = state.connection().execute(
        "SELECT * FROM file_shares WHERE account = ? AND name >= ? ORDER BY name", (account, marker)
    ).fetchall()
    return [_share(state, row) for row in rows if row["name"].startswith(prefix)]


def share_usage_bytes(share: Share) -> int:
    total = 0
    for directory, _, files in os.walk(share.directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                continue
    return total


# --- quota --------------------------------------------------------------------------------------------------
#
# As on Azure, a file's length counts against its share's quota from the moment it is created or resized (a
# 990 MiB Create File with no content fills a 1 GiB share); writing ranges inside that length costs nothing more.
# A change that would take the share past its quota is refused with 403 ShareSizeLimitReached. Files a job writes
# straight into a mounted share count once they exist but cannot be refused.

_usage_lock = threading.Lock()
_usage: dict[Path, tuple[float, int]] = {}  # share directory -> (when counted, bytes)


def _charge(share: Share, growth: int) -> None:
    """Reserve `growth` bytes of the share's quota (refusing past it); negative growth frees. Call with the lock."""
    counted = _usage.get(share.directory)
    if growth <= 0:
        if counted is not None:
            _usage[share.directory] = (counted[0], counted[1] + growth)
        return
    limit = share.quota * GIB
    if counted is None or time.monotonic() - counted[0] > _USAGE_FRESH_S or counted[1] + growth > limit:
        counted = (time.monotonic(), share_usage_bytes(share))
    _usage[share.directory] = counted
    if counted[1] + growth > limit:
        raise ServiceError(
            403, "ShareSizeLimitReached",
            f"The specified share is full: {counted[1]} of its {share.quota} GiB quota are used and the request"
            f" needs {growth} bytes more.",
        )
    _usage[share.directory] = (counted[0], counted[1] + growth)


def _forget_usage(directory: Path) -> None:
    with _usage_lock:
        for path in [path for path in _usage if path == directory or directory in path.parents]:
            del _usage[path]


def check_file_size(size: int, header: str = "x-ms-content-length") -> None:
    if size > MAX_FILE_BYTES:
        raise ServiceError(
            400, "InvalidHeaderValue", "The file size exceeds the 4 TiB limit of a file.",
            details={"HeaderName": header, "HeaderValue": str(size)},
        )


def forget_account(state: State, account: str) -> None:
    """Delete every share of `account` (the account itself is gone)."""
    with state.transaction() as db:
        db.execute("DELETE FROM file_shares WHERE account = ?", (account,))
        db.execute("DELETE FROM file_entries WHERE account = ?", (account,))
    shutil.rmtree(state.files_root / account, ignore_errors=True)
    _forget_usage(state.files_root / account)


# --- directories and files ----------------------------------------------------------------------------------


def find_entry(state: State, share: Share, names: tuple[str, ...]) -> Entry | None:
    path = inside(share.directory, names)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        return None
    row = state.connection().execute(
        "SELECT * FROM file_entries WHERE account = ? AND share = ? AND path = ?",
        (share.account, share.name, "/".join(names)),
    ).fetchone()
    return Entry(
        share=share,
        names=names,
        path=path,
        is_directory=stat.S_ISDIR(info.st_mode),
        size=0 if stat.S_ISDIR(info.st_mode) else info.st_size,
        modified_at=info.st_mtime,
        created_at=min(info.st_ctime, info.st_mtime),
        inode=info.st_ino,
        serial=row["serial"] if row else 0,
        content_settings=json.loads(row["content_settings"]) if row else {},
        metadata=json.loads(row["metadata"]) if row else {},
    )


def require_entry(state: State, share: Share, names: tuple[str, ...], *, directory: bool) -> Entry:
    """The directory or file at `names`: 404 ParentNotFound when the directory it would be in is missing (as
    Azure answers), ResourceNotFound when it alone is."""
    entry = find_entry(state, share, names) if names else _share_root_entry(state, share)
    if entry is None or entry.is_directory != directory:
        if entry is None and len(names) > 1:
            require_parent(state, share, names)
        raise ServiceError(404, "ResourceNotFound", "The specified resource does not exist.")
    return entry


def require_target(state: State, target: RequestTarget, *, directory: bool) -> Entry:
    """The existing directory or file a request names (404 ShareNotFound / ResourceNotFound otherwise)."""
    return require_entry(state, get_share(state, target.account, target.share), target.names, directory=directory)


def require_parent(state: State, share: Share, names: tuple[str, ...]) -> None:
    parent = find_entry(state, share, names[:-1]) if len(names) > 1 else _share_root_entry(state, share)
    if parent is None or not parent.is_directory:
        raise ServiceError(404, "ParentNotFound", "The specified parent path does not exist.")


def create_directory(state: State, share: Share, names: tuple[str, ...], metadata: dict[str, str]) -> Entry:
    if not names:
        raise ServiceError(409, "ResourceAlreadyExists", "The specified resource already exists.")
    require_parent(state, share, names)
    path = inside(share.directory, names)
    try:
        path.mkdir()
    except FileExistsError:
        existing = find_entry(state, share, names)
        if existing is not None and not existing.is_directory:
            raise ServiceError(409, "ResourceTypeMismatch", "The specified resource type does not match.") from None
        raise ServiceError(409, "ResourceAlreadyExists", "The specified resource already exists.") from None
    _save_row(state, share, names, content_settings={}, metadata=metadata)
    return require_entry(state, share, names, directory=True)


def delete_directory(state: State, entry: Entry) -> None:
    if not entry.names:
        raise ServiceError(400, "InvalidUri", "The root directory of a share cannot be deleted.")
    try:
        entry.path.rmdir()
    except OSError:
        raise ServiceError(409, "DirectoryNotEmpty", "The specified directory is not empty.") from None
    _forget_row(state, entry)


def create_file(
    state: State, share: Share, names: tuple[str, ...], size: int, content_settings: dict[str, str],
    metadata: dict[str, str], content: bytes = b"",
) -> Entry:
    """A new file of `size` bytes: `content` from offset 0, zeros (sparse) after it. An existing file is replaced,
    as the service does. Refused when the share's quota cannot hold `size` more bytes (less the replaced file)."""
    check_file_size(size)
    require_parent(state, share, names)
    path = inside(share.directory, names)
    if path.is_dir():
        raise ServiceError(409, "ResourceTypeMismatch", "The specified resource type does not match.")
    with _usage_lock:
        try:
            existing = os.lstat(path)
            replaced = existing.st_size if stat.S_ISREG(existing.st_mode) else 0
        except FileNotFoundError:
            replaced = 0
        _charge(share, size - replaced)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(descriptor, size)
            _write_all(descriptor, 0, content)
        finally:
            os.close(descriptor)
    _save_row(state, share, names, content_settings=content_settings, metadata=metadata)
    return require_entry(state, share, names, directory=False)


def write_range(state: State, entry: Entry, offset: int, data: bytes) -> Entry:
    """Bytes inside the file's length (the caller checks): the length, and so the quota used, does not change."""
    descriptor = os.open(entry.path, os.O_WRONLY)
    try:
        _write_all(descriptor, offset, data)
    finally:
        os.close(descriptor)
    return touch(state, entry)


def _write_all(descriptor: int, offset: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written


def read_range(entry: Entry, start: int, end: int) -> bytes:
    """Bytes `start`..`end` inclusive."""
    with open(entry.path, "rb") as handle:
        handle.seek(start)
        return handle.read(end - start + 1)


def resize_file(entry: Entry, size: int) -> None:
    """Set the file's length (refused past the 4 TiB file limit or the share's quota)."""
    check_file_size(size)
    with _usage_lock:
        _charge(entry.share, size - os.lstat(entry.path).st_size)
        os.truncate(entry.path, size)


def touch(
    state: State, entry: Entry, *, content_settings: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Entry:
    """Record a write: a new ETag and Last-Modified, and new settings or metadata when given."""
    os.utime(entry.path)
    _save_row(state, entry.share, entry.names, content_settings=content_settings, metadata=metadata)
    return require_entry(state, entry.share, entry.names, directory=entry.is_directory)


def rename_entry(state: State, source: Entry, names: tuple[str, ...], *, replace: bool) -> Entry:
    """Rename File / Rename Directory: move `source` within its share to `names`, its stored settings and metadata
    (and a directory's whole tree) with it. An existing destination is replaced only when asked and only by a file
    over a file (409 ResourceAlreadyExists otherwise)."""
    share = source.share
    if not names or (source.is_directory and names[: len(source.names)] == source.names):
        raise ServiceError(400, "InvalidResourceName", "A directory cannot be moved into itself or onto the root.")
    require_parent(state, share, names)
    existing = find_entry(state, share, names)
    if existing is not None and (not replace or existing.is_directory or source.is_directory):
        raise ServiceError(409, "ResourceAlreadyExists", "The specified resource already exists.")
    old, new = source.relative_path, "/".join(names)
    os.replace(source.path, inside(share.directory, names))
    with state.transaction() as db:
        db.execute("DELETE FROM file_entries WHERE account = ? AND share = ? AND path = ?", (share.account, share.name, new))
        # The entry's row, and for a directory the rows of everything under it (`old/...`), take the new path.
        db.execute(
            "UPDATE file_entries SET path = ? || substr(path, ?) WHERE account = ? AND share = ?"
            " AND (path = ? OR substr(path, 1, ?) = ?)",
            (new, len(old) + 1, share.account, share.name, old, len(old) + 1, old + "/"),
        )
    return require_entry(state, share, names, directory=source.is_directory)


def delete_file(state: State, entry: Entry) -> None:
    with _usage_lock:
        try:
            size = os.lstat(entry.path).st_size
            entry.path.unlink()
        except FileNotFoundError:
            size = 0
        _charge(entry.share, -size)
    _forget_row(state, entry)


def list_directory(state: State, directory: Entry, prefix: str, marker: str) -> list[Entry]:
    """Entries of `directory` whose names start with `prefix`, from `marker` on, in name order."""
    try:
        names = sorted(
            name for name in os.listdir(directory.path)
            if name.startswith(prefix) and name >= marker and valid_name(name)
        )
    except FileNotFoundError:
        return []
    entries = []
    for name in names:
        try:
            entry = find_entry(state, directory.share, directory.names + (name,))
        except ServiceError:
            continue  # a link leading out of the share
        if entry is not None:
            entries.append(entry)
    return entries


# --- rows ---------------------------------------------------------------------------------------------------


def _save_row(
    state: State, share: Share, names: tuple[str, ...], *, content_settings: dict[str, str] | None,
    metadata: dict[str, str] | None,
) -> None:
    """Bump the entry's write counter, replacing settings or metadata only where given (None keeps them)."""
    settings_json = None if content_settings is None else json.dumps(content_settings)
    metadata_json = None if metadata is None else json.dumps(metadata)
    with state.transaction() as db:
        db.execute(
            "INSERT INTO file_entries (account, share, path, content_settings, metadata, serial)"
            " VALUES (?, ?, ?, COALESCE(?, '{}'), COALESCE(?, '{}'), 1) ON CONFLICT (account, share, path) DO UPDATE"
            " SET content_settings = COALESCE(?, content_settings), metadata = COALESCE(?, metadata),"
            " serial = serial + 1",
            (share.account, share.name, "/".join(names), settings_json, metadata_json, settings_json, metadata_json),
        )


def _forget_row(state: State, entry: Entry) -> None:
    with state.transaction() as db:
        db.execute(
            "DELETE FROM file_entries WHERE account = ? AND share = ? AND path = ?",
            (entry.share.account, entry.share.name, entry.relative_path),
        )


def _share_root_entry(state: State, share: Share) -> Entry | None:
    return find_entry(state, share, ())


def _share_root(state: State, account: str, name: str) -> Path:
    return state.files_root / account / name


def _share(state: State, row) -> Share:
    return Share(
        account=row["account"],
        name=row["name"],
        quota=row["quota"],
        metadata=json.loads(row["metadata"]),
        modified_at=row["modified_at"],
        serial=row["serial"],
        directory=_share_root(state, row["account"], row["name"]),
    )
