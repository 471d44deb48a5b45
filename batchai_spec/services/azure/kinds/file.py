"""file.SHARE/PATH: an upload. Its content is its sha256, recorded as metadata once every range is written, so an
unchanged file is never uploaded again and a half-written one is not taken for finished. Found by the walk of its
share (batchai_spec/services/azure/kinds/directory.py)."""

from __future__ import annotations

from typing import Any

from batchai_spec.graph import Resource, SpecWalk
from batchai_spec.kinds import Declaration, Kind, Policy, ProgressHook
from batchai_spec.observed import Observed
from batchai_spec.services.azure.connection import AzureConnection
from batchai_spec.services.azure.errors import already_gone
from batchai_spec.services.azure.kinds.directory import known_parent, parent_of
from batchai_spec.services.azure.ownership import OWNER_METADATA, SHA256_METADATA


class File(Kind):
    name = "file"
    address_keys = ("share", "path")
    parent = "directory"
    fields = {"sha256": Policy.UPDATE, "size": Policy.UPDATE}
    found_with = "directory"
    write_verb = "upload"

    def parent_address(self, ids: dict[str, str], known: set[str]) -> str | None:
        return known_parent(ids, known)

    def declared(self, walk: SpecWalk):
        storage = walk.spec.storage
        if storage is None:
            return
        for upload in walk.uploads:
            yield Declaration(
                {"account": storage.account.name, "share": upload.share, "path": upload.destination},
                upload.loc,
                upload,
                depends_on=(parent_of(upload.share, upload.destination),),
                extra={"source": upload.local_path},
            )

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        source = declaration.extra["source"]
        return {"sha256": walk.sha256(source), "size": source.stat().st_size}

    def status(self, live: Observed) -> tuple[str, str]:
        return "present", f"{live.state.get('size', 0):,} bytes"

    def create(self, connection: AzureConnection, resource: Resource, progress: ProgressHook | None = None) -> None:
        size = resource.desired["size"]
        client = connection.share(resource.ids).get_file_client(resource.ids["path"])
        metadata = {OWNER_METADATA: connection.spec_name}
        with open(resource.extra["source"], "rb") as stream:
            client.upload_file(
                stream,
                length=size,
                metadata=metadata,
                max_concurrency=4,
                progress_hook=(lambda done, total: progress(done, size)) if progress else None,
            )
        # The file is created at its full size before its ranges are written: its checksum is recorded only once
        # every range is there, so an upload that was interrupted half way is not taken for a finished one.
        client.set_file_metadata({**metadata, SHA256_METADATA: resource.desired["sha256"]})

    # A changed file is uploaded again over the old one.
    update = create

    def delete(self, connection: AzureConnection, live: Observed) -> None:
        with already_gone():
            connection.share(live.ids).get_file_client(live.ids["path"]).delete_file()


FILE = File()
