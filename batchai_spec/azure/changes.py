"""Create, update and delete each kind of resource through the SDKs. Every operation is idempotent: running it
again after an interruption finishes the work without duplicating it."""

from __future__ import annotations

import contextlib
import secrets as random_tokens
import threading
from typing import Any, Callable

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.batchai import models as batchai_models
from azure.mgmt.storage import models as storage_models

from batchai_spec.azure import runs
from batchai_spec.azure.clients import Clients
from batchai_spec.graph import Resource
from batchai_spec.observed import Observed
from batchai_spec.ownership import (
    JOB_FINGERPRINT_ENV,
    JOB_INPUTS_ENV,
    JOB_OWNER_ENV,
    OWNER_METADATA,
    SALT_TAG,
    SHA256_METADATA,
    child_record,
    child_tag,
    owner_tags,
)
from batchai_spec.sensitive import fingerprints, revealed

ProgressHook = Callable[[int, int], None]


# Deleting what is gone, or creating what an interrupted run already made, is the state wanted: idempotent steps.
def already_gone():
    return contextlib.suppress(ResourceNotFoundError)


def already_there():
    return contextlib.suppress(ResourceExistsError)


class DirectoryNotEmpty(Exception):
    """A directory this spec created holds files it did not create (job outputs): it is left in place."""


