"""`endpoint.json`: how a client finds a running emulator (URLs, CA certificate, token, subscription)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

ENDPOINT_FILE = "endpoint.json"


@dataclass(frozen=True)
class Endpoint:
    pid: int
    arm_url: str  # https://127.0.0.1:PORT, the ARM base_url for every management client
    storage_url: str  # account A's file endpoint (account_url) is f"{storage_url}/A"
    ca_cert: str  # absolute path of the PEM to pass as connection_verify
    token: str  # the bearer token ARM accepts (a secret: never print it)
    subscription_id: str
    state_dir: str

    def file_endpoint(self, account: str) -> str:
        return f"{self.storage_url}/{account}"

    def to_json(self) -> dict:
        return asdict(self)

    def __repr__(self) -> str:
        return f"Endpoint(pid={self.pid}, arm_url={self.arm_url!r}, storage_url={self.storage_url!r})"

    @classmethod
    def read(cls, path: Path) -> Endpoint:
        return cls(**json.loads(path.read_text()))

    def write(self, path: Path) -> None:
        """Owner-only (0600) from the first byte: the file holds the token."""
        temporary = path.with_name(path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.to_json(), handle, indent=2)
        os.replace(temporary, path)
