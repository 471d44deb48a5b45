"""Live Batch AI SDK models -> the shape of the desired bodies (bodies.py): server-owned fields dropped, defaults
and order canonical."""

from __future__ import annotations

import datetime
from typing import Any

import isodate
from azure.mgmt.batchai import models

from batchai_spec.graph import prune
from batchai_spec.sensitive import without_write_only
from batchai_spec.services.batchai.bodies import ALL_IPS
from batchai_spec.services.batchai.ownership import JOB_INTERNAL_ENV

_CLUSTER_FIELDS = set(models.ClusterCreateParameters._attribute_map)
_JOB_FIELDS = set(models.JobCreateParameters._attribute_map)
_FILE_SERVER_FIELDS = set(models.FileServerCreateParameters._attribute_map)


def _sorted_by(items: list[dict[str, Any]] | None, key: str) -> list[dict[str, Any]] | None:
    return sorted(items, key=lambda item: item.get(key) or "") if items else items


def cluster_body(cluster: models.Cluster) -> dict[str, Any]:
    body = {key: value for key, value in cluster.as_dict().items() if key in _CLUSTER_FIELDS}
    setup_task = (body.get("node_setup") or {}).get("setup_task")
    if setup_task:
        setup_task.pop("std_out_err_path_suffix", None)
        setup_task["environment_variables"] = _sorted_by(setup_task.get("environment_variables"), "name")
    if body.get("vm_size"):
        body["vm_size"] = body["vm_size"].upper()
    return prune(without_write_only(body))


def job_body(job: models.Job) -> tuple[dict[str, Any], dict[str, str]]:
    """The job's body and the internal environment variables this tool added to it (owner, fingerprints)."""
    body = {key: value for key, value in job.as_dict().items() if key in _JOB_FIELDS}
    internal: dict[str, str] = {}
    environment = []
    for variable in body.get("environment_variables") or []:
        if variable["name"] in JOB_INTERNAL_ENV:
            internal[variable["name"]] = variable.get("value") or ""
        else:
            environment.append(variable)
    body["environment_variables"] = _sorted_by(environment, "name")
    body["input_directories"] = _sorted_by(body.get("input_directories"), "id")
    body["output_directories"] = _sorted_by(body.get("output_directories"), "id")
    constraints = body.get("constraints") or {}
    wall_clock = constraints.get("max_wall_clock_time")
    if isinstance(wall_clock, datetime.timedelta):
        constraints["max_wall_clock_time"] = isodate.duration_isoformat(wall_clock)
    return prune(without_write_only(body)), internal


def file_server_body(server: models.FileServer) -> dict[str, Any]:
    """The server's body; SSH allowed from anywhere when the service names no ranges (its documented default)."""
    body = {key: value for key, value in server.as_dict().items() if key in _FILE_SERVER_FIELDS}
    if body.get("vm_size"):
        body["vm_size"] = body["vm_size"].upper()
    ssh = body.get("ssh_configuration") or {}
    if ssh and not ssh.get("public_ips_to_allow"):
        ssh["public_ips_to_allow"] = list(ALL_IPS)
    return prune(without_write_only(body))
