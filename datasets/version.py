"""Dataset versions: a dataset's version is the content hash of its manifest.

``manifest.json`` (written by ``dataset build`` and ``dataset import``) lists every image and label file with
its sha256 and its source, plus the class names. The version is the first 16 hex digits of the sha256 of the
manifest's canonical JSON (sorted keys, no whitespace), leaving out ``version`` itself and ``build`` (how the
set was made: options, timings — not content). Same files, names and sources → same version, on any machine.

A set without a manifest (a foreign YOLO set) gets a version computed the same way from a manifest made on the
fly, so every set has one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "skyinspect-dataset/1"
VERSION_DIGITS = 16
_NOT_HASHED = frozenset({"version", "build"})


class VersionMismatchError(ValueError):
    """The files of a dataset no longer match its manifest; the message lists what differs."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest_version(manifest: dict[str, Any]) -> str:
    """The content hash of a manifest (``version`` and ``build`` left out)."""
    content = {k: v for k, v in manifest.items() if k not in _NOT_HASHED}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:VERSION_DIGITS]


def file_entry(root: Path, path: Path, source: dict[str, Any] | None) -> dict[str, Any]:
    """One manifest entry: path relative to ``root`` (POSIX), sha256, size and source."""
    return {
        "path": path.relative_to(root).as_posix(),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "source": source,
    }


def make_manifest(
    root: Path,
    files: list[dict[str, Any]],
    names: list[str],
    extra: dict[str, Any] | None = None,
    build: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a manifest (files sorted by path) and stamp its version."""
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "names": list(names),
        **(extra or {}),
        "files": sorted(files, key=lambda f: f["path"]),
    }
    if build is not None:
        manifest["build"] = build
    manifest["version"] = manifest_version(manifest)
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    path = root / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def _dataset_root(path: Path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() else path


def _on_the_fly(root: Path) -> dict[str, Any]:
    from datasets.yolo import find_yolo_set, label_path_for

    found = find_yolo_set(root)
    files = []
    for img in sorted(found.images):
        files.append(file_entry(found.root, img, None))
        label = label_path_for(img)
        if label.exists():
            files.append(file_entry(found.root, label, None))
    return make_manifest(found.root, files, found.names or [])


def verify_manifest(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Re-hash the files a manifest lists; return one line per difference (missing, changed, unlisted)."""
    problems = []
    listed = set()
    for entry in manifest.get("files", []):
        path = root / entry["path"]
        listed.add(path.resolve())
        if not path.exists():
            problems.append(f"{entry['path']}: listed in {MANIFEST} but missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: content changed since the manifest was written")
    for folder in ("images", "labels"):
        base = root / folder
        if base.is_dir():
            for p in sorted(base.rglob("*")):
                if p.is_file() and p.suffix != ".cache" and p.resolve() not in listed:  # ultralytics' label caches
                    problems.append(f"{p.relative_to(root).as_posix()}: present but not in {MANIFEST}")
    recorded = manifest.get("version")
    if recorded and recorded != manifest_version(manifest):
        problems.append(f"{MANIFEST}: recorded version {recorded} does not match its content")
    return problems


def dataset_version(path: str | Path, verify: bool = False) -> str:
    """The version (content hash) of a dataset: a folder with ``manifest.json``, its data.yaml, or any YOLO set.

    With ``verify``, the files are re-hashed and must match the manifest.

    Raises:
        VersionMismatchError: ``verify`` found files that differ from the manifest.
        datasets.yolo.DatasetError: no manifest and not a YOLO set.
    """
    root = _dataset_root(Path(path))
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        return manifest_version(_on_the_fly(root))
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if verify:
        problems = verify_manifest(root, manifest)
        if problems:
            raise VersionMismatchError(
                f"{root}: files differ from {MANIFEST}:\n  "
                + "\n  ".join(problems[:50])
                + (f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else "")
            )
    return manifest_version(manifest)
