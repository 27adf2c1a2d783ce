"""``ObjectStore``: the only way skyinspect talks to S3 (SeaweedFS embedded, MinIO in production).

A thin, typed wrapper over the ``minio`` SDK that

* builds its connection pool from :class:`~skyinspect.config.Settings` (timeouts, pool size ≥ ingest workers),
* turns every SDK / network error into :class:`ObjectStoreError` (or :class:`ObjectNotFound`) whose message
  names the endpoint, bucket and key — never the secret key,
* tells transient failures apart (:func:`is_transient`) so callers can retry (:func:`with_retries`).

Object metadata: user metadata given to ``put_*`` is stored as ``x-amz-meta-<name>`` headers and comes back in
:meth:`ObjectStore.stat` (names lower-cased, values ASCII). Listings carry no user metadata on SeaweedFS.
"""

from __future__ import annotations

import io
import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from skyinspect.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Single PUTs up to this size (larger objects go multipart; their ETag is then not the MD5 of the bytes).
PART_SIZE = 64 * 1024 * 1024
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
    }
)


class ObjectStoreError(RuntimeError):
    """An S3 operation failed. ``code`` is the S3 error code (or the exception type for network errors)."""

    def __init__(self, message: str, *, code: str = "", transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


class ObjectNotFound(ObjectStoreError):
    """The key (or the bucket) does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object. ``metadata`` holds user metadata (``x-amz-meta-*``, lower-case names, no prefix)."""

    key: str
    size: int
    etag: str
    last_modified: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)


