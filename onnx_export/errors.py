"""Errors of the export stage; messages name the file, option or reference and the reason."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export cannot run: bad model file or reference, unsupported opset, unusable calibration data."""


class VerificationFailed(RuntimeError):
    """An exported model does not reproduce the PyTorch model within the gates; the message lists every failure."""
