"""Where the spec is applied: the local emulator (default) or Azure itself.

The local endpoint is one `batchai-spec emulator serve` per state dir, shared by every command that names that dir:
the first command starts it in the background (its own session, its output in DIR/emulator.log), later ones find
it through DIR/endpoint.json, and it stops by itself once idle (no job, no request, no command attached; see
batchai_spec/emulator/endpoint.py for the files). This module never imports the emulator's server code.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchai_spec.emulator.endpoint import (
    CLIENTS_FILE,
    LOG_FILE,
    live_endpoint,
    lock_holder,
    pid_alive,
)
from batchai_spec.errors import UserError
from batchai_spec.emulator.endpoint import Endpoint as EmulatorAddress
from batchai_spec.file_hashes import user_cache_dir

if TYPE_CHECKING:
    import subprocess

DEFAULT_STATE_DIR = ".batchai-spec"
# How long an emulator that a command started waits, idle, before it stops (a duration: 5m, 1h, 0 for never).
IDLE_TIMEOUT_VARIABLE = "BATCHAI_SPEC_EMULATOR_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = "5m"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_LOG_KEPT_BYTES = 1 << 20  # a longer log is moved to emulator.log.1 when the next emulator starts


class StaticTokenCredential:
    """The emulator's bearer token as an azure-core TokenCredential (no identity service exists locally)."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 24 * 3600)

    def __repr__(self) -> str:
        return "StaticTokenCredential(token=(sensitive))"


def log_path(state_dir: Path) -> Path:
    return state_dir / LOG_FILE


class EmulatorStopped(UserError):
    """The local emulator this command was using is gone: no retry can reach it."""

    def __init__(self, state_dir: Path):
        super().__init__(
            f"The local emulator serving {state_dir} stopped (its log: {log_path(state_dir)}). Run the same command "
            "again to resume: it starts a new emulator, and what is already done is not done again."
        )


class LocalEmulator:
    """This command's hold on the emulator serving a state dir: a shared lock on DIR/clients.lock (the emulator
    does not stop for idleness while a command holds it), the endpoint it uses, and the emulator's process when
    this command started it (so that its death is seen at once, before it is reaped)."""

    def __init__(self, state_dir: Path, endpoint: EmulatorAddress, lock_fd: int, process: subprocess.Popen | None):
        self.state_dir = state_dir
        self.endpoint = endpoint
        self._lock_fd: int | None = lock_fd
        self._process = process

    def serving(self) -> bool:
        """Whether the emulator this command connected to still serves (its process lives, its endpoint stands)."""
        if self._process is not None and self._process.poll() is not None:
            return False
        current = live_endpoint(self.state_dir)
        return current is not None and (current.pid, current.arm_url) == (self.endpoint.pid, self.endpoint.arm_url)

    def check(self) -> None:
        """Raise EmulatorStopped if the emulator is gone (a failed request is then final, not one to retry)."""
        if not self.serving():
            raise EmulatorStopped(self.state_dir)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit; the descriptor closes with the process anyway
            pass

    def __repr__(self) -> str:
        return f"LocalEmulator({self.state_dir}, pid={self.endpoint.pid})"


@dataclass(frozen=True)
class Endpoint:
    kind: str  # "local" or "azure"
    description: str
    subscription_id: str
    arm_url: str
    credential: Any
    connection_verify: str | bool
    # Path-style file endpoint root on the emulator; None on Azure, where each account has its own host.
    storage_url: str | None
    polling_interval: float
    # The local endpoint's emulator, to tell a dead one from a failed request; None on Azure.
    emulator: LocalEmulator | None = field(default=None, compare=False)
    # The emulator's Azure Batch data plane root (account A at f"{batch_url}/A"); None on Azure, where each account
    # has its own host (its accountEndpoint).
    batch_url: str | None = None

    def file_endpoint(self, account: str) -> str:
        if self.storage_url:
            return f"{self.storage_url.rstrip('/')}/{account}"
        return f"https://{account}.file.core.windows.net"

    def batch_endpoint(self, account: str, account_endpoint: str) -> str:
        """Where a Batch account's data plane answers: on Azure its accountEndpoint (`{account}.{region}.batch.azure.com`,
        without scheme as ARM gives it)."""
        if self.batch_url:
            return f"{self.batch_url.rstrip('/')}/{account}"
        return account_endpoint if "://" in account_endpoint else f"https://{account_endpoint}"


