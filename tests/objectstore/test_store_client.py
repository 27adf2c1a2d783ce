"""ObjectStore against the session's real SeaweedFS server."""

from __future__ import annotations

import pytest
import urllib3
from minio.error import S3Error

from objectstore.client import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    is_transient,
    with_retries,
)
from objectstore.server import free_port
from skyinspect.config import Settings


def test_bytes_round_trip_with_metadata_and_stat(object_store: ObjectStore) -> None:
    info = object_store.put_bytes("a/b c/ü.bin", b"\x00\x01hello", metadata={"sha256": "abc123"})
    assert info.size == 7
    got = object_store.stat("a/b c/ü.bin")
    assert got is not None
    assert (got.key, got.size, got.etag) == ("a/b c/ü.bin", 7, info.etag)
    assert got.metadata["sha256"] == "abc123"
    assert got.last_modified is not None
    assert object_store.get_bytes("a/b c/ü.bin") == b"\x00\x01hello"
    assert object_store.exists("a/b c/ü.bin")


def test_json_round_trip_keeps_unicode(object_store: ObjectStore) -> None:
    obj = {"site": "Süd", "n": [1, 2.5, None], "nested": {"ok": True}}
    object_store.put_json("m/manifest.json", obj)
    assert object_store.get_json("m/manifest.json") == obj
    object_store.put_bytes("m/broken.json", b"{not json")
    with pytest.raises(ObjectStoreError, match=r"broken\.json.*not valid JSON"):
        object_store.get_json("m/broken.json")


def test_files_round_trip_and_content_type_is_guessed(object_store: ObjectStore, tmp_path) -> None:
    src = tmp_path / "in.json"
    src.write_bytes(b'{"x": 1}')
    object_store.put_file("f/in.json", src)
    out = object_store.download_file("f/in.json", tmp_path / "deep" / "out.json")
    assert out.read_bytes() == b'{"x": 1}'
    response = urllib3.PoolManager().request("GET", object_store.presigned_get_url("f/in.json", expires_s=60))
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.data == b'{"x": 1}'


def test_presigned_url_expiry_is_checked(object_store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="expires_s"):
        object_store.presigned_get_url("x", expires_s=0)


def test_missing_objects(object_store: ObjectStore) -> None:
    assert object_store.stat("nope") is None
    assert not object_store.exists("nope")
    with pytest.raises(ObjectNotFound) as err:
        object_store.get_bytes("dir/nope.jpg")
    message = str(err.value)
    assert object_store.endpoint in message
    assert object_store.bucket in message
    assert "dir/nope.jpg" in message
    object_store.delete("never-existed")  # no error


def test_list_is_recursive_or_one_level(object_store: ObjectStore) -> None:
    for key in ["p/a.jpg", "p/sub/b.jpg", "p/sub/deeper/c.jpg", "q/x.jpg"]:
        object_store.put_bytes(key, key.encode())
    deep = list(object_store.list("p/"))
    assert [i.key for i in deep] == ["p/a.jpg", "p/sub/b.jpg", "p/sub/deeper/c.jpg"]
    assert all(isinstance(i, ObjectInfo) and i.size == len(i.key) for i in deep)
    assert [i.key for i in object_store.list("p/", recursive=False)] == ["p/a.jpg"]
    object_store.delete("p/a.jpg")
    assert [i.key for i in object_store.list("p/")] == ["p/sub/b.jpg", "p/sub/deeper/c.jpg"]


def test_list_spans_more_than_one_page(object_store: ObjectStore) -> None:
    for i in range(1005):
        object_store.put_bytes(f"many/{i:05d}", b"")
    assert sum(1 for _ in object_store.list("many/")) == 1005


def test_wrong_credentials_are_refused_and_the_secret_is_never_shown(
    s3_settings: Settings, object_store
) -> None:
    object_store.put_bytes("secret.txt", b"x")
    wrong_secret = "definitely-not-the-secret-" + "z" * 10
    for access, secret in [(s3_settings.s3_access_key, wrong_secret), ("nobody", wrong_secret)]:
        bad = ObjectStore(s3_settings.s3_endpoint, access, secret, object_store.bucket)
        for call in (lambda b=bad: b.get_bytes("secret.txt"), lambda b=bad: b.put_bytes("y", b"y"),
                     lambda b=bad: list(b.list(""))):  # fmt: skip
            with pytest.raises(ObjectStoreError) as err:
                call()
            assert err.value.code in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}
            assert secret not in str(err.value)
            assert s3_settings.s3_secret_key not in str(err.value)
            assert "SKYINSPECT_S3_ACCESS_KEY" in str(err.value)
    assert wrong_secret not in repr(bad)
    assert object_store.get_bytes("secret.txt") == b"x"


def test_missing_bucket_says_how_to_create_it(s3_settings: Settings) -> None:
    store = ObjectStore.from_settings(s3_settings, bucket="no-such-bucket-here")
    assert not store.bucket_exists()
    with pytest.raises(ObjectNotFound, match="ensure_bucket"):
        store.put_bytes("k", b"v")
    with pytest.raises(ObjectNotFound, match="NoSuchBucket"):
        store.get_bytes("k")


def test_ensure_bucket_is_idempotent(s3_settings: Settings) -> None:
    store = ObjectStore.from_settings(s3_settings, bucket="ensure-twice")
    try:
        assert store.ensure_bucket() is True
        assert store.ensure_bucket() is False
    finally:
        store.remove_bucket(force=True)
    assert not store.bucket_exists()


def test_ping_reports_reachable_and_unreachable_quickly(
    object_store: ObjectStore, s3_settings: Settings
) -> None:
    import time

    assert object_store.ping()
    dead = ObjectStore(f"127.0.0.1:{free_port()}", "a", "b", "bucket")
    started = time.monotonic()
    assert not dead.ping()
    assert time.monotonic() - started < 3.0
    with pytest.raises(ObjectStoreError, match="cannot reach") as err:
        dead.get_bytes("k")
    assert is_transient(err.value)


def _s3_error(code: str, status: int) -> S3Error:
    response = urllib3.HTTPResponse(body=b"", status=status)
    return S3Error(response, code, "msg", "/r", "req", "host")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (_s3_error("SlowDown", 503), True),
        (_s3_error("InternalError", 500), True),
        (_s3_error("ServiceUnavailable", 503), True),
        (_s3_error("NoSuchKey", 404), False),
        (_s3_error("AccessDenied", 403), False),
        (urllib3.exceptions.ProtocolError("reset"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("bad"), False),
        (ObjectStoreError("x", transient=True), True),
        (ObjectStoreError("x", code="AccessDenied"), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_with_retries_retries_only_transient_failures() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ObjectStoreError("slow", code="SlowDown", transient=True)
        return "ok"

    assert with_retries(flaky, base_delay_s=0.001) == "ok"
    assert len(calls) == 3

    def fatal() -> None:
        calls.append(1)
        raise ObjectStoreError("denied", code="AccessDenied")

    calls.clear()
    with pytest.raises(ObjectStoreError, match="denied"):
        with_retries(fatal, base_delay_s=0.001)
    assert len(calls) == 1
