"""The limits of ``pesnet serve`` (atoms and bytes per request, seconds per request), and the
ASGI middleware that enforces the byte limit before MLflow's scoring server reads a body (no
MLflow here).

MLflow's scoring server reads the whole body into memory (``await request.body()``) and uvicorn
has no size limit of its own, so :class:`BodyLimit` sits in front of it:

* a request whose ``Content-Length`` is over the limit gets HTTP 413 without its body being
  read, at once if the client waits for ``100 Continue`` (curl does for large bodies) or the
  declared length is over twice the limit;
* any other body is read (chunked transfer included) and held up to the limit; one that
  turns out larger gets 413 after at most as many bytes again have been read and dropped, so a
  client that sends its body without waiting still reads the answer instead of a reset;
* receiving the body is bounded by the same timeout as computing the answer (HTTP 408).

The limits reach the server process through environment variables that ``pesnet serve``
sets from its options: :data:`MAX_ATOMS_ENV` (read by the model, :mod:`.serving`, so it holds
under a plain ``mlflow models serve`` too), :data:`MAX_REQUEST_MB_ENV` and MLflow's own
:data:`TIMEOUT_ENV`.
"""

from __future__ import annotations

import asyncio
import json
import os

from pesnet.errors import InputError

#: Default limit on the atoms of one request (all rows and frames together). One 97,556-atom
#: Cu cell took 19 s and 4.2 GB with a 4.5 Å cutoff on a 2-core machine; more neighbours
#: (longer cutoffs, denser matter) cost proportionally more, so the default keeps a request
#: near 1 GB and well inside the timeout with a 6 Å model.
MAX_ATOMS = 20_000
MAX_ATOMS_ENV = "PESNET_SERVE_MAX_ATOMS"
#: Default limit on a request body (MiB). 100,000 atoms take ~7 MB as extxyz or JSON: the
#: body limit is for multi-frame requests of small structures.
MAX_REQUEST_MB = 50.0
MAX_REQUEST_MB_ENV = "PESNET_SERVE_MAX_REQUEST_MB"
#: MLflow's scoring server answers 504 when computing an answer takes longer (seconds); the
#: computation itself runs on to its end in a worker thread, which Python cannot interrupt.
TIMEOUT = 60
TIMEOUT_ENV = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"


def _positive_from_env(name: str, default, kind):
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if not 0 < value < float("inf"):
        raise InputError(f"{name} must be a positive number, not {text!r}")
    return value


def max_atoms_per_request() -> int:
    """The atom limit of one request: ``$PESNET_SERVE_MAX_ATOMS``, else :data:`MAX_ATOMS`.
    Read by the model on every request, so it holds under any MLflow server."""
    return _positive_from_env(MAX_ATOMS_ENV, MAX_ATOMS, int)


def max_request_mb() -> float:
    """The body limit (MiB): ``$PESNET_SERVE_MAX_REQUEST_MB``, else :data:`MAX_REQUEST_MB`."""
    return _positive_from_env(MAX_REQUEST_MB_ENV, MAX_REQUEST_MB, float)


def request_timeout() -> int:
    """Seconds per request: ``$MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT``, else :data:`TIMEOUT`."""
    return _positive_from_env(TIMEOUT_ENV, TIMEOUT, int)


class _Disconnected(Exception):
    """The client went away while sending its body."""


async def _read_body(receive, limit: int) -> bytes | None:
    """The request body, or None if it is over ``limit`` bytes (then read on, dropping the
    bytes, until the body ends or ``2 * limit`` bytes have come)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        size += len(message.get("body", b""))
        if size <= limit:
            chunks.append(message.get("body", b""))
        elif size > 2 * limit:
            return None
        else:
            chunks = []
        if not message.get("more_body", False):
            return None if size > limit else b"".join(chunks)


def _replay(body: bytes, receive):
    """An ASGI ``receive`` that gives ``body`` once, then defers to the server's."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay():
        return pending.pop() if pending else await receive()

    return replay


async def _refuse(send, status: int, code: str, message: str) -> None:
    """A JSON error answer in MLflow's form; the connection closes (a body may be unread)."""
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: HTTP 413 for a request body over ``max_bytes``, 408 for one not received
    within ``timeout`` seconds (see the module doc); other requests reach ``app`` unchanged."""

    def __init__(self, app, max_bytes: int, timeout: float):
        self.app, self.max_bytes, self.timeout = app, int(max_bytes), timeout

    def _too_large(self, size: int | None) -> str:
        what = f"is {size} bytes" if size is not None else "is larger"
        return (f"the request body {what}; at most {self.max_bytes} bytes "
                f"({self.max_bytes / 2**20:g} MiB) per request (pesnet serve --max-request-mb)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers[b"content-length"])
        except (KeyError, ValueError):
            declared = None
        waits = headers.get(b"expect", b"").lower() == b"100-continue"
        if declared is not None and declared > self.max_bytes and (
                waits or declared > 2 * self.max_bytes):
            return await _refuse(send, 413, "REQUEST_LIMIT_EXCEEDED", self._too_large(declared))
        try:
            body = await asyncio.wait_for(_read_body(receive, self.max_bytes), self.timeout)
        except _Disconnected:
            return None
        except (asyncio.TimeoutError, TimeoutError):
            return await _refuse(send, 408, "DEADLINE_EXCEEDED",
                                 f"the request body did not arrive within {self.timeout} s")
        if body is None:
            return await _refuse(send, 413, "REQUEST_LIMIT_EXCEEDED", self._too_large(declared))
        return await self.app(scope, _replay(body, receive), send)
