"""Resources as the API returns them: stored body without its secrets, plus the server-owned fields.

As the real service did: storage `credentials` come back as `{}`, `adminUserPassword`, registry passwords and
instrumentation keys are omitted, secret environment variables come back with their names only; unset properties
are omitted rather than sent as null.
"""

from __future__ import annotations

from typing import Any

from batchai_spec.emulator.batchai import ids
from batchai_spec.emulator.batchai.models import TOOLKITS
from batchai_spec.emulator.batchai.store import Node, Resource

SECRET_KEYS = frozenset({"accountKey", "adminUserPassword", "password", "instrumentationKey"})
NODE_STATES = ("idle", "running", "preparing", "unusable", "leaving")


def without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            name: _secret_list(item) if name == "secrets" else without_secrets(item)
            for name, item in value.items()
            if name not in SECRET_KEYS
        }
    if isinstance(value, list):
        return [without_secrets(item) for item in value]
    return value


def _secret_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{name: item for name, item in entry.items() if name != "value"} for entry in items]


def _envelope(resource: Resource, properties: dict[str, Any]) -> dict[str, Any]:
    return {"id": resource.id, "name": resource.name, "type": ids.TYPES[resource.kind], "properties": properties}


def workspace_view(workspace: Resource) -> dict[str, Any]:
    view = _envelope(workspace, dict(workspace.status))
    view["location"] = workspace.body["location"]
    if workspace.body.get("tags") is not None:
        view["tags"] = workspace.body["tags"]
    return view


def experiment_view(experiment: Resource) -> dict[str, Any]:
    return _envelope(experiment, dict(experiment.status))


def file_server_view(file_server: Resource) -> dict[str, Any]:
    return _envelope(file_server, {**without_secrets(file_server.properties), **file_server.status})


def cluster_view(cluster: Resource, nodes: list[Node]) -> dict[str, Any]:
    counts = {f"{state}NodeCount": sum(1 for node in nodes if node.state == state) for state in NODE_STATES}
    properties = {
        **without_secrets(cluster.properties),
        **cluster.status,
        "currentNodeCount": len(nodes),
        "nodeStateCounts": counts,
    }
    if "setupOutputSuffix" in cluster.runtime:
        properties["nodeSetup"]["setupTask"]["stdOutErrPathSuffix"] = cluster.runtime["setupOutputSuffix"]
    errors = [error for node in nodes if node.state == "unusable" for error in node.runtime.get("errors", [])]
    if errors:
        properties["errors"] = errors
    return _envelope(cluster, properties)


def job_view(job: Resource) -> dict[str, Any]:
    tool_type = next(tool for name, tool in TOOLKITS.items() if name in job.properties)
    properties = {
        "experimentName": job.runtime["experimentName"],
        "toolType": tool_type,
        "jobOutputDirectoryPathSegment": job.runtime["outputSegment"],
        **without_secrets(job.properties),
        **job.status,
    }
    return _envelope(job, properties)
