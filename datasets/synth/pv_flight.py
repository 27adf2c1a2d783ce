"""PV survey flights: a lawnmower pattern over the plant and the per-frame render (warp + camera effects + truth)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from datasets.synth.effects import CameraEffects, blur_gray
from datasets.synth.geo import CameraModel, Pose, ground_to_image, image_to_ground
from datasets.synth.pv_render import PVScene

MIN_BOX_PX = 4
REFL_SCALE = 3
"""Glass reflections (sky, sun glint) are computed at 1/REFL_SCALE of the frame resolution."""
MIN_VISIBILITY = 0.3


@dataclass(frozen=True)
class LawnmowerPlan:
    poses: list[Pose]
    area: tuple[float, float, float, float]
    """e_min, n_min, e_max, n_max of the camera centres."""
    footprint_m: tuple[float, float]
    """(across, along) ground footprint of one frame at the nominal altitude."""
    spacing_m: tuple[float, float]
    """(along-track, between legs)."""
    leg_of: list[int]


def plan_lawnmower(
    cam: CameraModel, n_images: int, altitude_m: float, front: float, side: float, rng: np.random.Generator
) -> LawnmowerPlan:
    """Legs run east-west (along the table rows), alternating heading 90°/270°, stepping south between legs.

    The image's up direction is the heading, so the along-track footprint is the image height.
    """
    if not 0.0 <= front < 0.95 or not 0.0 <= side < 0.95:
        raise ValueError(f"overlaps must be in [0, 0.95), got front={front} side={side}")
    gsd = altitude_m / cam.focal_px
    across, along = cam.width * gsd, cam.height * gsd
    a, b = along * (1 - front), across * (1 - side)
    legs = max(1, round(math.sqrt(n_images * a / b)))
    per_leg = math.ceil(n_images / legs)
    poses, leg_of = [], []
    for k in range(legs):
        for t in range(per_leg):
            if len(poses) == n_images:
                break
            tt = t if k % 2 == 0 else per_leg - 1 - t
            heading = 90.0 if k % 2 == 0 else 270.0
            poses.append(
                Pose(
                    e=tt * a + float(rng.normal(0, 0.3)),
                    n=-k * b + float(rng.normal(0, 0.3)),
                    u=altitude_m + float(rng.normal(0, 0.3)),
                    yaw_deg=heading + float(rng.normal(0, 1.5)),
                    pitch_deg=-90.0 + float(rng.normal(0, 0.7)),
                    roll_deg=float(rng.normal(0, 0.7)),
                )
            )
            leg_of.append(k)
    area = (0.0, -(legs - 1) * b, (per_leg - 1) * a, 0.0)
    return LawnmowerPlan(poses, area, (across, along), (a, b), leg_of)


@dataclass
class FrameTruth:
    """Ground truth of one rendered frame."""

    boxes: list[dict]
    """[{"defect_index", "xyxy": [x1, y1, x2, y2] pixel edges, "visibility"}]"""
    masks: dict[int, np.ndarray] | None = None
    """defect index → (H, W) bool mask from the warped label map (only when requested)."""
    glass: np.ndarray | None = None
    """(H, W) bool: module pixels (PV, only when masks are requested)."""
    label_map: np.ndarray | None = None
    """(H, W) int32: defect index + 1 of every pixel, 0 = none, labelled or not (only when masks are requested)."""


def defect_boxes(
    h_mosaic_to_frame: np.ndarray, scene: PVScene, width: int, height: int, window: tuple[int, int, int, int]
) -> list[dict]:
    """Each defect's own mask warped into the frame: its clipped bbox and the visible fraction of its area."""
    i0, j0, h, w = window
    out = []
    for d in scene.defects:
        ph, pw = d.patch.shape
        if d.patch_i0 > i0 + h or d.patch_i0 + ph < i0 or d.patch_j0 > j0 + w or d.patch_j0 + pw < j0:
            continue
        t = np.array([[1, 0, d.patch_j0], [0, 1, d.patch_i0], [0, 0, 1.0]])
        hp = h_mosaic_to_frame @ t
        corners = np.array(
            [[-0.5, -0.5, 1], [pw - 0.5, -0.5, 1], [pw - 0.5, ph - 0.5, 1], [-0.5, ph - 0.5, 1]]
        )
        pc = corners @ hp.T
        pc = pc[:, :2] / pc[:, 2:3]
        x0, y0 = (int(v) - 1 for v in np.floor(pc.min(0)))
        x1, y1 = (int(v) + 1 for v in np.ceil(pc.max(0)))
        if x1 < 0 or y1 < 0 or x0 >= width or y0 >= height:
            continue
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]])
        canvas = cv2.warpPerspective(
            d.patch, shift @ hp, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR
        )
        full = canvas >= 128
        total = int(full.sum())
        if total == 0:
            continue
        cy0, cx0 = max(0, -y0), max(0, -x0)
        cy1, cx1 = min(full.shape[0], height - y0), min(full.shape[1], width - x0)
        if cy1 <= cy0 or cx1 <= cx0:
            continue
        vis = full[cy0:cy1, cx0:cx1]
        n_vis = int(vis.sum())
        if n_vis == 0:
            continue
        ys, xs = np.nonzero(vis)
        bx0, by0 = int(xs.min()) + cx0 + x0, int(ys.min()) + cy0 + y0
        bx1, by1 = int(xs.max()) + cx0 + x0 + 1, int(ys.max()) + cy0 + y0 + 1
        visibility = n_vis / total
        if visibility < MIN_VISIBILITY or bx1 - bx0 < MIN_BOX_PX or by1 - by0 < MIN_BOX_PX:
            continue
        out.append(
            {"defect_index": d.index, "xyxy": [bx0, by0, bx1, by1], "visibility": round(visibility, 4)}
        )
    return out


