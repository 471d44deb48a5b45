"""Upload sources: globs expand sorted, sources stay in the project tree, missing sources are located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchai_spec.spec import SpecError, load_spec, project_root, resolve_uploads
from tests.spec.sample import edited, write_spec


def project_with_spec(tmp_path: Path, uploads: str) -> Path:
    """tmp/project/{pyproject.toml, data/..., specs/spec.yaml}; returns the spec's path."""
    project = tmp_path / "project"
    (project / "specs").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    for relative in ("data/b.txt", "data/a.txt", "data/nested/c.txt", "data/skip.bin"):
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(relative)
    text = edited("      directories: [data]\n", "      directories: [data]\n      uploads:\n" + uploads)
    return write_spec(project / "specs", text)


def resolved(spec_path: Path, **options) -> list[tuple[str, str, str]]:
    loaded = load_spec(spec_path)
    uploads = resolve_uploads(loaded.spec, loaded.spec_dir, error_at=loaded.error, **options)
    return [(upload.share, upload.destination, upload.local_path.name) for upload in uploads]


def test_files_and_globs_expand_in_sorted_order(tmp_path):
    spec = project_with_spec(
        tmp_path,
        "        - {source: ../data/a.txt, destination: in/first.txt}\n"
        "        - {source: ../data/**/*.txt, destination: all/}\n"
        "        - {source: ../data/b.txt, destination: keep/}\n",
    )
    assert resolved(spec) == [
        ("share-one", "in/first.txt", "a.txt"),
        ("share-one", "all/a.txt", "a.txt"),
        ("share-one", "all/b.txt", "b.txt"),
        ("share-one", "all/nested/c.txt", "c.txt"),
        ("share-one", "keep/b.txt", "b.txt"),
    ]


def test_a_missing_source_is_a_located_error_or_a_reported_warning(tmp_path):
    spec = project_with_spec(tmp_path, "        - source: ../data/none-*.txt\n          destination: x/\n          produced_by: make data\n")
    with pytest.raises(SpecError) as raised:
        resolved(spec)
    assert raised.value.message == (
        f"{spec}:13:19: storage.file_shares[0].uploads[0].source: '../data/none-*.txt' matches no file; produce it with: make data"
    )
    warnings = []
    assert resolved(spec, on_missing=warnings.append) == []
    assert [warning.message for warning in warnings] == [raised.value.message]


def test_sources_outside_the_project_need_permission(tmp_path):
    (tmp_path / "outside.txt").write_text("x")
    spec = project_with_spec(tmp_path, "        - {source: ../../outside.txt, destination: o.txt}\n")
    with pytest.raises(SpecError, match=r"spec.yaml:13:20: .*leads outside the project tree .*allow_outside_spec_dir: true"):
        resolved(spec)
    allowed = project_with_spec(tmp_path / "again", "        - {source: ../../../outside.txt, destination: o.txt, allow_outside_spec_dir: true}\n")
    assert resolved(allowed) == [("share-one", "o.txt", "outside.txt")]


def test_a_symlink_out_of_the_project_is_outside(tmp_path):
    (tmp_path / "secret.txt").write_text("x")
    spec = project_with_spec(tmp_path, "        - {source: ../data/link.txt, destination: l.txt}\n")
    (spec.parent.parent / "data" / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(SpecError, match="leads outside the project tree"):
        resolved(spec)


def test_directory_sources_and_colliding_destinations_are_refused(tmp_path):
    spec = project_with_spec(tmp_path, "        - {source: ../data, destination: d/}\n")
    with pytest.raises(SpecError, match=r"is a directory; upload its files with a glob such as '../data/\*\*/\*'"):
        resolved(spec)
    spec = project_with_spec(
        tmp_path / "2", "        - {source: ../data/a.txt, destination: all/A.txt}\n        - {source: ../data/*.txt, destination: all/}\n"
    )
    with pytest.raises(SpecError, match=r"uploads\[1\].destination: 'all/a.txt' is also the destination of storage.file_shares\[0\].uploads\[0\]"):
        resolved(spec)
    # Spellings of one directory that differ in case are refused when the spec loads: Azure Files names ignore case.
    spec = project_with_spec(
        tmp_path / "3", "        - {source: ../data/a.txt, destination: all/a.txt}\n        - {source: ../data/*.txt, destination: ALL/}\n"
    )
    with pytest.raises(SpecError, match=r"uploads\[1\].destination: 'ALL' and 'all' \(at uploads\[0\].destination\) differ only in case"):
        load_spec(spec)


def test_project_root_is_the_nearest_marked_ancestor(tmp_path):
    (tmp_path / "repo" / "specs" / "deep").mkdir(parents=True)
    (tmp_path / "repo" / ".git").write_text("gitdir: elsewhere")  # a worktree's .git is a file
    assert project_root(tmp_path / "repo" / "specs" / "deep") == (tmp_path / "repo").resolve()
    (tmp_path / "plain").mkdir()
    assert project_root(tmp_path / "plain") == (tmp_path / "plain").resolve()


def test_the_sample_uploads_stay_inside_the_repository():
    loaded = load_spec("specs/mnist-cntk.yaml")
    warnings = []
    resolve_uploads(loaded.spec, loaded.spec_dir, error_at=loaded.error, on_missing=warnings.append)
    assert project_root(loaded.spec_dir) == Path.cwd().resolve()
