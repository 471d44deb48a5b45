"""SDK exceptions -> one clear message naming the address, the operation and the service's code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from batchai_spec.errors import UserError


# Deleting what is gone, or creating what an interrupted run already made, is the state wanted: idempotent steps.
def already_gone():
    return contextlib.suppress(ResourceNotFoundError)


def already_there():
    return contextlib.suppress(ResourceExistsError)


def describe(error: BaseException) -> str:
    if isinstance(error, ClientAuthenticationError):
        if getattr(error, "status_code", None) is None:
            # No token at all (azure-identity found no credential): its first line says what to set up.
            return f"no credential could be obtained: {(error.message or str(error)).splitlines()[0]}"
        return f"the credential was refused ({_code(error)})"
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return f"the endpoint could not be reached: {error.message if hasattr(error, 'message') else error}"
    if isinstance(error, HttpResponseError):
        # ARM and Batch errors carry an OData error, storage errors only a message; the first line is the service's
        # (the lines after it hold request ids, times and details such as signatures).
        service_message = (error.error.message if error.error else error.message or "").split("\n")[0]
        message = service_message or error.reason or str(error).splitlines()[0]
        return f"{_code(error)}: {message}"
    return str(error)


def _code(error: HttpResponseError) -> str:
    code = getattr(getattr(error, "error", None), "code", None) or getattr(error, "error_code", None)
    code = getattr(code, "value", code)  # the storage SDK gives known codes as StorageErrorCode members
    status = getattr(error, "status_code", None)
    return f"{code or 'Error'} (HTTP {status})" if status else (code or type(error).__name__)


@contextlib.contextmanager
def service_call(address: str, operation: str) -> Iterator[None]:
    try:
        yield
    except UserError:
        raise
    except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
        raise UserError(f"{operation} {address} failed: {describe(error)}") from error


# Throttling, server errors and dropped connections: worth another try. A dropped connection to a local emulator
# whose process is gone is not: the clients' transport raises EmulatorStopped (a UserError) for it instead of the
# SDK's error (batchai_spec/services/azure/clients.py), so the command says so within a second.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(error: BaseException) -> bool:
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return True
    if isinstance(error, HttpResponseError):
        return error.status_code in TRANSIENT_STATUS
    return isinstance(error, (ConnectionError, TimeoutError))


def retry_after(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                return None
    return None
