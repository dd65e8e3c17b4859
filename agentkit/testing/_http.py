"""A small HTTP/1.1 server on asyncio, run in a background thread.

This is the plumbing under :class:`agentkit.testing.fake_openai.FakeOpenAIServer`: it parses
requests (``Content-Length`` or chunked bodies, keep-alive, pipelining kept in order) and
gives the application a :class:`Responder` that can send a whole response, a chunked
stream, or cut the connection at any point (which is how faults are injected).

It uses an :class:`asyncio.Protocol` rather than streams because most requests are
answered synchronously from ``data_received``: no task, no ``drain`` per request, which
keeps the server's own cost per request to a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

__all__ = ["App", "BackgroundHTTPServer", "HTTPRequest", "Responder"]

_log = logging.getLogger("agentkit")

_MAX_HEAD_BYTES = 64 * 1024
_MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """One parsed request: method, target (path and query), lower-cased headers, body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]


App = Callable[[HTTPRequest, "Responder"], "Awaitable[None] | None"]
"""Handles one request. Returns ``None`` once it has responded, or an awaitable that will."""


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _head(status: int, headers: Iterable[tuple[str, str]], framing: str, keep_alive: bool) -> str:
    lines = [f"HTTP/1.1 {status} {_reason(status)}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append(framing)
    lines.append("connection: keep-alive\r\n\r\n" if keep_alive else "connection: close\r\n\r\n")
    return "".join(lines)


class Responder:
    """Writes the response to one request; each method is a step the application may take.

    Either :meth:`respond` once, or :meth:`start_stream`, any number of :meth:`send_chunk`,
    then :meth:`end_stream`. :meth:`close` ends the connection at any point, after flushing
    what was written, so the client sees a response cut short.
    """

    __slots__ = ("_conn", "finished", "keep_alive", "started")

    def __init__(self, conn: _Connection, keep_alive: bool) -> None:
        self._conn = conn
        self.keep_alive = keep_alive
        self.started = False
        self.finished = False

    @property
    def connected(self) -> bool:
        """False once the client has gone or the connection was closed."""
        return not self._conn.closing

    def respond(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        truncate_at: int | None = None,
    ) -> None:
        """Send a complete response with a ``Content-Length`` body.

        With ``truncate_at``, only that many body bytes are sent (the header still announces
        the full length) and the connection is closed: a body cut off in transit.
        """
        head = _head(status, headers, f"content-length: {len(body)}\r\n", self.keep_alive)
        self.started = True
        if truncate_at is not None:
            self._conn.write(head.encode("latin-1") + body[:truncate_at])
            self.close()
            return
        self._conn.write(head.encode("latin-1") + body)
        self.finished = True

    def start_stream(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        """Send the head of a ``Transfer-Encoding: chunked`` response."""
        head = _head(status, headers, "transfer-encoding: chunked\r\n", self.keep_alive)
        self._conn.write(head.encode("latin-1"))
        self.started = True

    def send_chunk(self, data: bytes) -> None:
        """Send one chunk of a streamed body (empty data is skipped: it would end the body)."""
        if data:
            self._conn.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        """Send the terminating chunk of a streamed body."""
        self._conn.write(b"0\r\n\r\n")
        self.finished = True

    def close(self) -> None:
        """Close the connection now (after flushing), whatever was or was not sent."""
        self.keep_alive = False
        self._conn.close()


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _decode_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``; ``None`` while it is incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        except ValueError:
            raise _BadRequest(400, "invalid chunk size") from None
        pos = eol + 2
        if size == 0:
            # Trailers (ignored) end with an empty line; without trailers it follows at once.
            end = buf.find(b"\r\n\r\n", pos - 2)
            return None if end < 0 else (bytes(out), end + 4)
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


def _parse(buf: bytearray) -> tuple[HTTPRequest, bool, int] | int:
    """Parse one request from ``buf``: (request, keep-alive, bytes used).

    While the request is incomplete, returns how many bytes ``buf`` must hold before it is
    worth parsing again (0 when unknown), so a body arriving after its head is not
    re-parsed packet by packet.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > _MAX_HEAD_BYTES:
            raise _BadRequest(431, "request head too large")
        return 0
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, f"malformed request line {lines[0][:100]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, f"malformed header line {line[:100]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    start = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        decoded = _decode_chunked(buf, start)
        if decoded is None:
            return 0
        body, used = decoded
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest(400, "invalid content-length") from None
        if length < 0 or length > _MAX_BODY_BYTES:
            raise _BadRequest(413 if length > 0 else 400, "unacceptable content-length")
        if len(buf) < start + length:
            return start + length
        body, used = bytes(buf[start : start + length]), start + length
    connection = headers.get("connection", "").lower()
    # HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when asked to.
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return HTTPRequest(method, target, headers, body), keep_alive, used


class _Connection(asyncio.Protocol):
    """One client connection: buffers bytes, parses requests, runs them one at a time."""

    def __init__(self, server: BackgroundHTTPServer) -> None:
        self._server = server
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        self._need = 0
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy and len(self._buf) >= self._need:
            self._process()

    def write(self, data: bytes) -> None:
        if not self.closing and self._transport is not None:
            self._transport.write(data)

    def close(self) -> None:
        if not self.closing and self._transport is not None:
            self.closing = True
            self._transport.close()

    def _process(self) -> None:
        while not self._busy and not self.closing:
            try:
                parsed = _parse(self._buf)
            except _BadRequest as exc:
                responder = Responder(self, keep_alive=False)
                responder.respond(exc.status, [("content-type", "text/plain")], str(exc).encode())
                self.close()
                return
            if isinstance(parsed, int):
                self._need = parsed
                return
            self._need = 0
            request, keep_alive, used = parsed
            del self._buf[:used]
            responder = Responder(self, keep_alive)
            try:
                pending = self._server.app(request, responder)
            except Exception:
                _log.exception("fake server: handling %s %s failed", request.method, request.path)
                self._fail(responder)
                return
            if pending is None:
                self._done(responder)
            else:
                self._busy = True
                task = asyncio.get_running_loop().create_task(self._finish(pending, responder))
                self._server.tasks.add(task)
                task.add_done_callback(self._server.tasks.discard)

    async def _finish(self, pending: Awaitable[None], responder: Responder) -> None:
        try:
            await pending
        except Exception:
            _log.exception("fake server: a delayed response failed")
            self._fail(responder)
            return
        finally:
            self._busy = False
        self._done(responder)
        if not self.closing:
            self._process()

    def _fail(self, responder: Responder) -> None:
        if not responder.started:
            responder.keep_alive = False
            responder.respond(500, [("content-type", "text/plain")], b"fake server error")
        self.close()

    def _done(self, responder: Responder) -> None:
        if not responder.finished:
            # The application closed the connection or left a stream unterminated on purpose.
            self.close()
        elif not responder.keep_alive:
            self.close()


class BackgroundHTTPServer:
    """Serves ``app`` on ``host:port`` from an event loop in a daemon thread.

    ``port=0`` picks a free port; read :attr:`port` after :meth:`start`. :meth:`stop` closes
    the listening socket and every connection, cancels pending responses and joins the
    thread.
    """

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0, backlog: int = 4096):
        self.app = app
        self.host = host
        self.port = port
        # A large backlog so a burst of 1,000 simultaneous connects is not dropped and retried.
        self._backlog = backlog
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Bind and start serving; returns once the port is open (raises if binding fails)."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="agentkit-fake-openai", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close all connections and join the thread. Safe to call twice."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended on its own
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the fake server thread did not stop within {timeout} s")
        self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start() if we never got ready
            if not self._ready.is_set():
                self._error = exc
            else:
                _log.exception("fake server loop crashed")
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=self._backlog
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            # Stop accepting first, then let accepts already under way finish creating their
            # transports: closing the server under them leaks their sockets (Python 3.11).
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
            for _ in range(3):
                await asyncio.sleep(0)
            server.close()
            for conn in list(self.connections):
                conn.close()
            tasks = list(self.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()
            # Let the transports' scheduled connection_lost callbacks run so every socket is
            # really closed before the loop is (otherwise: ResourceWarning).
            for _ in range(3):
                await asyncio.sleep(0)
