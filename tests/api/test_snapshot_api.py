from __future__ import annotations

import uuid

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from events.storage.objects_s3 import S3ObjectStore
from events.storage.snapshot import encode_snapshot
from tests.api.support import Parts, login, make_event, start
from tests.conftest_s3 import S3Server


def jpeg() -> bytes:
    return encode_snapshot(np.full((120, 160, 3), 80, np.uint8), (20, 20, 100, 100), "person", 0.9)


def test_snapshot_streams_from_local_store(client: TestClient, parts: Parts) -> None:
    data = jpeg()
    parts.store.apply(start(make_event(1)))
    parts.objects.put("snapshots/cam1/2024/05/01/ev001.jpg", data, "image/jpeg")
    parts.store.set_snapshot("ev001", "snapshots/cam1/2024/05/01/ev001.jpg", 0.9)
    r = client.get("/events/ev001/snapshot")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "no-cache"  # open event: a better snapshot may follow
    assert r.content == data
    assert cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)


def test_snapshot_404s(client: TestClient, parts: Parts) -> None:
    assert client.get("/events/nope/snapshot").status_code == 404
    parts.store.apply(start(make_event(2)))
    r = client.get("/events/ev002/snapshot")
    assert r.status_code == 404 and "no snapshot" in r.json()["detail"]
    parts.store.set_snapshot("ev002", "snapshots/cam1/gone.jpg", 0.5)  # key recorded, object deleted since
    r = client.get("/events/ev002/snapshot")
    assert r.status_code == 404 and "missing" in r.json()["detail"]


@pytest.mark.slow
def test_snapshot_redirects_to_presigned_s3_link(parts: Parts, seaweedfs: S3Server) -> None:
    s3 = S3ObjectStore(
        seaweedfs.endpoint,
        seaweedfs.access_key,
        seaweedfs.secret_key,
        f"khupho-{uuid.uuid4().hex[:12]}",
        retries=5,
        backoff=0.1,
    )
    data = jpeg()
    s3.put("snapshots/cam1/ev003.jpg", data, "image/jpeg")
    parts.store.apply(start(make_event(3)))
    parts.store.set_snapshot("ev003", "snapshots/cam1/ev003.jpg", 0.8)
    parts.objects = s3
    with TestClient(parts.app()) as c:
        login(c)
        r = c.get("/events/ev003/snapshot", follow_redirects=False)
    assert r.status_code == 307
    link = r.headers["location"]
    assert link.startswith(f"http://{seaweedfs.endpoint}/") and "X-Amz-Signature" in link
    fetched = httpx.get(link)
    assert fetched.status_code == 200 and fetched.content == data
    assert fetched.headers["content-type"] == "image/jpeg"
