"""Logging a person can read: one line per event, level and source, no secrets (settings are redacted)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "INFO") -> None:
    """Configure the root logger once for a CLI process; noisy third-party loggers are kept at WARNING."""
    root = logging.getLogger()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    if not any(getattr(h, "_skyinspect", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler._skyinspect = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in ("urllib3", "botocore", "PIL", "matplotlib", "ultralytics"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
