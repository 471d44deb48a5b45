"""Where the spec is applied: the embedded local emulator (default) or Azure itself."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken

from batchai_spec.errors import UserError
from batchai_spec.file_hashes import user_cache_dir

DEFAULT_STATE_DIR = ".batchai-spec"


class StaticTokenCredential:
    """The emulator's bearer token as an azure-core TokenCredential (no identity service exists locally)."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 24 * 3600)

    def __repr__(self) -> str:
        return "StaticTokenCredential(token=(sensitive))"


@dataclass(frozen=True)
class Target:
    kind: str  # "local" or "azure"
    description: str
    subscription_id: str
    arm_url: str
    credential: Any
    connection_verify: str | bool
    # Path-style file endpoint root on the emulator; None on Azure, where each account has its own host.
    storage_url: str | None
    polling_interval: float

    def file_endpoint(self, account: str) -> str:
        if self.storage_url:
            return f"{self.storage_url.rstrip('/')}/{account}"
        return f"https://{account}.file.core.windows.net"


_embedded: dict[Path, Any] = {}
_embedded_lock = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_endpoint(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / "endpoint.json"
    try:
        endpoint = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = endpoint.get("pid")
    if not isinstance(pid, int) or not _pid_alive(pid):
        return None
    return endpoint


def local_target(state_dir: Path) -> Target:
    """Use the emulator that serves `state_dir` if one runs; otherwise start one in this process."""
    state_dir = state_dir.resolve()
    endpoint = _read_endpoint(state_dir)
    origin = f"emulator serving {state_dir}"
    if endpoint is None:
        endpoint = _start_embedded(state_dir)
        origin = f"embedded emulator on {state_dir}"
    return Target(
        kind="local",
        description=origin,
        subscription_id=endpoint["subscription_id"],
        arm_url=endpoint["arm_url"],
        credential=StaticTokenCredential(endpoint["token"]),
        connection_verify=endpoint["ca_cert"],
        storage_url=endpoint["storage_url"],
        polling_interval=0.2,
    )


def _start_embedded(state_dir: Path) -> dict[str, Any]:
    # Imported here: only the local target needs the server side, and it is heavy to import.
    from batchai_spec.emulator.server import start_in_process

    with _embedded_lock:
        running = _embedded.get(state_dir)
        if running is None:
            try:
                state_dir.mkdir(parents=True, exist_ok=True)
                running = start_in_process(state_dir)
            except OSError as error:
                raise UserError(f"cannot start the local emulator on {state_dir}: {error}") from error
            _embedded[state_dir] = running
        return running.endpoint.to_json()


def azure_target() -> Target:
    subscription_id = os.environ.get("AZURE_SUBSCRIPTION_ID")
    if not subscription_id:
        raise UserError("the azure target needs AZURE_SUBSCRIPTION_ID (and credentials azure-identity can find)")
    from azure.identity import DefaultAzureCredential

    return Target(
        kind="azure",
        description=f"Azure subscription {subscription_id}",
        subscription_id=subscription_id,
        arm_url="https://management.azure.com",
        credential=DefaultAzureCredential(),
        connection_verify=True,
        storage_url=None,
        polling_interval=5.0,
    )


@dataclass(frozen=True)
class TargetChoice:
    """The target a command was pointed at, before anything is started or contacted."""

    kind: str
    state_dir: Path | None

    @property
    def lock_dir(self) -> Path:
        """Where locks of applies against this target live (engine/lock.py); known without connecting."""
        if self.kind == "local":
            return self.state_dir / "locks"
        return user_cache_dir() / "locks" / os.environ.get("AZURE_SUBSCRIPTION_ID", "default")

    def connect(self) -> Target:
        return local_target(self.state_dir) if self.kind == "local" else azure_target()


def choose_target(kind: str, state_dir: str | Path | None) -> TargetChoice:
    if kind == "local":
        chosen = state_dir or os.environ.get("BATCHAI_SPEC_STATE_DIR") or DEFAULT_STATE_DIR
        return TargetChoice("local", Path(chosen).resolve())
    if kind == "azure":
        return TargetChoice("azure", None)
    raise UserError(f"unknown backend {kind!r}: use 'local' or 'azure'")
