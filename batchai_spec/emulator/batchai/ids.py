"""ARM ids of Batch AI resources, their lookup keys and `type` strings.

ARM names are case-insensitive: rows are keyed by the lower-cased id and keep the casing used at creation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batchai_spec.emulator.batchai.errors import invalid
from batchai_spec.emulator.routing import ServiceError

PROVIDER = "Microsoft.BatchAI"
NAME_PATTERN = re.compile(r"^[-\w_]{1,64}$")

TYPES = {
    "workspace": "Microsoft.BatchAI/workspaces",
    "cluster": "Microsoft.BatchAI/workspaces/clusters",
    "fileserver": "Microsoft.BatchAI/workspaces/fileservers",
    "experiment": "Microsoft.BatchAI/workspaces/experiments",
    "job": "Microsoft.BatchAI/workspaces/experiments/jobs",
}

# The path segment under the parent for each child kind.
SEGMENTS = {"cluster": "clusters", "fileserver": "fileServers", "experiment": "experiments", "job": "jobs"}


def key(resource_id: str) -> str:
    return resource_id.lower()


def resource_group_id(subscription: str, resource_group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}"


def workspace_id(subscription: str, resource_group: str, workspace: str) -> str:
    return f"{resource_group_id(subscription, resource_group)}/providers/{PROVIDER}/workspaces/{workspace}"


def child_id(parent_id: str, kind: str, name: str) -> str:
    return f"{parent_id}/{SEGMENTS[kind]}/{name}"


def check_name(kind: str, name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise ServiceError(
            400, "InvalidResourceName",
            f"The {kind} name '{name}' is invalid: use 1 to 64 letters, digits, '-' and '_'.",
        )


@dataclass(frozen=True)
class ClusterRef:
    subscription: str
    resource_group: str
    workspace: str
    cluster: str

    @property
    def id(self) -> str:
        return child_id(workspace_id(self.subscription, self.resource_group, self.workspace), "cluster", self.cluster)


_CLUSTER_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<resource_group>[^/]+)/providers/Microsoft\.BatchAI"
    r"/workspaces/(?P<workspace>[^/]+)/clusters/(?P<cluster>[^/]+)/?$",
    re.IGNORECASE,
)


def parse_cluster_id(text: str, property_path: str) -> ClusterRef:
    match = _CLUSTER_ID.match(text)
    if match is None:
        raise invalid(property_path, "expected the ARM id of a Batch AI cluster")
    return ClusterRef(**match.groupdict())


def operation_resource_id(subscription: str, resource_group: str, *names: str) -> str:
    """`properties.resourceId` of an operation status document: the `$`-joined path, as the service wrote it."""
    return "$".join((subscription, resource_group, *names))
