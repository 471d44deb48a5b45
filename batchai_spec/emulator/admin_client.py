"""A small client of the emulator's admin API for tests and tools (stdlib only, trusting the emulator's CA)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from batchai_spec.emulator.endpoint import Endpoint


class AdminClient:
    def __init__(self, endpoint: Endpoint, *, timeout_s: float = 30.0):
        self._endpoint = endpoint
        self._context = ssl.create_default_context(cafile=endpoint.ca_cert)
        self._timeout_s = timeout_s

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/_emulator/health")

    def reset(self) -> None:
        self._request("POST", "/_emulator/reset")

    def add_fault(self, path: str, action: str, **options: Any) -> dict[str, Any]:
        """Add a rule (see faults.FaultRule for the options); returns it with its id."""
        return self._request("POST", "/_emulator/faults", {"path": path, "action": action, **options})

    def faults(self) -> list[dict[str, Any]]:
        return self._request("GET", "/_emulator/faults")["value"]

    def clear_faults(self) -> None:
        self._request("DELETE", "/_emulator/faults")

    def _request(self, method: str, path: str, body: Any | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._endpoint.arm_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._endpoint.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=self._timeout_s) as response:
                content = response.read()
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("error", {})
            raise AdminError(error.code, detail.get("code", ""), detail.get("message", "")) from None
        return json.loads(content) if content else None


class AdminError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
