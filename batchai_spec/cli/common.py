"""Options and plumbing shared by the commands that talk to an endpoint (plan, apply, destroy, status...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Mapping, Optional

import typer

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the SDKs are imported when a command runs, not when the CLI starts
    from batchai_spec.session import Session

EndpointOption = Annotated[
    str,
    typer.Option(
        "--endpoint",
        "--backend",  # its former name: accepted for one more release, left out of --help (app.HIDDEN_ALIASES)
        metavar="local|azure",
        envvar=["BATCHAI_SPEC_ENDPOINT", "BATCHAI_SPEC_BACKEND"],
        help="Where requests go: 'local' (the local emulator, default) or 'azure'.",
    ),
]
ServiceOption = Annotated[
    Optional[str],
    typer.Option(
        "--service",
        metavar="batchai|batch",
        envvar="BATCHAI_SPEC_SERVICE",
        autocompletion=lambda: ["batchai", "batch"],
        help="Which Azure service realises the spec: 'batchai' (Batch AI) or 'batch' (Azure Batch); default: the "
        "spec's `service:`, else batchai.",
        show_default=False,
    ),
]
StateDirOption = Annotated[
    Optional[Path],
    typer.Option(
        "--state-dir",
        metavar="DIR",
        envvar="BATCHAI_SPEC_STATE_DIR",
        help="State directory of the local emulator (default: .batchai-spec in the working directory).",
    ),
]
ParallelismOption = Annotated[
    int, typer.Option("--parallelism", metavar="N", min=1, max=64, help="Requests (and changes) in flight at once.")
]


def open_session(
    spec_path: Path,
    var: list[str] | None,
    var_file: list[Path] | None,
    endpoint: str,
    state_dir: Path | None,
    parallelism: int = 10,
    *,
    require_sources: bool = True,
    saved_variables: Mapping[str, Any] | None = None,
    service: str | None = None,
) -> Session:
    """`saved_variables`: those of a saved plan, under the command line's --var. `service`: --service (None: the
    spec's `service:`, else batchai). A spec that service cannot realise stops here, before anything is contacted."""
    from batchai_spec.services.azure.endpoint import choose_endpoint
    from batchai_spec.cli.options import load_spec_from_cli
    from batchai_spec.session import Session

    check_service_name(service)
    loaded = load_spec_from_cli(spec_path, var, var_file, saved_variables)
    session = Session(
        loaded, choose_endpoint(endpoint, state_dir), parallelism=parallelism, require_sources=require_sources,
        service_name=service,
    )
    session.service_warnings  # raises the spec's errors on that service
    return session


def check_service_name(service: str | None) -> None:
    """--service (or BATCHAI_SPEC_SERVICE): one of the services, or one message and exit 1."""
    from batchai_spec.errors import UserError
    from batchai_spec.services import SERVICES

    if service is not None and service not in SERVICES:
        raise UserError(f"unknown service {service!r}: use {' or '.join(repr(name) for name in SERVICES)}")
