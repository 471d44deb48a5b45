"""SHA-256 of local files, remembered across commands while a file is unchanged on disk.

Plans compare upload sources with the SHA-256 recorded on the share; hashing gigabytes of data on every plan would
cost seconds. A file counts as unchanged while its size, modification time and change time (which no tool can set
back) are the same as when it was hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def user_cache_dir() -> Path:
    """batchai-spec's folder in the user's cache (XDG_CACHE_HOME, else ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "batchai-spec"


def default_cache_path() -> Path:
    return user_cache_dir() / "file-hashes.json"


class FileHashes:
    def __init__(self, path: Path | None = None):
        self.path = path or default_cache_path()
        self._lock = threading.Lock()
        self._changed = False
        try:
            self._entries: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._entries = {}

    def sha256(self, file: Path) -> str:
        key = str(file.resolve())
        stat = file.stat()
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[:4] == signature:
            return entry[4]
        digest = sha256_of(file)
        with self._lock:
            self._entries[key] = [*signature, digest]
            self._changed = True
        return digest

    def save(self) -> None:
        """Write the cache atomically; a cache that cannot be written only costs the next plan some hashing."""
        with self._lock:
            if not self._changed:
                return
            entries = {key: value for key, value in self._entries.items() if Path(key).exists()}
            self._changed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp") as handle:
                json.dump(entries, handle)
            os.replace(handle.name, self.path)
        except OSError:
            pass
