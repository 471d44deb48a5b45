"""What the replays of recorded real traffic share (Batch AI's, and Microsoft.Batch's ARM and data plane).

The recordings are data from the azure-cli repository, kept outside this repository (`../shared/recordings`, or
`BATCHAI_SPEC_RECORDINGS`); the tests skip when they are not there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import requests

RECORDINGS = Path(os.environ.get("BATCHAI_SPEC_RECORDINGS",
                                 Path(__file__).resolve().parents[3] / "shared" / "recordings"))
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def request_body(recorded: Any) -> str | None:
    """Some 2019 bodies are stored as the repr of bytes, `b'{...}'` (once even nested)."""
    text = recorded
    while isinstance(text, str) and text.startswith(("b'", 'b"')):
        text = text[2:-1].encode().decode("unicode_escape")
    return text or None


class ArmReplay:
    """Sends recorded ARM requests to the emulator, with the recording's names swapped for the test's.

    `swaps` are (recorded, ours) pairs, applied in order to URLs and bodies."""

    def __init__(self, endpoint, swaps: list[tuple[str, str]]):
        self.endpoint = endpoint
        self.swaps = swaps
        self.compared = 0

    def swap(self, text: str) -> str:
        for recorded, ours in self.swaps:
            text = text.replace(recorded, ours)
        return text

    def send(self, method: str, url: str, body: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.endpoint.token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return requests.request(method, url, data=body, headers=headers, verify=self.endpoint.ca_cert, timeout=15)