def frame_window(scene: PVScene, cam: CameraModel, pose: Pose) -> tuple[int, int, int, int]:
    """(i0, j0, h, w) of the mosaic window under a frame's footprint (+ a few pixels)."""
    corners = np.array([[-1, -1], [cam.width, -1], [cam.width, cam.height], [-1, cam.height]], np.float64)
    en = image_to_ground(cam, pose, corners)
    xs = (en[:, 0] - scene.E0) / scene.res - 0.5
    ys = (scene.N0 - en[:, 1]) / scene.res - 0.5
    i0, j0 = math.floor(ys.min()) - 3, math.floor(xs.min()) - 3
    i1, j1 = math.ceil(ys.max()) + 3, math.ceil(xs.max()) + 3
    return i0, j0, i1 - i0, j1 - j0


def upright_rotation(h_src_to_frame: np.ndarray, h: int, w: int) -> tuple[int | None, np.ndarray]:
    """The quarter turn of an (h, w) source that best aligns it with the frame.

    Returns ``(code, rot)``: a ``cv2.ROTATE_*`` code (None = leave as is) and the (3, 3) matrix mapping pixel
    coordinates of the turned source back to the original one, so ``h_src_to_frame @ rot`` warps the turned
    source exactly as ``h_src_to_frame`` warped the original.
    """
    cands = [
        (None, np.eye(3)),
        (cv2.ROTATE_90_CLOCKWISE, np.array([[0, 1, 0], [-1, 0, h - 1], [0, 0, 1.0]])),
        (cv2.ROTATE_180, np.array([[-1, 0, w - 1], [0, -1, h - 1], [0, 0, 1.0]])),
        (cv2.ROTATE_90_COUNTERCLOCKWISE, np.array([[0, -1, w - 1], [1, 0, 0], [0, 0, 1.0]])),
    ]

    def alignment(c: tuple[int | None, np.ndarray]) -> float:
        m = h_src_to_frame @ c[1]
        return float((m[0, 0] + m[1, 1]) / np.hypot(m[0, 0], m[0, 1]))

    return max(cands, key=alignment)


