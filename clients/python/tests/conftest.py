"""Fixtures: the real ``eye`` server, started per test, and a faulty proxy."""

from __future__ import annotations

import collections
import http.client
import http.server
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[3]
LISTENING = re.compile(r"eye: listening on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0

SESSION_EVENT = {"host": "x.example", "path": "/"}


def eye_binary() -> Path:
    configured = os.environ.get("EYE_BINARY")
    binary = Path(configured) if configured else REPO / "target" / "debug" / "eye"
    if not binary.is_file():
        message = f"the eye binary is missing at {binary} (build it: cargo build -p eye, or set EYE_BINARY)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Polls ``check`` until it holds; fails the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() >= end:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class EyeServer:
    """One data directory, its tokens, and an ``eye serve`` process that can be
    killed and started again on the same port."""

    def __init__(self, binary: Path, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.ingest_token = self._cli("app", "create", "web")
        self.read_token = self._cli("token", "create", "--scope", "read")
        self.process: Optional[subprocess.Popen[str]] = None
        self.port: Optional[int] = None
        self.log: List[str] = []

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.binary), *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"eye {' '.join(args)} failed: {done.stderr}"
        return done.stdout.strip()

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0, timeout: float = START_TIMEOUT) -> None:
        """Starts ``eye serve``; with a port, retries the bind until the deadline."""
        end = time.monotonic() + timeout
        while True:
            started = self._start_once(port, end)
            if started:
                return
            if time.monotonic() >= end:
                pytest.fail(f"eye serve did not start on port {port}:\n" + "\n".join(self.log[-20:]))
            time.sleep(0.1)

    def _start_once(self, port: int, end: float) -> bool:
        process = subprocess.Popen(
            [
                str(self.binary),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        log = self.log
        assert process.stderr is not None
        stderr = process.stderr

        def drain() -> None:
            # Keeps reading stderr for the process's whole life, so it never blocks on
            # a full pipe.
            with stderr:
                for line in stderr:
                    log.append(line.rstrip("\n"))
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        while True:
            left = end - time.monotonic()
            if left <= 0:
                process.kill()
                process.wait()
                return False
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:  # it exited: the port is still taken, or worse
                process.wait()
                return False
            match = LISTENING.search(line)
            if match:
                self.process = process
                self.port = int(match.group(1))
                return True

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def get(self, path: str, params: Dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.read_token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def events(self, session_id: str) -> List[Dict[str, Any]]:
        """Every stored event of a session, all pages."""
        events: List[Dict[str, Any]] = []
        params = {"session_id": session_id, "limit": "1000"}
        while True:
            page = self.get("/events", params)
            events.extend(page["events"])
            if not page.get("next_cursor"):
                return events
            params["cursor"] = page["next_cursor"]

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def assert_stored_exactly_once(
        self,
        session_id: str,
        client_ids: List[str],
        total: Optional[int] = None,
        timeout: float = 30.0,
    ) -> List[Dict[str, Any]]:
        """Waits until every id in ``client_ids`` is stored (and ``total`` events in
        all, when some ids are not known to the test) and the server's queue is empty;
        then checks each client id is stored once and nothing else is in the session."""
        wanted = set(client_ids)
        assert len(wanted) == len(client_ids), "the test tracked an id twice"
        total = len(client_ids) if total is None else total
        found: List[Dict[str, Any]] = []

        def all_stored() -> bool:
            nonlocal found
            found = self.events(session_id)
            stored = {event.get("client_id") for event in found}
            return (
                wanted <= stored
                and len(found) >= total
                and self.metric("eye_queue_depth") == 0
            )

        wait_until(all_stored, timeout, f"{total} events of {session_id} to be stored")
        counts = collections.Counter(event.get("client_id") for event in found)
        twice = {cid: n for cid, n in counts.items() if n != 1}
        assert not twice, f"stored more than once: {twice}"
        assert None not in counts, "an event was stored without its client id"
        if total == len(client_ids):
            assert set(counts) == wanted, f"unexpected events: {set(counts) - wanted}"
        assert len(found) == total
        return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EyeServer]:
    eye = EyeServer(eye_binary(), tmp_path / "data")
    eye.start()
    try:
        yield eye
    finally:
        eye.stop()


# -- a proxy that loses answers ----------------------------------------------------

#: What the proxy does with one request:
#: ``pass``: forwards it and relays the answer;
#: ``forward_503``: forwards it (the server stores the events), then answers 503;
#: ``forward_drop``: forwards it, then closes the connection without an answer;
#: ``429``: answers 429 with ``Retry-After: 1`` and forwards nothing.
Fault = str


class FaultyProxy:
    def __init__(self, upstream: str, plan: List[Fault]) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.plan = collections.deque(plan)
        self.lock = threading.Lock()
        #: (monotonic time, what was done, events in the request's body) per request.
        self.requests: List[Tuple[float, Fault, int]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with proxy.lock:
                    fault = proxy.plan.popleft() if proxy.plan else "pass"
                    proxy.requests.append((time.monotonic(), fault, proxy._count(body, self.headers)))
                if fault == "429":
                    self._answer(429, b'{"error":{"code":"rate_limited"}}', {"Retry-After": "1"})
                    return
                status, answer = proxy._forward(self.path, self.headers, body)
                if fault == "forward_503":
                    self._answer(503, b'{"error":{"code":"queue_full"}}', {})
                elif fault == "forward_drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    self._answer(status, answer, {})

            def _answer(self, status: int, body: bytes, headers: Dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @staticmethod
    def _count(body: bytes, headers: Any) -> int:
        import gzip

        raw = gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body
        try:
            parsed = json.loads(raw)
        except ValueError:
            return -1
        return len(parsed) if isinstance(parsed, list) else 1

    def _forward(self, path: str, headers: Any, body: bytes) -> Tuple[int, bytes]:
        connection = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30
        )
        try:
            forwarded = {
                key: headers[key]
                for key in ("Authorization", "Content-Type", "Content-Encoding")
                if headers.get(key) is not None
            }
            connection.request("POST", path, body=body, headers=forwarded)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def make_proxy() -> Iterator[Callable[[str, List[Fault]], FaultyProxy]]:
    proxies: List[FaultyProxy] = []

    def make(upstream: str, plan: List[Fault]) -> FaultyProxy:
        proxy = FaultyProxy(upstream, plan)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