class Changes:
    """The write half of the adapters, for one spec against one target."""

    def __init__(self, clients: Clients, spec_name: str, observed: dict[str, Observed]):
        self.clients = clients
        self.spec_name = spec_name
        self.observed = observed
        self._workspace_lock = threading.Lock()
        self._workspace_tags: dict[tuple[str, str], dict[str, str]] = {}
        for live in observed.values():
            if live.kind == "workspace" and live.exists:
                self._workspace_tags[(live.ids["resource_group"], live.ids["workspace"])] = dict(live.meta["tags"])

    # -- helpers --------------------------------------------------------------------------------------------------

    def _reveal(self, resource: Resource) -> dict[str, Any]:
        def derived(source: str) -> str:
            _, account = source.split(":", 1)
            return self.clients.account_key(resource.ids["resource_group"], account)

        return revealed(resource.desired, derived)

    def _share(self, ids: dict[str, str]):
        resource_group = ids.get("resource_group") or self._resource_group_of_account(ids["account"])
        return self.clients.share_service(resource_group, ids["account"]).get_share_client(ids["share"])

    def _resource_group_of_account(self, account: str) -> str:
        for live in self.observed.values():
            if live.kind == "storage_account" and live.ids["account"] == account:
                return live.ids["resource_group"]
        raise KeyError(account)

    def salt(self, resource_group: str, workspace: str) -> str:
        """The workspace's fingerprint salt; an adopted workspace (created without this tool) gets one now."""
        self._set_workspace_tags(resource_group, workspace, lambda t: t.setdefault(SALT_TAG, random_tokens.token_hex(8)))
        with self._workspace_lock:
            return self._workspace_tags[(resource_group, workspace)][SALT_TAG]

    def _set_workspace_tags(self, resource_group: str, workspace: str, change: Callable[[dict[str, str]], None]) -> None:
        """Read-modify-write of the workspace's tags, serialised: clusters and experiments record ownership there."""
        with self._workspace_lock:
            tags = dict(self._workspace_tags[(resource_group, workspace)])
            change(tags)
            if tags != self._workspace_tags[(resource_group, workspace)]:
                self.clients.batchai.workspaces.update(
                    resource_group, workspace, batchai_models.WorkspaceUpdateParameters(tags=tags)
                )
                self._workspace_tags[(resource_group, workspace)] = tags

    @staticmethod
    def _merged_tags(declared: dict[str, str], live: dict[str, str] | None, owned: bool, spec: str) -> dict[str, str]:
        tags = dict(live or {})
        tags.update(declared)
        if owned:
            tags.update(owner_tags(spec))
        return tags

    # -- resource groups and storage accounts -------------------------------------------------------------------

    def create_resource_group(self, resource: Resource) -> None:
        tags = self._merged_tags(resource.desired["tags"], None, True, self.spec_name)
        self.clients.resource.resource_groups.create_or_update(
            resource.ids["resource_group"], {"location": resource.desired["location"], "tags": tags}
        )

    def update_resource_group(self, resource: Resource) -> None:
        name = resource.ids["resource_group"]
        group = self.clients.resource.resource_groups.get(name)
        tags = self._merged_tags(resource.desired["tags"], group.tags, self.observed[resource.address].owned, self.spec_name)
        self.clients.resource.resource_groups.update(name, {"tags": tags})

    def delete_resource_group(self, ids: dict[str, str]) -> None:
        with already_gone():
            self.clients.resource.resource_groups.begin_delete(ids["resource_group"]).result()

    def create_storage_account(self, resource: Resource) -> None:
        desired = resource.desired
        parameters = storage_models.StorageAccountCreateParameters(
            sku=storage_models.Sku(name=desired["sku"]),
            kind=desired["kind"],
            location=desired["location"],
            tags=self._merged_tags(desired["tags"], None, True, self.spec_name),
        )
        self.clients.forget_account(resource.ids["account"])
        self.clients.storage.storage_accounts.begin_create(
            resource.ids["resource_group"], resource.ids["account"], parameters
        ).result()

    def update_storage_account(self, resource: Resource) -> None:
        ids, desired = resource.ids, resource.desired
        account = self.clients.storage.storage_accounts.get_properties(ids["resource_group"], ids["account"])
        parameters = storage_models.StorageAccountUpdateParameters(
            sku=storage_models.Sku(name=desired["sku"]),
            tags=self._merged_tags(desired["tags"], account.tags, self.observed[resource.address].owned, self.spec_name),
        )
        self.clients.storage.storage_accounts.update(ids["resource_group"], ids["account"], parameters)

    def delete_storage_account(self, ids: dict[str, str]) -> None:
        self.clients.storage.storage_accounts.delete(ids["resource_group"], ids["account"])
        self.clients.forget_account(ids["account"])

    # -- Azure Files ----------------------------------------------------------------------------------------------

    def create_file_share(self, resource: Resource) -> None:
        share = self._share(resource.ids)
        try:
            share.create_share(quota=resource.desired["quota"], metadata={OWNER_METADATA: self.spec_name})
        except ResourceExistsError:
            # Created by an interrupted run (its owner metadata set in the same call): only the quota may differ.
            share.set_share_quota(resource.desired["quota"])

    def update_file_share(self, resource: Resource) -> None:
        self._share(resource.ids).set_share_quota(resource.desired["quota"])

    def delete_file_share(self, ids: dict[str, str]) -> None:
        with already_gone():
            self._share(ids).delete_share(delete_snapshots=True)

    def create_directory(self, resource: Resource) -> None:
        with already_there():
            self._share(resource.ids).get_directory_client(resource.ids["path"]).create_directory(
                metadata={OWNER_METADATA: self.spec_name}
            )

    def delete_directory(self, ids: dict[str, str]) -> None:
        directory = self._share(ids).get_directory_client(ids["path"])
        with already_gone():
            if any(True for _ in directory.list_directories_and_files()):
                raise DirectoryNotEmpty(f"directory.{ids['share']}/{ids['path']} holds files this spec did not create")
            directory.delete_directory()

    def upload_file(self, resource: Resource, progress: ProgressHook | None = None) -> None:
        source = resource.extra["source"]
        size = resource.desired["size"]
        client = self._share(resource.ids).get_file_client(resource.ids["path"])
        metadata = {OWNER_METADATA: self.spec_name}
        with open(source, "rb") as stream:
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

    def delete_file(self, ids: dict[str, str]) -> None:
        with already_gone():
            self._share(ids).get_file_client(ids["path"]).delete_file()

    # -- Batch AI -------------------------------------------------------------------------------------------------

    def create_workspace(self, resource: Resource) -> None:
        ids, desired = resource.ids, resource.desired
        tags = self._merged_tags(desired["tags"], None, True, self.spec_name)
        tags[SALT_TAG] = random_tokens.token_hex(8)
        workspace = self.clients.batchai.workspaces.begin_create(
            ids["resource_group"],
            ids["workspace"],
            batchai_models.WorkspaceCreateParameters(location=desired["location"], tags=tags),
        ).result()
        with self._workspace_lock:
            self._workspace_tags[(ids["resource_group"], ids["workspace"])] = dict(workspace.tags or tags)

    def update_workspace(self, resource: Resource) -> None:
        declared = resource.desired["tags"]
        self._set_workspace_tags(resource.ids["resource_group"], resource.ids["workspace"], lambda t: t.update(declared))

    def delete_workspace(self, ids: dict[str, str]) -> None:
        with already_gone():
            self.clients.batchai.workspaces.begin_delete(ids["resource_group"], ids["workspace"]).result()
        with self._workspace_lock:
            self._workspace_tags.pop((ids["resource_group"], ids["workspace"]), None)

    def create_cluster(self, resource: Resource) -> None:
        ids = resource.ids
        salt = self.salt(ids["resource_group"], ids["workspace"])
        stored = child_record(self.spec_name, fingerprints(resource.desired, salt))
        # Ownership is recorded first: a run interrupted after the create still knows the cluster is its own.
        self._set_workspace_tags(
            ids["resource_group"], ids["workspace"], lambda t: t.update({child_tag("cluster", ids["cluster"]): stored})
        )
        parameters = batchai_models.ClusterCreateParameters.from_dict(self._reveal(resource))
        self.clients.batchai.clusters.begin_create(ids["resource_group"], ids["workspace"], ids["cluster"], parameters).result()

    def update_cluster(self, resource: Resource) -> None:
        ids = resource.ids
        scale = batchai_models.ScaleSettings.from_dict(resource.desired["scale_settings"])
        self.clients.batchai.clusters.update(
            ids["resource_group"], ids["workspace"], ids["cluster"], batchai_models.ClusterUpdateParameters(scale_settings=scale)
        )

    def delete_cluster(self, ids: dict[str, str]) -> None:
        with already_gone():
            self.clients.batchai.clusters.begin_delete(ids["resource_group"], ids["workspace"], ids["cluster"]).result()
        self._set_workspace_tags(
            ids["resource_group"], ids["workspace"], lambda t: t.pop(child_tag("cluster", ids["cluster"]), None)
        )

    def create_experiment(self, resource: Resource) -> None:
        ids = resource.ids
        self._set_workspace_tags(
            ids["resource_group"], ids["workspace"], lambda t: t.update({child_tag("experiment", ids["experiment"]): child_record(self.spec_name)})
        )
        self.clients.batchai.experiments.begin_create(ids["resource_group"], ids["workspace"], ids["experiment"]).result()

    def delete_experiment(self, ids: dict[str, str]) -> None:
        with already_gone():
            self.clients.batchai.experiments.begin_delete(ids["resource_group"], ids["workspace"], ids["experiment"]).result()
        self._set_workspace_tags(
            ids["resource_group"], ids["workspace"], lambda t: t.pop(child_tag("experiment", ids["experiment"]), None)
        )

    def create_job(self, resource: Resource) -> None:
        ids = resource.ids
        body = self._reveal(resource)
        salt = self.salt(ids["resource_group"], ids["workspace"])
        body["environment_variables"] = list(body.get("environment_variables", [])) + [
            {"name": JOB_OWNER_ENV, "value": self.spec_name},
            {"name": JOB_FINGERPRINT_ENV, "value": fingerprints(resource.desired, salt)},
            {"name": JOB_INPUTS_ENV, "value": resource.extra["inputs_digest"]},
        ]
        parameters = batchai_models.JobCreateParameters.from_dict(body)
        self.clients.batchai.jobs.begin_create(
            ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"], parameters
        ).result()

    def terminate_job(self, ids: dict[str, str]) -> None:
        with already_gone():
            self.clients.batchai.jobs.begin_terminate(
                ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"]
            ).result()

    def delete_job(self, ids: dict[str, str]) -> None:
        """Deletes the job; first its run's end (state, exit code, start, end) is written on the run's directory on
        the share, which outlives the job, for `outputs` to show. A retry records the same again."""
        try:
            job = self.clients.batchai.jobs.get(ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"])
        except ResourceNotFoundError:
            return  # already gone
        self._record_run(job, ids)
        with already_gone():
            self.clients.batchai.jobs.begin_delete(
                ids["resource_group"], ids["workspace"], ids["experiment"], ids["job"]
            ).result()

    def _record_run(self, job: batchai_models.Job, ids: dict[str, str]) -> None:
        """A run directory, share, account or cluster that is gone leaves nothing to record on, and a record the
        share refuses is not worth keeping the job for: the delete goes on either way."""

        def resource_group_of(account: str) -> str | None:
            try:
                return self._resource_group_of_account(account)
            except KeyError:
                return None

        with contextlib.suppress(HttpResponseError):  # ResourceNotFoundError included
            layout, run_id = runs.live_layout(
                self.clients, job, f"job.{ids['experiment']}/{ids['job']}", resource_group_of
            )
            if run_id:
                runs.record_run(self.clients, layout, run_id, runs.run_record(job))
