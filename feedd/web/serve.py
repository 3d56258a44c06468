"""waitress, hardened: the read deadline, the connection limit, the per-client
cap and the refusal of ambiguous framing (issue 13); and the two ways to run
it, in the foreground (`feedd serve`) or on a thread (`feedd run`, tests).

waitress runs the WSGI callable on a small thread pool behind an asynchronous
channel layer: idle or slow connections wait in the event loop, not in a worker
thread. A read deadline closes those that do not send a whole request in time,
however slowly they trickle, and a per-client cap keeps one host from taking
every connection slot (see "Connections" below). waitress 3.0.2 closes the
connection after every 304 (a 304 has no Content-Length, and without one it
falls back to closing): a keep-alive client reconnects, which
feed readers polling every few minutes do anyway.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn, cast
from wsgiref.types import WSGIApplication

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import BaseWSGIServer, MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.trigger import trigger as Trigger

from feedd.errors import ConfigError

log = logging.getLogger("feedd.web")

# Nothing we serve reads a request body; waitress would buffer up to 1 GB of
# one before the application could answer 405.
MAX_REQUEST_BODY = 64 * 1024
MAX_REQUEST_HEADERS = 64 * 1024


# ---------------------------------------------------------------------------
# Connections: framing, deadlines and limits
#
# waitress alone is open to two cheap attacks (issue 13). Its channel_timeout
# is an idle timeout that restarts on every byte, so a client trickling one
# header byte every few seconds holds its connection forever; and once
# connection_limit sockets are open it stops accepting, so a few hundred such
# sockets lock every other client out. Three things answer it here:
# - a read deadline: a whole request must arrive within ``read_deadline``
#   seconds of the connection opening, or of the previous response being sent,
#   however the bytes trickle in;
# - a connection limit far above waitress's 100 (poll() instead of select(),
#   which fails past descriptor 1023, and an open-file limit raised to fit);
# - a cap per client address, so one host cannot take all the slots.
# When many hosts fill every slot anyway, the house empties within a deadline,
# and the clients waiting in the kernel's accept queue, first come first
# served, get in before the attackers' reconnections.

DEFAULT_READ_DEADLINE = 10
DEFAULT_CONNECTION_LIMIT = 1000
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 100
# How often the deadline is checked: waitress's own 30 s would let a deadline
# of a few seconds overrun by up to 30.
CLEANUP_INTERVAL = 1
# Descriptors the process needs besides its HTTP connections: the listening
# sockets and trigger pipes, the database, dumps being read, log files.
FD_HEADROOM = 128
# Connections accepted per turn of the event loop.
ACCEPT_BATCH = 64
# At most one warning this often about refused connections, so that an attack
# cannot flood the log.
CAP_WARNING_INTERVAL = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    read_deadline: float = DEFAULT_READ_DEADLINE
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT


class _StrictRequest(HTTPRequestParser):
    """waitress's parser, refusing the framings that RFC 9112 section 6.1 calls faulty."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        # A proxy in front that frames by Content-Length sees one request where
        # waitress, framing by Transfer-Encoding, sees two: request smuggling.
        # RFC 9112 lets a server reject the message and requires it to close the
        # connection; waitress's 400 does both, and drops whatever was
        # pipelined behind it.
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            self._faulty("both Content-Length and Transfer-Encoding are present")
        # waitress ignores Transfer-Encoding in HTTP/1.0 and frames by
        # Content-Length; RFC 9112 says such a message's framing is faulty.
        if self.version == "1.0" and "TRANSFER_ENCODING" in self.headers:
            self._faulty("Transfer-Encoding in an HTTP/1.0 request")

    def _faulty(self, reason: str) -> NoReturn:
        # Without this, waitress answers an HTTP/1.0 keep-alive request with
        # both "Connection: close" and "Connection: Keep-Alive".
        cast(dict[str, str], self.headers)["CONNECTION"] = "close"  # a dict; stubs say Mapping
        self.connection_close = True
        raise ParsingError(reason)


class _Channel(HTTPChannel):
    """One connection; knows since when it has been waiting for a complete request."""

    parser_class = _StrictRequest

    def __init__(
        self,
        server: BaseWSGIServer,
        sock: socket.socket,
        addr: Any,
        adj: Adjustments,
        map: dict[int, Any] | None = None,
    ) -> None:
        # Set before the base class hands the channel to the event loop.
        # None while a request is being served: the deadline does not run then.
        self.waiting_since: float | None = time.time()
        self.client: str | None = None
        super().__init__(server, sock, addr, adj, map)

    def service(self) -> None:
        # On a worker thread. The loop thread may also restart the clock
        # between requests (see maintenance); either write is a current time.
        self.waiting_since = None
        try:
            super().service()
        finally:
            self.waiting_since = time.time()

    def del_channel(self, map: Mapping[int, socket.socket] | None = None) -> None:
        super().del_channel(map)
        if isinstance(self.server, _Server):
            self.server.forget(self)


