"""Camera effects applied after the geometric warp: optics/motion blur, vignetting, sensor noise, JPEG, palette.

Expensive per-pixel randomness is drawn once per flight (a noise bank a little larger than the frame) and cut at
a per-frame random offset, so each frame costs a few saturating OpenCV adds instead of a fresh normal draw.
"""

from __future__ import annotations

import cv2
import numpy as np


class CameraEffects:
    """Per-flight precomputed effect maps for (H, W) frames; all randomness from ``rng``."""

    def __init__(
        self,
        width: int,
        height: int,
        rng: np.random.Generator,
        noise_sigma: float,
        vignetting: float,
        channels: int = 3,
    ) -> None:
        self.width, self.height, self.channels = width, height, channels
        self.pad = 32
        shape = (
            (height + self.pad, width + self.pad, channels)
            if channels > 1
            else (height + self.pad, width + self.pad)
        )
        noise = rng.standard_normal(size=shape, dtype=np.float32)
        noise *= np.float32(noise_sigma)
        self.noise_pos = np.clip(noise, 0, 255).astype(np.uint8)
        np.negative(noise, out=noise)
        self.noise_neg = np.clip(noise, 0, 255).astype(np.uint8)
        del noise
        xx = np.arange(width, dtype=np.float32)[None, :]  # broadcast: no (H, W) coordinate grids
        yy = np.arange(height, dtype=np.float32)[:, None]
        r2 = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
        gain = 1.0 - vignetting * r2**1.5
        self.gain_f = gain.astype(np.float32)
        g8 = np.clip(gain * 255.0, 0, 255).astype(np.uint8)
        self.gain_u8 = cv2.merge([g8] * channels) if channels > 1 else g8

    def noise_window(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        dy, dx = (int(v) for v in rng.integers(0, self.pad, size=2))
        sl = (slice(dy, dy + self.height), slice(dx, dx + self.width))
        return self.noise_pos[sl], self.noise_neg[sl]

    def apply_rgb(
        self,
        img: np.ndarray,
        rng: np.random.Generator,
        exposure: float,
        motion_px: float,
        blur_sigma: float = 0.0,
        inplace: bool = False,
    ) -> np.ndarray:
        """(H, W, 3) uint8 → (H, W, 3) uint8 with motion/optics blur, exposure × vignetting, and sensor noise.

        The bilinear resampling of the warp already softens the image like a good lens; an extra blur is applied
        only when asked (``blur_sigma``) or when motion smear exceeds half a pixel (along the image's vertical,
        the flight direction). ``inplace`` lets the caller's ``img`` be overwritten (fewer 36 MB allocations,
        which cost page faults at 4000 × 3000); the result is the same.
        """
        out = img
        fresh = inplace
        if motion_px > 0.5 or blur_sigma > 0.05:
            kx = _gauss_kernel(blur_sigma)
            ky = _gauss_kernel(blur_sigma)
            if motion_px > 0.5:
                n = int(np.ceil(motion_px)) | 1
                ky = np.convolve(ky, np.ones(n, np.float32) / n).astype(np.float32)
            out = cv2.sepFilter2D(img, -1, kx, ky, borderType=cv2.BORDER_REFLECT)
            fresh = True
        out = cv2.multiply(out, self.gain_u8, dst=out if fresh else None, scale=exposure / 255.0)
        pos, neg = self.noise_window(rng)
        cv2.add(out, pos, dst=out)
        cv2.subtract(out, neg, dst=out)
        return out


def _gauss_kernel(sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return np.array([1.0], np.float32)
    r = max(1, int(np.ceil(2.5 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def blur_gray(img: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) float32 Gaussian blur (separable)."""
    k = _gauss_kernel(sigma)
    return cv2.sepFilter2D(img, -1, k, k, borderType=cv2.BORDER_REFLECT)


def encode_jpeg(img_bgr: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 BGR → baseline JPEG bytes (4:2:0, fixed quality: deterministic)."""
    ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG frame")
    return buf.tobytes()


_IRONBOW_STOPS = [
    (0.00, (0, 0, 0)),
    (0.12, (30, 0, 90)),
    (0.30, (120, 0, 150)),
    (0.48, (200, 30, 110)),
    (0.62, (235, 90, 30)),
    (0.78, (250, 160, 0)),
    (0.92, (255, 225, 70)),
    (1.00, (255, 255, 235)),
]


def ironbow_lut() -> np.ndarray:
    """(256, 3) uint8 BGR lookup table of an ironbow-like palette (black → purple → red → orange → white)."""
    xs = np.linspace(0.0, 1.0, 256)
    pos = [p for p, _ in _IRONBOW_STOPS]
    rgb = np.stack([np.interp(xs, pos, [c[i] for _, c in _IRONBOW_STOPS]) for i in range(3)], axis=1)
    return np.rint(rgb[:, ::-1]).astype(np.uint8)


def thermal_preview(temp_c: np.ndarray) -> np.ndarray:
    """(H, W) °C → (H, W, 3) uint8 BGR ironbow preview, auto-ranged on the 1st–99.5th percentile."""
    lo, hi = np.percentile(temp_c, [1.0, 99.5])
    hi = max(hi, lo + 1.0)
    idx = np.clip((temp_c - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return ironbow_lut()[idx]
