"""The on-site runtime (``skyinspect-edge``): what runs on the crew's NVIDIA Jetson at the site, often offline.

Frames (a watched folder, a video file, an RTSP stream) → the shared inference core (:mod:`detection.inference`,
:mod:`detection.slicing`) on onnxruntime with TensorRT → CUDA → CPU → a durable SQLite outbox → the object store
under ``edge/{device}/`` when reachable. Modules: :mod:`jetson.config` (edge.yaml), :mod:`jetson.sources`,
:mod:`jetson.engine`, :mod:`jetson.pipeline`, :mod:`jetson.outbox`, :mod:`jetson.sync`, :mod:`jetson.models`,
:mod:`jetson.bench`, :mod:`jetson.cli`; deployment files in ``jetson/deploy/``.

Nothing here (nor what it imports) imports torch, ultralytics or dagster.
"""
