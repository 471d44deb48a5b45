"""Transient failures (throttling, server errors, dropped connections) are retried with backoff, honouring
Retry-After; anything else is permanent and stops the apply. Which failure is which is the service's to say (for
services on Azure: batchai_spec/services/azure/errors.py)."""

from __future__ import annotations

import random
import time
from typing import Callable, Protocol, TypeVar

T = TypeVar("T")


class Failures(Protocol):
    """A service's view of its failures (kinds.Connection implements it)."""

    def is_transient(self, error: BaseException) -> bool: ...

    def retry_after(self, error: BaseException) -> float | None: ...


def with_retries(
    call: Callable[[], T],
    failures: Failures,
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
            if attempt == attempts or not failures.is_transient(error):
                raise
            delay = failures.retry_after(error)
            if delay is None:
                delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            if on_retry:
                on_retry(error, delay)
            sleep(delay)
    raise AssertionError("unreachable")
