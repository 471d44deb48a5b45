"""The resource provider's operation list and the per-region usage/quota report."""

from __future__ import annotations

from typing import Any

from batchai_spec.emulator.batchai import vm_sizes

_RESOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    # operation path -> (display name, verbs); "action" verbs are POSTs.
    "workspaces": ("Workspaces", ("read", "write", "delete")),
    "workspaces/clusters": ("Clusters", ("read", "write", "delete")),
    "workspaces/clusters/remotelogininformation": ("Remote login information", ("action",)),
    "workspaces/fileservers": ("File servers", ("read", "write", "delete")),
    "workspaces/experiments": ("Experiments", ("read", "write", "delete")),
    "workspaces/experiments/jobs": ("Jobs", ("read", "write", "delete")),
    "workspaces/experiments/jobs/terminate": ("Jobs", ("action",)),
    "workspaces/experiments/jobs/listoutputfiles": ("Jobs", ("action",)),
    "workspaces/experiments/jobs/remotelogininformation": ("Remote login information", ("action",)),
    "locations/usages": ("Usages", ("read",)),
    "locations/operationresults": ("Operation results", ("read",)),
    "locations/operationstatuses": ("Operation statuses", ("read",)),
    "operations": ("Operations", ("read",)),
}
_VERB_WORDS = {"read": "Gets", "write": "Creates or updates", "delete": "Deletes", "action": "Performs"}


def operations() -> list[dict[str, Any]]:
    listed = []
    for path, (display, verbs) in _RESOURCES.items():
        for verb in verbs:
            name = f"Microsoft.BatchAI/{path}/{verb}"
            listed.append({
                "name": name,
                "display": {
                    "provider": "Microsoft Batch AI",
                    "resource": display,
                    "operation": f"{_VERB_WORDS[verb]} {display.lower()}",
                    "description": f"{_VERB_WORDS[verb]} {display.lower()} ({name}).",
                },
                "origin": "user,system",
            })
    return listed


# Default quotas of a Batch AI subscription (quota-limits documentation); the emulator reports, never enforces them.
CLUSTER_LIMIT = 20
REGIONAL_VCPU_LIMIT = 600
FAMILY_VCPU_LIMIT = 24


def usages(cluster_count: int, cores_in_use: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    """`cores_in_use[(priority, family)]`: vCPUs of allocated nodes, priority `dedicated` or `lowpriority`."""

    def usage(name: str, localized: str, current: int, limit: int) -> dict[str, Any]:
        return {"unit": "Count", "currentValue": current, "limit": limit,
                "name": {"value": name, "localizedValue": localized}}

    report = [usage("Clusters", "Clusters", cluster_count, CLUSTER_LIMIT)]
    for priority, label, spaced in (("dedicated", "Dedicated", "Dedicated"), ("lowpriority", "LowPriority", "Low Priority")):
        total = sum(cores for (used_priority, _), cores in cores_in_use.items() if used_priority == priority)
        report.append(usage(f"Total Cluster {label} Regional vCPUs", f"Total Cluster {spaced} Regional vCPUs",
                            total, REGIONAL_VCPU_LIMIT))
        for family in vm_sizes.QUOTA_FAMILIES:
            report.append(usage(f"{family} Cluster {label} vCPUs", f"{family} Cluster {spaced} vCPUs",
                                cores_in_use.get((priority, family), 0), FAMILY_VCPU_LIMIT))
    return report
