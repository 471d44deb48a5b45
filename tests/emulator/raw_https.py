"""Hand-made HTTPS requests, only for what the SDKs never send: tampered, replayed, anonymous, hostile paths."""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from batchai_spec.emulator.endpoint import Endpoint


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error_code(self) -> str | None:
        return self.headers.get("x-ms-error-code")


def send(endpoint: Endpoint, url: str, method: str = "GET", headers: dict[str, str] | None = None,
         body: bytes = b"") -> RawResponse:
    """Sends `url`'s path and query exactly as written (http.client does not normalise `..` or re-quote)."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=endpoint.ca_cert)
    connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        sent = {"Host": parts.netloc, **(headers or {})}
        if body or method in ("PUT", "POST"):
            sent.setdefault("Content-Length", str(len(body)))
        for name, value in sent.items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
