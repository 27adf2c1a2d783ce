"""The model registry, kept in the object store.

Layout (one domain = one model line: ``pv-thermal``, ``pv-rgb``, ``wind-rgb``)::

    models/{domain}/versions/{version}/best.pt        the PyTorch weights
    models/{domain}/versions/{version}/<name>.onnx    exported models (added later: :meth:`ModelRegistry.add_artifact`)
    models/{domain}/versions/{version}/card.json      the model card (below)
    models/{domain}/aliases.json                      {"champion", "candidate", "previous_champions", "history"}

The **model card** holds the metrics (ultralytics' validator at training time, plus any evaluations added), the
provenance (dataset version, training arguments and command, library versions, git commit, wall time), the class
names and input size, and the sha256 and size of every artifact. :meth:`ModelRegistry.pull` verifies those
checksums after downloading, so the on-site runtime never runs a damaged or swapped file.

**Aliases.** ``register`` makes the new version the ``candidate`` (unless told not to); ``promote`` makes the
candidate (or a named version) the ``champion`` and remembers the previous champion; ``rollback`` returns to the
previous champion (repeatable: each rollback steps one further back). Every change is appended to ``history``.

**Concurrent updates.** ``aliases.json`` and ``card.json`` are updated by compare-and-swap: read the object and its
ETag, change it, and PUT it back with ``If-Match: <etag>`` (``If-None-Match: *`` when creating). SeaweedFS (4.x)
and MinIO answer ``412 PreconditionFailed`` when another writer got there first; we then re-read and retry with
jittered back-off. After a successful write the document is read back and must contain this update's id (its
history entry), a second line of defence should a server evaluate the condition non-atomically; if it does not,
the update is retried. New versions are claimed with ``If-None-Match: *`` on their ``card.json``, so two
registrations of the same version name cannot both succeed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detection import taxonomy

logger = logging.getLogger(__name__)

ROOT = "models"
CARD = "card.json"
ALIASES = "aliases.json"
CARD_FORMAT = "skyinspect-model-card/1"
ALIASES_FORMAT = "skyinspect-model-aliases/1"
ALIAS_NAMES = ("champion", "candidate")
ARTIFACT_KINDS = ("pytorch", "onnx", "onnx-fp16", "onnx-int8", "tensorrt", "other")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RegistryError(RuntimeError):
    """A registry operation cannot be done; the message names the domain, version or key and the reason."""


class ChecksumError(RegistryError):
    """A downloaded artifact does not match the sha256 its model card records."""


class ConcurrentUpdateError(RegistryError):
    """A compare-and-swap update kept losing to other writers and gave up."""


# -------------------------------------------------------------------------------------------------- keys
def domain_prefix(domain: str | taxonomy.Domain) -> str:
    return f"{ROOT}/{taxonomy.domain(domain).value}"


def version_prefix(domain: str | taxonomy.Domain, version: str) -> str:
    return f"{domain_prefix(domain)}/versions/{check_version(version)}"


def card_key(domain: str | taxonomy.Domain, version: str) -> str:
    return f"{version_prefix(domain, version)}/{CARD}"


def aliases_key(domain: str | taxonomy.Domain) -> str:
    return f"{domain_prefix(domain)}/{ALIASES}"


def check_version(version: str) -> str:
    """A version name: 1–64 of ``A-Z a-z 0-9 . _ -``, not starting with punctuation.

    Raises:
        RegistryError: anything else (and the alias names, which would be ambiguous).
    """
    if not isinstance(version, str) or not _VERSION_RE.match(version) or version in ALIAS_NAMES:
        raise RegistryError(
            f"version {version!r}: use 1-64 characters A-Z a-z 0-9 . _ - (not starting with . _ -), "
            f"and not an alias name ({', '.join(ALIAS_NAMES)})"
        )
    return version


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -------------------------------------------------------------------------------------------------- CAS
def _is_precondition_failed(exc: BaseException) -> bool:
    code = getattr(exc, "code", "") or ""
    return code in {"PreconditionFailed", "ConditionalRequestConflict"} or "PreconditionFailed" in str(exc)


def conditional_put(store: Any, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False,
                    content_type: str = "application/json") -> bool:  # fmt: skip
    """PUT ``data`` only if the object's ETag is ``if_match`` (or, with ``if_none_match``, it does not exist).

    Returns:
        True when written, False when the precondition failed (another writer was first).

    Uses ``store.put_bytes(..., if_match=, if_none_match=)`` when the ObjectStore offers it, else the minio
    client's request method with the standard ``If-Match`` / ``If-None-Match`` headers.

    Raises:
        ObjectStoreError: any other failure.
    """
    import inspect

    if "if_match" in inspect.signature(store.put_bytes).parameters:  # the ObjectStore grew conditional PUTs
        try:
            store.put_bytes(
                key, data, content_type=content_type, if_match=if_match, if_none_match=if_none_match
            )
        except Exception as exc:
            if _is_precondition_failed(exc):
                return False
            raise
        return True
    headers = {"Content-Type": content_type}
    if if_match is not None:
        headers["If-Match"] = f'"{if_match.strip(chr(34))}"'
    if if_none_match:
        headers["If-None-Match"] = "*"
    try:
        client = store._client  # the ObjectStore's minio client: conditional PUT is not in its public API yet
        client._execute("PUT", store.bucket, key, body=data, headers=headers)
    except Exception as exc:
        if _is_precondition_failed(exc):
            return False
        from objectstore.client import ObjectStoreError

        raise ObjectStoreError(
            f"conditional put {store.url(key)}: {exc}", code=getattr(exc, "code", "")
        ) from exc
    return True


def _read_json_with_etag(store: Any, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """(document, etag) — ETag read first, so the document is at least as new as the ETag (a stale ETag only
    makes the following conditional PUT fail and retry)."""
    info = store.stat(key)
    if info is None:
        return None, None
    from objectstore.client import ObjectNotFound

    try:
        return store.get_json(key), info.etag
    except ObjectNotFound:
        return None, None


def cas_update(
    store: Any,
    key: str,
    change: Callable[[dict[str, Any] | None], dict[str, Any]],
    *,
    attempts: int = 20,
    verify: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Apply ``change`` to the JSON document at ``key`` with compare-and-swap and retries (see module docstring).

    ``change`` receives the current document (``None`` if absent) and returns the new one; it may raise to abort.
    ``verify`` checks the read-back document after a write (default: accept).

    Raises:
        ConcurrentUpdateError: still conflicting after ``attempts`` tries.
    """
    delay = 0.02
    for attempt in range(1, attempts + 1):
        current, etag = _read_json_with_etag(store, key)
        new = change(json.loads(json.dumps(current)) if current is not None else None)
        data = json.dumps(new, indent=1).encode("utf-8")
        written = conditional_put(store, key, data, if_match=etag, if_none_match=etag is None)
        if written:
            if verify is None:
                return new
            back = store.get_json(key)
            if verify(back):
                return new
            logger.warning(
                "%s: update overwritten by a concurrent writer (attempt %d); retrying", key, attempt
            )
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 1.0)
    raise ConcurrentUpdateError(f"{store.url(key)}: gave up after {attempts} conflicting concurrent updates")


