"""`batchai-spec emulator ...`: the local Azure emulator as a long-running process."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from batchai_spec.cli.app import App, Group, app, console
from batchai_spec.errors import UserError

emulator_app = App(
    cls=Group,
    help="Run the local Azure emulator (ARM, Azure Files, Batch AI) on 127.0.0.1.", no_args_is_help=True
)
app.add_typer(emulator_app, name="emulator")


@emulator_app.command("serve")
def serve_command(
    state_dir: Path = typer.Option(
        ..., "--state-dir", metavar="DIR", help="Directory holding the emulator's state (created if missing)."
    ),
    port: int = typer.Option(
        0, "--port", metavar="PORT", min=0, max=65534, help="ARM port; Azure Files listens on the next one. 0: free ports."
    ),
) -> None:
    """Serve the emulator in the foreground until Ctrl-C or SIGTERM; clients find it through DIR/endpoint.json."""
    from batchai_spec.emulator.server import serve

    if state_dir.exists() and not state_dir.is_dir():
        raise UserError(f"--state-dir {state_dir} exists and is not a directory.", exit_code=2)

    def announce(endpoint, endpoint_file: Path) -> None:
        console.print(
            f"Emulator running (pid {endpoint.pid}): ARM {endpoint.arm_url}, Azure Files {endpoint.storage_url}",
            soft_wrap=True,
        )
        # Soft wrap: a path broken over lines cannot be copied.
        console.print(f"Endpoint file: {escape(str(endpoint_file))}", soft_wrap=True)
        console.print("Stop with Ctrl-C or SIGTERM.")

    serve(state_dir, arm_port=port, storage_port=port + 1 if port else 0, on_ready=announce)
    console.print("Emulator stopped.")
