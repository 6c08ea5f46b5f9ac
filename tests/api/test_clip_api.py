"""GET /events/{id}/clip: the whole MP4, byte ranges (206), 416, 404s, and the S3 redirect."""

from __future__ import annotations

import uuid
from pathlib import Path

import av
import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from api.ranges import RangeNotSatisfiable, byte_range
from events.storage.objects_s3 import S3ObjectStore
from ingest.packet_ring import PacketRing
from ingest.remux import remux_mp4
from tests.api.support import Parts, login, make_event, start
from tests.conftest_s3 import S3Server

KEY = "clips/cam1/2024/05/01/ev001.mp4"
WHY = {"reason": "checking an intrusion"}


@pytest.fixture(scope="module")
def mp4(footage_dir: Path) -> bytes:
    """A real clip: the first 4 s of a camera file's packets, remuxed as the recorder does."""
    ring = PacketRing("cam1", seconds=60, max_bytes=64 << 20)
    with av.open(str(footage_dir / "parking_lot_overhead_768x432_h264.mp4")) as container:
        stream = container.streams.video[0]
        ring.begin(stream)
        ring.anchor(0.0)
        for packet in container.demux(stream):
            if packet.size:
                ring.push(packet)
    run = ring.cut(0.0, 4.0)
    assert run is not None
    return remux_mp4(run)


@pytest.fixture
def with_clip(parts: Parts, mp4: bytes) -> bytes:
    parts.store.apply(start(make_event(1)))
    parts.objects.put(KEY, mp4, "video/mp4")
    parts.store.set_clip("ev001", KEY)
    return mp4


def test_whole_clip_streams_with_accept_ranges(client: TestClient, with_clip: bytes) -> None:
    r = client.get("/events/ev001/clip", params=WHY)
    assert r.status_code == 200
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["accept-ranges"] == "bytes"
    assert int(r.headers["content-length"]) == len(with_clip)
    assert r.content == with_clip


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, None),
        ("bytes=-500", None, None),
        ("bytes=100-99999999", 100, None),
    ],
)
def test_a_range_gets_206_with_those_bytes(
    client: TestClient, with_clip: bytes, header: str, first: int | None, last: int | None
) -> None:
    size = len(with_clip)
    if first is None:
        first = size - 500
    if last is None:
        last = size - 1
    r = client.get("/events/ev001/clip", params=WHY, headers={"Range": header})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert int(r.headers["content-length"]) == last - first + 1
    assert r.content == with_clip[first : last + 1]


def test_a_range_past_the_end_is_416(client: TestClient, with_clip: bytes) -> None:
    size = len(with_clip)
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        r = client.get("/events/ev001/clip", params=WHY, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["content-range"] == f"bytes */{size}"


def test_ranges_it_does_not_serve_get_the_whole_clip(client: TestClient, with_clip: bytes) -> None:
    for header in ("bytes=0-1,5-9", "bytes=9-5", "items=0-5", "bytes=abc"):
        r = client.get("/events/ev001/clip", params=WHY, headers={"Range": header})
        assert r.status_code == 200 and r.content == with_clip, header


def test_clip_404s(client: TestClient, parts: Parts) -> None:
    assert client.get("/events/nope/clip", params=WHY).status_code == 404
    parts.store.apply(start(make_event(2)))
    r = client.get("/events/ev002/clip", params=WHY)
    assert r.status_code == 404 and "no clip" in r.json()["detail"]
    parts.store.set_clip("ev002", "clips/cam1/gone.mp4")  # key recorded, object deleted since
    r = client.get("/events/ev002/clip", params=WHY)
    assert r.status_code == 404 and "missing" in r.json()["detail"]


@given(
    size=st.integers(0, 10_000), a=st.none() | st.integers(0, 20_000), b=st.none() | st.integers(0, 20_000)
)
def test_byte_range_agrees_with_slicing(size: int, a: int | None, b: int | None) -> None:
    header = f"bytes={'' if a is None else a}-{'' if b is None else b}"
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    try:
        got = byte_range(header, size)
    except RangeNotSatisfiable:
        # Unsatisfiable: the range names no byte of the body.
        assert (a is not None and a >= size and (b is None or b >= a)) or (a is None and b is not None and (
            b == 0 or size == 0))  # fmt: skip
        return
    if got is None:  # ignored: malformed, so the whole body goes
        assert (a is None and b is None) or (a is not None and b is not None and b < a)
        return
    first, last = got
    assert 0 <= first <= last < size
    if a is None:
        assert body[first : last + 1] == body[-b:]  # type: ignore[operator]
    else:
        assert body[first : last + 1] == body[a : (None if b is None else b + 1)]


@pytest.mark.slow
def test_clip_redirects_to_a_presigned_link_that_serves_ranges(
    parts: Parts, seaweedfs: S3Server, mp4: bytes
) -> None:
    s3 = S3ObjectStore(
        seaweedfs.endpoint,
        seaweedfs.access_key,
        seaweedfs.secret_key,
        f"khupho-{uuid.uuid4().hex[:12]}",
        retries=5,
        backoff=0.1,
    )
    s3.put(KEY, mp4, "video/mp4")
    parts.store.apply(start(make_event(1)))
    parts.store.set_clip("ev001", KEY)
    parts.objects = s3
    with TestClient(parts.app()) as c:
        login(c)
        r = c.get("/events/ev001/clip", params=WHY, follow_redirects=False)
    assert r.status_code == 307
    link = r.headers["location"]
    assert link.startswith(f"http://{seaweedfs.endpoint}/") and "X-Amz-Signature" in link
    part = httpx.get(link, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == mp4[10:20]


def test_a_clip_needs_the_unredacted_permission_and_a_reason_and_is_audited(
    parts: Parts, with_clip: bytes
) -> None:
    from api.auth import Role
    from tests.api.support import PASSWORD

    parts.security.auth.add_user("op", PASSWORD, Role.OPERATOR, ["kp1"])  # cam1's, without unredacted
    parts.security.auth.add_user("op2", PASSWORD, Role.OPERATOR, ["kp2"], unredacted=True)  # another
    with TestClient(parts.app()) as c:
        login(c)  # the administrator may
        assert c.get("/events/ev001/clip").status_code == 422  # no reason given
        assert c.get("/events/ev001/clip", params=WHY).status_code == 200
        assert c.get("/events/ev001/clip", params=WHY, headers={"Range": "bytes=100-199"}).status_code == 206
    with TestClient(parts.app()) as c:
        login(c, "op", PASSWORD)
        assert c.get("/events/ev001", params=WHY).status_code == 200  # sees the event...
        assert c.get("/events/ev001/clip", params=WHY).status_code == 403  # ...not its video
    with TestClient(parts.app()) as c:
        login(c, "op2", PASSWORD)
        assert c.get("/events/ev001/clip", params=WHY).status_code == 404  # another khu phố's: unknown
    views = [r for r in parts.security.audit.records() if r.action == "clip.view"]
    assert [(v.actor, v.detail["reason"]) for v in views] == [("admin", WHY["reason"])]  # one per viewing
