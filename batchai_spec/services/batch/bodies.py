"""Spec models -> Azure Batch bodies: a pool (the ARM pool's `properties`) and a job with its one task, in snake_case
(the wire's camelCase through `wire`), with the service's defaults filled in so that a live read normalised the same
way compares equal; secrets stay `Sensitive`. How each Batch AI notion maps is README.md's "Two services" table."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from batchai_spec.errors import UserError
from batchai_spec.sensitive import Sensitive
from batchai_spec.spec.services import DEFAULT_BATCH_IMAGE, NODE_AGENTS
from batchai_spec.services.azure.endpoint import azure_file_url

RESIZE_TIMEOUT = "PT15M"  # the service's default, which it shows
EVALUATION_INTERVAL = "PT5M"  # the shortest the service allows
# Batch AI's job priorities on Batch's -1000..1000 scale.
PRIORITIES = {"low": -500, "normal": 0, "high": 500}
DEALLOCATION = {"requeue": "Requeue", "terminate": "Terminate", "waitforjobcompletion": "TaskCompletion"}
TASK_ID = "run"  # the one task of a job
LAUNCHER_DIRECTORY = ".batchai-spec"
LAUNCHER_PATH = f"{LAUNCHER_DIRECTORY}/launcher.py"
SECRETS_DIRECTORY = f"{LAUNCHER_DIRECTORY}/secrets"
LAUNCH_VARIABLE = "BATCHAI_SPEC_LAUNCH"
SETUP_VARIABLE = "BATCHAI_SPEC_SETUP"
MAX_ID = 64


def wire(tree: Any) -> Any:
    """snake_case keys -> the wire's camelCase (values untouched)."""
    if isinstance(tree, dict):
        return {_camel(key): wire(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [wire(value) for value in tree]
    return tree


def unwire(tree: Any) -> Any:
    """The wire's camelCase keys -> snake_case."""
    if isinstance(tree, dict):
        return {_snake(key): unwire(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [unwire(value) for value in tree]
    return tree


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def job_id(experiment: str, job: str) -> str:
    """The Batch job of a spec's job: `{experiment}-{job}` and a digest of both, shortened to Batch's 64 characters
    (ids are unique without case in an account, and names of any two experiments and jobs may run together)."""
    digest = hashlib.sha256(f"{experiment}/{job}".encode()).hexdigest()[:6]
    return f"{experiment}-{job}"[: MAX_ID - len(digest) - 1] + f"-{digest}"


def image(cluster) -> tuple[dict[str, str], str]:
    """(imageReference, nodeAgentSkuId) of a cluster: its image, or Batch's default (Ubuntu HPC 22.04); the node agent
    from the spec or from the table of supported images (validate refuses an image the table lacks without one)."""
    given = cluster.image
    if given is None:
        return dict(DEFAULT_BATCH_IMAGE), NODE_AGENTS[tuple(DEFAULT_BATCH_IMAGE[key] for key in ("publisher", "offer", "sku"))]
    if given.virtual_machine_image_id:
        reference = {"virtual_machine_image_id": given.virtual_machine_image_id}
    else:
        reference = {"publisher": given.publisher, "offer": given.offer, "sku": given.sku, "version": given.version}
    return reference, given.node_agent_sku_id or NODE_AGENTS[(given.publisher.lower(), given.offer.lower(), given.sku.lower())]


def autoscale_formula(auto, low_priority: bool) -> str:
    """Batch AI's auto scale (min..max nodes following the queued jobs) as a Batch formula over `$PendingTasks`
    (tasks waiting or running: a node per task, as Batch AI gave a job its nodes). Batch has no "initial" count:
    the first evaluation, at creation, sets the nodes the pending tasks need."""
    target = "$TargetLowPriorityNodes" if low_priority else "$TargetDedicatedNodes"
    return (
        f"// batchai-spec: {auto.minimum_node_count} to {auto.maximum_node_count} nodes, one per pending task\n"
        "$tasks = max(0, $PendingTasks.GetSample(1));\n"
        f"{target} = min({auto.maximum_node_count}, max({auto.minimum_node_count}, $tasks));\n"
        "$NodeDeallocationOption = taskcompletion;"
    )


def scale_settings(cluster) -> dict[str, Any]:
    low = cluster.vm_priority == "lowpriority"
    scale = cluster.scale
    if scale.manual is not None:
        count = scale.manual.target_node_count
        return {
            "fixed_scale": {
                "target_dedicated_nodes": 0 if low else count,
                "target_low_priority_nodes": count if low else 0,
                "resize_timeout": RESIZE_TIMEOUT,
                "node_deallocation_option": DEALLOCATION[scale.manual.node_deallocation_option],
            }
        }
    return {"auto_scale": {"formula": autoscale_formula(scale.auto, low), "evaluation_interval": EVALUATION_INTERVAL}}


def mount_configuration(volumes, account: str | None) -> list[dict[str, Any]]:
    """A cluster's Azure File shares as Batch mounts: a share of the spec with its account's key read from ARM at
    apply time, an external one with the key the spec gives (the other kinds are refused at validate time)."""
    mounts = []
    for mount in volumes.azure_file_shares if volumes is not None else ():
        if mount.share is not None:
            name, url = account, azure_file_url(account, mount.share)
            key = Sensitive(None, derived_from=f"storage_account_key:{account}")
        else:
            name, url = mount.account_name, mount.azure_file_url
            key = Sensitive(mount.account_key.get_secret_value() if mount.account_key else None)
        modes = f"dir_mode={mount.directory_mode},file_mode={mount.file_mode}"
        mounts.append(
            {
                "azure_file_share_configuration": {
                    "account_name": name,
                    "azure_file_url": url,
                    "account_key": key,
                    "relative_mount_path": mount.relative_mount_path,
                    "mount_options": f"-o vers=3.0,{modes},serverino",
                }
            }
        )
    return mounts


def _launcher_share_mount(cluster, spec):
    """The cluster's first mount of a share of the spec's storage: the launcher runs from there (validate makes sure
    there is one)."""
    shares = {share.name for share in spec.storage.file_shares} if spec.storage else set()
    volumes = cluster.node_setup.mount_volumes if cluster.node_setup else None
    for mount in volumes.azure_file_shares if volumes is not None else ():
        if mount.share in shares:
            return mount
    raise UserError(
        f"cluster {cluster.name}: Azure Batch runs jobs through a launcher that batchai-spec uploads to a file share "
        "the pool mounts: mount one of storage.file_shares in node_setup.mount_volumes"
    )


def launcher_mount(cluster, spec) -> str:
    """The relative mount path the cluster's nodes find the launcher under."""
    return _launcher_share_mount(cluster, spec).relative_mount_path


def launcher_share(cluster, spec) -> str:
    """The share that holds the cluster's launcher."""
    return _launcher_share_mount(cluster, spec).share


def launcher_command(mount: str, mode: str) -> str:
    """The command line that runs the launcher from the pool's mount of its share (Batch runs command lines without a
    shell: /bin/sh expands the mounts directory)."""
    return f'/bin/sh -c \'exec python3 "$AZ_BATCH_NODE_MOUNTS_DIR/{mount}/{LAUNCHER_PATH}" {mode}\''


def secrets_path(mount: str, name: str) -> str:
    """Where the launcher finds a secrets file, as a node sees it."""
    return f"$AZ_BATCHAI_MOUNT_ROOT/{mount}/{SECRETS_DIRECTORY}/{name}.json"


def description(value: dict[str, Any]) -> str:
    """A launch or setup description as the launcher reads it from its environment."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def wire_name(key: str) -> str:
    """A snake_case key as the wire spells it."""
    return _camel(key)


def launcher_shares(spec) -> dict[str, int]:
    """The shares that hold a launcher, each with the index of the first cluster that runs it from there."""
    shares: dict[str, int] = {}
    for index, cluster in enumerate(spec.clusters):
        try:
            shares.setdefault(launcher_share(cluster, spec), index)
        except UserError:
            continue  # refused at validate time (a cluster that mounts none of the spec's shares)
    return shares


def launcher_addresses(cluster, spec) -> tuple[str, str]:
    """The launcher file a cluster runs and the directory of secrets files beside it: created before the cluster's
    pool and jobs, deleted after them."""
    share = launcher_share(cluster, spec)
    return f"file.{share}/{LAUNCHER_PATH}", f"directory.{share}/{SECRETS_DIRECTORY}"


def secrets_file(cluster, spec, name: str) -> dict[str, str]:
    """Where a secrets file lies on its share (the launcher's), as the tool writes it."""
    return {"account": spec.storage.account.name, "share": launcher_share(cluster, spec), "path": f"{SECRETS_DIRECTORY}/{name}.json"}
