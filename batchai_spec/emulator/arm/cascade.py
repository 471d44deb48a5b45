"""What else goes when a resource group goes: modules owning resources inside groups register a hook here."""

from __future__ import annotations

from collections.abc import Callable

from batchai_spec.emulator.state import State

# hook(state, resource_group_name): delete everything the module keeps in that group (names compare
# case-insensitively). Hooks run inside the deleting transaction: `state.transaction()` in a hook joins it.
ResourceGroupHook = Callable[[State, str], None]

_HOOKS: list[ResourceGroupHook] = []


def on_resource_group_deleted(hook: ResourceGroupHook) -> ResourceGroupHook:
    """Register `hook` (usable as a decorator). Registering the same function twice has no effect."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)
    return hook


def delete_resource_group_contents(state: State, resource_group: str) -> None:
    for hook in _HOOKS:
        hook(state, resource_group)
