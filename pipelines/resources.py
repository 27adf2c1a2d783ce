"""Dagster resources: every outside system the assets touch, as a ``ConfigurableResource``.

* :class:`SettingsResource` — skyinspect's :class:`~skyinspect.config.Settings`. Fields left unset come from the
  config file, ``SKYINSPECT_*`` variables and the embedded store's generated keys, read when a run starts (never
  at import). In production the endpoint and keys are given as ``EnvVar``\\ s (see :mod:`pipelines.definitions`),
  so the secret is resolved by Dagster at launch and never shown in the UI.
* :class:`ObjectStoreResource` — an :class:`~objectstore.client.ObjectStore` on the settings' bucket.
* :class:`ModelRegistryResource` — the domain's champion model from the registry (:mod:`detection.registry`),
  falling back to the default model shipped under ``models/`` when the registry has no champion;
  :meth:`ModelRegistryResource.resolve` says which was used and why. ONNX artifacts are preferred (what the
  on-site runtime runs); a ``.pt`` runs through the PyTorch backend with the same pre/post-processing.

Nothing here writes relative to the working directory: caches live under ``settings.data_dir``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from skyinspect.config import Settings, load_settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS_DIR = REPO_ROOT / "models"


class SettingsResource(dg.ConfigurableResource):
    """skyinspect settings; unset fields fall back to config file → environment → defaults (at run time)."""

    config_file: str | None = Field(
        default=None, description="TOML config file (default: SKYINSPECT_CONFIG)."
    )
    data_dir: str | None = Field(default=None, description="Local working data (caches, model downloads).")
    s3_endpoint: str | None = Field(default=None, description="host:port of the S3 API.")
    s3_access_key: str | None = Field(default=None, description="S3 access key.")
    s3_secret_key: str | None = Field(default=None, description="S3 secret key (give it as an EnvVar).")
    s3_bucket: str | None = Field(default=None, description="The bucket holding raw/, results/, models/.")
    s3_secure: bool | None = Field(default=None, description="Use HTTPS for S3.")

    @classmethod
    def from_settings(cls, settings: Settings) -> SettingsResource:
        """A resource pinned to explicit settings (tests, `skyinspect run`)."""
        return cls(
            data_dir=str(settings.data_dir),
            s3_endpoint=settings.s3_endpoint,
            s3_access_key=settings.s3_access_key,
            s3_secret_key=settings.s3_secret_key,
            s3_bucket=settings.s3_bucket,
            s3_secure=settings.s3_secure,
        )

    def get(self) -> Settings:
        """The resolved :class:`Settings` (raises ``ConfigError`` naming a bad setting)."""
        overrides = {
            "data_dir": self.data_dir,
            "s3_endpoint": self.s3_endpoint,
            "s3_access_key": self.s3_access_key,
            "s3_secret_key": self.s3_secret_key,
            "s3_bucket": self.s3_bucket,
            "s3_secure": self.s3_secure,
        }
        return load_settings(
            overrides={k: v for k, v in overrides.items() if v not in (None, "")},
            config_file=Path(self.config_file) if self.config_file else None,
        )


class ObjectStoreResource(dg.ConfigurableResource):
    """The object store (SeaweedFS embedded, MinIO in production) on the settings' bucket."""

    settings: SettingsResource

    def client(self) -> Any:
        """A new :class:`~objectstore.client.ObjectStore` (thread-safe; close it or use it as a context)."""
        from objectstore.client import ObjectStore

        return ObjectStore.from_settings(self.settings.get())


@dataclass(frozen=True)
class ResolvedModel:
    """The ONNX model a flight's detection uses and where it came from."""

    domain: str
    path: Path
    source: str
    """``registry`` (the champion) or ``shipped`` (the default under models/)."""
    version: str | None
    sha256: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "path": str(self.path),
            "source": self.source,
            "version": self.version,
            "sha256": self.sha256,
            "reason": self.reason,
        }


class ModelNotAvailable(RuntimeError):
    """Neither the registry nor models/ has a model for a domain; the message says what to run."""


def shipped_model_path(domain: str, models_dir: Path | None = None) -> Path:
    """The default model of ``domain`` shipped under ``models/`` (see models/README.md).

    Looked up in this order: ``models/{domain}.onnx``, ``models/{domain}/*.onnx`` (an exported copy),
    ``models/{domain}/best.pt`` (what ``make models`` writes; run through the PyTorch backend). The returned
    path may not exist: the caller says what to run then.
    """
    root = models_dir or SHIPPED_MODELS_DIR
    candidates = [root / f"{domain}.onnx", *sorted((root / domain).glob("*.onnx")), root / domain / "best.pt"]
    for path in candidates:
        if path.is_file():
            return path
    return root / domain / "best.pt"


def open_detector(path: Path, **kwargs: Any) -> Any:
    """A :class:`~detection.inference.Detector` for an ``.onnx`` (onnxruntime) or ``.pt`` (PyTorch) model."""
    from detection.inference import Detector

    if path.suffix.lower() == ".pt":
        from detection.torch_backend import TorchBackend

        kwargs.pop("intra_op_threads", None)
        kwargs.pop("hint", None)
        backend = TorchBackend(path, device="cpu")
        return Detector(backend, backend.model_meta(), **kwargs)
    return Detector.from_onnx(path, **kwargs)


class ModelRegistryResource(dg.ConfigurableResource):
    """Champion models from the registry in the object store, with the shipped defaults as the fallback."""

    store: ObjectStoreResource
    models_dir: str | None = Field(
        default=None,
        description="Folder with the shipped default models (default: the repository's models/).",
    )
    use_registry: bool = Field(default=True, description="Look for the champion in the registry first.")

    def registry(self) -> Any:
        from detection.registry import ModelRegistry

        return ModelRegistry(self.store.client())

    def resolve(self, domain: str) -> ResolvedModel:
        """The champion's ONNX model (downloaded, checksum verified), else the shipped default.

        Raises:
            ModelNotAvailable: neither exists; the message names both places and the command to run.
        """
        from detection import taxonomy
        from detection.registry import RegistryError, sha256_file

        dom = taxonomy.domain(domain).value
        why = "registry lookup disabled"
        if self.use_registry:
            reg = self.registry()
            champion = reg.aliases(dom).get("champion")
            if champion:
                cache = self.store.settings.get().data_dir / "models-cache" / dom / champion
                try:
                    card = reg.card(dom, champion)
                    kinds = {m.get("kind") for m in card.get("artifacts", {}).values()}
                    kind = "onnx" if "onnx" in kinds else "pytorch"
                    pulled = reg.pull(dom, champion, cache, kinds=[kind])
                    path = pulled.path(kind)
                    return ResolvedModel(dom, path, "registry", champion, sha256_file(path),
                                         f"champion {champion} of the registry")  # fmt: skip
                except RegistryError as exc:
                    why = f"champion {champion} has no usable model artifact ({exc})"
            else:
                why = f"the registry has no champion for {dom}"
        shipped = shipped_model_path(dom, Path(self.models_dir) if self.models_dir else None)
        if shipped.is_file():
            return ResolvedModel(dom, shipped, "shipped", None, sha256_file(shipped),
                                 f"{why}; using the shipped default {shipped}")  # fmt: skip
        raise ModelNotAvailable(
            f"no {dom} model: {why}, and no shipped default at {shipped}. "
            f"Train one with `make models` (writes models/), or register and promote one "
            f"(`skyinspect models promote {dom} <version>`)."
        )
