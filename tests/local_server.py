"""A scripted HTTP server on 127.0.0.1 for tests: `with LocalServer({"/a": Reply(body=b"hi")}) as s: get(s.url + "/a")`.

A route maps a path, query string included, to one `Reply` served every time, to a list of
replies served in turn (the last one repeats: `[Reply(500), Reply(body=...)]` fails once), or to
a function of the `Request` returning a `Reply`. Paths are compared percent-decoded, so a route
may be written with Chinese characters. Unknown paths get 404. Every request is logged, in order,
in `server.requests`. The server listens on a free port; `server.url` is its base URL.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union
from urllib.parse import unquote


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    content_type: str | None = "text/html; charset=utf-8"  # None: send no Content-Type at all
    headers: dict[str, str] = field(default_factory=dict)
    sleep: float = 0.0  # seconds before answering: more than the client's read timeout makes it time out
    drop: bool = False  # close the connection without answering, as a crashing server does


@dataclass
class Request:
    path: str  # as received: percent-encoded, with the query string
    headers: dict[str, str]
    time: float  # time.monotonic() on arrival


Route = Union[Reply, list, Callable[[Request], Reply]]
NOT_FOUND = Reply(404, b"not found", "text/plain")


class LocalServer:
    def __init__(self, routes: dict[str, Route] | None = None):
        self.requests: list[Request] = []
        self.url = ""
        self._routes: dict[str, list[Reply] | Callable[[Request], Reply]] = {}
        self._answered: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        for path, route in (routes or {}).items():
            self.route(path, route)

    def route(self, path: str, *replies: Route) -> None:
        """Serve `path` with one reply, several in turn, or a function; replaces any earlier route."""
        if not replies:
            raise ValueError(f"route {path!r} needs at least one reply")
        if len(replies) == 1 and callable(replies[0]):
            route = replies[0]
        elif len(replies) == 1 and isinstance(replies[0], list):
            route = list(replies[0])
        else:
            route = list(replies)
        key = unquote(path)
        with self._lock:
            self._routes[key] = route
            self._answered[key] = 0

    def paths(self) -> list[str]:
        """The decoded paths of every request received, in order."""
        return [unquote(request.path) for request in self.requests]

    def count(self, path: str) -> int:
        return self.paths().count(unquote(path))

    def answer(self, request: Request) -> Reply:
        key = unquote(request.path)
        with self._lock:
            self.requests.append(request)
            route = self._routes.get(key)
            if route is None:
                return NOT_FOUND
            self._answered[key] += 1
            turn = self._answered[key]
        return route(request) if callable(route) else route[min(turn, len(route)) - 1]

    def start(self) -> "LocalServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping out a timeout test must not hold up stop()
    owner: LocalServer


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        reply = self.server.owner.answer(Request(self.path, dict(self.headers), time.monotonic()))
        if reply.sleep:
            time.sleep(reply.sleep)
        if reply.drop:
            self.close_connection = True
            return
        body = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
        try:
            self.send_response(reply.status)
            if reply.content_type is not None:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a read-timeout test): nobody to answer

    def log_message(self, format: str, *args) -> None:
        pass  # keep test output quiet; the request log is `server.requests`
