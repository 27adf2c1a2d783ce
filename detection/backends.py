"""Inference backends: something that turns a preprocessed (B, 3, H, W) float32 batch into the raw output array.

The :class:`Backend` protocol is all the detector needs, so a PyTorch backend (``detection.torch_backend``, cloud
only) plugs in beside :class:`OrtBackend` (onnxruntime: CPU, CUDA, TensorRT; cloud and the Jetson) and
:class:`OpenVinoBackend` (Intel's OpenVINO runtime reading the same ONNX file; x86 CPUs). This module never
imports torch, and imports onnxruntime / openvino only when a backend of that kind is opened.

Which backend opens an ONNX file (:func:`choose_backend`, logged by :func:`open_backend`):

1. an explicit choice: the ``backend`` argument (``Detector.from_onnx(backend=...)``, the edge config's
   ``backend`` key) or else ``$SKYINSPECT_INFERENCE_BACKEND`` — ``onnxruntime`` or ``openvino``;
2. ``auto``: onnxruntime when execution providers were named or onnxruntime offers a GPU provider (TensorRT /
   CUDA still come first on a Jetson or a GPU server) and, on CPU, onnxruntime's CPU provider too — OpenVINO
   (the ``full`` and ``edge-x86`` extras install it) only when onnxruntime is missing or on request, because on
   the reference machine it was not faster and it raised the edge runtime's resident memory (298 → 389 MB).

Measured (``python -m bench cpu``, ``bench/results/latest-cpu.md``; one run on the 2-core AVX2 machine, shared
with another benchmark): with the default yolo11p models at 320 px the two CPU backends take about the same
median time per image; INT8 QDQ needs ``u8`` activations on both (``s8`` lost 2.8 / 10.7 mAP50 points), and
FP16 brings nothing on CPUs without native FP16. Re-measure on an idle machine before relying on either.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
"""Automatic provider order: the first available of these, plus the ones after it as fall-backs."""

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
BACKENDS = ("auto", "onnxruntime", "openvino")
"""Values of the ``backend`` setting."""
ENV_BACKEND = "SKYINSPECT_INFERENCE_BACKEND"
"""Environment override of the automatic choice (read when a model is opened, never at import)."""
PERFORMANCE_HINTS = ("latency", "throughput")
"""Performance hints of both CPU backends: ``latency`` (one stream, all threads on one request — the default:
frames arrive one at a time) or ``throughput`` (several streams, each with its own threads; a batch is split across
them). For onnxruntime a stream is a session of its own (CPU provider only): a small model keeps one core busier
than it keeps several, so two single-thread sessions on two cores detect ~1.2× the frames per second of one
two-thread session (pv-thermal, 640 px, this project's reference machine)."""
_PROVIDER_SHORT = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


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


def check_batch(source: Any, batch: np.ndarray, input_shape: Sequence[int | None]) -> None:
    """Raise BackendError unless ``batch`` is (B, C, H, W) matching ``input_shape``'s fixed C, H, W."""
    if batch.ndim != 4:
        raise BackendError(f"{source}: expected a (B, C, H, W) batch, got shape {batch.shape}")
    for axis, (want, got) in enumerate(zip(input_shape[1:], batch.shape[1:], strict=True), start=1):
        if want is not None and want != got:
            raise BackendError(
                f"{source}: input dim {axis} is {got}, the model expects {want} (input shape {tuple(input_shape)})"
            )


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
            name = _PROVIDER_SHORT.get(name.lower(), name)
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


def static_chunks(x: np.ndarray, size: int) -> list[tuple[np.ndarray, int]]:
    """A batch cut for a static-batch model: chunks of ``size`` (the last zero-padded) and each one's real count."""
    chunks = []
    for start in range(0, len(x), size):
        chunk = x[start : start + size]
        n = len(chunk)
        if n < size:
            chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)])
        chunks.append((chunk, n))
    return chunks


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
        hint: ``latency`` (one session) or ``throughput`` (``streams`` sessions on the CPU provider, each with
            ``intra_op_threads / streams`` threads; :meth:`run` splits a batch across them). A GPU provider keeps one
            session.
        streams: sessions for the throughput hint (``None``: one per CPU core).

    Raises:
        BackendError: the model cannot be loaded, a provider is unavailable, or the hint is unknown.
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
        hint: str = "latency",
        streams: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.source = "<bytes>" if isinstance(model, bytes) else str(model)
        if hint.lower() not in PERFORMANCE_HINTS:
            raise BackendError(
                f"{self.source}: hint {hint!r}: expected one of {', '.join(PERFORMANCE_HINTS)}"
            )
        if streams is not None and streams < 1:
            raise BackendError(f"{self.source}: streams must be >= 1, got {streams}")
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise BackendError(f"model file {model} does not exist")
        chosen = choose_providers(
            ort.get_available_providers(), providers, Path(cache_dir) if cache_dir else None, fp16
        )
        for name, extra in (provider_options or {}).items():
            for i, (pname, opts) in enumerate(chosen):
                if pname == name:
                    chosen[i] = (pname, {**opts, **extra})
        cpu_only = [n for n, _ in chosen] == ["CPUExecutionProvider"]
        n_streams = (streams or os.cpu_count() or 1) if hint.lower() == "throughput" and cpu_only else 1
        threads = intra_op_threads
        if n_streams > 1:
            threads = max(1, (intra_op_threads or os.cpu_count() or 1) // n_streams)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        if inter_op_threads is not None:
            opts.inter_op_num_threads = int(inter_op_threads)
        try:
            sessions = [
                ort.InferenceSession(
                    model if isinstance(model, bytes) else str(model),
                    sess_options=opts,
                    providers=[n for n, _ in chosen],
                    provider_options=[o for _, o in chosen],
                )
                for _ in range(n_streams)
            ]
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise BackendError(f"cannot load ONNX model {self.source}: {exc}") from exc
        self.session = sessions[0]
        self.streams = n_streams
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for sess in sessions:
            self._idle.put(sess)
        self._pool = ThreadPoolExecutor(n_streams, thread_name_prefix="ort-stream") if n_streams > 1 else None
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self._output_names = [o.name for o in self.session.get_outputs()]
        shape = [d if isinstance(d, int) and d > 0 else None for d in inp.shape]
        if len(shape) != 4:
            raise BackendError(f"{self.source}: expected a (B, C, H, W) input, got {inp.shape}")
        self._input_shape: tuple[int | None, int | None, int | None, int | None] = tuple(shape)  # type: ignore[assignment]
        logger.info(
            "onnxruntime %s: providers %s (requested %s), input %s %s, threads intra=%s, streams %d",
            self.source,
            self.session.get_providers(),
            "auto" if providers is None else [p if isinstance(p, str) else p[0] for p in providers],
            self._input_name,
            inp.shape,
            threads if threads is not None else "default",
            n_streams,
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

        Dynamic-batch models take the batch in one call (with several streams: split evenly across them);
        static-batch models take it in chunks of their batch size, the last chunk padded with zeros and the
        padding's outputs dropped (with several streams the chunks run concurrently).

        Raises:
            BackendError: the batch does not fit the model's input.
        """
        check_batch(self.source, batch, self._input_shape)
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        static = self._input_shape[0]
        if static is None:
            parts = min(self.streams, len(x))
            chunks = [(c, len(c)) for c in np.array_split(x, parts)] if parts > 1 else [(x, len(x))]
        else:
            chunks = static_chunks(x, static)
        if len(chunks) == 1:
            return self._run(chunks[0][0])[: chunks[0][1]]
        if self._pool is None:
            return np.concatenate([self._run(c)[:n] for c, n in chunks])
        return np.concatenate(list(self._pool.map(lambda cn: self._run(cn[0])[: cn[1]], chunks)))

    def _run(self, x: np.ndarray) -> np.ndarray:
        """One session call on an idle session (each stream's session runs one call at a time)."""
        session = self._idle.get()
        try:
            out = session.run(self._output_names[:1], {self._input_name: x})[0]
        finally:
            self._idle.put(session)
        return out if out.dtype == np.float32 else out.astype(np.float32)


# ---------------------------------------------------------------------------------------------- OpenVINO
def openvino_available() -> bool:
    """Whether the ``openvino`` package can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


def is_x86(machine: str | None = None) -> bool:
    """Whether this (or the given ``platform.machine()``) is an x86 CPU, where OpenVINO's CPU plugin runs."""
    return (machine or platform.machine()).lower() in ("x86_64", "amd64", "x86", "i386", "i686")


def _ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def choose_backend(
    requested: str | None = None,
    providers: Sequence[Any] | None = None,
    *,
    available_providers: Sequence[str] | None = None,
    has_openvino: bool | None = None,
    machine: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Which backend opens an ONNX model → (``"onnxruntime"`` | ``"openvino"``, the reason in words).

    Args:
        requested: ``auto`` / ``onnxruntime`` / ``openvino``; ``None`` = ``$SKYINSPECT_INFERENCE_BACKEND`` or auto.
        providers: execution providers the caller named (they imply onnxruntime under ``auto``).
        available_providers, has_openvino, machine, environ: what the machine has (default: probed); for tests.

    Raises:
        BackendError: an unknown backend name, or ``openvino`` asked for where it is not installed.
    """
    env = os.environ if environ is None else environ
    source = "requested"
    if requested is None:
        requested, source = env.get(ENV_BACKEND) or "auto", f"${ENV_BACKEND}"
    choice = str(requested).strip().lower()
    if choice in ("ort", "onnx"):
        choice = "onnxruntime"
    if choice not in BACKENDS:
        raise BackendError(
            f"inference backend {requested!r} ({source}): expected one of {', '.join(BACKENDS)}"
        )
    ov_ok = openvino_available() if has_openvino is None else has_openvino
    if choice == "openvino":
        if not ov_ok:
            raise BackendError(
                f"inference backend 'openvino' ({source}) is not installed; install the openvino package "
                "(pip install 'skyinspect[edge-x86]') or choose backend onnxruntime"
            )
        return "openvino", f"{source}"
    if choice == "onnxruntime":
        return "onnxruntime", f"{source}"
    if providers:
        return "onnxruntime", "execution providers were named"
    avail = _ort_providers() if available_providers is None else list(available_providers)
    gpu = [p for p in GPU_PROVIDERS if p in avail]
    if gpu:
        return "onnxruntime", f"onnxruntime offers {', '.join(gpu)}"
    if not avail and ov_ok:
        return "openvino", "onnxruntime is not installed"
    # On CPU, onnxruntime stays the default: on the 2-core AVX2 reference machine OpenVINO was not faster
    # (python -m bench cpu) and raised the edge runtime's resident memory; choose it with backend=openvino.
    return "onnxruntime", "CPU: onnxruntime (OpenVINO on request)" if ov_ok else "no GPU provider"


def _onnx_metadata_from_rt_info(ov_model: Any) -> dict[str, str]:
    """The ONNX file's ``metadata_props`` as OpenVINO's reader keeps them (``rt_info["framework"]``)."""
    try:
        framework = ov_model.get_rt_info()["framework"]
    except (KeyError, RuntimeError, IndexError):
        return {}
    return {str(k): framework[k].astype(str) for k in framework.keys()}


class OpenVinoBackend:
    """The OpenVINO runtime (CPU plugin) on an ONNX file, behind the :class:`Backend` protocol.

    OpenVINO reads the ONNX directly (no conversion step, the same file onnxruntime runs, metadata included).
    FP32 files run in FP32; FP16 files run with their weights decompressed to FP32 on CPUs without native FP16
    (AVX2, AVX-512 without FP16); INT8 QDQ files run OpenVINO's low-precision kernels (u8×s8) where the CPU has
    them (AVX2 and later).

    Args:
        model: path to an .onnx (or OpenVINO .xml) file, or ONNX bytes.
        device: OpenVINO device (``CPU``).
        threads: ``INFERENCE_NUM_THREADS``; ``None`` = OpenVINO's default (all physical cores).
        hint: ``latency`` (default) or ``throughput`` (see :data:`PERFORMANCE_HINTS`).
        streams: ``NUM_STREAMS`` for the throughput hint (``None``: OpenVINO decides).
        cache_dir: OpenVINO's compiled-model cache (faster start-up; ``None`` = off).
        config: further OpenVINO properties, merged last.

    Raises:
        BackendError: openvino is not installed, the model cannot be read or compiled, or its input is not BCHW.
    """

    name = "openvino"

    def __init__(
        self,
        model: str | Path | bytes,
        device: str = "CPU",
        threads: int | None = None,
        hint: str = "latency",
        streams: int | None = None,
        cache_dir: str | Path | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendError(
                "the openvino package is not installed (pip install 'skyinspect[edge-x86]')"
            ) from exc
        if hint.lower() not in PERFORMANCE_HINTS:
            raise BackendError(f"OpenVINO hint {hint!r}: expected one of {', '.join(PERFORMANCE_HINTS)}")
        self.source = "<bytes>" if isinstance(model, bytes) else str(model)
        if not isinstance(model, bytes) and not Path(model).is_file():
            raise BackendError(f"model file {model} does not exist")
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(model if isinstance(model, bytes) else str(model))
        except Exception as exc:  # openvino raises RuntimeError subclasses of its own
            raise BackendError(f"cannot read model {self.source} with OpenVINO: {exc}") from exc
        if len(self._model.inputs) != 1:
            raise BackendError(f"{self.source}: expected one input, got {len(self._model.inputs)}")
        pshape = self._model.input(0).get_partial_shape()
        if pshape.rank.is_dynamic or pshape.rank.get_length() != 4:
            raise BackendError(f"{self.source}: expected a (B, C, H, W) input, got {pshape}")
        dims = [d.get_length() if d.is_static else None for d in pshape]
        self._input_shape: tuple[int | None, int | None, int | None, int | None] = tuple(dims)  # type: ignore[assignment]
        self._metadata = _onnx_metadata_from_rt_info(self._model)
        self.device = device
        self.hint = hint.lower()
        props: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY" if self.hint == "latency" else "THROUGHPUT",
        }
        if threads is not None:
            props["INFERENCE_NUM_THREADS"] = int(threads)
        if streams is not None:
            props["NUM_STREAMS"] = int(streams)
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            props["CACHE_DIR"] = str(cache_dir)
        props.update(config or {})
        self.properties = props
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._requests: dict[tuple[int, ...], list[Any]] = {}
        self._lock = threading.Lock()
        static = tuple(dims) if all(d is not None for d in dims) else None
        if static is not None:
            self._compile(static)  # load errors surface here, not on the first frame
        compiled = next(iter(self._compiled.values()), None)
        self._threads = (
            compiled.get_property("INFERENCE_NUM_THREADS") if compiled is not None else threads or "default"
        )
        logger.info(
            "openvino %s: device %s, input %s, hint %s, threads %s, streams %s",
            self.source,
            device,
            pshape,
            self.hint,
            self._threads,
            compiled.get_property("NUM_STREAMS") if compiled is not None else streams or "default",
        )

    def _compile(self, shape: tuple[int, ...]) -> Any:
        """The compiled model for an input ``shape`` (static models: their own; dynamic: reshaped, cached)."""
        compiled = self._compiled.get(shape)
        if compiled is not None:
            return compiled
        with self._lock:
            if shape not in self._compiled:
                model = self._model
                if any(d is None for d in self._input_shape):
                    model = self._model.clone()
                    model.reshape({model.input(0): list(shape)})
                    if len(self._compiled) >= 4:  # bound the cache: drop the oldest shape
                        oldest = next(iter(self._compiled))
                        del self._compiled[oldest], self._requests[oldest]
                try:
                    compiled = self._core.compile_model(model, self.device, self.properties)
                except Exception as exc:
                    raise BackendError(f"OpenVINO cannot compile {self.source} for {shape}: {exc}") from exc
                nreq = (
                    int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
                    if self.hint == "throughput"
                    else 1
                )
                self._requests[shape] = [compiled.create_infer_request() for _ in range(max(1, nreq))]
                self._compiled[shape] = compiled
        return self._compiled[shape]

    @property
    def input_shape(self) -> tuple[int | None, int | None, int | None, int | None]:
        return self._input_shape

    @property
    def dynamic_batch(self) -> bool:
        return self._input_shape[0] is None

    @property
    def providers(self) -> list[str]:
        return [f"OpenVINO:{self.device}"]

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._metadata)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 → first output (B, …) float32.

        Dynamic-batch models take the batch in one call (compiled once per input shape); static-batch models take
        it in chunks of their batch size (the last chunk zero-padded) — with the ``throughput`` hint the chunks
        run in parallel, one per infer request.

        Raises:
            BackendError: the batch does not fit the model's input.
        """
        check_batch(self.source, batch, self._input_shape)
        x = np.ascontiguousarray(batch, dtype=np.float32)
        static = self._input_shape[0]
        if static is None:
            shape = tuple(int(d) for d in x.shape)
            self._compile(shape)
            return self._infer(self._requests[shape][0], x)
        shape = (static, *(int(d) for d in x.shape[1:]))
        self._compile(shape)
        requests = self._requests[shape]
        chunks = static_chunks(x, static)
        if len(chunks) == 1 or len(requests) == 1:
            return np.concatenate([self._infer(requests[0], c)[:n] for c, n in chunks])
        outs: list[np.ndarray | None] = [None] * len(chunks)
        for first in range(0, len(chunks), len(requests)):
            group = chunks[first : first + len(requests)]
            for req, (c, _) in zip(requests, group, strict=False):
                req.start_async({0: c})
            for k, (req, (_, n)) in enumerate(zip(requests, group, strict=False)):
                req.wait()
                outs[first + k] = np.array(req.get_output_tensor(0).data[:n], dtype=np.float32)
        return np.concatenate(outs)  # type: ignore[arg-type]

    @staticmethod
    def _infer(request: Any, x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        # copy: the request's output buffer is reused by the next call
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)


def open_backend(
    model: str | Path | bytes,
    backend: str | None = None,
    *,
    providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
    provider_options: Mapping[str, Mapping[str, Any]] | None = None,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    fp16: bool = True,
    hint: str = "latency",
    streams: int | None = None,
) -> Backend:
    """Open ``model`` with the backend :func:`choose_backend` picks (the choice and its reason are logged).

    ``threads`` is onnxruntime's ``intra_op_num_threads`` (over all its streams) or OpenVINO's
    ``INFERENCE_NUM_THREADS``; ``providers``, ``provider_options`` and ``fp16`` apply to onnxruntime, ``hint`` and
    ``streams`` to both (:data:`PERFORMANCE_HINTS`).

    Raises:
        BackendError: see :func:`choose_backend`, :class:`OrtBackend`, :class:`OpenVinoBackend`.
    """
    name, reason = choose_backend(backend, providers)
    logger.info(
        "inference backend for %s: %s (%s)", "<bytes>" if isinstance(model, bytes) else model, name, reason
    )
    if name == "openvino":
        return OpenVinoBackend(model, threads=threads, hint=hint, streams=streams)
    return OrtBackend(
        model,
        providers=providers,
        provider_options=provider_options,
        intra_op_threads=threads,
        cache_dir=cache_dir,
        fp16=fp16,
        hint=hint,
        streams=streams,
    )
