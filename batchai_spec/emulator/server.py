"""Running the emulator: three HTTPS services on 127.0.0.1 (ARM, Azure Files, the Azure Batch data plane) served by
uvicorn in one thread.

Each service gets a port because their paths would collide (`/subscriptions/...` is also a valid `/ACCOUNT/...`,
and the Batch data plane's `/ACCOUNT/jobs` a valid share path). `start_in_process` serves from a background thread
(tests, benchmarks); `serve` does the same in the foreground until SIGINT/SIGTERM or an idle timeout (`batchai-spec
emulator serve`, which a command also starts in the background: batchai_spec/services/azure/endpoint.py). Clients
never import this module.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from batchai_spec.emulator import batch, batchai
from batchai_spec.emulator.admin import add_admin_routes
from batchai_spec.emulator.arm import resource_groups, storage_accounts
from batchai_spec.emulator.arm.responses import arm_body_limit, authenticate_bearer, render_arm_error
from batchai_spec.emulator.batch import dataplane as batch_dataplane
from batchai_spec.emulator.certs import TlsFiles, ensure_tls_files
from batchai_spec.emulator.endpoint import CLIENTS_FILE, ENDPOINT_FILE, LOCK_FILE, Endpoint
from batchai_spec.emulator.connections import MAX_REQUEST_HEAD_BYTES, OpenConnections
from batchai_spec.emulator.faults import FaultBook, FaultInjector
from batchai_spec.emulator.files import service as files_service
from batchai_spec.emulator.files.errors import render_storage_error
from batchai_spec.emulator.routing import Router, ServiceApp
from batchai_spec.emulator.state import State
from batchai_spec.errors import UserError

logger = logging.getLogger("batchai_spec.emulator")

# Each ARM module adds its routes here (one entry per module).
ARM_ROUTES: tuple[Callable[[Router], None], ...] = (
    resource_groups.add_routes,
    storage_accounts.add_routes,
    batchai.add_routes,
    batch.add_routes,
)
# Background work started once the server listens: start(state) returns the function that stops it.
BACKGROUND_SERVICES: tuple[Callable[[State], Callable[[], None]], ...] = (
    batchai.start,
    batch.start,
)
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 15.0


class RunningEmulator:
    """An emulator serving from a background thread. `stop()` (or leaving the `with` block) shuts it down."""

    def __init__(self, state: State, faults: FaultBook, endpoint: Endpoint, servers, thread, lock_fd, endpoint_path):
        self.state = state
        self.faults = faults
        self.endpoint = endpoint
        self._servers = servers
        self._thread = thread
        self._lock_fd = lock_fd
        self._endpoint_path = endpoint_path
        self._stop_background: list[Callable[[], None]] = []
        self._requests_seen = -1
        self._last_activity = time.monotonic()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def idle_seconds(self) -> float:
        """How long no request has come in (uvicorn counts the requests of each server)."""
        requests = sum(server.server_state.total_requests for server in self._servers)
        if requests != self._requests_seen:
            self._requests_seen, self._last_activity = requests, time.monotonic()
        return time.monotonic() - self._last_activity

    def keep_busy(self) -> None:
        """Count as activity now (a job ran, a command was attached): the idle time starts again."""
        self._last_activity = time.monotonic()

    def has_work(self) -> bool:
        """Whether a job is queued, running or terminating, a resource is being deleted, or Batch has work under
        way."""
        from batchai_spec.emulator.batchai import store

        db = self.state.connection()
        return bool(store.jobs_in_states(db, ("queued", "running", "terminating")) or store.being_deleted(db)
                    or batch_dataplane.work_pending(db))

    def withdraw_if_unattached(self) -> bool:
        """Remove endpoint.json unless a command holds the state dir's clients lock (it uses this emulator);
        True when withdrawn. A command that comes later waits for this emulator to stop and starts another."""
        if self._endpoint_path is None:
            return True
        descriptor = os.open(self.state.root / CLIENTS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._endpoint_path.unlink(missing_ok=True)
            return True
        finally:
            os.close(descriptor)  # releases the lock

    def stop(self) -> None:
        if self._endpoint_path is not None:
            # First: a command that comes now waits for this emulator's end instead of connecting to it.
            self._endpoint_path.unlink(missing_ok=True)
        while self._stop_background:
            self._stop_background.pop()()
        for server in self._servers:
            server.should_exit = True
        self._thread.join(_STOP_TIMEOUT_S)
        if self._endpoint_path is not None:
            self._endpoint_path.unlink(missing_ok=True)
        self.state.close()
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)  # no pid: nobody holds the state dir
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_in_process(
    state_dir: Path,
    *,
    arm_port: int = 0,
    storage_port: int = 0,
    batch_port: int = 0,
    write_endpoint: bool = True,
    idle_timeout: float | None = None,
) -> RunningEmulator:
    """Serve the emulator for `state_dir` on 127.0.0.1 (port 0: a free one); returns once every port accepts."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = _lock_state_dir(state_dir)
    if write_endpoint:
        # A previous emulator killed without a chance to clean up left its file: its pid may be reused.
        (state_dir / ENDPOINT_FILE).unlink(missing_ok=True)
    sockets: list[socket.socket] = []
    try:
        tls = ensure_tls_files(state_dir)
        state = State(state_dir)
        for port in (arm_port, storage_port, batch_port):
            sockets.append(_bind(port))
    except BaseException:
        for sock in sockets:
            sock.close()
        os.close(lock_fd)
        raise
    state.arm_url, state.storage_url, batch_url = (f"https://127.0.0.1:{sock.getsockname()[1]}" for sock in sockets)
    faults = FaultBook(state)
    connections = OpenConnections()
    servers = [
        _uvicorn_server(_arm_app(state, faults, connections), tls, connections),
        _uvicorn_server(_storage_app(state, faults, connections), tls, connections),
        _uvicorn_server(_batch_app(state, faults, connections, batch_url), tls, connections),
    ]
    thread = threading.Thread(
        target=_serve_forever, args=(servers, sockets), name="batchai-spec-emulator", daemon=True
    )
    thread.start()
    endpoint = Endpoint(
        pid=os.getpid(),
        arm_url=state.arm_url,
        storage_url=state.storage_url,
        batch_url=batch_url,
        ca_cert=str(tls.ca_cert),
        token=state.token,
        subscription_id=state.subscription_id,
        state_dir=str(state_dir),
        started_at=time.time(),
        idle_timeout=idle_timeout,
    )
    endpoint_path = state_dir / ENDPOINT_FILE if write_endpoint else None
    emulator = RunningEmulator(state, faults, endpoint, servers, thread, lock_fd, endpoint_path)
    if not _wait_started(servers, thread):
        emulator.stop()
        raise UserError(f"The emulator for {state_dir} did not start (see the log above).")
    emulator._stop_background = [start(state) for start in BACKGROUND_SERVICES]
    if endpoint_path is not None:
        endpoint.write(endpoint_path)
    return emulator


