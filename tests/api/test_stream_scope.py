"""The live feeds over a real server: each account gets only its own khu phố's cameras."""

from __future__ import annotations

import httpx

from api.auth import Role
from events.model import Phase
from tests.api.support import PASSWORD, Parts, login
from tests.api.test_sse import Reader, live_server, tr, wait_for


def test_event_stream_is_limited_to_the_callers_cameras(parts: Parts) -> None:
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    with live_server(parts, heartbeat_s=0.2) as url, httpx.Client(timeout=5) as client:
        login(client, "op1", PASSWORD, base=url)
        # Asking for another khu phố's camera by name does not widen the scope.
        reader = Reader(client, f"{url}/events/stream", params={"camera": ["cam1", "cam2"]})
        try:
            assert reader.response.status_code == 200
            assert wait_for(lambda: parts.bus.stats().subscribers == 1)
            for t in (
                tr(1, Phase.START, camera="cam2"),
                tr(2, Phase.START),
                tr(3, Phase.START, camera="cam3"),
            ):
                parts.bus.publish(t)
            got = reader.next()
            assert got.data["event"]["camera"] == "cam1"
            parts.bus.publish(tr(2, Phase.END))
            assert reader.next().data["event_id"] == "ev002"  # nothing of cam2 or cam3 came in between
        finally:
            reader.close()


def test_review_stream_is_limited_to_the_callers_cameras(parts: Parts) -> None:
    parts.security.auth.add_user("op2", PASSWORD, Role.OPERATOR, ["kp2"])
    with live_server(parts, heartbeat_s=0.2) as url, httpx.Client(timeout=5) as client:
        login(client, "op2", PASSWORD, base=url)
        reader = Reader(client, f"{url}/review/stream")
        try:
            assert reader.response.status_code == 200
            reader.next(skip_comments=False)  # connected
            parts.security.review.ingest(tr(1, Phase.START, camera="cam1"))
            mine = parts.security.review.ingest(tr(2, Phase.START, camera="cam2"))
            got = reader.next(timeout=3)
            assert got.event == "item" and got.data["id"] == mine and got.data["camera"] == "cam2"
            parts.security.review.acknowledge(mine)
            again = reader.next(timeout=3)
            assert again.data["id"] == mine and again.data["state"] == "acknowledged"
            assert int(again.id) > int(got.id)  # Last-Event-ID resumes after it
        finally:
            reader.close()
