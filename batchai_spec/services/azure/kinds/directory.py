"""directory.SHARE/PATH: a directory of a share the spec declares or an upload needs. Listing a share walks its
tree: the directories and files (batchai_spec/services/azure/kinds/file.py) of the spec, in one pipeline."""

from __future__ import annotations

import functools
import posixpath
from pathlib import PurePosixPath
from typing import Any

from batchai_spec.graph import Graph, SpecWalk
from batchai_spec.kinds import Cannot, Declaration, KeptInPlace, Kind
from batchai_spec.observed import Observed
from batchai_spec.parallel import Task, pipeline
from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.azure.errors import already_gone, already_there, service_call
from batchai_spec.services.azure.ownership import OWNER_METADATA, SHA256_METADATA
from batchai_spec.spec.storage import self_and_parents


def parent_of(share: str, path: str) -> str:
    """The address a directory or file of a share sits in: its directory, or the share at the top."""
    parent = posixpath.dirname(path)
    return f"directory.{share}/{parent}" if parent else f"file_share.{share}"


def known_parent(ids: dict[str, str], known: set[str]) -> str | None:
    """The container of a directory or file the spec no longer declares, if it is one the plan knows."""
    candidate = parent_of(ids["share"], ids["path"])
    return candidate if candidate in known else None


class Directory(Kind):
    name = "directory"
    address_keys = ("share", "path")
    parent = "file_share"
    read_under = "file_share"

    def parent_address(self, ids: dict[str, str], known: set[str]) -> str | None:
        return known_parent(ids, known)

    def declared(self, walk: SpecWalk):
        storage = walk.spec.storage
        if storage is None:
            return
        for index, share in enumerate(storage.file_shares):
            directories = set(share.implied_directories())
            for upload in walk.uploads:  # files a glob found in sub-directories
                if upload.share == share.name:
                    directories.update(self_and_parents(PurePosixPath(upload.destination).parent))
            for directory in sorted(directories):
                yield Declaration(
                    {"account": storage.account.name, "share": share.name, "path": directory},
                    ("storage", "file_shares", index, "directories"),
                    depends_on=(parent_of(share.name, directory),),
                )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        return {}

    update = Cannot("a directory has nothing to change: it is there or not")

    def list_under(self, connection: AzureConnection, share: Observed, graph: Graph) -> list[Observed]:
        """The share's tree, descending only into declared or owned directories, for a share the spec declares or
        owns (someone else's may hold any number of files, none of them ours).

        Not level by level: a directory is listed as soon as it is known to be ours (a declared one at once, beside
        the read of its metadata) and its entries are read as soon as it is listed, so no read waits for a round.
        """
        if not (share.owned or share.address in graph.resources):
            return []
        name = share.ids["share"]
        declared = {r.ids["path"] for r in graph.by_kind("directory") if r.ids["share"] == name}
        declared_files = {r.address for r in graph.by_kind("file")}
        client = connection.clients.share_service(share.ids["resource_group"], share.ids["account"]).get_share_client(name)
        found: list[Observed] = []  # list.append is atomic: the pipeline's threads add to it

        def list_directory(path: str) -> list[Task]:
            reads: list[Task] = []
            with service_call(f"directory.{name}/{path}", "listing"):
                entries = [
                    (item["name"], item["is_directory"])
                    for item in client.get_directory_client(path).list_directories_and_files()
                ]
            for entry, is_directory in entries:
                child = posixpath.join(path, entry) if path else entry
                if not is_directory:
                    reads.append(functools.partial(read_file, child))
                elif child in declared:
                    reads += [functools.partial(read_directory, child), functools.partial(list_directory, child)]
                else:
                    reads.append(functools.partial(read_directory, child))
            return reads

        def read_directory(path: str) -> list[Task]:
            address = f"directory.{name}/{path}"
            with service_call(address, "reading"):
                properties = client.get_directory_client(path).get_directory_properties()
            owned = (properties.metadata or {}).get(OWNER_METADATA) == connection.spec_name
            if path in declared or owned:
                found.append(Observed(address, "directory", {**share.ids, "path": path}, {}, owned=owned))
            return [functools.partial(list_directory, path)] if owned and path not in declared else []

        def read_file(path: str) -> list[Task]:
            address = f"file.{name}/{path}"
            with service_call(address, "reading"):
                properties = client.get_file_client(path).get_file_properties()
            metadata = properties.metadata or {}
            owned = metadata.get(OWNER_METADATA) == connection.spec_name
            if address in declared_files or owned:
                state = {"sha256": metadata.get(SHA256_METADATA), "size": properties.size}
                found.append(Observed(address, "file", {**share.ids, "path": path}, state, owned=owned))
            return []

        pipeline(functools.partial(list_directory, ""), connection.parallelism)
        return found

    def create(self, connection: AzureConnection, resource, progress=None) -> None:
        with already_there():
            connection.share(resource.ids).get_directory_client(resource.ids["path"]).create_directory(
                metadata={OWNER_METADATA: connection.spec_name}
            )

    def delete(self, connection: AzureConnection, live: Observed) -> None:
        ids = live.ids
        directory = connection.share(ids).get_directory_client(ids["path"])
        with already_gone():
            if any(True for _ in directory.list_directories_and_files()):
                raise KeptInPlace(f"directory.{ids['share']}/{ids['path']} holds files this spec did not create")
            directory.delete_directory()


DIRECTORY = Directory()
