import hashlib
import os

from batchai_spec.file_hashes import FileHashes


def test_a_file_is_hashed_once_while_unchanged_and_again_when_rewritten(tmp_path):
    data = tmp_path / "data.txt"
    data.write_bytes(b"first")
    cache = tmp_path / "cache" / "hashes.json"
    assert FileHashes(cache).sha256(data) == hashlib.sha256(b"first").hexdigest()
    FileHashes(cache).save()  # nothing new: nothing written

    hashes = FileHashes(cache)
    hashes.sha256(data)
    hashes.save()
    remembered = FileHashes(cache)
    assert remembered._entries[str(data.resolve())][4] == hashlib.sha256(b"first").hexdigest()

    # Same size, modification time set back: the change time still tells the file was written.
    stat = data.stat()
    data.write_bytes(b"other")
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert remembered.sha256(data) == hashlib.sha256(b"other").hexdigest()


def test_an_unwritable_or_corrupt_cache_only_costs_hashing(tmp_path):
    data = tmp_path / "data.txt"
    data.write_bytes(b"x")
    corrupt = tmp_path / "hashes.json"
    corrupt.write_text("{not json")
    hashes = FileHashes(corrupt)
    assert hashes.sha256(data) == hashlib.sha256(b"x").hexdigest()
    blocked = FileHashes(tmp_path / "data.txt" / "cannot" / "be.json")
    blocked.sha256(data)
    blocked.save()  # no error