def serve(
    state_dir: Path,
    *,
    arm_port: int = 0,
    storage_port: int = 0,
    batch_port: int = 0,
    on_ready: Callable[[Endpoint, Path], None],
    idle_timeout: float | None = None,
    on_idle: Callable[[float], None] | None = None,
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then shut down cleanly (SQLite committed, files closed).

    With `idle_timeout` (seconds), also stop once that long has passed with no request, no job queued or running
    and no command attached (see endpoint.py); `on_idle(seconds)` is told so first."""
    stop_requested = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop_requested.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    tick = 0.5 if idle_timeout is None else max(0.05, min(0.5, idle_timeout / 4))
    try:
        with start_in_process(
            state_dir, arm_port=arm_port, storage_port=storage_port, batch_port=batch_port, idle_timeout=idle_timeout
        ) as emulator:
            on_ready(emulator.endpoint, Path(state_dir).resolve() / ENDPOINT_FILE)
            # Timed waits so a server thread that dies is noticed too.
            while not stop_requested.wait(tick):
                if not emulator.alive:
                    raise UserError("The emulator stopped unexpectedly (see the log above).")
                if idle_timeout is not None and emulator.idle_seconds() >= idle_timeout:
                    if emulator.has_work() or not emulator.withdraw_if_unattached():
                        emulator.keep_busy()
                        continue
                    if on_idle is not None:
                        on_idle(idle_timeout)
                    break
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _arm_app(state: State, faults: FaultBook, connections: OpenConnections):
    router = Router()
    add_admin_routes(router, faults)
    for add_routes in ARM_ROUTES:
        add_routes(router)
    app = ServiceApp(state, router.dispatch, render_arm_error, authenticate_bearer, arm_body_limit)
    return FaultInjector(app, faults, "arm", connections, render_arm_error)


def _storage_app(state: State, faults: FaultBook, connections: OpenConnections):
    app = ServiceApp(
        state, files_service.dispatch, render_storage_error, files_service.authenticate, files_service.body_limit
    )
    return FaultInjector(app, faults, "storage", connections, render_storage_error)


def _batch_app(state: State, faults: FaultBook, connections: OpenConnections, batch_url: str):
    """The Batch data plane: `{batch_url}/{account}` is an account's endpoint (batch/dataplane)."""
    render_error = batch_dataplane.error_renderer(batch_url)
    app = ServiceApp(
        state, batch_dataplane.dispatch, render_error, batch_dataplane.authenticate, batch_dataplane.body_limit
    )
    return FaultInjector(app, faults, "batch", connections, render_error)


class _Server(uvicorn.Server):
    """uvicorn's server with an event for "sockets are listening" (it has no hook of its own)."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.listening = threading.Event()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.listening.set()


def _uvicorn_server(app, tls: TlsFiles, connections: OpenConnections) -> _Server:
    config = uvicorn.Config(
        app,
        http=connections.protocol_class(),
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=str(tls.server_cert),
        ssl_keyfile=str(tls.server_key),
        # Idle between requests; request-head and body-stall timeouts are the protocol's (connections.py).
        timeout_keep_alive=int(connections.keep_alive_s),
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        timeout_graceful_shutdown=5,
    )
    return _Server(config)


def _serve_forever(servers: list[_Server], sockets: list[socket.socket]) -> None:
    async def main() -> None:
        await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in zip(servers, sockets)))

    try:
        asyncio.run(main())
    except BaseException:
        logger.exception("the emulator's server thread failed")
    finally:
        for sock in sockets:
            sock.close()


def _wait_started(servers: list[_Server], thread: threading.Thread) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT_S
    for server in servers:
        # Timed waits so a server thread that died during start-up is noticed.
        while not server.listening.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                return False
    return True


def _bind(port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and without it every
    # answer whose body follows its headers waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as error:
        sock.close()
        raise UserError(f"Cannot listen on 127.0.0.1:{port}: {error.strerror}.") from None
    return sock


class AlreadyServed(UserError):
    """Another emulator holds the state dir (serving, starting or stopping)."""


def _lock_state_dir(state_dir: Path) -> int:
    """One emulator per state directory: two writing the same files and database would corrupt each other.
    The holder's pid is written in the lock file, for clients waiting for an emulator that starts or stops."""
    descriptor = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise AlreadyServed(
            f"Another emulator already serves {state_dir}; use its {ENDPOINT_FILE} or stop it first."
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor
