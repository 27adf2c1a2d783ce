"""Radiometric thermal encoding: how skyinspect stores temperatures in 16-bit images and maps them for a model.

Encoding (documented in the README, written by the synthetic generator, read by ingest, grading and inference):
a single-channel ``uint16`` TIFF whose pixel value is the temperature in **centikelvin**,
``counts = round((T_celsius + 273.15) * 100)``, so 0.01 K resolution over 0–655.35 K.

A model sees thermal frames as 8-bit greyscale replicated to three channels, made by mapping a fixed temperature
window linearly onto 0–255 (clipped). The window travels in the model's metadata (``thermal_window_c``) so the
runtime maps exactly as training did.
"""

from __future__ import annotations

import functools

import numpy as np

KELVIN_OFFSET = 273.15
COUNTS_PER_KELVIN = 100.0
DEFAULT_WINDOW_C: tuple[float, float] = (0.0, 100.0)
"""Temperature window (°C) mapped onto 0–255 for thermal models, unless a model's metadata says otherwise."""


def celsius_to_counts(temp_c: np.ndarray) -> np.ndarray:
    """(H, W) float temperatures in °C → (H, W) uint16 centikelvin counts (clipped to the uint16 range)."""
    counts = np.rint((np.asarray(temp_c, dtype=np.float64) + KELVIN_OFFSET) * COUNTS_PER_KELVIN)
    return np.clip(counts, 0, np.iinfo(np.uint16).max).astype(np.uint16)


def counts_to_celsius(counts: np.ndarray) -> np.ndarray:
    """(H, W) uint16 centikelvin counts → (H, W) float32 temperatures in °C."""
    return (np.asarray(counts, dtype=np.float32) / np.float32(COUNTS_PER_KELVIN)) - np.float32(KELVIN_OFFSET)


def window_to_uint8(temp_c: np.ndarray, window_c: tuple[float, float] = DEFAULT_WINDOW_C) -> np.ndarray:
    """(H, W) °C → (H, W) uint8 by mapping ``window_c`` linearly onto 0–255, clipped.

    Raises:
        ValueError: the window is empty or reversed.
    """
    lo, hi = float(window_c[0]), float(window_c[1])
    if not hi > lo:
        raise ValueError(f"thermal window must have low < high, got {window_c}")
    scaled = (np.asarray(temp_c, dtype=np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _window_lut(lo: float, hi: float) -> np.ndarray:
    """Every uint16 count's uint8 value through the window (lo, hi) °C: 64 KiB, computed once per window."""
    lut = window_to_uint8(counts_to_celsius(np.arange(65536, dtype=np.uint16)), (lo, hi))
    lut.setflags(write=False)
    return lut


def counts_to_uint8(counts: np.ndarray, window_c: tuple[float, float] = DEFAULT_WINDOW_C) -> np.ndarray:
    """(H, W) uint16 centikelvin → (H, W) uint8 through ``window_c`` (the model's view of a thermal frame).

    A table lookup over all 65536 counts (the same arithmetic as :func:`window_to_uint8` of
    :func:`counts_to_celsius`, so identical values): 0.6 vs 4.2 ms on a 640×512 frame here.

    Raises:
        ValueError: the window is empty or reversed.
    """
    counts = np.asarray(counts)
    if counts.dtype != np.uint16:
        return window_to_uint8(counts_to_celsius(counts), window_c)
    return np.take(_window_lut(float(window_c[0]), float(window_c[1])), counts)