class _Server(TcpWSGIServer):
    """waitress's TCP server with the read deadline and the per-client cap."""

    channel_class = _Channel

    def __init__(
        self,
        application: WSGIApplication,
        map: dict[int, Any],
        *,
        dispatcher: ThreadedTaskDispatcher,
        adj: Adjustments,
        sockinfo: Any,
        limits: ConnectionLimits,
    ) -> None:
        self.limits = limits
        # Open connections per client address; only the loop thread touches it.
        self.clients: Counter[str] = Counter()
        self.refused = 0
        self._next_warning = 0.0
        super().__init__(application, map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)

    def handle_accept(self) -> None:
        # waitress accepts one connection per turn of its loop, and each turn
        # walks every open connection: a burst of 700 took 1.5 s to drain
        # while a normal client queued behind it. Take a batch per turn.
        socket_map = cast(Any, self)._map  # wasyncore's; missing from the type stubs
        for _ in range(ACCEPT_BATCH):
            if len(socket_map) >= self.adj.connection_limit:
                return
            try:
                accepted = self.accept()
            except OSError:  # a peer that reset first, or EMFILE: try again next turn
                return
            if accepted is None:  # the queue is empty
                return
            self._admit(*accepted, socket_map)

    def _admit(self, conn: socket.socket, addr: Any, socket_map: dict[int, Any]) -> None:
        # waitress's handle_accept, with the cap checked before a channel exists.
        client = str(addr[0])
        if self.clients[client] >= self.limits.max_connections_per_client:
            conn.close()
            self._refuse(client)
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        channel = _Channel(self, conn, self.fix_addr(addr), self.adj, map=socket_map)
        channel.client = client
        self.clients[client] += 1

    def forget(self, channel: _Channel) -> None:
        client, channel.client = channel.client, None
        if client is None:  # not counted, or forgotten already
            return
        self.clients[client] -= 1
        if self.clients[client] <= 0:
            del self.clients[client]

    def _refuse(self, client: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now >= self._next_warning:
            self._next_warning = now + CAP_WARNING_INTERVAL
            log.warning(
                "refusing connections from %s: it holds %d, the most "
                "server.max_connections_per_client allows (%d refused so far)",
                client,
                self.clients[client],
                self.refused,
                extra={"event": "http_client_capped", "client": client},
            )

    def maintenance(self, now: float) -> None:
        # channel_timeout still closes connections stalled while a response is
        # being sent to them.
        super().maintenance(now)  # type: ignore[arg-type]  # the stubs say int
        cutoff = now - self.limits.read_deadline
        for channel in list(cast(dict[int, Any], self.active_channels).values()):
            if not isinstance(channel, _Channel) or channel.requests:
                continue
            since = channel.waiting_since
            if since is None:
                continue
            if channel.total_outbufs_len:
                # A response is still going out: the next request's clock
                # starts once it is sent.
                channel.waiting_since = now
            elif since < cutoff:
                channel.will_close = True


def _fit_fd_limit(connection_limit: int) -> int:
    """Raise the soft open-file limit so ``connection_limit`` sockets fit; the limit that fits.

    Past the open-file limit accept() fails with EMFILE on every turn of the
    loop while the listening socket stays readable, so the server would spin
    without serving: better a lower limit and a warning.
    """
    try:
        import resource
    except ImportError:  # not POSIX; nothing to raise
        return connection_limit
    needed = connection_limit + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return connection_limit
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    if soft >= needed:
        log.info("raised the open-file limit to %d for server.connection_limit", soft)
        return connection_limit
    fitted = max(1, soft - FD_HEADROOM)
    log.warning(
        "server.connection_limit %d does not fit the open-file limit %d; serving at most %d "
        "connections (raise the limit with ulimit -n or LimitNOFILE=)",
        connection_limit,
        soft,
        fitted,
    )
    return fitted


# ---------------------------------------------------------------------------
# Running it


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ``("127.0.0.1", 8080)``; ``"[::1]:80"`` -> ``("::1", 80)``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"listen address must look like 127.0.0.1:8080, got {listen!r}")
    return host.strip("[]"), int(port)


def _cannot_listen(host: str, port: int, reason: object) -> ConfigError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ConfigError(f"config: server.listen: cannot listen on {where}: {reason}")


