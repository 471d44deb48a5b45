"""The Batch AI errors the emulator answers with (ARM shape; rendered by the ARM service as `{"error": {...}}`).

Verified on the real service: `ClusterNotFound`, `JobNotFound` (404, "The specified cluster X is not found").
Emulator-defined (the real codes were never published): `WorkspaceNotFound`, `ExperimentNotFound`,
`FileServerNotFound`, `InvalidParameter` (400, the message names the property), `InvalidResourceName` (400),
`Conflict` (409, a PUT that differs from the existing immutable resource, or one on a resource being deleted),
`OutputDirectoryNotFound` (400, listOutputFiles with an id the job does not have).
"""

from __future__ import annotations

from pydantic import ValidationError

from batchai_spec.emulator.routing import ServiceError

KIND_LABELS = {
    "workspace": ("Workspace", "workspace"),
    "experiment": ("Experiment", "experiment"),
    "cluster": ("Cluster", "cluster"),
    "fileserver": ("FileServer", "file server"),
    "job": ("Job", "job"),
}


def not_found(kind: str, name: str) -> ServiceError:
    code, label = KIND_LABELS[kind]
    return ServiceError(404, f"{code}NotFound", f"The specified {label} {name} is not found")


def invalid(property_path: str, problem: str) -> ServiceError:
    return ServiceError(400, "InvalidParameter", f"The value of property '{property_path}' is invalid: {problem}")


def conflict(message: str) -> ServiceError:
    return ServiceError(409, "Conflict", message)


def from_validation(error: ValidationError) -> ServiceError:
    """The first problem pydantic found, naming the JSON property; never the submitted value (it may be a secret)."""
    first = error.errors(include_input=False, include_url=False)[0]
    path = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return ServiceError(400, "InvalidParameter", f"The property '{path}' is required")
    message = first["msg"].removeprefix("Value error, ")
    return invalid(path, message)
