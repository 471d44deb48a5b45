"""Per kind, which field changes the API can make in place and which force a new resource (reference §6)."""

from __future__ import annotations

# kind -> field path prefixes that update in place; any other changed field forces replacement.
IN_PLACE = {
    "resource_group": ("tags",),
    "storage_account": ("tags", "sku"),
    "file_share": ("quota",),
    "directory": (),
    "file": ("sha256", "size"),
    "workspace": ("tags",),
    # Only the scale settings of a cluster have an update path (PATCH), manual <-> auto included.
    "cluster": ("scale_settings",),
    "experiment": (),
    # Jobs run to completion: any change means a new run.
    "job": (),
}


def forces_replacement(kind: str, path: str) -> bool:
    return not any(path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")
                   for prefix in IN_PLACE[kind])
