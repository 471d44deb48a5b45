"""uvicorn's HTTP protocol with two additions: a registry of live connections, and quick closing at shutdown.

ASGI gives an app no handle on its socket, so a `drop` fault rule finds the transport here by client address.
At shutdown an idle TLS connection is aborted rather than closed: a polite close waits for the client's
close_notify, which a pooled client that is not reading never sends, and shutdown would hang until a timeout.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class OpenConnections:
    def __init__(self) -> None:
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}

    def protocol_class(self) -> type[H11Protocol]:
        transports = self._transports

        class TrackedH11Protocol(H11Protocol):
            def connection_made(self, transport):  # type: ignore[override]
                super().connection_made(transport)
                if self.client:
                    transports[self.client] = transport

            def connection_lost(self, exc):
                if self.client:
                    transports.pop(self.client, None)
                super().connection_lost(exc)

            def shutdown(self) -> None:
                if self.cycle is None or self.cycle.response_complete:
                    self.transport.abort()
                else:
                    super().shutdown()

        return TrackedH11Protocol

    def abort(self, client: tuple[str, int] | None) -> None:
        """Close the connection of `client` at once, without an answer."""
        transport = self._transports.get(tuple(client)) if client else None
        if transport is not None:
            transport.abort()
