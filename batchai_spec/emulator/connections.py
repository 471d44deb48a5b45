"""uvicorn's HTTP protocol with additions: a registry of live connections, quick closing at shutdown, and the
timeouts uvicorn lacks.

ASGI gives an app no handle on its socket, so a `drop` fault rule finds the transport here by client address.
At shutdown an idle TLS connection is aborted rather than closed: a polite close waits for the client's
close_notify, which a pooled client that is not reading never sends, and shutdown would hang until a timeout.

Timeouts. uvicorn closes a connection idle between requests after `timeout_keep_alive`, but nothing else: a
client that connects and sends nothing, sends half a request head, trickles it a byte at a time, or stops in the
middle of a body would hold its connection (and, in the middle of a body, a waiting handler) forever. Here:
- a request head must be complete within `request_timeout_s` of its first byte (for a new connection: of the
  connection), however steadily it trickles;
- a request body must make progress: no byte for `request_timeout_s` while the server waits for one (reading
  paused by flow control does not count) closes the connection;
- a body the server answered before reading it all (refused: authentication, size) is read on and discarded, so
  that the client, still sending, can read the answer and the connection serve again; but at most
  `DISCARD_LIMIT_BYTES` of it, for at most `request_timeout_s`, then the connection is aborted;
- between requests, `keep_alive_s` of silence closes it (uvicorn's own timer, with a backstop here for the cases
  it misses, such as after a discarded body).
Offending connections are aborted without an answer. `request_timeout_s` defaults to 10 s; the environment
variable BATCHAI_SPEC_EMULATOR_REQUEST_TIMEOUT_S overrides it (read when the emulator starts).
"""

from __future__ import annotations

import asyncio
import logging
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("batchai_spec.emulator")

REQUEST_TIMEOUT_ENV = "BATCHAI_SPEC_EMULATOR_REQUEST_TIMEOUT_S"
DEFAULT_REQUEST_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 30
# The most a request head (request line and headers) may take; h11 answers 400 past it. Azure allows 8 KiB of
# metadata per file, well inside this.
MAX_REQUEST_HEAD_BYTES = 16 * 1024
# The most of a refused request's body that is read and discarded after the answer: more than any client sends
# in good faith (a 4 MiB range, or an SDK configured for larger ones that Azure refuses with 413).
DISCARD_LIMIT_BYTES = 32 * 1024 * 1024


def request_timeout_from_environment() -> float:
    text = os.environ.get(REQUEST_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_REQUEST_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86400:
        logger.warning(
            "%s=%r is not a number of seconds; using %s s", REQUEST_TIMEOUT_ENV, text, DEFAULT_REQUEST_TIMEOUT_S
        )
        return DEFAULT_REQUEST_TIMEOUT_S
    return value


class OpenConnections:
    def __init__(self, request_timeout_s: float | None = None, keep_alive_s: float = KEEP_ALIVE_S) -> None:
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}
        self.request_timeout_s = request_timeout_s or request_timeout_from_environment()
        self.keep_alive_s = keep_alive_s

    def protocol_class(self) -> type[H11Protocol]:
        transports = self._transports
        request_timeout_s = self.request_timeout_s
        keep_alive_s = self.keep_alive_s
        # How often a connection waiting on its client looks at the clock.
        check_every_s = min(1.0, request_timeout_s / 4)

        class TrackedH11Protocol(H11Protocol):
            def connection_made(self, transport):  # type: ignore[override]
                super().connection_made(transport)
                if self.client:
                    transports[self.client] = transport
                now = self.loop.time()
                self._head_started: float | None = now  # a new connection owes its first request head
                self._last_activity = now
                self._discarding_since: float | None = None  # answered while the body is still coming
                self._discarded = 0
                self._watchdog: asyncio.TimerHandle | None = None
                self._arm_watchdog()

            def connection_lost(self, exc):
                if self.client:
                    transports.pop(self.client, None)
                self._disarm_watchdog()
                super().connection_lost(exc)

            def data_received(self, data: bytes) -> None:
                now = self.loop.time()
                self._last_activity = now
                if self._head_started is None and self.conn.their_state is h11.IDLE:
                    self._head_started = now  # the first bytes of the next request
                if self._discarding_since is not None:
                    self._discarded += len(data)
                    if self._discarded > DISCARD_LIMIT_BYTES:
                        self._give_up(f"it sent more than {DISCARD_LIMIT_BYTES} bytes of a body already refused")
                        return
                super().data_received(data)
                if self.conn.their_state is not h11.IDLE:
                    self._head_started = None  # the head is complete
                if self.conn.their_state is not h11.SEND_BODY:
                    self._discarding_since = None
                self._arm_watchdog()

            def on_response_complete(self) -> None:
                now = self.loop.time()
                self._last_activity = now
                if self.conn.their_state is h11.SEND_BODY:
                    # Answered before the body ended: uvicorn reads the rest and throws it away.
                    self._discarding_since, self._discarded = now, 0
                super().on_response_complete()
                self._arm_watchdog()

            def shutdown(self) -> None:
                self._disarm_watchdog()
                if self.cycle is None or self.cycle.response_complete:
                    self.transport.abort()
                else:
                    super().shutdown()

            def _arm_watchdog(self) -> None:
                if self._watchdog is None and not self.transport.is_closing():
                    self._watchdog = self.loop.call_later(check_every_s, self._watch)

            def _disarm_watchdog(self) -> None:
                if self._watchdog is not None:
                    self._watchdog.cancel()
                    self._watchdog = None

            def _watch(self) -> None:
                self._watchdog = None
                if self.transport.is_closing():
                    return
                now = self.loop.time()
                state = self.conn.their_state
                if state is h11.IDLE and self._head_started is not None:
                    if now - self._head_started > request_timeout_s:
                        self._give_up(f"its request head was not complete within {request_timeout_s:g} s")
                        return
                elif state is h11.IDLE:
                    if now - self._last_activity > keep_alive_s + 1 and (
                        self.cycle is None or self.cycle.response_complete
                    ):
                        self._give_up(f"it was idle for {keep_alive_s:g} s", quietly=True)
                        return
                elif state is h11.SEND_BODY:
                    if self._discarding_since is not None and now - self._discarding_since > request_timeout_s:
                        self._give_up(f"it sent a body already refused for {request_timeout_s:g} s")
                        return
                    if self.flow.read_paused:
                        self._last_activity = now  # the server is not reading: not the client's delay
                    elif now - self._last_activity > request_timeout_s:
                        self._give_up(f"its request body stalled for {request_timeout_s:g} s")
                        return
                else:
                    return  # the request is in (or the connection is ending): the answer is the server's business
                self._arm_watchdog()

            def _give_up(self, why: str, quietly: bool = False) -> None:
                if not quietly:
                    logger.info("closing the connection from %s:%s: %s", *(self.client or ("?", 0)), why)
                self.transport.abort()

        return TrackedH11Protocol

    def abort(self, client: tuple[str, int] | None) -> None:
        """Close the connection of `client` at once, without an answer."""
        transport = self._transports.get(tuple(client)) if client else None
        if transport is not None:
            transport.abort()
