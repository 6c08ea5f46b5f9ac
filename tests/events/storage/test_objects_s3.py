"""S3ObjectStore against a real SeaweedFS server (tests/conftest_s3.py)."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from events.storage.objects import ObjectNotFound
from events.storage.objects_s3 import S3ObjectStore
from events.storage.store import StorageError
from tests.conftest_s3 import S3Server, free_ports

pytestmark = pytest.mark.slow


def bucket_name() -> str:
    return f"khupho-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def s3(seaweedfs: S3Server) -> S3ObjectStore:
    # retries: the volume server may still be registering when the first put arrives.
    store = S3ObjectStore(
        seaweedfs.endpoint, seaweedfs.access_key, seaweedfs.secret_key, bucket_name(), retries=5, backoff=0.1
    )
    yield store
    store.close()


def test_put_get_stat_metadata(s3: S3ObjectStore) -> None:
    key = "snapshots/cam1/2024/05/01/abc.jpg"
    data = os.urandom(150_000)
    s3.put(key, data, "image/jpeg", {"camera": "cam1", "event-id": "abc", "confidence": "0.9100"})
    assert s3.get(key) == data
    assert b"".join(s3.open(key, chunk_size=32768)) == data
    info = s3.stat(key)
    assert info.size == len(data)
    assert info.content_type == "image/jpeg"
    assert info.metadata == {"camera": "cam1", "event-id": "abc", "confidence": "0.9100"}
    assert s3.exists(key)
    s3.delete(key)
    s3.delete(key)  # idempotent
    assert not s3.exists(key)
    with pytest.raises(ObjectNotFound):
        s3.get(key)
    with pytest.raises(ObjectNotFound):
        s3.open(key)
    with pytest.raises(ValueError):
        s3.put("../x", b"x")


def test_presigned_url_serves_the_bytes_and_tampering_is_refused(s3: S3ObjectStore) -> None:
    key = "snapshots/cam1/presigned.jpg"
    data = os.urandom(4096)
    s3.put(key, data, "image/jpeg")
    url = s3.presigned_url(key, timedelta(minutes=5))
    assert url is not None and url.startswith("http://127.0.0.1:")
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "image/jpeg"

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    sig = query["X-Amz-Signature"]
    query["X-Amz-Signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert httpx.get(urlunsplit(parts._replace(query=urlencode(query)))).status_code == 403
    other_key = urlunsplit(parts._replace(path=parts.path.replace("presigned.jpg", "other.jpg")))
    assert httpx.get(other_key).status_code == 403  # a link is for its own object only


def test_missing_bucket_is_created(seaweedfs: S3Server) -> None:
    name = bucket_name()
    a = S3ObjectStore(seaweedfs.endpoint, seaweedfs.access_key, seaweedfs.secret_key, name)
    a.put("x.txt", b"x", "text/plain")
    # A second instance finds the bucket and its object.
    b = S3ObjectStore(seaweedfs.endpoint, seaweedfs.access_key, seaweedfs.secret_key, name)
    assert b.get("x.txt") == b"x"


def test_wrong_secret_is_a_clear_error_at_start(
    seaweedfs: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "definitely-not-the-secret-42"
    with pytest.raises(StorageError) as info:
        S3ObjectStore(seaweedfs.endpoint, seaweedfs.access_key, secret, bucket_name())
    assert str(info.value) == (
        f"S3 at {seaweedfs.endpoint} rejected credentials for access key "
        f"'{seaweedfs.access_key}': SignatureDoesNotMatch"
    )
    assert secret not in caplog.text


def test_unknown_access_key_is_a_clear_error(seaweedfs: S3Server) -> None:
    with pytest.raises(
        StorageError, match=r"rejected credentials for access key 'nobody': InvalidAccessKeyId"
    ):
        S3ObjectStore(seaweedfs.endpoint, "nobody", "x" * 20, bucket_name())


def test_read_only_key_fails_clearly_on_put(seaweedfs: S3Server, s3: S3ObjectStore) -> None:
    s3.put("ro/existing.txt", b"hello", "text/plain")
    ro = S3ObjectStore(
        seaweedfs.endpoint, seaweedfs.ro_access_key, seaweedfs.ro_secret_key, s3.bucket, backoff=0.01
    )
    assert ro.get("ro/existing.txt") == b"hello"  # reading is allowed
    t0 = time.monotonic()
    with pytest.raises(StorageError) as info:
        ro.put("ro/new.txt", b"x")
    assert time.monotonic() - t0 < 2.0  # a permission error is not retried
    message = str(info.value)
    assert f"denied put of 'ro/new.txt' to bucket '{s3.bucket}'" in message
    assert seaweedfs.ro_access_key in message and "AccessDenied" in message
    assert seaweedfs.ro_secret_key not in message


def test_read_only_key_cannot_create_its_bucket(seaweedfs: S3Server) -> None:
    with pytest.raises(StorageError, match="denied creation of missing bucket"):
        S3ObjectStore(seaweedfs.endpoint, seaweedfs.ro_access_key, seaweedfs.ro_secret_key, bucket_name())


def test_unreachable_server_retries_then_raises(caplog: pytest.LogCaptureFixture) -> None:
    (port,) = free_ports(1)  # nothing listens there
    endpoint = f"127.0.0.1:{port}"
    with pytest.raises(StorageError, match=re.escape(f"S3 at {endpoint} unreachable during bucket check")):
        S3ObjectStore(endpoint, "k", "s" * 20, "bucket", connect_timeout=1)
    store = S3ObjectStore(endpoint, "k", "s" * 20, "bucket", check=False, retries=3, backoff=0.01)
    caplog.set_level(logging.WARNING, logger="events.storage.objects_s3")
    with pytest.raises(StorageError, match=re.escape("unreachable during put of 'a.jpg'")):
        store.put("a.jpg", b"x")
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3
    assert "s" * 20 not in caplog.text and "s" * 20 not in repr(store)
