"""The storage account and its Azure File shares: directories to create and local files to upload."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError, model_validator

from batchai_spec.spec.base import Location, LocatedValueError, RelativePath, SpecModel, ensure_unique

StorageAccountName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{3,24}$")]
# Azure share names: 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.
ShareName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", min_length=3, max_length=63)]
GLOB_CHARACTERS = frozenset("*?[")
_share_path = TypeAdapter(RelativePath)


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
