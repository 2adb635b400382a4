"""The sandbox's local services, each on 127.0.0.1 with a free port, stopped on exit.

- moto server (its own process) stands in for S3, DynamoDB and Secrets Manager;
- the Braze emulator (its own process);
- a Lambda front (a thread) that takes the functions' asynchronous ``Invoke`` calls, which moto
  cannot run without Docker, and queues them for the sandbox to deliver to the real handler.

Nothing outlives the sandbox: leaving the context stops each process, and on Linux each child is
also asked to end when its parent dies (``die_with_parent``), which covers a SIGKILL of the
sandbox, where no clean-up runs. The thread that starts a service is its parent for Linux: start
them from a thread that lives as long as the sandbox.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import IO, Any, Self

HOST = "127.0.0.1"
# moto accepts any credentials; these keep the sandbox from ever using real ones by accident.
PLACEHOLDER_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_SESSION_TOKEN": "sandbox",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class ServiceError(RuntimeError):
    """A local service did not start, with its own reason; ``usage``: it refused the settings it was given."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def _require(module: str) -> None:
    """A service's module is importable here, or the same ModuleNotFoundError its process would die of."""
    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with code {proc.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise ServiceError(f"{name} did not start listening on {HOST}:{port} within {timeout:.0f}s")


_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Any:
    """libc's prctl, loaded before any fork (a child between fork and exec should only call it), or None
    where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent: int | None = None) -> None:
    """Have Linux send this process SIGTERM when its parent dies, however it dies; nothing elsewhere.
    ``parent``: the pid that started it, to end at once if that one died before the request was made."""
    prctl = _prctl()
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _child_setup() -> Callable[[], None]:
    """A ``preexec_fn`` for a service process: it dies with this process."""
    _prctl()
    parent = os.getpid()
    return lambda: die_with_parent(parent)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto server; yields its endpoint URL."""
    _require("moto")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_CALL_RESET_API": "false"},
        preexec_fn=_child_setup(),
        start_new_session=True,  # a terminal's Ctrl-C or hang-up is the sandbox's to handle: it stops this last
    )
    try:
        try:
            _wait_for_port(port, proc, "moto server")
        except ServiceError:
            raise _moto_failure() from None
        yield f"http://{HOST}:{port}"
    finally:
        _stop(proc)


def _moto_failure() -> Exception:
    """Why moto server exited while starting (its output is not kept: it logs every request): a module its
    server needs and lacks (``moto`` without its server extras), found by importing it again, or its code."""
    probe = subprocess.run([sys.executable, "-c", "import moto.server"], capture_output=True, text=True, timeout=60)
    said = [line for line in probe.stderr.splitlines() if line.strip()]
    return _missing_module(said[-1] if said else "", "moto server") or ServiceError(
        f"moto server did not start{': ' + said[-1].strip() if said else ''}"
    )


def _missing_module(line: str, service: str) -> ModuleNotFoundError | None:
    """The module a service's last word says it lacks: its own one line, or a traceback's last."""
    missing = re.search(r"No module named '([^']+)'", line)
    if missing is None:
        return None
    return ModuleNotFoundError(f"No module named {missing[1]!r} ({service} needs it)", name=missing[1])


def sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    """A received SQS message as Lambda's SQS event source hands it to a function."""
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": message.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": "",
            "eventSource": "aws:sqs"}  # fmt: skip


class LocalStack:
    """A sandbox's lifetime: ``_start`` enters services into ``self._stack``; leaving stops them all,
    also when starting failed half-way."""

    _stack: contextlib.ExitStack

    def __enter__(self) -> Self:
        self._stack = contextlib.ExitStack()
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # The services see how the sandbox ended: an interrupt stops worker processes at once.
        self._stack.__exit__(exc_type, exc, tb)

    def _start(self) -> None:
        raise NotImplementedError


class BrazeEmulator:
    """Handle on a running emulator process."""

    def __init__(self, url: str) -> None:
        self.url = url

    def configure(self, **settings: Any) -> None:
        self._call("POST", "/_emulator/config", settings)

    def reset(self) -> None:
        self._call("POST", "/_emulator/reset", {})

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_emulator/state")
        return result

    def objects(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_emulator/objects")
        return result

    def users(self, **identifier: str) -> list[dict[str, Any]]:
        """The profiles Braze would hold (all, or those one identifier names: ``external_id="u1"``)."""
        query = "?" + urllib.parse.urlencode(identifier) if identifier else ""
        result: list[dict[str, Any]] = self._call("GET", "/_emulator/users" + query)["users"]
        return result

    def catalog(self, name: str) -> dict[str, Any]:
        """A catalog's fields, items (sorted by id) and the items its asynchronous answers failed."""
        result: dict[str, Any] = self._call("GET", "/_emulator/catalogs/" + urllib.parse.quote(name, safe=""))
        return result

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 - loopback http
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback http
            return json.loads(response.read() or b"null")


@contextlib.contextmanager
def braze_emulator(**settings: Any) -> Iterator[BrazeEmulator]:
    """Start the emulator with ``settings``; if it does not start, its own last word is the error
    (an unknown setting, a missing module)."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.braze_emulator", "--host", HOST, "--port", "0",
             "--config", json.dumps(settings)],
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            preexec_fn=_child_setup(),
            start_new_session=True,  # as moto server's: stopped by the sandbox, after what uses it
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().strip()
            if not line.startswith("READY "):
                raise _emulator_failure(proc, errors)
            yield BrazeEmulator(f"http://{HOST}:{int(line.split()[1])}")
        finally:
            _stop(proc)


def _emulator_failure(proc: subprocess.Popen[bytes], errors: IO[bytes]) -> Exception:
    """What the emulator said as it exited: its settings refused (argparse's exit 2), a missing module, or else."""
    code = proc.wait(timeout=10)
    errors.seek(0)
    said = [line for line in errors.read().decode(errors="replace").splitlines() if line.strip()]
    last = said[-1].strip() if said else f"exit code {code}"
    missing = _missing_module(last, "the Braze emulator")
    if missing:
        return missing
    if code == 2:  # argparse: the settings were refused
        return ServiceError("the Braze emulator refused its settings: " + last.split("--config: ", 1)[-1], usage=True)
    return ServiceError(f"the Braze emulator did not start: {last}")


class HttpFront:
    """A local HTTP server on a free port of 127.0.0.1, served from a thread while the context is open."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._server = ThreadingHTTPServer((HOST, 0), handler)
        self.url = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class LambdaFront(HttpFront):
    """Accepts ``Invoke`` with ``InvocationType=Event`` and queues the payloads in order."""

    def __init__(self) -> None:
        self.pending: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                parts = self.path.split("/")
                name = parts[3] if len(parts) > 3 else ""
                if self.headers.get("X-Amz-Invocation-Type") != "Event":
                    self.send_response(400)
                    self.end_headers()
                    return
                front.pending.put((urllib.parse.unquote(name), payload))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler, "lambda-front")
