"""Azure VM sizes Batch AI clusters used: cores and GPUs per node, and the quota family they count against."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VmSize:
    cores: int
    gpus: int
    family: str  # quota family as the usages API names it, e.g. "Standard NC Family"


def _family(family: str, sizes: dict[str, tuple[int, int]]) -> dict[str, VmSize]:
    return {name: VmSize(cores, gpus, family) for name, (cores, gpus) in sizes.items()}


VM_SIZES: dict[str, VmSize] = {
    **_family("Standard D Family", {
        "STANDARD_D1": (1, 0), "STANDARD_D2": (2, 0), "STANDARD_D3": (4, 0), "STANDARD_D4": (8, 0),
        "STANDARD_D11": (2, 0), "STANDARD_D12": (4, 0), "STANDARD_D13": (8, 0), "STANDARD_D14": (16, 0),
    }),
    **_family("Standard Dv2 Family", {
        "STANDARD_D1_V2": (1, 0), "STANDARD_D2_V2": (2, 0), "STANDARD_D3_V2": (4, 0),
        "STANDARD_D4_V2": (8, 0), "STANDARD_D5_V2": (16, 0), "STANDARD_D11_V2": (2, 0),
        "STANDARD_D12_V2": (4, 0), "STANDARD_D13_V2": (8, 0), "STANDARD_D14_V2": (16, 0),
        "STANDARD_D15_V2": (20, 0),
    }),
    **_family("Standard NC Family", {
        "STANDARD_NC6": (6, 1), "STANDARD_NC12": (12, 2), "STANDARD_NC24": (24, 4), "STANDARD_NC24R": (24, 4),
    }),
    **_family("Standard NCv2 Family", {
        "STANDARD_NC6S_V2": (6, 1), "STANDARD_NC12S_V2": (12, 2), "STANDARD_NC24S_V2": (24, 4),
        "STANDARD_NC24RS_V2": (24, 4),
    }),
    **_family("Standard NCv3 Family", {
        "STANDARD_NC6S_V3": (6, 1), "STANDARD_NC12S_V3": (12, 2), "STANDARD_NC24S_V3": (24, 4),
        "STANDARD_NC24RS_V3": (24, 4),
    }),
    **_family("Standard ND Family", {
        "STANDARD_ND6S": (6, 1), "STANDARD_ND12S": (12, 2), "STANDARD_ND24S": (24, 4), "STANDARD_ND24RS": (24, 4),
    }),
    **_family("Standard NV Family", {
        "STANDARD_NV6": (6, 1), "STANDARD_NV12": (12, 2), "STANDARD_NV24": (24, 4),
    }),
}

QUOTA_FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(size.family for size in VM_SIZES.values()))

# Batch AI refused these: A0 is too small, and the DS/GS series need premium storage it did not support.
_REFUSED_PREFIXES = ("STANDARD_DS", "STANDARD_GS")
_REFUSED_SIZES = {"STANDARD_A0", "BASIC_A0"}


def refusal_reason(vm_size: str) -> str | None:
    """Why Batch AI would not create nodes of this (upper-cased) size, or None when it would."""
    if vm_size in _REFUSED_SIZES:
        return f"The VM size {vm_size} is too small for Batch AI clusters"
    if vm_size.startswith(_REFUSED_PREFIXES):
        return f"The VM size {vm_size} needs premium storage, which Batch AI clusters do not support"
    return None


def lookup(vm_size: str) -> VmSize:
    """Known sizes by table; any other size is a CPU-only single-core node outside the quota families."""
    return VM_SIZES.get(vm_size.upper(), VmSize(cores=1, gpus=0, family=""))
