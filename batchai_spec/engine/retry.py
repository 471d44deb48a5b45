"""Transient failures (throttling, server errors, dropped connections) are retried with backoff, honouring
Retry-After; anything else is permanent and stops the apply. A dropped connection to a local emulator whose process
is gone is permanent: the clients' transport raises EmulatorStopped (a UserError) for it instead of the SDK's error
(batchai_spec/azure/clients.py), so that the command says so within a second instead of retrying for a minute."""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

T = TypeVar("T")
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


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int = 6,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - classified right below
            if attempt == attempts or not is_transient(error):
                raise
            delay = retry_after(error)
            if delay is None:
                delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            if on_retry:
                on_retry(error, delay)
            sleep(delay)
    raise AssertionError("unreachable")
