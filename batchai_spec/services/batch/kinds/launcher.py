"""The launcher on Azure Batch: batchai-spec's node-side script (`batchai_spec/services/batch/launcher/launcher.py`),
uploaded to `.batchai-spec/launcher.py` on each share a pool runs it from, beside `.batchai-spec/secrets/`. They are
the spec's directories and files like any other (the share's walk finds them, destroy deletes them), so these
adapters are Azure Files' with those added to what the spec declares."""

from __future__ import annotations

from pathlib import Path

from batchai_spec.graph import SpecWalk
from batchai_spec.kinds import Declaration
from batchai_spec.services.azure.kinds.directory import Directory, parent_of
from batchai_spec.services.azure.kinds.file import File
from batchai_spec.services.batch.bodies import LAUNCHER_DIRECTORY, LAUNCHER_PATH, SECRETS_DIRECTORY, launcher_shares

SOURCE = Path(__file__).resolve().parent.parent / "launcher" / "launcher.py"


class LauncherDirectories(Directory):
    def declared(self, walk: SpecWalk):
        declared = list(super().declared(walk))
        yield from declared
        known = {(d.ids["share"], d.ids["path"]) for d in declared}
        for share, cluster_index in launcher_shares(walk.spec).items():
            for path in (LAUNCHER_DIRECTORY, SECRETS_DIRECTORY):
                if (share, path) not in known:
                    yield Declaration(
                        {"account": walk.spec.storage.account.name, "share": share, "path": path},
                        ("clusters", cluster_index),
                        depends_on=(parent_of(share, path),),
                    )


class LauncherFile(File):
    def declared(self, walk: SpecWalk):
        yield from super().declared(walk)
        for share, cluster_index in launcher_shares(walk.spec).items():
            yield Declaration(
                {"account": walk.spec.storage.account.name, "share": share, "path": LAUNCHER_PATH},
                ("clusters", cluster_index),
                depends_on=(parent_of(share, LAUNCHER_PATH),),
                extra={"source": SOURCE},
            )


DIRECTORY = LauncherDirectories()
FILE = LauncherFile()