def azure_file_url(account: str, share: str) -> str:
    """The URL a cluster or pool mounts a share by, in Azure's form on every endpoint (the emulator takes it too, so
    plans match across endpoints)."""
    return f"https://{account}.file.core.windows.net/{share}"


# The emulators this process started, by state dir: their death is seen through the child's exit status.
_started: dict[Path, subprocess.Popen] = {}


def local_endpoint(state_dir: Path) -> Endpoint:
    """The emulator serving `state_dir`: the running one, or one started in the background for it."""
    state_dir = state_dir.resolve()
    lock_fd = _attach(state_dir)
    try:
        endpoint = live_endpoint(state_dir) or _start(state_dir)
    except BaseException:
        os.close(lock_fd)
        raise
    process = _started.get(state_dir)
    emulator = LocalEmulator(state_dir, endpoint, lock_fd, process if process and process.pid == endpoint.pid else None)
    return Endpoint(
        kind="local",
        description=f"emulator serving {state_dir}",
        subscription_id=endpoint.subscription_id,
        arm_url=endpoint.arm_url,
        credential=StaticTokenCredential(endpoint.token),
        connection_verify=endpoint.ca_cert,
        storage_url=endpoint.storage_url,
        polling_interval=0.2,
        emulator=emulator,
        batch_url=endpoint.batch_url or None,
    )


def _attach(state_dir: Path) -> int:
    """A shared lock on DIR/clients.lock, held while this command uses the state dir's emulator."""
    if state_dir.exists() and not state_dir.is_dir():
        raise UserError(f"--state-dir {state_dir} exists and is not a directory.")
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(state_dir / CLIENTS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise UserError(f"cannot use the state dir {state_dir}: {error.strerror or error}") from None
    # Blocks only while an idle emulator withdraws its endpoint (it holds the lock exclusively for an instant).
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    return descriptor


def idle_timeout_setting() -> str:
    """The idle timeout of the emulators commands start, in seconds (BATCHAI_SPEC_EMULATOR_IDLE_TIMEOUT)."""
    from batchai_spec.durations import parse_duration

    text = os.environ.get(IDLE_TIMEOUT_VARIABLE) or DEFAULT_IDLE_TIMEOUT
    try:
        return f"{parse_duration(text):g}"
    except ValueError as error:
        raise UserError(f"{IDLE_TIMEOUT_VARIABLE}: {error}") from None


def _start(state_dir: Path) -> EmulatorAddress:
    """Start `emulator serve` in the background and wait for its endpoint. Several commands may do this at once:
    the emulator that takes the state dir's lock serves, the others exit at once and every command uses the one
    that serves. An emulator that is stopping (it holds the lock, its endpoint is gone) is waited for first."""
    idle_timeout = idle_timeout_setting()
    deadline = time.monotonic() + START_TIMEOUT_S
    delay = 0.01
    process: subprocess.Popen | None = None
    while True:
        endpoint = live_endpoint(state_dir)
        if endpoint is not None:
            return endpoint
        if process is not None and process.poll() not in (None, 0):  # 0: another emulator had the lock
            code = process.returncode
            raise UserError(_did_not_start(state_dir, f"exit code {code}" if code > 0 else f"signal {-code}"))
        if (process is None or process.poll() is not None) and lock_holder(state_dir) is None:
            process = _spawn(state_dir, idle_timeout)
        if time.monotonic() > deadline:
            raise UserError(_did_not_start(state_dir, f"no endpoint after {START_TIMEOUT_S:.0f}s"))
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _spawn(state_dir: Path, idle_timeout: str) -> subprocess.Popen:
    import subprocess

    log = log_path(state_dir)
    try:
        if log.stat().st_size > _LOG_KEPT_BYTES:
            os.replace(log, log.with_name(f"{LOG_FILE}.1"))
    except OSError:
        pass
    argv = [
        sys.executable, "-m", "batchai_spec", "emulator", "serve",
        "--state-dir", str(state_dir), "--idle-timeout", idle_timeout, "--detached",
    ]
    # The emulator imports the batchai_spec this command runs, wherever it was found.
    package_root = str(Path(__file__).resolve().parents[2])
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, environment.get("PYTHONPATH")]))
    try:
        descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as error:
        raise UserError(f"cannot write the local emulator's log {log}: {error.strerror or error}") from None
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=descriptor, stderr=descriptor, cwd=state_dir, env=environment,
            start_new_session=True,  # neither Ctrl-C in this terminal nor its closing reach it
        )
    except OSError as error:
        raise UserError(f"cannot start the local emulator for {state_dir}: {error.strerror or error}") from None
    finally:
        os.close(descriptor)
    _started[state_dir] = process
    return process


