"""`batchai-spec emulator ...`: the local Azure emulator as a long-running process.

Commands start it in the background when their state dir has none (batchai_spec/services/azure/endpoint.py); `serve` runs it
in the foreground, `status` and `stop` look at and stop the one of a state dir. Only `serve` imports the server.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from batchai_spec.cli.app import App, Group, app, console
from batchai_spec.cli.options import Duration, parse_duration
from batchai_spec.errors import UserError

emulator_app = App(
    cls=Group,
    help="Run the local Azure emulator (ARM, Azure Files, Batch AI) on 127.0.0.1.", no_args_is_help=True
)
app.add_typer(emulator_app, name="emulator")

StateDir = Annotated[
    Optional[Path],
    typer.Option(
        "--state-dir",
        metavar="DIR",
        envvar="BATCHAI_SPEC_STATE_DIR",
        help="Directory holding the emulator's state (default: .batchai-spec in the working directory).",
        show_default=False,
    ),
]


def _state_dir(state_dir: Path | None, exit_code: int = 1) -> Path:
    from batchai_spec.services.azure.endpoint import default_state_dir

    resolved = default_state_dir(state_dir)
    if resolved.exists() and not resolved.is_dir():
        raise UserError(f"--state-dir {resolved} exists and is not a directory.", exit_code=exit_code)
    return resolved


@emulator_app.command("serve")
def serve_command(
    state_dir: StateDir = None,
    port: int = typer.Option(
        0, "--port", metavar="PORT", min=0, max=65533,
        help="ARM port; Azure Files listens on the next one, the Batch data plane on the one after. 0: free ports."
    ),
    idle_timeout: Annotated[
        Optional[float],
        typer.Option(
            "--idle-timeout",
            metavar="DURATION",
            parser=parse_duration,
            help="Stop after this long with no job queued or running, no request and no command attached "
            "(90s, 5m, 1h...; 0: never). Default: never; the emulator a command starts uses 5m.",
            show_default=False,
        ),
    ] = None,
    detached: Annotated[bool, typer.Option("--detached", hidden=True)] = False,
) -> None:
    """Serve the emulator in the foreground until Ctrl-C or SIGTERM; clients find it through DIR/endpoint.json."""
    state_dir = _state_dir(state_dir, exit_code=2)
    from batchai_spec.emulator.server import AlreadyServed, serve


    def announce(endpoint, endpoint_file: Path) -> None:
        console.print(
            f"Emulator running (pid {endpoint.pid}): ARM {endpoint.arm_url}, Azure Files {endpoint.storage_url},"
            f" Batch {endpoint.batch_url}",
            soft_wrap=True,
        )
        # Soft wrap: a path broken over lines cannot be copied.
        console.print(f"Endpoint file: {escape(str(endpoint_file))}", soft_wrap=True)
        if idle_timeout:
            console.print(f"Stops after {Duration(idle_timeout)} idle (no job, no request, no command attached).")
        console.print("Stop with Ctrl-C, SIGTERM or `batchai-spec emulator stop`.")

    def say_idle(seconds: float) -> None:
        console.print(f"{_now()} Idle for {Duration(seconds)}: stopping.")

    if detached:
        console.print(f"{_now()} Starting (started by a command) for {escape(str(state_dir))}", soft_wrap=True)
    try:
        serve(
            state_dir,
            arm_port=port,
            storage_port=port + 1 if port else 0,
            batch_port=port + 2 if port else 0,
            on_ready=announce,
            idle_timeout=idle_timeout or None,
            on_idle=say_idle,
        )
    except AlreadyServed as served:
        if not detached:
            raise
        # Several commands started an emulator at once: another one won, and every command uses that one.
        console.print(f"{_now()} {escape(served.message)} Leaving it to that one.", soft_wrap=True)
        return
    console.print(f"{_now()} Emulator stopped." if detached else "Emulator stopped.")


@emulator_app.command("status")
def status_command(state_dir: StateDir = None) -> None:
    """Whether an emulator serves DIR: its pid, URLs, uptime, log and the jobs it runs."""
    from batchai_spec.services.azure.endpoint import log_path
    from batchai_spec.durations import elapsed
    from batchai_spec.emulator.endpoint import ENDPOINT_FILE, active_jobs, live_endpoint, lock_holder

    state_dir = _state_dir(state_dir)
    endpoint = live_endpoint(state_dir)
    if endpoint is None:
        holder = lock_holder(state_dir)
        if holder is not None:
            console.print(f"An emulator (pid {holder}) is starting or stopping for {escape(str(state_dir))}.", soft_wrap=True)
        else:
            console.print(f"No emulator is running for {escape(str(state_dir))}.", soft_wrap=True)
        return
    uptime = f", up {elapsed(time.time() - endpoint.started_at)}" if endpoint.started_at else ""
    console.print(f"Emulator running (pid {endpoint.pid}{uptime}) for {escape(str(state_dir))}", soft_wrap=True)
    lines = [
        ("ARM", endpoint.arm_url),
        ("Azure Files", endpoint.storage_url),
        *((("Batch", endpoint.batch_url),) if endpoint.batch_url else ()),
        ("Endpoint file", str(state_dir / ENDPOINT_FILE)),
        ("Log", str(log_path(state_dir))),
    ]
    if endpoint.idle_timeout:
        lines.append(("Idle timeout", f"{Duration(endpoint.idle_timeout)} (no job, no request, no command attached)"))
    jobs = active_jobs(state_dir)
    lines.append(("Jobs", "unknown" if jobs is None else ", ".join(jobs) or "none queued or running"))
    for name, value in lines:
        console.print(f"  {name}: {escape(value)}", soft_wrap=True)


@emulator_app.command("stop")
def stop_command(state_dir: StateDir = None) -> None:
    """Stop the emulator serving DIR (SIGTERM, then wait for it to exit). Its state stays in DIR."""
    from batchai_spec.services.azure.endpoint import stop_local_emulator

    state_dir = _state_dir(state_dir)
    pid = stop_local_emulator(state_dir)
    if pid is None:
        console.print(f"No emulator is running for {escape(str(state_dir))}.", soft_wrap=True)
    else:
        console.print(f"Emulator (pid {pid}) for {escape(str(state_dir))} stopped.", soft_wrap=True)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")
