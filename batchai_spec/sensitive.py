"""Write-only values (passwords, keys, secrets): carried through the graph and the plan without ever being shown.

The service never returns them, so drift is detected by comparing salted fingerprints: the fingerprint of what was
sent is stored with the resource (workspace tags, job environment) and compared with the fingerprint of the spec.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

MASK = "(sensitive)"


@dataclass(frozen=True)
class Sensitive:
    """A value that must never be printed. `value` is None when it is only known at apply time (a storage key)."""

    value: str | None = field(repr=False, compare=False)
    # Derived values (a storage account key read from ARM) follow the account, not the spec: no fingerprint.
    derived_from: str | None = None

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def fingerprint(self, salt: str, path: str) -> str:
        digest = hmac.new(salt.encode(), f"{path}\0{self.value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:12]


def sensitive_paths(tree: Any, prefix: str = "") -> dict[str, Sensitive]:
    """Every user-declared (not derived) Sensitive leaf of a nested dict/list, by dotted path."""
    found: dict[str, Sensitive] = {}
    if isinstance(tree, Sensitive):
        if tree.derived_from is None:
            found[prefix] = tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            found.update(sensitive_paths(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            # Named entries (secrets, environment variables) are keyed by name, so a rename counts as a change.
            key = value.get("name", index) if isinstance(value, dict) else index
            found.update(sensitive_paths(value, f"{prefix}[{key}]"))
    return found


def fingerprints(tree: Any, salt: str) -> str:
    """Per-path fingerprints in path order, compact enough for a 256-character ARM tag value."""
    return ".".join(secret.fingerprint(salt, path) for path, secret in sorted(sensitive_paths(tree).items()))


def changed_sensitive_paths(tree: Any, salt: str, stored: str | None) -> list[str]:
    """The write-only paths of `tree` whose fingerprint differs from the stored one (all, if the set changed)."""
    current = sorted(sensitive_paths(tree).items())
    previous = stored.split(".") if stored else []
    if len(previous) != len(current):
        return [path for path, _ in current] or ["(write-only values)"]
    return [path for (path, secret), old in zip(current, previous) if secret.fingerprint(salt, path) != old]


def masked(tree: Any) -> Any:
    """A copy safe to print or save: every Sensitive becomes the mask."""
    if isinstance(tree, Sensitive):
        return MASK
    if isinstance(tree, dict):
        return {key: masked(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [masked(value) for value in tree]
    return tree


def revealed(tree: Any, resolve_derived=None) -> Any:
    """A copy with the real values, for the SDK call that sends them (and nothing else)."""
    if isinstance(tree, Sensitive):
        if tree.value is None and resolve_derived is not None:
            return resolve_derived(tree.derived_from)
        return tree.value
    if isinstance(tree, dict):
        return {key: revealed(value, resolve_derived) for key, value in tree.items()}
    if isinstance(tree, list):
        return [revealed(value, resolve_derived) for value in tree]
    return tree


# Keys whose values the service never returns (credentials come back as {}): compared by fingerprint instead.
WRITE_ONLY_KEYS = frozenset({"account_key", "secrets", "admin_user_password", "instrumentation_key", "password"})


def without_write_only(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: without_write_only(value) for key, value in tree.items() if key not in WRITE_ONLY_KEYS}
    if isinstance(tree, list):
        return [without_write_only(value) for value in tree]
    return tree