class PVFrameRenderer:
    """Renders frames of a PV plan from a :class:`PVScene`."""

    def __init__(self, scene: PVScene, cam: CameraModel, rng: np.random.Generator) -> None:
        self.scene, self.cam = scene, cam
        if scene.thermal:
            self.fx = CameraEffects(cam.width, cam.height, rng, noise_sigma=0.0, vignetting=0.0, channels=1)
            self.netd = 0.045
            self.noise = rng.normal(0.0, self.netd, size=(cam.height + 32, cam.width + 32)).astype(np.float32)
            yy, xx = np.mgrid[0 : cam.height, 0 : cam.width].astype(np.float32)
            r2 = ((xx - cam.cx) ** 2 + (yy - cam.cy) ** 2) / (cam.cx**2 + cam.cy**2)
            self.vignette_k = (0.25 * r2).astype(np.float32)  # narcissus/vignetting: edges a little warmer
            self.fpn = np.tile(rng.normal(0, 0.02, size=(1, cam.width)).astype(np.float32), (cam.height, 1))
        else:
            self.fx = CameraEffects(cam.width, cam.height, rng, noise_sigma=2.2, vignetting=0.22, channels=3)
            w, h = cam.width, cam.height
            w, h = -(-w // REFL_SCALE), -(-h // REFL_SCALE)  # reflections are smooth: kept at 1/3 resolution
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            gx, gy = rng.uniform(0.15, 0.4) * w, rng.uniform(0.15, 0.45) * h
            self.glare = []
            for sx, sy in ((gx, gy), (w - gx, h - gy)):  # legs fly opposite ways: the glint flips
                d2 = ((xx - sx) ** 2 + (yy - sy) ** 2) / (w * w)
                core = 140 * np.exp(-d2 / (2 * 0.035**2)) + 28 * np.exp(-d2 / (2 * 0.22**2))
                self.glare.append(np.clip(core, 0, 255).astype(np.uint8))
            self.sky = np.clip(10 + 18 * (yy / h), 0, 255).astype(np.uint8)
            self.sky_tint = (1.0, float(rng.uniform(0.8, 0.9)), float(rng.uniform(0.6, 0.75)), 0.0)  # B, G, R

    def render(
        self, pose: Pose, rng: np.random.Generator, with_masks: bool = False
    ) -> tuple[np.ndarray, FrameTruth]:
        """One frame: (H, W, 3) uint8 BGR (RGB kinds) or (H, W) float32 °C (thermal), and its truth."""
        cam, scene = self.cam, self.scene
        win = frame_window(scene, cam, pose)
        i0, j0, h, w = win
        img, glass, labels = scene.window(i0, j0, h, w, with_labels=with_masks)
        hmf = ground_to_image(cam, pose) @ scene.mosaic_to_enu()
        hwin = hmf @ np.array([[1, 0, j0], [0, 1, i0], [0, 0, 1.0]])
        size = (cam.width, cam.height)
        truth = FrameTruth(boxes=defect_boxes(hmf, scene, cam.width, cam.height, win))
        if with_masks:
            lab = cv2.warpPerspective(labels, hwin, size, flags=cv2.INTER_NEAREST)
            truth.masks = {b["defect_index"]: lab == b["defect_index"] + 1 for b in truth.boxes}
            truth.label_map = lab
        if scene.thermal:
            both = cv2.merge([img.astype(np.float32), glass])
            out = cv2.warpPerspective(
                both, hwin, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            temp, gl = out[..., 0], out[..., 1]
            temp = blur_gray(temp, 0.55)
            dy, dx = (int(v) for v in rng.integers(0, 32, size=2))
            temp = temp + self.noise[dy : dy + cam.height, dx : dx + cam.width] + self.vignette_k + self.fpn
            temp += float(rng.normal(0, 0.15))  # per-frame offset drift (radiometric calibration)
            if with_masks:
                truth.glass = gl > 0.99
            return temp.astype(np.float32), truth
        # turn the window by a multiple of 90° first so the warp reads its source along rows (cache friendly:
        # about twice as fast as warping a window that lies across the frame); the pixels do not change
        code, rot = upright_rotation(hwin, h, w)
        if code is not None:
            img, glass, hwin = cv2.rotate(img, code), cv2.rotate(glass, code), hwin @ rot
        # the window holds the footprint plus 3 px, so no border pixel is ever sampled: the cheapest border mode
        rgb = cv2.warpPerspective(img, hwin, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        # the glass mask only modulates smooth reflections: warp it at 1/REFL_SCALE resolution
        k = REFL_SCALE
        off = -(k - 1) / (2 * k)
        small = np.array([[1 / k, 0, off], [0, 1 / k, off], [0, 0, 1.0]]) @ hwin
        gl = cv2.warpPerspective(
            glass, small, (-(-cam.width // k), -(-cam.height // k)), flags=cv2.INTER_LINEAR
        )
        if with_masks:
            truth.glass = cv2.resize(gl, size, interpolation=cv2.INTER_LINEAR) > 250
        heading = (pose.yaw_deg % 360.0) < 180.0
        glint = cv2.multiply(self.glare[0 if heading else 1], gl, scale=1.0 / 255.0)
        glint = cv2.add(glint, cv2.multiply(self.sky, gl, scale=1.0 / 255.0))
        glint = cv2.multiply(cv2.cvtColor(glint, cv2.COLOR_GRAY2BGR), self.sky_tint)  # bluish sky reflection
        glint = cv2.resize(glint, size, interpolation=cv2.INTER_LINEAR)
        cv2.add(rgb, glint, dst=rgb)
        motion = float(rng.uniform(0.0, 1.6))  # 4-8 m/s at 1/1000-1/2000 s exposure
        rgb = self.fx.apply_rgb(
            rgb, rng, exposure=float(rng.uniform(0.93, 1.07)), motion_px=motion, inplace=True
        )
        return rgb, truth
