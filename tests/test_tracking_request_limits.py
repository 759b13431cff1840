"""The limits of `pesnet serve`: defaults and environment variables, and the ASGI middleware
that refuses large bodies (driven here without a server; over HTTP in test_tracking_serving)."""

from __future__ import annotations

import asyncio
import json

import pytest

from pesnet.errors import InputError
from pesnet.tracking.request_limits import (
    MAX_ATOMS,
    MAX_ATOMS_ENV,
    MAX_REQUEST_MB_ENV,
    TIMEOUT_ENV,
    BodyLimit,
    max_atoms_per_request,
    max_request_mb,
    request_timeout,
)


def test_limits_come_from_the_environment(monkeypatch):
    for name in (MAX_ATOMS_ENV, MAX_REQUEST_MB_ENV, TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)
    assert (max_atoms_per_request(), max_request_mb(), request_timeout()) == (20_000, 50, 60)
    assert MAX_ATOMS == 20_000
    monkeypatch.setenv(MAX_ATOMS_ENV, "250")
    monkeypatch.setenv(MAX_REQUEST_MB_ENV, "0.5")
    monkeypatch.setenv(TIMEOUT_ENV, "7")
    assert (max_atoms_per_request(), max_request_mb(), request_timeout()) == (250, 0.5, 7)
    for name, bad in ((MAX_ATOMS_ENV, "many"), (MAX_REQUEST_MB_ENV, "inf"), (TIMEOUT_ENV, "0")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(InputError, match=f"{name} must be a positive number, not '{bad}'"):
            (max_atoms_per_request(), max_request_mb(), request_timeout())
        monkeypatch.setenv(name, "1")


def _call(max_bytes, timeout, messages, headers=()):
    """Drive :class:`BodyLimit` with one HTTP request whose body arrives as ``messages`` (and
    then never ends); returns (status, answer body, the bodies the app received)."""
    seen, sent, queue = [], [], list(messages)

    async def app(scope, receive, send):
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations",
             "headers": [(k.encode(), v.encode()) for k, v in headers]}
    asyncio.run(BodyLimit(app, max_bytes, timeout)(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), seen


def _chunks(*parts):
    return [{"type": "http.request", "body": p, "more_body": k < len(parts) - 1}
            for k, p in enumerate(parts)]


def test_a_body_within_the_limit_reaches_the_app_whole():
    status, body, seen = _call(10, 5, _chunks(b"0123", b"456789"))
    assert (status, body, seen) == (200, b"ok", [b"0123456789"])


def test_a_larger_body_is_413_and_never_reaches_the_app():
    status, body, seen = _call(10, 5, _chunks(b"0123456", b"7890"))
    assert status == 413 and seen == []
    assert "at most 10 bytes" in json.loads(body)["message"]
    # declared too long and waiting for "100 Continue": answered without reading anything
    status, _, seen = _call(10, 5, [], headers=[("content-length", "11"),
                                                ("expect", "100-continue")])
    assert status == 413 and seen == []


def test_a_body_that_does_not_arrive_in_time_is_408():
    status, body, seen = _call(10, 0.05, _chunks(b"01", b"23")[:1])
    assert status == 408 and seen == []
    assert "did not arrive within 0.05 s" in json.loads(body)["message"]


@pytest.mark.parametrize("argv, expected", [
    (["--max-atoms", "0"], "--max-atoms must be a positive number, got 0"),
    (["--max-request-mb", "nan"], "--max-request-mb must be a positive number, got nan"),
    (["--timeout", "-5"], "--timeout must be a positive number, got -5"),
])
def test_serve_refuses_limits_that_are_not_positive(argv, expected, capsys, monkeypatch):
    from pesnet.cli.main import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # never reached
    assert main(["serve", "some-model", *argv]) == 1
    assert capsys.readouterr().err == f"pesnet serve: error: {expected}\n"
