"""The WebSocket protocol: uvicorn's (websockets, sans-I/O), dropping a connection whose peer stopped reading.

A peer that answers no keepalive ping within its timeout is closed by uvicorn with `transport.close()`, which
waits for what is buffered to be written first: a peer that reads nothing more (its receive window shut, its
kernel still acknowledging) is never done with, its connection lost never comes, and the subscription blocked
sending to it never ends. Each such connection kept its subscriptions counted against
TRACKING_SUBSCRIPTIONS_MAX (and the caller's and connection's bounds) for the life of the process: a few
connections that subscribe and stop reading took every subscription of the gateway. Here a connection not gone
within the ping timeout after that close is aborted (its buffer dropped): the blocked send fails, and its
subscriptions end and give their places back.
"""

from __future__ import annotations

from asyncio import TimerHandle

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class AbortingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, aborting a connection that a keepalive timeout closed and that is still
    there one ping timeout later."""

    _abort_timer: TimerHandle | None = None

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        if not self.disconnected and self._abort_timer is None:
            # The peer had the ping timeout to answer a ping; it gets as long again to take the close.
            delay = self.ping_timeout if self.ping_timeout is not None else self.close_timeout
            self._abort_timer = self.loop.call_later(delay, self._abort_if_still_open)

    def _abort_if_still_open(self) -> None:
        self._abort_timer = None
        if not self.disconnected:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        super().connection_lost(exc)
