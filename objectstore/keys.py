"""The object-store key layout: every key skyinspect writes is built here, nowhere else.

Layout (one bucket, ``settings.s3_bucket``)::

    raw/{site}/{flight}/images/{relative path}      an ingested image, byte for byte as it came off the drone
    raw/{site}/{flight}/manifest.json               the flight's manifest (see ingest.manifest), written last,
                                                    in one PUT, so readers never see half of it
    quarantine/{site}/{flight}/{relative path}      a rejected file, byte for byte
    quarantine/{site}/{flight}/{relative path}.reason.json
                                                    why it was rejected: {"path", "reason", "detail", "time"}
    results/{site}/{flight}/detections.jsonl        one JSON line per image: the model's detections
    results/{site}/{flight}/findings.json           unique, located, graded findings (findings/)
    results/{site}/{flight}/warnings.json           fault warnings raised for the flight
    results/{site}/{flight}/reports/{file}          HTML / PDF / CSV / GeoJSON / KML / JSON reports
    sites/{site}/layout.geojson                     the site's as-built layout (PV modules, turbines)
    edge/{device}/{...}                             what an on-site device synced back (jetson/)

``site`` and ``flight`` are safe ids (:func:`validate_id`): 1-64 ASCII letters, digits, ``.``, ``_`` or ``-``,
starting and ending with a letter or digit. They are never altered, only checked.

``relative path`` is the file's path inside the flight folder, normalised by :func:`normalise_relative_path`:
``/`` separators (a ``\\`` counts as a separator too, so a Windows path maps to the same key), Unicode NFC
(macOS hands out NFD names), spaces and any printable Unicode kept as they are. Empty, ``.`` and ``..``
components, absolute paths, drive letters and control characters are refused with :class:`InvalidKey`, so a
key can never leave its flight prefix. Keys are at most 1024 bytes of UTF-8 (the S3 limit).
"""

from __future__ import annotations

import re
import unicodedata

MAX_KEY_BYTES = 1024
ID_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
MANIFEST_NAME = "manifest.json"
REASON_SUFFIX = ".reason.json"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


class InvalidKey(ValueError):
    """A site id, flight id or relative path that cannot be turned into a safe object key."""


def validate_id(value: str, what: str = "id") -> str:
    """Check a site or flight id and return it unchanged.

    Raises:
        InvalidKey: the id is empty, too long, or has characters outside ``[A-Za-z0-9._-]``.
    """
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidKey(
            f"{what} {value!r} is not a safe id: use 1-64 ASCII letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit (e.g. 'plant-north' or '2024-06-01_block-A')"
        )
    return value


def normalise_relative_path(path: str) -> str:
    """A file's path inside a flight folder as a key suffix: ``/``-separated, NFC, no escape possible.

    Raises:
        InvalidKey: empty, absolute, drive-lettered, or with ``.``/``..``/empty components or control characters.
    """
    if not isinstance(path, str) or not path:
        raise InvalidKey(f"relative path {path!r} is empty")
    text = unicodedata.normalize("NFC", path)
    if _CONTROL.search(text):
        raise InvalidKey(f"relative path {path!r} contains control characters")
    text = text.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        raise InvalidKey(f"relative path {path!r} is absolute; give a path inside the flight folder")
    parts = text.split("/")
    for part in parts:
        if part in {"", ".", ".."}:
            raise InvalidKey(
                f"relative path {path!r} has an empty, '.' or '..' component; it would leave its prefix"
            )
    return "/".join(parts)


def _check_length(key: str) -> str:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes: {key[:80]!r}...")
    return key


def flight_prefix(site: str, flight: str) -> str:
    """``raw/{site}/{flight}/``: everything ingested for one flight."""
    return f"raw/{validate_id(site, 'site')}/{validate_id(flight, 'flight')}/"


def images_prefix(site: str, flight: str) -> str:
    """``raw/{site}/{flight}/images/``."""
    return flight_prefix(site, flight) + "images/"


def image_key(site: str, flight: str, relative_path: str) -> str:
    """``raw/{site}/{flight}/images/{relative path}``."""
    return _check_length(images_prefix(site, flight) + normalise_relative_path(relative_path))


