"""The storage account and its Azure File shares: directories to create and local files to upload."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError, model_validator

from batchai_spec.spec.base import KeyPath, Location, LocatedValueError, RelativePath, SpecModel, ensure_unique, format_key_path

StorageAccountName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{3,24}$")]
# Azure share names: 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.
ShareName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", min_length=3, max_length=63)]
GLOB_CHARACTERS = frozenset("*?[")
_share_path = TypeAdapter(RelativePath)

# What Azure Files refuses in a directory or file name ("Naming and referencing shares, directories, files, and
# metadata"): these characters, control characters, unpaired surrogates (not Unicode), names of more than 255
# characters, DOS device names; names ending in a dot or a space cannot be reached through an SMB mount. The local
# emulator keeps names as file names, so it also refuses names of more than 255 bytes in UTF-8.
_AZURE_FILES_REFUSED = '"\\:|<>*?'
_REFUSED_CHARACTER = re.compile(r'[\x00-\x1f\x7f"\\:|<>*?\ud800-\udfff]')
_CONTROL_OR_SURROGATE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CLOCK$", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}
)
MAX_NAME_LENGTH = 255
MAX_SHARE_PATH_LENGTH = 2048
_SHOWN_NAME_LENGTH = 40


def shown_name(name: str) -> str:
    """A name as an error quotes it: control characters and surrogates escaped, long names cut."""
    text = _CONTROL_OR_SURROGATE.sub(lambda match: ascii(match.group())[1:-1], name[:_SHOWN_NAME_LENGTH])
    return text + ("..." if len(name) > _SHOWN_NAME_LENGTH else "")


def name_problem(name: str, *, azure_files: bool = True) -> str | None:
    """Why one directory or file name cannot be created, or None. `azure_files=False`: only what any mounted
    Linux file system refuses (control characters, invalid Unicode, more than 255 bytes)."""
    refused = (_REFUSED_CHARACTER if azure_files else _CONTROL_OR_SURROGATE).search(name)
    if refused:
        character = refused.group()
        if "\ud800" <= character <= "\udfff":
            return f"the name '{shown_name(name)}' holds {ascii(character)[1:-1]}, an unpaired surrogate, which is not valid Unicode"
        if character not in _AZURE_FILES_REFUSED:
            return (
                f"the name '{shown_name(name)}' holds the control character {ascii(character)[1:-1]}; "
                "names may hold no control character"
            )
        return f"the name '{shown_name(name)}' holds '{character}'; Azure Files refuses names holding any of \" \\ : | < > * ?"
    if azure_files and len(name) > MAX_NAME_LENGTH:
        return f"the name '{shown_name(name)}' is {len(name)} characters long; Azure Files allows at most {MAX_NAME_LENGTH}"
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_LENGTH:
        return (
            f"the name '{shown_name(name)}' is {size} bytes long in UTF-8; at most {MAX_NAME_LENGTH}"
            + (" (the local emulator keeps names as file names)" if azure_files else "")
        )
    if azure_files and name[-1:] in (".", " "):
        ending = "a dot" if name[-1] == "." else "a space"
        return f"the name '{shown_name(name)}' ends with {ending}; Azure Files refuses names ending in a dot or a space"
    if azure_files and name.upper() in _RESERVED_NAMES:
        return f"'{name}' is a reserved device name, which Azure Files refuses (CON, PRN, AUX, NUL, CLOCK$, COM1-COM9, LPT1-LPT9)"
    return None


def path_problem(path: str, *, azure_files: bool = True) -> str | None:
    """Why a relative path of names (`a/b/c`) cannot be created, or None; see name_problem."""
    if azure_files and len(path) > MAX_SHARE_PATH_LENGTH:
        return f"the path is {len(path)} characters long; Azure Files allows at most {MAX_SHARE_PATH_LENGTH}"
    if path.startswith("/"):
        return "expected a relative path (no leading '/')"
    for name in path.split("/"):
        if not name:
            return "the path has an empty name (a doubled '/')"
        if name in (".", ".."):
            return "a path may not contain '.' or '..' segments"
        problem = name_problem(name, azure_files=azure_files)
        if problem:
            return problem
    return None


class ShareLayout:
    """The directories and files one share will hold, to refuse what Azure Files would: two spellings of one name
    (its names are case-insensitive) and a name that is a file in one place and a directory in another.

    A tree of names, so that adding a path costs its length, whatever the paths added before.
    """

    def __init__(self) -> None:
        self._root: dict[str, _LayoutEntry] = {}

    def add(self, path: str, is_file: bool, loc: KeyPath) -> str | None:
        """Record `path` (and its parent directories) declared at `loc`; the problem with it, or None."""
        if not path:
            return None
        names = path.split("/")
        children = self._root
        for depth, name in enumerate(names):
            file = is_file and depth == len(names) - 1
            entry = children.setdefault(name.lower(), _LayoutEntry(name, file, loc))
            if entry.name != name or entry.file != file:
                here = "/".join(names[: depth + 1])
                if entry.name != name:
                    there = "/".join([*names[:depth], entry.name])
                    return (
                        f"'{here}' and '{there}' (at {format_key_path(entry.loc)}) differ only in case; Azure Files "
                        "names are case-insensitive, so both name one entry: spell them alike"
                    )
                kinds = ("a file", "a directory") if file else ("a directory", "a file")
                return f"'{here}' is {kinds[0]} here and {kinds[1]} at {format_key_path(entry.loc)}; a share cannot hold both"
            children = entry.children
        return None


class _LayoutEntry:
    __slots__ = ("children", "file", "loc", "name")

    def __init__(self, name: str, file: bool, loc: KeyPath) -> None:
        self.name, self.file, self.loc = name, file, loc
        self.children: dict[str, _LayoutEntry] = {}


def is_glob(source: str) -> bool:
    return any(character in GLOB_CHARACTERS for character in source)


class StorageAccount(SpecModel):
    name: StorageAccountName = Field(description="Storage account name: 3-24 lowercase letters and digits, globally unique in Azure.")
    sku: Literal[
        "Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Standard_GZRS", "Standard_RAGZRS", "Premium_LRS", "Premium_ZRS"
    ] = Field("Standard_LRS", description="Replication SKU of the account.")
    kind: Literal["StorageV2", "Storage", "FileStorage"] = Field(
        "StorageV2", description="Account kind; FileStorage needs a Premium SKU."
    )
    location: Location | None = Field(None, description="Azure region; defaults to the resource group's location.")
    existing: bool = Field(
        False, description="true: the account exists already; the spec references it and never creates nor deletes it."
    )

    @model_validator(mode="after")
    def _file_storage_is_premium(self) -> StorageAccount:
        if self.kind == "FileStorage" and not self.sku.startswith("Premium_"):
            raise LocatedValueError(("sku",), "kind FileStorage needs a Premium_LRS or Premium_ZRS sku")
        return self


class Upload(SpecModel):
    source: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="Local file or glob (sorted, `**` recurses), relative to the spec file's directory."
    )
    destination: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(
        description='Path of the file inside the share, or of a directory ending in "/" (required for globs): '
        "files go there under their path relative to the glob's fixed leading directories."
    )
    allow_outside_spec_dir: bool = Field(
        False,
        description="Allow a source outside the spec's project tree (the nearest ancestor of the spec file holding "
        ".git or pyproject.toml, else the spec's directory).",
    )
    produced_by: str | None = Field(
        None, description="How to produce the source when it is still missing (shown in the warning), e.g. a command."
    )

    @model_validator(mode="after")
    def _destination_shape(self) -> Upload:
        directory = self.destination_is_directory
        path = self.destination.rstrip("/") if directory else self.destination
        if is_glob(self.source) and not directory:
            raise LocatedValueError(("destination",), 'a glob source needs a directory destination ending in "/"')
        if path:
            problem = path_problem(path)
            if problem:
                raise LocatedValueError(("destination",), problem)
            try:
                _share_path.validate_python(path)
            except ValidationError as problem:
                raise LocatedValueError(("destination",), problem.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return self

    @property
    def destination_is_directory(self) -> bool:
        return self.destination.endswith("/")


class FileShare(SpecModel):
    name: ShareName = Field(description="Share name: 3-63 lowercase letters, digits and single hyphens.")
    quota_gb: int = Field(5120, ge=1, le=5120, description="Quota in GiB (Azure's default for a standard share: 5120).")
    directories: tuple[RelativePath, ...] = Field(
        (), description="Directories to create inside the share; parents are implied (a/b implies a)."
    )
    uploads: tuple[Upload, ...] = Field((), description="Local files to upload into the share.")

    @model_validator(mode="after")
    def _unique_destinations(self) -> FileShare:
        files = [
            (("uploads", index, "destination"), upload.destination)
            for index, upload in enumerate(self.uploads)
            if not upload.destination_is_directory
        ]
        ensure_unique(files, "upload destination")
        layout = ShareLayout()
        for index, directory in enumerate(self.directories):
            problem = path_problem(directory) or layout.add(directory, False, ("directories", index))
            if problem:
                raise LocatedValueError(("directories", index), problem)
        for index, upload in enumerate(self.uploads):
            path = upload.destination.rstrip("/")
            problem = path and layout.add(path, not upload.destination_is_directory, ("uploads", index, "destination"))
            if problem:
                raise LocatedValueError(("uploads", index, "destination"), problem)
        return self

    def implied_directories(self) -> tuple[str, ...]:
        """Every directory the share must hold, sorted parents first: declared ones, their parents, and the
        directories upload destinations name or sit in (files under a glob's sub-directories come at plan time)."""
        paths: set[str] = set()
        for declared in self.directories:
            paths.update(self_and_parents(PurePosixPath(declared)))
        for upload in self.uploads:
            destination = PurePosixPath(upload.destination.rstrip("/") or ".")
            paths.update(self_and_parents(destination if upload.destination_is_directory else destination.parent))
        return tuple(sorted(paths, key=lambda path: (path.count("/"), path)))


def self_and_parents(path: PurePosixPath) -> list[str]:
    """'a/b/c' -> ['a/b/c', 'a/b', 'a']."""
    return [str(part) for part in (path, *path.parents) if str(part) != "."]


class Storage(SpecModel):
    account: StorageAccount = Field(description="The storage account holding the file shares.")
    file_shares: tuple[FileShare, ...] = Field((), description="Azure File shares of the account.")

    @model_validator(mode="after")
    def _unique_shares(self) -> Storage:
        ensure_unique(((("file_shares", index, "name"), share.name) for index, share in enumerate(self.file_shares)), "file share")
        return self
