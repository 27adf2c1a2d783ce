"""Engineers' review: a web application to confirm, reject or correct findings; decisions feed retraining.

Modules:

* :mod:`review.db` — the database (SQLAlchemy Core; SQLite by default, PostgreSQL by URL): users, findings
  with their current decision and version, audit trail.
* :mod:`review.auth` — scrypt password hashes, signed session cookies, CSRF tokens, the server-side secret.
* :mod:`review.importer` — idempotent import of ``results/{site}/{flight}/findings.json``.
* :mod:`review.decisions` — confirm / reject / reclassify / adjust_box / severity with optimistic concurrency.
* :mod:`review.images` — frames for the browser (proxied, thermal rendered) and for training sets.
* :mod:`review.export` — reviewed decisions as YOLO sets under ``reviews/{site}/{export id}/``.
* :mod:`review.status` — :func:`review.status.review_status` for the report stage.
* :mod:`review.app` — the Starlette app (pages, JSON API, image proxy); :mod:`review.cli` — ``skyinspect review``.
"""