def manifest_key(site: str, flight: str) -> str:
    """``raw/{site}/{flight}/manifest.json``."""
    return flight_prefix(site, flight) + MANIFEST_NAME


def quarantine_prefix(site: str, flight: str) -> str:
    """``quarantine/{site}/{flight}/``."""
    return f"quarantine/{validate_id(site, 'site')}/{validate_id(flight, 'flight')}/"


def quarantine_key(site: str, flight: str, relative_path: str) -> str:
    """``quarantine/{site}/{flight}/{relative path}``."""
    return _check_length(quarantine_prefix(site, flight) + normalise_relative_path(relative_path))


def quarantine_reason_key(site: str, flight: str, relative_path: str) -> str:
    """``quarantine/{site}/{flight}/{relative path}.reason.json``."""
    return _check_length(quarantine_key(site, flight, relative_path) + REASON_SUFFIX)


def relative_path_of(key: str, prefix: str) -> str:
    """The relative path of ``key`` under ``prefix`` (inverse of the key builders).

    Raises:
        InvalidKey: ``key`` does not start with ``prefix``.
    """
    if not key.startswith(prefix):
        raise InvalidKey(f"object key {key!r} is not under {prefix!r}")
    return key[len(prefix) :]


def results_prefix(site: str, flight: str) -> str:
    """``results/{site}/{flight}/``: everything computed from one flight."""
    return f"results/{validate_id(site, 'site')}/{validate_id(flight, 'flight')}/"


def detections_key(site: str, flight: str) -> str:
    """``results/{site}/{flight}/detections.jsonl``."""
    return results_prefix(site, flight) + "detections.jsonl"


def findings_key(site: str, flight: str) -> str:
    """``results/{site}/{flight}/findings.json``."""
    return results_prefix(site, flight) + "findings.json"


def warnings_key(site: str, flight: str) -> str:
    """``results/{site}/{flight}/warnings.json``."""
    return results_prefix(site, flight) + "warnings.json"


def report_key(site: str, flight: str, file_name: str) -> str:
    """``results/{site}/{flight}/reports/{file name}``."""
    return _check_length(results_prefix(site, flight) + "reports/" + normalise_relative_path(file_name))


def site_layout_key(site: str) -> str:
    """``sites/{site}/layout.geojson``."""
    return f"sites/{validate_id(site, 'site')}/layout.geojson"


def edge_prefix(device: str) -> str:
    """``edge/{device}/``: what one on-site device synced back."""
    return f"edge/{validate_id(device, 'device')}/"


def edge_result_key(device: str, result_id: str) -> str:
    """``edge/{device}/results/{result id}.json``: one frame's detections as an on-site device produced them."""
    return edge_prefix(device) + "results/" + validate_id(result_id, "result id") + ".json"


def edge_file_key(device: str, kind: str, result_id: str, suffix: str) -> str:
    """``edge/{device}/{kind}/{result id}{suffix}``: a file synced with a result (``images``, ``thumbnails``)."""
    if kind not in ("images", "thumbnails"):
        raise InvalidKey(f"edge file kind {kind!r} is not one of: images, thumbnails")
    if suffix and not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix):
        raise InvalidKey(f"edge file suffix {suffix!r} is not a plain extension like '.jpg'")
    return edge_prefix(device) + f"{kind}/" + validate_id(result_id, "result id") + suffix.lower()


def detections_parts_prefix(site: str, flight: str) -> str:
    """``results/{site}/{flight}/detections.parts/``: per-chunk parts of a detection run, merged at its end."""
    return results_prefix(site, flight) + "detections.parts/"


def warning_sent_key(site: str, warning_id: str) -> str:
    """``sites/{site}/warnings-sent/{warning id}.json``: the webhook sent-ledger entry of one fault warning."""
    return f"sites/{validate_id(site, 'site')}/warnings-sent/{validate_id(warning_id, 'warning id')}.json"


def review_export_prefix(site: str, export_id: str) -> str:
    """``reviews/{site}/{export id}/``: a YOLO set made from engineers' review decisions (review/)."""
    return f"reviews/{validate_id(site, 'site')}/{validate_id(export_id, 'export id')}/"
