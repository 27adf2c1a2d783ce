"""Procedural, seamlessly tileable textures (periodic FFT-filtered noise) for ground, clouds and blade surfaces."""

from __future__ import annotations

import cv2
import numpy as np


def periodic_noise(rng: np.random.Generator, size: int, scale_px: float, octaves: int = 4) -> np.ndarray:
    """(size, size) float32 tileable noise, zero mean, unit std, dominant feature size ``scale_px`` (+ octaves).

    ``size`` must be a power of two. Coarse octaves are synthesised on a smaller periodic grid and upsampled,
    so a 2048² texture costs little more than its finest octave.
    """
    if size & (size - 1):
        raise ValueError(f"periodic noise size must be a power of two, got {size}")
    out = np.zeros((size, size), np.float32)
    amp = 1.0
    for o in range(octaves):
        s = scale_px / (2**o)
        factor = 1
        while factor * 2 <= s / 3.0 and size // (factor * 2) >= 16:
            factor *= 2
        m = size // factor
        fy = np.fft.fftfreq(m)[:, None]
        fx = np.fft.rfftfreq(m)[None, :]
        white = rng.standard_normal((m, m)).astype(np.float32)
        spec = np.fft.rfft2(white) * np.exp(-0.5 * (np.sqrt(fx**2 + fy**2) * (s / factor) * 2.0) ** 2)
        layer = np.fft.irfft2(spec, s=(m, m)).astype(np.float32)
        if factor > 1:  # periodic upsampling: wrap-pad, resize, cut one period
            padded = np.pad(layer, 2, mode="wrap")
            up = cv2.resize(padded, ((m + 4) * factor, (m + 4) * factor), interpolation=cv2.INTER_CUBIC)
            layer = up[2 * factor : 2 * factor + size, 2 * factor : 2 * factor + size]
        layer /= layer.std() + 1e-9
        out += amp * layer
        amp *= 0.5
    return (out - out.mean()) / (out.std() + 1e-9)


def grass_texture(rng: np.random.Generator, size: int, res_m: float, dryness: float) -> np.ndarray:
    """(size, size, 3) uint8 BGR tileable grass/meadow at ``res_m`` metres per pixel; ``dryness`` in 0..1."""
    big = periodic_noise(rng, size, 0.8 / res_m, 3)
    mid = periodic_noise(rng, size, 0.12 / res_m, 2)
    fine = rng.standard_normal((size, size)).astype(np.float32)
    # short grass blades: streaks of the fine noise in a random direction
    k = max(3, int(np.rint(0.04 / res_m)) | 1)
    kern = np.zeros((k, k), np.float32)
    cv2.line(kern, (0, int(rng.integers(0, k))), (k - 1, int(rng.integers(0, k))), 1.0, 1)
    kern /= kern.sum()
    fine = cv2.filter2D(np.pad(fine, k, mode="wrap"), -1, kern)[k:-k, k:-k] * 1.8
    green = np.array([60, 115, 75], np.float32)  # BGR
    dry = np.array([95, 150, 165], np.float32)
    dark = np.array([40, 70, 50], np.float32)
    t = np.clip(dryness + 0.16 * big + 0.1 * mid + 0.08 * fine, 0, 1)[..., None]
    col = green * (1 - t) + dry * t
    shade = np.clip(0.5 + 0.12 * mid + 0.22 * fine, 0, 1)[..., None]
    col = col * (0.75 + 0.5 * shade) * 0.9 + dark * 0.1
    return np.clip(col, 0, 255).astype(np.uint8)


def gravel_texture(rng: np.random.Generator, size: int, res_m: float) -> np.ndarray:
    """(size, size, 3) uint8 BGR tileable gravel (grey-beige with pebbles)."""
    base = periodic_noise(rng, size, 0.5 / res_m, 2)
    peb = periodic_noise(rng, size, max(0.6, 0.015 / res_m), 1)
    fine = rng.standard_normal((size, size)).astype(np.float32)
    lum = 150 + 10 * base + 22 * np.tanh(1.5 * peb) + 10 * fine
    tint = np.array([0.93, 0.98, 1.03], np.float32)
    return np.clip(lum[..., None] * tint, 0, 255).astype(np.uint8)


def window_of(tex: np.ndarray, i0: int, j0: int, h: int, w: int) -> np.ndarray:
    """A (h, w[, C]) copy of the infinite tiling of a tileable (Sy, Sx[, C]) texture at global pixel (i0, j0)."""
    size_y, size_x = tex.shape[:2]
    out = np.empty((h, w, *tex.shape[2:]), tex.dtype)
    y = 0
    while y < h:
        ty = (i0 + y) % size_y
        dy = min(size_y - ty, h - y)
        x = 0
        while x < w:
            tx = (j0 + x) % size_x
            dx = min(size_x - tx, w - x)
            out[y : y + dy, x : x + dx] = tex[ty : ty + dy, tx : tx + dx]
            x += dx
        y += dy
    return out
