"""ingest: a drone flight folder → images in the object store + one manifest per flight.

* :mod:`ingest.api` — :func:`~ingest.api.ingest_flight` (the Python API the pipelines call).
* :mod:`ingest.metadata` — image checks and EXIF / DJI XMP reading (reject reasons documented there).
* :mod:`ingest.manifest` — the manifest schema, the conditions sidecar, the kind decision, :func:`read_manifest`.
* :mod:`ingest.cache` — the local (path, size, mtime) cache that makes an unchanged re-ingest fast.
* :mod:`ingest.samples` — tiny drone-like JPEG/TIFF files for tests and benchmarks.
* :mod:`ingest.cli` — ``skyinspect ingest``.
"""