def _did_not_start(state_dir: Path, reason: str) -> str:
    log = log_path(state_dir)
    last = ""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
        if lines:
            last = f"; its last line: {lines[-1][:300]}"
    except OSError:
        pass
    return f"The local emulator for {state_dir} did not start ({reason}{last}). See its log: {log}"


def stop_local_emulator(state_dir: Path, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM the emulator holding `state_dir` and wait for it to exit; its pid, or None when none runs."""
    state_dir = state_dir.resolve()
    endpoint = live_endpoint(state_dir)
    pid = endpoint.pid if endpoint is not None else lock_holder(state_dir)
    if pid is None:
        return None
    if pid == os.getpid():
        raise UserError(f"the emulator serving {state_dir} runs in this process")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    delay = 0.02
    while pid_alive(pid):
        process = _started.get(state_dir)
        if process is not None and process.pid == pid and process.poll() is not None:
            break
        if time.monotonic() > deadline:
            raise UserError(
                f"The emulator serving {state_dir} (pid {pid}) did not stop within {timeout:.0f}s; see its log: "
                f"{log_path(state_dir)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    return pid


def azure_endpoint() -> Endpoint:
    subscription_id = os.environ.get("AZURE_SUBSCRIPTION_ID")
    if not subscription_id:
        raise UserError("the azure target needs AZURE_SUBSCRIPTION_ID (and credentials azure-identity can find)")
    from azure.identity import DefaultAzureCredential

    return Endpoint(
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
class EndpointChoice:
    """The endpoint a command was pointed at, before anything is started or contacted."""

    kind: str
    state_dir: Path | None

    @property
    def lock_dir(self) -> Path:
        """Where locks of applies against this endpoint live (engine/lock.py); known without connecting."""
        if self.kind == "local":
            return self.state_dir / "locks"
        return user_cache_dir() / "locks" / os.environ.get("AZURE_SUBSCRIPTION_ID", "default")

    def connect(self) -> Endpoint:
        return local_endpoint(self.state_dir) if self.kind == "local" else azure_endpoint()


def default_state_dir(state_dir: str | Path | None = None) -> Path:
    """--state-dir, else BATCHAI_SPEC_STATE_DIR, else .batchai-spec in the working directory; absolute."""
    return Path(state_dir or os.environ.get("BATCHAI_SPEC_STATE_DIR") or DEFAULT_STATE_DIR).resolve()


def choose_endpoint(kind: str, state_dir: str | Path | None) -> EndpointChoice:
    if kind == "local":
        return EndpointChoice("local", default_state_dir(state_dir))
    if kind == "azure":
        return EndpointChoice("azure", None)
    raise UserError(f"unknown endpoint {kind!r}: use 'local' or 'azure'")