# -------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class VersionInfo:
    """A version as listed: its card and the aliases pointing at it."""

    domain: str
    version: str
    card: dict[str, Any]
    aliases: list[str]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.card.get("metrics") or {}


@dataclass(frozen=True)
class PulledModel:
    """A model downloaded by :meth:`ModelRegistry.pull`, checksums verified."""

    domain: str
    version: str
    dest: Path
    card: dict[str, Any]
    files: dict[str, Path]
    """artifact name → local path."""

    def path(self, kind: str) -> Path:
        """The local file of the first artifact of ``kind`` (``pytorch``, ``onnx``…).

        Raises:
            RegistryError: no such artifact was pulled.
        """
        for name, meta in self.card.get("artifacts", {}).items():
            if meta.get("kind") == kind and name in self.files:
                return self.files[name]
        raise RegistryError(
            f"{self.domain} {self.version}: no {kind} artifact pulled (have {sorted(self.files)})"
        )


class ModelRegistry:
    """Register, list, promote, roll back and pull models in one bucket of an :class:`ObjectStore`."""

    def __init__(self, store: Any) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: Any) -> ModelRegistry:
        from objectstore.client import ObjectStore

        return cls(ObjectStore.from_settings(settings))

    # ------------------------------------------------------------------------------------------------ write
    def register(
        self,
        domain: str,
        weights: Path,
        *,
        version: str | None = None,
        run_record: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        candidate: bool = True,
        note: str = "",
    ) -> dict[str, Any]:
        """Upload ``weights`` (best.pt) as a new version and write its card; make it the candidate.

        Args:
            domain: taxonomy domain.
            weights: the ``.pt`` file.
            version: version name (default ``YYYYMMDD-HHMMSS-<sha256[:8]>`` of the weights, UTC).
            run_record: the training run record (default: ``run.json`` next to the weights, if present).
            metrics: metrics to record (default: the run record's validator metrics).
            extra: more card fields (e.g. ``{"evaluations": {...}}``).
            candidate: point the ``candidate`` alias at the new version.

        Returns:
            The model card.

        Raises:
            RegistryError: missing weights, names not of this domain, or the version exists already.
        """
        dom = taxonomy.domain(domain)
        weights = Path(weights)
        if not weights.is_file():
            raise RegistryError(f"weights file {weights} does not exist")
        if run_record is None:
            sidecar = weights.parent / "run.json"
            run_record = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
        digest = sha256_file(weights)
        version = check_version(version or f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{digest[:8]}")
        names = run_record.get("names")
        if names and list(names) != taxonomy.class_names(dom):
            raise RegistryError(
                f"{weights}: trained on classes {names}, which are not the {dom.value} taxonomy "
                f"{taxonomy.class_names(dom)}"
            )
        prefix = version_prefix(dom, version)
        if self.store.exists(f"{prefix}/{CARD}"):
            raise RegistryError(f"{dom.value} version {version} already exists ({self.store.url(prefix)})")
        dataset = run_record.get("dataset") or {}
        card: dict[str, Any] = {
            "format": CARD_FORMAT,
            "domain": dom.value,
            "version": version,
            "created": _now(),
            "note": note,
            "names": taxonomy.class_names(dom),
            "taxonomy_version": taxonomy.TAXONOMY_VERSION,
            "imgsz": run_record.get("imgsz"),
            "metrics": metrics if metrics is not None else run_record.get("metrics") or {},
            "provenance": {
                "dataset_version": dataset.get("version"),
                "dataset_version_method": dataset.get("version_method"),
                "data_yaml": dataset.get("data_yaml"),
                "command": run_record.get("command"),
                "model": run_record.get("model"),
                "training_args": run_record.get("config"),
                "ultralytics_args": run_record.get("ultralytics_args"),
                "libraries": run_record.get("libraries"),
                "git": run_record.get("git"),
                "wall_time_s": run_record.get("wall_time_s"),
                "trained": run_record.get("created"),
            },
            "artifacts": {},
            **(extra or {}),
        }
        self.store.put_file(f"{prefix}/best.pt", weights, content_type="application/octet-stream")
        card["artifacts"]["best.pt"] = {
            "kind": "pytorch",
            "key": f"{prefix}/best.pt",
            "sha256": digest,
            "bytes": weights.stat().st_size,
            "added": _now(),
        }
        body = json.dumps(card, indent=1).encode("utf-8")
        if not conditional_put(self.store, f"{prefix}/{CARD}", body, if_none_match=True):
            raise RegistryError(f"{dom.value} version {version} was registered concurrently by someone else")
        logger.info("registered %s %s (%s)", dom.value, version, self.store.url(prefix))
        if candidate:
            self.set_alias(dom.value, "candidate", version, action="register")
        return card

    def add_artifact(self, domain: str, version: str, path: Path, kind: str, name: str | None = None,
                     info: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """Upload an artifact (an exported ONNX…) to a version and record its checksum in the card.

        Args:
            kind: one of :data:`ARTIFACT_KINDS`.
            name: file name in the version folder (default: the file's name).
            info: extra facts to keep with the artifact (export settings, metrics of this format…).

        Returns:
            The updated card.

        Raises:
            RegistryError: unknown version or kind, missing file, or a bad name.
        """
        dom = taxonomy.domain(domain)
        path = Path(path)
        if kind not in ARTIFACT_KINDS:
            raise RegistryError(f"artifact kind {kind!r}: expected one of {', '.join(ARTIFACT_KINDS)}")
        if not path.is_file():
            raise RegistryError(f"artifact file {path} does not exist")
        name = name or path.name
        if not _NAME_RE.match(name) or name == CARD:
            raise RegistryError(f"artifact name {name!r}: use A-Z a-z 0-9 . _ - (and not {CARD})")
        key = card_key(dom, version)
        if not self.store.exists(key):
            raise RegistryError(
                f"{dom.value} version {version} is not registered ({self.store.url(key)} missing)"
            )
        digest = sha256_file(path)
        artifact_key = f"{version_prefix(dom, version)}/{name}"
        self.store.put_file(artifact_key, path, content_type="application/octet-stream")
        entry = {"kind": kind, "key": artifact_key, "sha256": digest, "bytes": path.stat().st_size, "added": _now(),
                 **(info or {})}  # fmt: skip

        def change(card: dict[str, Any] | None) -> dict[str, Any]:
            if card is None:
                raise RegistryError(f"{dom.value} version {version}: card disappeared")
            card.setdefault("artifacts", {})[name] = entry
            return card

        card = cas_update(self.store, key, change, verify=lambda c: c.get("artifacts", {}).get(name) == entry)
        logger.info("added %s artifact %s to %s %s", kind, name, dom.value, version)
        return card

    def add_evaluation(self, domain: str, version: str, name: str, report: dict[str, Any]) -> dict[str, Any]:
        """Record an evaluation report (e.g. from ``skyinspect evaluate``) under ``card["evaluations"][name]``."""
        dom = taxonomy.domain(domain)
        key = card_key(dom, version)
        keep = {k: report.get(k) for k in ("map50", "map50_95", "precision", "recall", "images", "per_class",
                                           "dataset_version", "data", "split", "settings", "backend", "model_sha256")}  # fmt: skip

        def change(card: dict[str, Any] | None) -> dict[str, Any]:
            if card is None:
                raise RegistryError(f"{dom.value} version {version} is not registered")
            card.setdefault("evaluations", {})[name] = keep
            return card

        return cas_update(
            self.store, key, change, verify=lambda c: c.get("evaluations", {}).get(name) == keep
        )

    # ------------------------------------------------------------------------------------------------ aliases
    def aliases(self, domain: str) -> dict[str, Any]:
        """The aliases document (an empty one when none was written yet)."""
        doc, _ = _read_json_with_etag(self.store, aliases_key(domain))
        return doc or _empty_aliases(taxonomy.domain(domain).value)

    def _update_aliases(
        self, domain: str, mutate: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        dom = taxonomy.domain(domain).value
        update_id = secrets.token_hex(8)

        def change(doc: dict[str, Any] | None) -> dict[str, Any]:
            doc = doc or _empty_aliases(dom)
            entry = mutate(doc)
            entry.update(update_id=update_id, time=_now())
            doc["history"].append(entry)
            doc["revision"] = int(doc.get("revision", 0)) + 1
            return doc

        def verify(doc: dict[str, Any]) -> bool:
            return any(h.get("update_id") == update_id for h in doc.get("history", []))

        return cas_update(self.store, aliases_key(dom), change, verify=verify)

    def set_alias(self, domain: str, alias: str, version: str | None, action: str = "set") -> dict[str, Any]:
        """Point ``alias`` (champion/candidate) at ``version`` (``None`` clears it).

        Raises:
            RegistryError: unknown alias or version.
        """
        if alias not in ALIAS_NAMES:
            raise RegistryError(f"alias {alias!r}: expected one of {', '.join(ALIAS_NAMES)}")
        if version is not None:
            self._require_version(domain, version)

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            before = doc.get(alias)
            if alias == "champion" and before and before != version:
                doc["previous_champions"].append(before)
            doc[alias] = version
            return {"action": action, "alias": alias, "from": before, "to": version}

        return self._update_aliases(domain, mutate)

    def promote(self, domain: str, version: str | None = None) -> dict[str, Any]:
        """Make ``version`` (default: the candidate) the champion; the candidate alias is cleared if promoted.

        Raises:
            RegistryError: no candidate and no version given, or an unknown version.
        """
        dom = taxonomy.domain(domain).value
        if version is not None:
            self._require_version(dom, version)

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            target = version or doc.get("candidate")
            if not target:
                raise RegistryError(f"{dom}: no candidate to promote; give a version")
            before = doc.get("champion")
            if before == target:
                raise RegistryError(f"{dom}: {target} is already the champion")
            if before:
                doc["previous_champions"].append(before)
            doc["champion"] = target
            if doc.get("candidate") == target:
                doc["candidate"] = None
            return {"action": "promote", "alias": "champion", "from": before, "to": target}

        return self._update_aliases(dom, mutate)

    def rollback(self, domain: str) -> dict[str, Any]:
        """Make the previous champion the champion again (each call steps one further back).

        Raises:
            RegistryError: there is no previous champion.
        """
        dom = taxonomy.domain(domain).value

        def mutate(doc: dict[str, Any]) -> dict[str, Any]:
            if not doc["previous_champions"]:
                raise RegistryError(
                    f"{dom}: no previous champion to roll back to (champion {doc.get('champion')})"
                )
            before = doc.get("champion")
            doc["champion"] = doc["previous_champions"].pop()
            return {"action": "rollback", "alias": "champion", "from": before, "to": doc["champion"]}

        return self._update_aliases(dom, mutate)

    # ------------------------------------------------------------------------------------------------ read
    def versions(self, domain: str) -> list[str]:
        """Registered versions of a domain (those with a card), oldest name first."""
        prefix = f"{domain_prefix(domain)}/versions/"
        found = set()
        for obj in self.store.list(prefix):
            rest = obj.key[len(prefix) :]
            ver, _, leaf = rest.partition("/")
            if leaf == CARD:
                found.add(ver)
        return sorted(found)

    def card(self, domain: str, version: str) -> dict[str, Any]:
        """The model card of a version.

        Raises:
            RegistryError: not registered.
        """
        from objectstore.client import ObjectNotFound

        try:
            return self.store.get_json(card_key(domain, version))
        except ObjectNotFound:
            raise RegistryError(
                f"{taxonomy.domain(domain).value} version {version} is not registered; "
                f"known: {', '.join(self.versions(domain)) or 'none'}"
            ) from None

    def resolve(self, domain: str, ref: str) -> str:
        """An alias (champion/candidate) or version name → the version name.

        Raises:
            RegistryError: an alias that points nowhere, or an unknown version.
        """
        if ref in ALIAS_NAMES:
            target = self.aliases(domain).get(ref)
            if not target:
                raise RegistryError(f"{taxonomy.domain(domain).value}: alias {ref!r} is not set")
            return target
        self._require_version(domain, ref)
        return ref

    def list(self, domain: str) -> list[VersionInfo]:
        """Every version of a domain with its card and aliases."""
        dom = taxonomy.domain(domain).value
        doc = self.aliases(dom)
        out = []
        for ver in self.versions(dom):
            tags = [a for a in ALIAS_NAMES if doc.get(a) == ver]
            out.append(VersionInfo(dom, ver, self.card(dom, ver), tags))
        return out

    def pull(self, domain: str, ref: str, dest: Path, kinds: Iterable[str] | None = None) -> PulledModel:
        """Download a version's card and artifacts (all, or those of ``kinds``) into ``dest`` and verify them.

        Files are written under a temporary name and renamed only after their sha256 matched the card, so
        ``dest`` never holds a partial or corrupt artifact; an artifact already present with the right checksum
        is not downloaded again.

        Raises:
            ChecksumError: a downloaded file's sha256 differs from the card (the file is removed).
            RegistryError: unknown version/alias, or no artifact of the requested kinds.
        """
        dom = taxonomy.domain(domain).value
        version = self.resolve(dom, ref)
        card = self.card(dom, version)
        wanted = set(kinds) if kinds is not None else None
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for name, meta in sorted(card.get("artifacts", {}).items()):
            if wanted is not None and meta.get("kind") not in wanted:
                continue
            target = dest / name
            if target.is_file() and sha256_file(target) == meta["sha256"]:
                files[name] = target
                continue
            tmp = dest / f".{name}.part"
            self.store.download_file(meta["key"], tmp)
            got = sha256_file(tmp)
            if got != meta["sha256"]:
                tmp.unlink(missing_ok=True)
                raise ChecksumError(
                    f"{dom} {version}: {name} ({self.store.url(meta['key'])}) has sha256 {got}, "
                    f"the model card records {meta['sha256']}; not installed"
                )
            tmp.replace(target)
            files[name] = target
        if wanted is not None and not files:
            raise RegistryError(
                f"{dom} {version}: no artifact of kind {sorted(wanted)}; has {sorted(card.get('artifacts', {}))}"
            )
        (dest / CARD).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
        logger.info("pulled %s %s (%s) into %s", dom, version, ", ".join(sorted(files)), dest)
        return PulledModel(dom, version, dest, card, files)

    def _require_version(self, domain: str, version: str) -> None:
        if not self.store.exists(card_key(domain, check_version(version))):
            raise RegistryError(
                f"{taxonomy.domain(domain).value} version {version} is not registered; "
                f"known: {', '.join(self.versions(domain)) or 'none'}"
            )


def _empty_aliases(domain: str) -> dict[str, Any]:
    return {
        "format": ALIASES_FORMAT,
        "domain": domain,
        "champion": None,
        "candidate": None,
        "previous_champions": [],
        "revision": 0,
        "history": [],
    }
