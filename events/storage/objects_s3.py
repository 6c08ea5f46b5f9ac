"""The S3 object store (MinIO, SeaweedFS, AWS, Garage...) on the ``minio`` client.

Start-up checks the endpoint, credentials and bucket (:meth:`S3ObjectStore.check`)
so a wrong secret or an unreachable server stops the service with one clear line
instead of failing on the first snapshot hours later.

Failures on ``put``: connection errors, timeouts, 5xx and S3 throttling codes are
retried with exponential backoff (``retries`` times); anything else (access
denied, missing bucket) fails at once. Either way the final failure raises
:class:`StorageError`: nothing is dropped silently, and the caller (the snapshot
writer) counts and logs it, or spools and retries later.

Secrets never appear in messages, logs or ``repr``: only the endpoint, bucket and
access key are named.
"""

from __future__ import annotations

import io
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import TypeVar

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from events.storage.objects import ObjectInfo, ObjectNotFound, ObjectStore, check_key, check_metadata
from events.storage.store import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")

_CHUNK = 64 * 1024
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchVersion"}
_CREDENTIALS = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken"}
_TRANSIENT = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "OperationAborted"}


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, S3Error):
        status = exc.response.status if exc.response is not None else 0
        return exc.code in _TRANSIENT or status >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError | ServerError | InvalidResponseError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, S3Error):
        return str(exc.code)
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    return f"{type(exc).__name__}: {exc}"


class S3ObjectStore(ObjectStore):
    """Objects in one S3 bucket, created if missing.

    ``presign_endpoint`` (``host:port``) signs links for another address than the
    one the service uses, e.g. the public name of the S3 server behind a proxy:
    clients follow the link, so it must name a host they can reach. Presigning
    needs no request, so ``region`` is fixed for that client (default ``us-east-1``).
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str | None = None,
        presign_endpoint: str | None = None,
        presign_secure: bool | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        check: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.access_key = access_key
        self.retries = retries
        self.backoff = backoff
        self._where = f"S3 at {endpoint}"
        try:
            self._client = self._make_client(
                endpoint, access_key, secret_key, secure, region, connect_timeout, read_timeout
            )
            self._presigner = (
                self._make_client(
                    presign_endpoint,
                    access_key,
                    secret_key,
                    secure if presign_secure is None else presign_secure,
                    region or "us-east-1",
                    connect_timeout,
                    read_timeout,
                )
                if presign_endpoint
                else self._client
            )
        except ValueError as exc:  # the client validates endpoint syntax
            raise StorageError(f"{self._where}: invalid endpoint: {exc}") from exc
        if check:
            self.check()

    @staticmethod
    def _make_client(
        endpoint: str,
        access_key: str,
        secret_key: str,
        secure: bool,
        region: str | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> Minio:
        # Our own pool: bounded timeouts (minio's default read timeout is 5 minutes) and no
        # urllib3 retries, so put() alone decides what is retried and for how long.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
            maxsize=8,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        return Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )

    def __repr__(self) -> str:
        return (
            f"S3ObjectStore(endpoint={self.endpoint!r}, bucket={self.bucket!r}, "
            f"access_key={self.access_key!r})"
        )

    def _error(self, action: str, exc: BaseException) -> StorageError:
        reason = _reason(exc)
        if isinstance(exc, S3Error) and exc.code in _CREDENTIALS:
            return StorageError(
                f"{self._where} rejected credentials for access key {self.access_key!r}: {reason}"
            )
        if isinstance(exc, S3Error) and exc.code == "AccessDenied":
            return StorageError(
                f"{self._where} denied {action} for access key {self.access_key!r}: {reason} "
                "(check the key's permissions on the bucket)"
            )
        if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
            return StorageError(f"{self._where} unreachable during {action}: {reason}")
        return StorageError(f"{self._where} failed {action}: {reason}")

    def check(self) -> None:
        """Verify endpoint, credentials and bucket; create the bucket if it is missing.

        Raises :class:`StorageError` naming the cause, e.g.
        ``S3 at 127.0.0.1:9000 rejected credentials for access key 'khupho': SignatureDoesNotMatch``.
        """
        try:
            exists = self._client.bucket_exists(bucket_name=self.bucket)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(f"bucket check of {self.bucket!r}", exc) from exc
        if exists:
            return
        try:
            self._client.make_bucket(bucket_name=self.bucket)
            log.info("created bucket %r on %s", self.bucket, self.endpoint)
        except S3Error as exc:
            if exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return  # another instance created it meanwhile
            raise self._error(f"creation of missing bucket {self.bucket!r}", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(f"creation of missing bucket {self.bucket!r}", exc) from exc

    def _with_retries(self, action: str, call: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return call()
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                if not _transient(exc) or attempt >= self.retries:
                    raise self._error(action, exc) from exc
                # Exponential backoff with jitter, so restarting cameras do not retry in lockstep.
                delay = self.backoff * (2**attempt) * (0.5 + random.random())
                attempt += 1
                log.warning(
                    "%s: %s failed (%s), retry %d/%d in %.2fs",
                    self._where, action, _reason(exc), attempt, self.retries, delay,
                )  # fmt: skip
                time.sleep(delay)

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        check_key(key)
        meta = check_metadata(metadata)
        payload = bytes(data)
        self._with_retries(
            f"put of {key!r} to bucket {self.bucket!r}",
            lambda: self._client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=io.BytesIO(payload),  # fresh stream per attempt
                length=len(payload),
                content_type=content_type,
                metadata=meta,  # type: ignore[arg-type]
            ),
        )

    def _get_response(self, key: str) -> urllib3.BaseHTTPResponse:
        check_key(key)
        try:
            return self._client.get_object(bucket_name=self.bucket, object_name=key)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(
                    f"no object {key!r} in bucket {self.bucket!r} on {self.endpoint}"
                ) from exc
            raise self._error(f"get of {key!r}", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(f"get of {key!r}", exc) from exc

    def get(self, key: str) -> bytes:
        response = self._get_response(key)
        try:
            return response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(f"get of {key!r}", exc) from exc
        finally:
            response.close()
            response.release_conn()

    def open(self, key: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        return self._stream(self._get_response(key), key, chunk_size)

    def _stream(self, response: urllib3.BaseHTTPResponse, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from response.stream(chunk_size)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(f"get of {key!r}", exc) from exc
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        try:
            st = self._client.stat_object(bucket_name=self.bucket, object_name=key)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(
                    f"no object {key!r} in bucket {self.bucket!r} on {self.endpoint}"
                ) from exc
            raise self._error(f"stat of {key!r}", exc) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(f"stat of {key!r}", exc) from exc
        prefix = "x-amz-meta-"
        metadata = {
            k.lower()[len(prefix) :]: v
            for k, v in (st.metadata or {}).items()
            if k.lower().startswith(prefix)
        }
        return ObjectInfo(
            key=key,
            size=int(st.size or 0),
            content_type=st.content_type or "application/octet-stream",
            metadata=metadata,
        )

    def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str | None:
        check_key(key)
        try:
            return self._presigner.presigned_get_object(
                bucket_name=self.bucket, object_name=key, expires=expires
            )
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            # Without a fixed region the client asks the server for it once.
            raise self._error(f"presigning of {key!r}", exc) from exc

    def delete(self, key: str) -> None:
        check_key(key)
        self._with_retries(
            f"delete of {key!r}",
            lambda: self._client.remove_object(bucket_name=self.bucket, object_name=key),
        )

    def close(self) -> None:
        for client in {id(self._client): self._client, id(self._presigner): self._presigner}.values():
            http = getattr(client, "_http", None)
            if http is not None:
                http.clear()
