"""The asyncio client against the real server."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable, List

from conftest import SESSION_EVENT, EyeServer, FaultyProxy, free_port
from the_eye_client import AsyncClient, Stats


def test_every_event_is_stored_once_with_its_client_id(server: EyeServer) -> None:
    sid = f"s-{uuid.uuid4()}"
    ids = [f"{sid}-{n}" for n in range(250)]

    async def run() -> Stats:
        async with AsyncClient(server.url, server.ingest_token) as client:
            for n, event_id in enumerate(ids):
                assert client.track(
                    sid, "page interaction", "pageview", {**SESSION_EVENT, "n": n}, id=event_id
                )
                if n % 50 == 0:
                    await asyncio.sleep(0)  # let the sender run between bursts
        return client.stats

    stats = asyncio.run(run())
    assert (stats.sent, stats.rejected, stats.dropped, stats.failed) == (250, 0, 0, 0)
    stored = server.assert_stored_exactly_once(sid, ids)
    assert sorted(e["data"]["n"] for e in stored) == list(range(250))


def test_events_whose_answers_are_lost_are_stored_once(
    server: EyeServer, make_proxy: Callable[[str, List[str]], FaultyProxy]
) -> None:
    proxy = make_proxy(server.url, ["forward_drop", "forward_503", "429"])
    sid = f"s-{uuid.uuid4()}"
    ids = [f"{sid}-{n}" for n in range(120)]

    async def run() -> Stats:
        client = AsyncClient(proxy.url, server.ingest_token, batch_size=40, flush_interval=0.05)
        for event_id in ids:
            client.track(sid, "page interaction", "pageview", SESSION_EVENT, id=event_id)
        assert await client.flush(timeout=30)
        return await client.close()

    stats = asyncio.run(run())
    assert stats.retries >= 3
    assert (stats.sent, stats.dropped, stats.failed) == (120, 0, 0)
    server.assert_stored_exactly_once(sid, ids)


def test_a_full_buffer_and_a_dead_server_do_not_hang_close() -> None:
    async def run() -> None:
        client = AsyncClient(f"http://127.0.0.1:{free_port()}", "t", max_buffer=10)
        results = [client.track("s", "c", "n") for _ in range(15)]
        assert results == [True] * 10 + [False] * 5
        assert client.stats.dropped == 5
        assert not await client.flush(timeout=0.2)
        started = time.monotonic()
        stats = await client.close(timeout=0.5)
        assert time.monotonic() - started < 2.5
        assert (stats.dropped, stats.sent) == (15, 0)

    asyncio.run(run())


def test_a_bad_token_is_not_retried(server: EyeServer) -> None:
    async def run() -> Stats:
        client = AsyncClient(server.url, "eye_i_bogus", flush_interval=0.05)
        for _ in range(5):
            client.track("s", "page interaction", "pageview", SESSION_EVENT)
        assert await client.flush(timeout=10)
        started = time.monotonic()
        stats = await client.close()
        assert time.monotonic() - started < 1.0
        return stats

    stats = asyncio.run(run())
    assert (stats.failed, stats.retries, stats.sent) == (5, 0, 0)
