"""objectstore: the only way skyinspect touches S3.

* :mod:`objectstore.client` — :class:`ObjectStore` (minio SDK wrapper), errors, retry helpers.
* :mod:`objectstore.keys` — the documented key layout (``raw/``, ``quarantine/``) and id/path validation.
* :mod:`objectstore.server` — :class:`~objectstore.server.EmbeddedStore`, a real SeaweedFS for laptops and tests.
* :mod:`objectstore.cli` — ``skyinspect store up | down | status``.
"""

from objectstore.client import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    is_transient,
    with_retries,
)

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "ObjectStoreError", "is_transient", "with_retries"]
