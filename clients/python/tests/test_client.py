"""The threaded client against the real server."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, List

import pytest

from conftest import SESSION_EVENT, EyeServer, FaultyProxy, free_port, wait_until
from the_eye_client import Client, _core


def pageviews(client: Client, session_id: str, count: int, start: int = 0) -> List[str]:
    """Tracks ``count`` pageviews with known client ids; returns the ids."""
    ids = []
    for n in range(start, start + count):
        event_id = f"{session_id}-{n}"
        assert client.track(
            session_id, "page interaction", "pageview", {**SESSION_EVENT, "n": n}, id=event_id
        )
        ids.append(event_id)
    return ids


def session() -> str:
    return f"s-{uuid.uuid4()}"


def test_every_event_is_stored_once_with_its_client_id(server: EyeServer) -> None:
    sid = session()
    client = Client(server.url, server.ingest_token)
    ids = []
    for n in range(250):
        # Half with ids given by the test, half with ids the client makes.
        if n % 2:
            ids.append(f"given-{sid}-{n}")
            client.track(sid, "page interaction", "pageview", SESSION_EVENT, id=ids[-1])
        else:
            client.track(sid, "page interaction", "pageview", SESSION_EVENT)
    stats = client.close()
    assert (stats.sent, stats.rejected, stats.dropped, stats.failed) == (250, 0, 0, 0)

    stored = server.assert_stored_exactly_once(sid, ids, total=250)
    client_ids = {e["client_id"] for e in stored}
    assert set(ids) <= client_ids
    made = client_ids - set(ids)
    assert len(made) == 125 and all(uuid.UUID(i).version == 7 for i in made)
    for event in stored:
        assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == 27
        assert event["data"] == SESSION_EVENT


def test_events_whose_answers_are_lost_are_stored_once(
    server: EyeServer, make_proxy: Callable[[str, List[str]], FaultyProxy]
) -> None:
    # The first three requests reach the server (their events are stored) but the
    # client never sees the answer: a 503, a dropped connection, a 503.
    proxy = make_proxy(server.url, ["forward_503", "forward_drop", "forward_503"])
    duplicates_before = server.metric("eye_events_duplicate_total")
    sid = session()
    with Client(proxy.url, server.ingest_token, batch_size=50, flush_interval=0.1) as client:
        ids = pageviews(client, sid, 200)
        assert client.flush(timeout=30)
        stats = client.stats
    assert stats.retries >= 3
    assert (stats.sent, stats.rejected, stats.dropped, stats.failed) == (200, 0, 0, 0)
    server.assert_stored_exactly_once(sid, ids)
    faults = [fault for _, fault, _ in proxy.requests]
    assert faults[:3] == ["forward_503", "forward_drop", "forward_503"]
    assert all(count <= 50 for _, _, count in proxy.requests)
    # The server saw resent ids and stored them once.
    assert server.metric("eye_events_duplicate_total") - duplicates_before >= 3 * 50 - 50


def test_retry_after_is_honoured(
    server: EyeServer, make_proxy: Callable[[str, List[str]], FaultyProxy]
) -> None:
    proxy = make_proxy(server.url, ["429"])
    sid = session()
    client = Client(proxy.url, server.ingest_token, flush_interval=0.05)
    ids = pageviews(client, sid, 10)
    assert client.flush(timeout=15)
    stats = client.close()
    assert stats.retries == 1 and stats.sent == 10
    (first, fault, _), (second, _, _) = proxy.requests[:2]
    assert fault == "429"
    assert second - first >= 0.95, f"retried after {second - first:.3f} s"
    assert second - first < 3.0
    server.assert_stored_exactly_once(sid, ids)


def test_a_server_killed_and_restarted_loses_and_duplicates_nothing(server: EyeServer) -> None:
    sid = session()
    client = Client(
        server.url, server.ingest_token, batch_size=20, flush_interval=0.05, max_backoff=0.5
    )
    ids = pageviews(client, sid, 100)
    assert client.flush(timeout=15)
    port = server.port
    assert port is not None

    # Kill the server while a stream of events is being sent.
    stream_done = threading.Event()
    streamed: List[str] = []

    def stream() -> None:
        for n in range(100, 300):
            streamed.extend(pageviews(client, sid, 1, start=n))
            time.sleep(0.002)
        stream_done.set()

    sender = threading.Thread(target=stream)
    sender.start()
    time.sleep(0.1)  # let some of the stream reach the server before the kill
    server.kill()
    sender.join()
    assert stream_done.is_set()
    ids += pageviews(client, sid, 50, start=300)
    # The client keeps retrying against the dead port.
    wait_until(lambda: client.stats.retries >= 2, 15, "the client to retry")

    server.start(port=port)
    assert server.port == port
    stats = client.close(timeout=30)
    assert (stats.sent, stats.rejected, stats.dropped, stats.failed) == (350, 0, 0, 0)
    server.assert_stored_exactly_once(sid, ids + streamed)


def test_a_full_buffer_drops_new_events_and_close_does_not_hang() -> None:
    client = Client(
        f"http://127.0.0.1:{free_port()}", "eye_i_nobody", max_buffer=10, flush_interval=0.01
    )
    results = [client.track("s", "page interaction", "pageview", SESSION_EVENT) for _ in range(15)]
    assert results == [True] * 10 + [False] * 5
    assert client.stats.dropped == 5
    assert not client.flush(timeout=0.2)

    started = time.monotonic()
    stats = client.close(timeout=0.5)
    assert time.monotonic() - started < 2.5
    # The ten buffered events were never answered: dropped at close's deadline.
    assert (stats.dropped, stats.sent, stats.failed) == (15, 0, 0)
    assert stats.retries >= 1
    assert client.track("s", "page interaction", "pageview", SESSION_EVENT) is False
    assert client.stats.dropped == 16


def test_a_bad_token_is_not_retried(
    server: EyeServer, make_proxy: Callable[[str, List[str]], FaultyProxy]
) -> None:
    proxy = make_proxy(server.url, [])
    client = Client(proxy.url, "eye_i_" + "0" * 64, flush_interval=0.05)
    for _ in range(5):
        client.track("s", "page interaction", "pageview", SESSION_EVENT)
    assert client.flush(timeout=10)
    started = time.monotonic()
    stats = client.close()
    assert time.monotonic() - started < 1.0
    assert (stats.failed, stats.retries, stats.sent, stats.dropped) == (5, 0, 0, 0)
    assert len(proxy.requests) == 1


def test_refused_events_are_counted_with_their_reasons_and_not_retried(server: EyeServer) -> None:
    sid = session()
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    with Client(server.url, server.ingest_token, flush_interval=0.05) as client:
        good = pageviews(client, sid, 3)
        client.track(sid, "page interaction", "pageview", SESSION_EVENT, id="bad-ts", timestamp="yesterday")
        client.track(sid, "page interaction", "pageview", SESSION_EVENT, id="future", timestamp=future)
    stats = client.stats
    # A bad timestamp is refused by ingest; a future one is accepted at ingest and
    # recorded as an error by the worker (so it counts as sent).
    assert (stats.sent, stats.rejected, stats.retries) == (4, 1, 0)
    (rejection,) = stats.rejections
    assert rejection.id == "bad-ts" and rejection.code == "invalid_timestamp"
    assert rejection.field == "timestamp" and rejection.error_id
    server.assert_stored_exactly_once(sid, good)


def test_invalid_events_raise_at_track() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", "t", shutdown_timeout=0)
    with pytest.raises(TypeError):
        client.track("s", "", "pageview")
    with pytest.raises(TypeError):
        client.track("s", "c", "n", ["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        client.track("s", "c", "n", {"x": float("nan")})
    # An event larger than a request may be is refused and counted as failed.
    assert not client.track("s", "c", "n", {"x": "y" * 1_100_000})
    assert client.stats.failed == 1
    with pytest.raises(ValueError):
        Client("127.0.0.1:8000", "t")
    assert client.close().dropped == 0
    assert "t'" not in repr(client.config) and "token" not in repr(client.config)


def test_a_client_left_open_is_flushed_when_the_interpreter_exits(server: EyeServer) -> None:
    sid = session()
    script = (
        "import sys\n"
        "from the_eye_client import Client\n"
        "client = Client(sys.argv[1], sys.argv[2], flush_interval=60)\n"
        "for n in range(20):\n"
        "    client.track(sys.argv[3], 'page interaction', 'pageview',"
        " {'host': 'x.example', 'path': '/'}, id=f'{sys.argv[3]}-{n}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, server.url, server.ingest_token, sid],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr
    server.assert_stored_exactly_once(sid, [f"{sid}-{n}" for n in range(20)])


def test_large_events_are_split_into_requests_the_server_takes(
    server: EyeServer, make_proxy: Callable[[str, List[str]], FaultyProxy]
) -> None:
    # 60 events of ~30 KB (under the server's 32 KiB payload limit) are ~1.8 MB: more
    # than one request may carry (1 MiB), though fewer than batch_size events.
    proxy = make_proxy(server.url, [])
    sid = session()
    with Client(proxy.url, server.ingest_token, flush_interval=0.05) as client:
        ids = []
        for n in range(60):
            ids.append(f"{sid}-{n}")
            client.track(
                sid, "page interaction", "pageview", {**SESSION_EVENT, "pad": "x" * 30_000}, id=ids[-1]
            )
    assert (client.stats.sent, client.stats.failed) == (60, 0)
    assert len(proxy.requests) >= 2
    server.assert_stored_exactly_once(sid, ids)


def test_default_ids_are_uuid7_with_the_time_first():
    before = time.time_ns() // 1_000_000
    made = [uuid.UUID(_core.uuid7()) for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == 1000
    for u in made:
        assert (u.version, u.variant) == (7, uuid.RFC_4122)
        assert before <= int.from_bytes(u.bytes[:6], "big") <= after
