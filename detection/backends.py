"""Inference backends: something that turns a preprocessed (B, 3, H, W) float32 batch into the raw output array.

The :class:`Backend` protocol is all the detector needs, so a PyTorch backend (``detection.torch_backend``, cloud
only) plugs in beside :class:`OrtBackend` (onnxruntime; cloud and the Jetson). This module never imports torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
"""Automatic provider order: the first available of these, plus the ones after it as fall-backs."""


class BackendError(RuntimeError):
    """A backend cannot be created or run; the message names the model and the reason."""


@runtime_checkable
class Backend(Protocol):
    """What :class:`detection.inference.Detector` needs from an inference engine.

    Attributes:
        name: a short label for logs and benchmarks (``onnxruntime``, ``torch``…).
        input_shape: (B, C, H, W) with ``None`` for dynamic dimensions.
        dynamic_batch: whether ``run`` takes any batch size in one call.
        providers: the execution providers / devices actually in use.
        metadata: the model's ``custom_metadata_map`` (str → str), empty if the backend has none.
    """

    name: str

    @property
    def input_shape(self) -> tuple[int | None, int | None, int | None, int | None]: ...

    @property
    def dynamic_batch(self) -> bool: ...

    @property
    def providers(self) -> list[str]: ...

    @property
    def metadata(self) -> dict[str, str]: ...

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 RGB 0..1 → the model's first output, e.g. (B, 4 + nc, N) float32."""
        ...


def default_cache_dir() -> Path:
    """Where TensorRT engines and timing caches go: ``$XDG_CACHE_HOME/skyinspect/tensorrt`` (~/.cache/…)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "skyinspect" / "tensorrt"


def choose_providers(
    available: Sequence[str],
    requested: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
    cache_dir: Path | None = None,
    fp16: bool = True,
) -> list[tuple[str, dict[str, Any]]]:
    """The providers (with options) to open a session with.

    Automatic (``requested=None``): TensorRT (FP16, engine and timing caches in ``cache_dir``) → CUDA → CPU,
    keeping those that are ``available``. Explicit names are checked against ``available``.

    Raises:
        BackendError: a requested provider is not available (the message lists the available ones).
    """
    if requested is None:
        names = [p for p in PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]
        chosen: list[tuple[str, dict[str, Any]]] = [(n, {}) for n in names]
    else:
        chosen = []
        for item in requested:
            name, opts = (item, {}) if isinstance(item, str) else (item[0], dict(item[1]))
            short = {
                "tensorrt": "TensorrtExecutionProvider",
                "cuda": "CUDAExecutionProvider",
                "cpu": "CPUExecutionProvider",
            }
            name = short.get(name.lower(), name)
            if name not in available:
                raise BackendError(
                    f"execution provider {name!r} is not available; available: {', '.join(available)}"
                )
            chosen.append((name, opts))
    out: list[tuple[str, dict[str, Any]]] = []
    for name, opts in chosen:
        if name == "TensorrtExecutionProvider":
            cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
            cache.mkdir(parents=True, exist_ok=True)
            defaults = {
                "trt_fp16_enable": fp16,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache),
            }
            opts = {**defaults, **opts}
        out.append((name, opts))
    return out


class OrtBackend:
    """An onnxruntime session behind the :class:`Backend` protocol.

    Args:
        model: path to an .onnx file, or its bytes.
        providers: execution providers (names like ``"CUDAExecutionProvider"`` or ``"cuda"``, or (name, options)
            pairs); ``None`` picks automatically (see :func:`choose_providers`). The choice is logged.
        provider_options: extra options per provider name, merged over the defaults.
        intra_op_threads: threads inside one operator; ``None`` keeps onnxruntime's default (one per physical
            core). Set it on a shared machine.
        inter_op_threads: threads across operators (only used with parallel execution); ``None`` = default.
        cache_dir: TensorRT engine / timing cache folder (default :func:`default_cache_dir`).
        fp16: let TensorRT build FP16 engines.

    Raises:
        BackendError: the model cannot be loaded or a provider is unavailable.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: str | Path | bytes,
        providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        cache_dir: str | Path | None = None,
        fp16: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.source = "<bytes>" if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise BackendError(f"model file {model} does not exist")
        chosen = choose_providers(
            ort.get_available_providers(), providers, Path(cache_dir) if cache_dir else None, fp16
        )
        for name, extra in (provider_options or {}).items():
            for i, (pname, opts) in enumerate(chosen):
                if pname == name:
                    chosen[i] = (pname, {**opts, **extra})
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads is not None:
            opts.intra_op_num_threads = int(intra_op_threads)
        if inter_op_threads is not None:
            opts.inter_op_num_threads = int(inter_op_threads)
        try:
            self.session = ort.InferenceSession(
                model if isinstance(model, bytes) else str(model),
                sess_options=opts,
                providers=[n for n, _ in chosen],
                provider_options=[o for _, o in chosen],
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise BackendError(f"cannot load ONNX model {self.source}: {exc}") from exc
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self._output_names = [o.name for o in self.session.get_outputs()]
        shape = [d if isinstance(d, int) and d > 0 else None for d in inp.shape]
        if len(shape) != 4:
            raise BackendError(f"{self.source}: expected a (B, C, H, W) input, got {inp.shape}")
        self._input_shape: tuple[int | None, int | None, int | None, int | None] = tuple(shape)  # type: ignore[assignment]
        logger.info(
            "onnxruntime %s: providers %s (requested %s), input %s %s, threads intra=%s",
            self.source,
            self.session.get_providers(),
            "auto" if providers is None else [p if isinstance(p, str) else p[0] for p in providers],
            self._input_name,
            inp.shape,
            intra_op_threads if intra_op_threads is not None else "default",
        )

    @property
    def input_shape(self) -> tuple[int | None, int | None, int | None, int | None]:
        return self._input_shape

    @property
    def dynamic_batch(self) -> bool:
        return self._input_shape[0] is None

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 → first output (B, …) float32.

        Dynamic-batch models take the batch in one call; static-batch models take it in chunks of their batch
        size, the last chunk padded with zeros and the padding's outputs dropped.

        Raises:
            BackendError: the batch does not fit the model's input.
        """
        if batch.ndim != 4:
            raise BackendError(f"{self.source}: expected a (B, C, H, W) batch, got shape {batch.shape}")
        for axis, (want, got) in enumerate(zip(self._input_shape[1:], batch.shape[1:], strict=True), start=1):
            if want is not None and want != got:
                raise BackendError(
                    f"{self.source}: input dim {axis} is {got}, the model expects {want} (input shape {self._input_shape})"
                )
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        static = self._input_shape[0]
        if static is None or static == len(x):
            return self._run(x)
        outs = []
        for start in range(0, len(x), static):
            chunk = x[start : start + static]
            n = len(chunk)
            if n < static:
                chunk = np.concatenate([chunk, np.zeros((static - n, *chunk.shape[1:]), chunk.dtype)])
            outs.append(self._run(chunk)[:n])
        return np.concatenate(outs)

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(self._output_names[:1], {self._input_name: x})[0]
        return out if out.dtype == np.float32 else out.astype(np.float32)