def is_transient(exc: BaseException) -> bool:
    """True when retrying ``exc`` may succeed: connection errors, timeouts, 5xx and throttling (SlowDown)."""
    if isinstance(exc, ObjectStoreError):
        if exc.transient:
            return True
        return exc.__cause__ is not None and is_transient(exc.__cause__)
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", 0) if exc.response is not None else 0
        return exc.code in _TRANSIENT_CODES or status >= 500
    if isinstance(exc, ServerError):
        return exc.status_code >= 500 or exc.status_code == 429
    if isinstance(exc, InvalidResponseError):
        return getattr(exc, "_code", 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def with_retries(fn: Callable[[], T], *, attempts: int = 4, base_delay_s: float = 0.2, what: str = "") -> T:
    """Call ``fn`` until it succeeds, retrying transient failures with exponential back-off.

    Raises:
        The last exception when it is not transient or ``attempts`` are used up.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            delay = base_delay_s * 2 ** (attempt - 1)
            log.warning(
                "%s failed (%s), retry %d/%d in %.1fs", what or "S3 call", exc, attempt, attempts - 1, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _pool(workers: int, connect_s: float, read_s: float, retries: int) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_s, read=read_s),
        maxsize=max(workers + 2, 10),
        block=False,
        retries=urllib3.Retry(
            total=retries, connect=retries, read=0, backoff_factor=0.2, status_forcelist=(502, 503, 504)
        )
        if retries
        else False,
    )


class ObjectStore:
    """One bucket on one S3 endpoint. Thread-safe: share one instance between upload threads."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        workers: int = 8,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_pool(workers, connect_s=5.0, read_s=120.0, retries=3),
        )
        self._ping_client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_pool(1, connect_s=1.0, read_s=2.0, retries=0),
        )

    @classmethod
    def from_settings(cls, settings: Settings, bucket: str | None = None) -> ObjectStore:
        """An ObjectStore for ``settings.s3_*`` on ``bucket`` (default ``settings.s3_bucket``)."""
        return cls(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            bucket or settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            workers=settings.ingest_workers,
        )

    def __repr__(self) -> str:
        return f"ObjectStore({self.url()!r})"

    def close(self) -> None:
        """Close pooled connections (idle keep-alive connections can delay a server's shutdown)."""
        for client in (self._client, self._ping_client):
            client._http.clear()  # the SDK has no public close; _http is the PoolManager we passed in

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, key: str = "") -> str:
        """``s3://bucket/key @ http(s)://endpoint``, for messages."""
        scheme = "https" if self.secure else "http"
        return f"s3://{self.bucket}/{key} at {scheme}://{self.endpoint}"

    # ------------------------------------------------------------------------------------------ errors
    def _error(self, op: str, key: str, exc: BaseException) -> ObjectStoreError:
        where = self.url(key)
        if isinstance(exc, S3Error):
            cls = ObjectNotFound if exc.code in _NOT_FOUND_CODES | {"NoSuchBucket"} else ObjectStoreError
            hint = ""
            if exc.code == "NoSuchBucket":
                hint = " (create it with ObjectStore.ensure_bucket() or `skyinspect store up`)"
            elif exc.code in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}:
                hint = " (check SKYINSPECT_S3_ACCESS_KEY / SKYINSPECT_S3_SECRET_KEY)"
            return cls(
                f"{op} {where}: {exc.code}: {exc.message}{hint}", code=exc.code, transient=is_transient(exc)
            )
        if isinstance(exc, urllib3.exceptions.MaxRetryError | urllib3.exceptions.HTTPError | OSError):
            reason = getattr(exc, "reason", None) or exc
            return ObjectStoreError(
                f"{op} {where}: cannot reach the S3 endpoint ({type(reason).__name__}); "
                f"is the store running (`skyinspect store status`)?",
                code=type(exc).__name__,
                transient=True,
            )
        return ObjectStoreError(f"{op} {where}: {exc}", code=type(exc).__name__, transient=is_transient(exc))

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._error(op, key, exc) from exc

    # ------------------------------------------------------------------------------------------ bucket
    def ensure_bucket(self) -> bool:
        """Create the bucket if it does not exist. Returns True when it was created."""

        def run() -> bool:
            if self._client.bucket_exists(self.bucket):
                return False
            try:
                self._client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    return False
                raise
            return True

        return self._call("create bucket", "", run)

    def bucket_exists(self, *, fast: bool = False) -> bool:
        """Whether the bucket exists; ``fast`` uses the ~2 s, no-retry connection (health checks)."""
        client = self._ping_client if fast else self._client
        return self._call("check bucket", "", lambda: client.bucket_exists(self.bucket))

    def remove_bucket(self, *, force: bool = False) -> None:
        """Delete the bucket; with ``force`` delete every object in it first."""
        if force:
            while batch := [
                DeleteObject(info.key) for _, info in zip(range(1000), self.list(""), strict=False)
            ]:
                errors = self._call(
                    "delete objects", "", lambda b=batch: list(self._client.remove_objects(self.bucket, b))
                )
                if errors:
                    raise ObjectStoreError(
                        f"delete objects in {self.url()}: {errors[0]}", code="DeleteFailed"
                    )
        self._call("remove bucket", "", lambda: self._client.remove_bucket(self.bucket))

    def ping(self) -> bool:
        """True when the S3 endpoint answers within ~2 s (any S3 answer counts, even "access denied")."""
        try:
            self._ping_client.bucket_exists(self.bucket)
        except S3Error:
            return True
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError):
            return False
        return True

    # ------------------------------------------------------------------------------------------ write
    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store ``data`` at ``key`` in one PUT (multipart only above 64 MiB)."""
        result = self._call(
            "put",
            key,
            lambda: self._client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata=dict(metadata) if metadata else None,
                part_size=PART_SIZE,
            ),
        )
        return ObjectInfo(key, len(data), (result.etag or "").strip('"'), None, dict(metadata or {}))

    def put_file(
        self,
        key: str,
        path: str | Path,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Upload a local file (content type guessed from its name when not given)."""
        path = Path(path)
        ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        result = self._call(
            "put",
            key,
            lambda: self._client.fput_object(
                self.bucket,
                key,
                str(path),
                content_type=ctype,
                metadata=dict(metadata) if metadata else None,
                part_size=PART_SIZE,
            ),
        )
        return ObjectInfo(
            key, path.stat().st_size, (result.etag or "").strip('"'), None, dict(metadata or {})
        )

    def put_json(self, key: str, obj: Any, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store ``obj`` as UTF-8 JSON (one PUT of the complete document)."""
        data = json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=False).encode("utf-8")
        return self.put_bytes(key, data, content_type="application/json", metadata=metadata)

    # ------------------------------------------------------------------------------------------ read
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes. Raises :class:`ObjectNotFound` when it does not exist."""

        def run() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call("get", key, run)

    def download_file(self, key: str, path: str | Path) -> Path:
        """Download to ``path`` (parents created; written to a temporary name, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._call("download", key, lambda: self._client.fget_object(self.bucket, key, str(path)))
        return path

    def get_json(self, key: str) -> Any:
        """The object parsed as JSON. Raises :class:`ObjectStoreError` when it is not valid JSON."""
        data = self.get_bytes(key)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ObjectStoreError(f"get {self.url(key)}: not valid JSON: {exc}", code="InvalidJSON") from exc

    def stat(self, key: str) -> ObjectInfo | None:
        """Size, ETag, time and user metadata of ``key``; None when it does not exist."""
        try:
            st = self._call("stat", key, lambda: self._client.stat_object(self.bucket, key))
        except ObjectNotFound as exc:
            if exc.code == "NoSuchBucket":
                raise
            return None
        metadata = {}
        for name, value in (st.metadata or {}).items():
            lower = name.lower()
            if lower.startswith("x-amz-meta-"):
                metadata[lower[len("x-amz-meta-") :]] = value
        return ObjectInfo(key, int(st.size or 0), (st.etag or "").strip('"'), st.last_modified, metadata)

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` in key order (no user metadata: S3 listings do not carry it)."""
        iterator = self._call(
            "list",
            prefix,
            lambda: iter(self._client.list_objects(self.bucket, prefix=prefix, recursive=recursive)),
        )
        while True:
            obj = self._call("list", prefix, lambda: next(iterator, None))
            if obj is None:
                return
            if obj.is_dir or obj.object_name is None:
                continue
            yield ObjectInfo(
                obj.object_name, int(obj.size or 0), (obj.etag or "").strip('"'), obj.last_modified
            )

    def delete(self, key: str) -> None:
        """Delete ``key`` (no error when it does not exist)."""
        self._call("delete", key, lambda: self._client.remove_object(self.bucket, key))

    def presigned_get_url(self, key: str, expires_s: int = 3600) -> str:
        """A URL that GETs ``key`` without credentials for ``expires_s`` seconds (1 s to 7 days)."""
        if not 1 <= expires_s <= 7 * 24 * 3600:
            raise ValueError(f"expires_s must be between 1 and 604800 seconds, got {expires_s}")
        return self._call(
            "presign",
            key,
            lambda: self._client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=expires_s)),
        )
