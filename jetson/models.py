"""Models installed on the device: pulled from the registry (checksums verified), swapped in atomically, rolled back.

Layout under ``storage.models`` (default ``<data_dir>/edge/models``)::

    {domain}/{version}/<model>.onnx      the ONNX the registry card lists (sha256 verified)
    {domain}/{version}/card.json         the registry's model card
    {domain}/{version}/install.json      {"file", "sha256", "alias", "installed"}: what the runtime opens
    {domain}/current  -> {version}       relative symlink: the model ``run`` uses
    {domain}/previous -> {version}       the one before, for ``rollback``

A swap writes the new link under a temporary name and ``os.replace``\\ s it over the old one: a reader (or a crash)
sees either the old or the new model, never a half-installed one. A model is swapped in only after its file
matched the card's sha256 *and* its metadata opened (a model missing ``names``/``imgsz``/… is refused).

``--model`` accepts a file path, or an alias resolved locally: ``current``, ``previous``, a version name, or a
registry alias (``champion``/``candidate``: the version most recently installed under that alias), each
optionally prefixed by a domain (``wind-rgb:previous``); without a domain, the only installed domain is used.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detection import taxonomy
from jetson.engine import file_sha256

logger = logging.getLogger(__name__)

CURRENT, PREVIOUS = "current", "previous"
INSTALL = "install.json"
EDGE_KINDS = ("onnx", "onnx-fp16", "onnx-int8")


class ModelStoreError(RuntimeError):
    """A model cannot be resolved, installed or rolled back; the message names the domain, alias or file."""


@dataclass(frozen=True)
class InstalledModel:
    domain: str
    version: str
    path: Path
    sha256: str
    alias: str | None
    installed: str


def _atomic_symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    dir_fd = os.open(link.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalModels:
    """The installed models under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------------------------------ read
    def domains(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CURRENT).is_symlink())

    def versions(self, domain: str) -> list[str]:
        d = self.root / domain
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if not p.is_symlink() and (p / INSTALL).is_file())

    def info(self, domain: str, version: str) -> InstalledModel:
        folder = self.root / domain / version
        try:
            doc = json.loads((folder / INSTALL).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelStoreError(f"model {domain}:{version} is not installed in {self.root}") from None
        return InstalledModel(
            domain, version, folder / doc["file"], doc["sha256"], doc.get("alias"), doc["installed"]
        )

    def link(self, domain: str, name: str) -> str | None:
        """The version a ``current``/``previous`` link points at, or None."""
        link = self.root / domain / name
        return os.readlink(link) if link.is_symlink() else None

    def resolve(self, ref: str) -> InstalledModel:
        """``[domain:]alias-or-version`` → the installed model (see the module docstring).

        Raises:
            ModelStoreError: unknown domain, alias or version (the message lists what is installed).
        """
        domain, _, name = ref.rpartition(":")
        if not domain:
            try:  # a bare domain name means its current model
                domain, name = taxonomy.domain(ref).value, CURRENT
            except taxonomy.TaxonomyError:
                installed = self.domains()
                if len(installed) != 1:
                    raise ModelStoreError(
                        f"model {ref!r}: not a file, and {'no models are' if not installed else 'several domains are'} "
                        f"installed ({', '.join(installed) or 'none'}); give DOMAIN:{ref} or install one with "
                        "`skyinspect-edge update` / `skyinspect-edge install`"
                    ) from None
                domain = installed[0]
        domain = taxonomy.domain(domain).value
        if name in (CURRENT, PREVIOUS):
            version = self.link(domain, name)
            if version is None:
                raise ModelStoreError(f"model {ref!r}: no {name} model for {domain} in {self.root}")
            return self.info(domain, version)
        if name in self.versions(domain):
            return self.info(domain, name)
        tagged = sorted(
            (m for m in (self.info(domain, v) for v in self.versions(domain)) if m.alias == name),
            key=lambda m: m.installed,
        )
        if tagged:
            return tagged[-1]
        raise ModelStoreError(
            f"model {ref!r}: no installed {domain} model is named or aliased {name!r}; "
            f"installed versions: {', '.join(self.versions(domain)) or 'none'}"
        )

    # ------------------------------------------------------------------------------------------ write
    def install(
        self, domain: str, version: str, folder: Path, file_name: str, sha256: str, alias: str | None = None
    ) -> InstalledModel:
        """Verify ``folder/file_name`` against ``sha256`` and its metadata, then make it ``current``.

        ``folder`` must be ``root/domain/version`` already (files pulled or copied there).

        Raises:
            ModelStoreError: checksum mismatch, or metadata the runtime cannot use (keys named).
        """
        from detection.model_meta import ModelMeta, ModelMetadataError

        domain = taxonomy.domain(domain).value
        path = folder / file_name
        if folder.resolve() != (self.root / domain / version).resolve():
            raise ModelStoreError(
                f"install {domain}:{version}: files must be in {self.root / domain / version}"
            )
        got = file_sha256(path)
        if got != sha256:
            raise ModelStoreError(f"install {domain}:{version}: {path} has sha256 {got}, expected {sha256}")
        try:
            meta = ModelMeta.from_onnx(path)
        except (ModelMetadataError, FileNotFoundError) as exc:
            raise ModelStoreError(f"install {domain}:{version}: refused: {exc}") from exc
        if meta.domain is not None and meta.domain.value != domain:
            raise ModelStoreError(
                f"install {domain}:{version}: {path} is a {meta.domain.value} model, not {domain}"
            )
        doc = {
            "file": file_name,
            "sha256": sha256,
            "alias": alias,
            "installed": datetime.now(UTC).isoformat(),
        }
        tmp = folder / f".{INSTALL}.tmp"
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, folder / INSTALL)
        old = self.link(domain, CURRENT)
        if old is not None and old != version:
            _atomic_symlink(self.root / domain / PREVIOUS, old)
        _atomic_symlink(self.root / domain / CURRENT, version)
        logger.info("installed %s %s as current (previous: %s)", domain, version, old or "none")
        return self.info(domain, version)

    def install_file(
        self, source: Path, version: str | None = None, alias: str | None = None
    ) -> InstalledModel:
        """Copy a local ONNX (e.g. from a USB stick, no network) in as a new version and make it current.

        The domain comes from the model's own metadata. Version: ``version``, else the metadata's
        ``skyinspect.model_version``, else the first 12 hex digits of the file's sha256.

        Raises:
            ModelStoreError: metadata lacks what the runtime needs, or names no taxonomy domain.
        """
        import shutil

        from detection.model_meta import ModelMeta, ModelMetadataError

        try:
            meta = ModelMeta.from_onnx(source)
        except (ModelMetadataError, FileNotFoundError) as exc:
            raise ModelStoreError(f"install {source}: refused: {exc}") from exc
        if meta.domain is None:
            raise ModelStoreError(
                f"install {source}: its metadata names no domain (skyinspect.domain) and its classes match none"
            )
        digest = file_sha256(source)
        version = version or meta.model_version or digest[:12]
        folder = self.root / meta.domain.value / version
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{source.name}.part"
        shutil.copyfile(source, tmp)
        os.replace(tmp, folder / source.name)
        return self.install(meta.domain.value, version, folder, source.name, digest, alias)

    def rollback(self, domain: str) -> tuple[str, str]:
        """Swap ``current`` and ``previous`` → (from version, to version).

        Raises:
            ModelStoreError: there is no previous model.
        """
        domain = taxonomy.domain(domain).value
        cur, prev = self.link(domain, CURRENT), self.link(domain, PREVIOUS)
        if prev is None or cur is None:
            raise ModelStoreError(f"rollback {domain}: no previous model installed in {self.root / domain}")
        _atomic_symlink(self.root / domain / CURRENT, prev)
        _atomic_symlink(self.root / domain / PREVIOUS, cur)
        logger.info("rolled %s back from %s to %s", domain, cur, prev)
        return cur, prev

    def summary(self) -> dict[str, Any]:
        """{domain: {"current", "previous", "versions"}} for ``status``."""
        return {
            d: {
                "current": self.link(d, CURRENT),
                "previous": self.link(d, PREVIOUS),
                "versions": self.versions(d),
            }
            for d in self.domains()
        }


def pull_and_install(
    models: LocalModels, store: Any, domain: str, ref: str = "champion", kind: str = "onnx"
) -> InstalledModel:
    """Pull ``ref`` of ``domain`` from the registry (sha256 verified by the registry) and make it current.

    Raises:
        ModelStoreError: no artifact of ``kind``, or the pulled model is refused at install.
        RegistryError: unknown version/alias, or a checksum mismatch (nothing is swapped then).
    """
    from detection.registry import ModelRegistry, RegistryError

    registry = ModelRegistry(store)
    dom = taxonomy.domain(domain).value
    version = registry.resolve(dom, ref)
    folder = models.root / dom / version
    pulled = registry.pull(dom, version, folder, kinds=[kind])
    try:
        path = pulled.path(kind)
    except RegistryError as exc:
        raise ModelStoreError(str(exc)) from exc
    digest = pulled.card["artifacts"][path.name]["sha256"]
    alias = ref if ref in ("champion", "candidate") else None
    return models.install(dom, version, folder, path.name, digest, alias)