def _create_server(
    app: WSGIApplication,
    host: str,
    port: int,
    socket_map: dict[int, Any],
    *,
    threads: int,
    channel_timeout: int,
    limits: ConnectionLimits,
) -> MultiSocketServer | BaseWSGIServer:
    """waitress's create_server for TCP, with our server class; bind errors are ConfigError."""
    if not 0 <= port <= 65535:
        # getaddrinfo takes 99999 and quietly serves on 99999 % 65536.
        raise _cannot_listen(host, port, "the port must be between 0 and 65535")
    try:
        # waitress resolves too, but turns every failure into "Invalid host/port".
        socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise _cannot_listen(host, port, getattr(exc, "strerror", None) or exc) from exc
    limits = dataclasses.replace(limits, connection_limit=_fit_fd_limit(limits.connection_limit))
    try:
        adj = Adjustments(
            host=host,
            port=port,
            threads=threads,
            channel_timeout=channel_timeout,
            cleanup_interval=CLEANUP_INTERVAL,
            asyncore_use_poll=True,
            max_request_body_size=MAX_REQUEST_BODY,
            max_request_header_size=MAX_REQUEST_HEADERS,
            ident="feedd",
            # waitress trusts one proxy address at most and would drop
            # X-Forwarded-Proto/-Host from everyone else before the app sees
            # them; feedd.web.http.origin weighs them against
            # server.trusted_proxies instead.
            clear_untrusted_proxy_headers=False,
        )
    except ValueError as exc:
        raise _cannot_listen(host, port, exc) from exc
    # Threads start only once every socket is bound: a failed bind leaves none.
    dispatcher = ThreadedTaskDispatcher()
    servers: list[_Server] = []
    try:
        for sockinfo in adj.listen:
            servers.append(
                _Server(
                    app,
                    socket_map,
                    dispatcher=dispatcher,
                    adj=adj,
                    sockinfo=sockinfo,
                    limits=limits,
                )
            )
    except OSError as exc:
        wasyncore.close_all(socket_map)
        raise _cannot_listen(host, port, exc.strerror or exc) from exc
    # waitress counts every entry of its socket map, listening sockets and
    # trigger pipes too; the configured limit counts client connections only.
    adj.connection_limit = limits.connection_limit + len(socket_map)
    dispatcher.set_thread_count(threads)
    if len(servers) == 1:
        return servers[0]
    listening = [address for s in servers for address in _addresses(s)]
    return MultiSocketServer(socket_map, adj, listening, dispatcher, servers[-1].log_info)


def serve(
    app: WSGIApplication,
    listen: str = "127.0.0.1:8080",
    *,
    threads: int = 8,
    channel_timeout: int = 30,
    read_deadline: float = DEFAULT_READ_DEADLINE,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
) -> None:
    """Serve until interrupted (Ctrl-C); blocks the calling thread.

    Raises ConfigError when ``listen`` is malformed, does not resolve, or
    cannot be bound (a port in use, an address not on this host).
    """
    try:
        host, port = split_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"config: server.listen: {exc}") from exc
    limits = ConnectionLimits(read_deadline, connection_limit, max_connections_per_client)
    server = _create_server(
        app, host, port, {}, threads=threads, channel_timeout=channel_timeout, limits=limits
    )
    for address in _addresses(server):
        url = _url(*address)
        log.info("serving HTTP on %s", url, extra={"event": "http_listening", "url": url})
    server.run()


def _addresses(server: MultiSocketServer | BaseWSGIServer) -> list[tuple[str, int]]:
    """Where the server listens, with ephemeral ports resolved."""
    if isinstance(server, MultiSocketServer):
        return [(str(host), int(port)) for host, port in server.effective_listen]
    # Set by waitress's constructor; missing from the type stubs.
    loose = cast(Any, server)
    return [(str(loose.effective_host), int(loose.effective_port))]


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class BackgroundServer:
    """A waitress server running on its own thread; ``close()`` stops it."""

    def __init__(self, server: MultiSocketServer | BaseWSGIServer, socket_map: dict[int, Any]):
        self._server = server
        self._map = socket_map
        self.host, self.port = _addresses(server)[0]
        # Found before the loop runs: the map changes under the loop thread.
        self._trigger = next(obj for obj in socket_map.values() if isinstance(obj, Trigger))
        self._thread = threading.Thread(target=server.run, name="feedd-http", daemon=True)
        self._closed = False

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def close(self, timeout: int = 5) -> None:
        """Stop accepting, close every connection, wait for the worker threads."""
        if self._closed:
            return
        self._closed = True
        socket_map = self._map

        def close_all() -> None:
            wasyncore.close_all(socket_map)

        # The sockets belong to the event loop; closing them from this thread
        # would race it. The trigger runs close_all inside the loop, and the
        # loop ends once its map is empty.
        try:
            cast(Any, self._trigger).pull_trigger(close_all)
        except OSError:  # the loop died and closed the trigger already
            close_all()
        self._thread.join(timeout)
        self._server.task_dispatcher.shutdown(timeout=timeout)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_background(
    app: WSGIApplication,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    threads: int = 8,
    channel_timeout: int = 30,
    read_deadline: float = DEFAULT_READ_DEADLINE,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
) -> BackgroundServer:
    """Listen now (port 0 picks a free port, see ``.port``) and serve on a daemon thread.

    Raises ConfigError when the address does not resolve or cannot be bound.
    """
    socket_map: dict[int, Any] = {}
    limits = ConnectionLimits(read_deadline, connection_limit, max_connections_per_client)
    server = _create_server(
        app,
        host,
        port,
        socket_map,
        threads=threads,
        channel_timeout=channel_timeout,
        limits=limits,
    )
    handle = BackgroundServer(server, socket_map)
    log.info("serving HTTP on %s", handle.url, extra={"event": "http_listening", "url": handle.url})
    return handle.start()
