"""A chest-like CT phantom in Hounsfield units, built slice by slice in patient (LPS) millimetres.

Tissues use textbook HU values (air -1000, lung about -850, fat -100, soft tissue 40, bone 700 and
above) so that standard CT windows show it as a radiologist expects. Lesions are spheres of soft
tissue planted inside the lungs at positions drawn from the seed and returned as ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CtGeometry:
    shape: tuple[int, int, int]  # (z, y, x)
    pixel_mm: float
    slice_mm: float

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS position of voxel (0, 0, 0): the field of view is centred on the patient's midline."""
        nz, ny, nx = self.shape
        return (-(nx - 1) / 2 * self.pixel_mm, -(ny - 1) / 2 * self.pixel_mm, -(nz - 1) * self.slice_mm - 100.0)

    def slice_z(self, k: int) -> float:
        return self.origin[2] + k * self.slice_mm


@dataclass(frozen=True)
class Lesion:
    center_lps_mm: tuple[float, float, float]
    radius_mm: float
    hu: float


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 <= 1.0


def _lung_scale(t: float) -> float:
    """Lung cross-section relative to its widest, along the body axis (0 = lowest slice)."""
    return float(np.clip(np.sin(np.pi * (0.08 + 0.85 * t)), 0.0, 1.0) ** 0.6)


def _lungs(x: np.ndarray, y: np.ndarray, t: float) -> np.ndarray:
    s = _lung_scale(t)
    if s < 0.15:
        return np.zeros_like(x, dtype=bool)
    return _ellipse(x, y, -72, 5, 50 * s, 78 * s) | _ellipse(x, y, 72, 5, 50 * s, 78 * s)


def _plant_lesions(rng: np.random.Generator, geometry: CtGeometry, count: int) -> list[Lesion]:
    """Lesion centres sampled until each sphere lies well inside a lung."""
    nz = geometry.shape[0]
    lesions: list[Lesion] = []
    while len(lesions) < count:
        radius = float(rng.uniform(5.0, 12.0))
        k = int(rng.integers(int(nz * 0.3), int(nz * 0.8)))
        t = k / (nz - 1)
        side = rng.choice([-1.0, 1.0])
        cx = float(side * 72 + rng.uniform(-30, 30))
        cy = float(5 + rng.uniform(-55, 55))
        probe_x = np.array([cx, cx - radius - 4, cx + radius + 4, cx, cx])
        probe_y = np.array([cy, cy, cy, cy - radius - 4, cy + radius + 4])
        t_low = (k - radius / geometry.slice_mm) / (nz - 1)
        t_high = (k + radius / geometry.slice_mm) / (nz - 1)
        if not all(_lungs(probe_x, probe_y, tt).all() for tt in (t, t_low, t_high)):
            continue
        center = (cx, cy, geometry.slice_z(k))
        if any(
            np.linalg.norm(np.subtract(center, other.center_lps_mm)) < radius + other.radius_mm + 10
            for other in lesions
        ):
            continue
        lesions.append(Lesion(center_lps_mm=center, radius_mm=round(radius, 2), hu=float(round(rng.uniform(20, 60)))))
    return lesions


def make_chest_phantom(
    rng: np.random.Generator, geometry: CtGeometry, lesion_count: int
) -> tuple[np.ndarray, list[Lesion]]:
    """HU volume (z, y, x) as int16 and the lesions planted in it."""
    nz, ny, nx = geometry.shape
    ox, oy, _ = geometry.origin
    xs = (ox + np.arange(nx) * geometry.pixel_mm).astype(np.float32)
    ys = (oy + np.arange(ny) * geometry.pixel_mm).astype(np.float32)
    x, y = np.meshgrid(xs, ys)
    lesions = _plant_lesions(rng, geometry, lesion_count)
    body_ax, body_ay = rng.uniform(150, 168), rng.uniform(105, 118)
    rib_phase = rng.uniform(0, np.pi / 8)
    vessels = [(rng.uniform(-100, 100), rng.uniform(-60, 70), rng.uniform(1.5, 3.5)) for _ in range(14)]
    volume = np.empty(geometry.shape, dtype=np.int16)
    for k in range(nz):
        t = k / max(nz - 1, 1)
        z = geometry.slice_z(k)
        hu = np.full((ny, nx), -1000.0, dtype=np.float32)
        body = _ellipse(x, y, 0, 8, body_ax, body_ay)
        hu[body] = -100.0  # subcutaneous fat
        hu[_ellipse(x, y, 0, 8, body_ax - 14, body_ay - 14)] = 40.0  # muscle and organs
        lungs = _lungs(x, y, t)
        hu[lungs] = -850.0
        for vx, vy, vr in vessels:
            shift = 12 * np.sin(2 * np.pi * t + vx / 40)
            hu[lungs & _ellipse(x, y, vx + shift, vy, vr, vr)] = 30.0
        if 0.12 < t < 0.62:
            hu[_ellipse(x, y, 18, -22, 52, 44)] = 45.0  # heart
        hu[_ellipse(x, y, 16, 38, 12, 12)] = 45.0  # descending aorta
        hu[_ellipse(x, y, 0, 72, 19, 16)] = 1100.0  # vertebral cortex
        hu[_ellipse(x, y, 0, 72, 16, 13)] = 720.0  # vertebral body
        hu[_ellipse(x, y, 0, 98, 7, 7)] = 15.0  # spinal canal
        hu[_ellipse(x, y, 0, 112, 15, 6)] = 900.0  # posterior elements
        if t > 0.35:
            hu[_ellipse(x, y, 0, -body_ay + 22, 13, 6)] = 800.0  # sternum
        if 0.1 < t < 0.95:
            for angle in np.linspace(0, 2 * np.pi, 16, endpoint=False) + rib_phase + 0.6 * t:
                rx, ry = (body_ax - 20) * np.cos(angle), 8 + (body_ay - 20) * np.sin(angle)
                if abs(np.sin(angle)) < 0.97:
                    hu[_ellipse(x, y, rx, ry, 6, 5)] = 950.0
        for lesion in lesions:
            cx, cy, cz = lesion.center_lps_mm
            dz = z - cz
            if abs(dz) < lesion.radius_mm:
                r = float(np.sqrt(lesion.radius_mm**2 - dz**2))
                hu[_ellipse(x, y, cx, cy, r, r)] = lesion.hu
        noise = rng.normal(0.0, 12.0, size=(ny, nx)).astype(np.float32)
        noise[~body] *= 0.3
        volume[k] = np.clip(np.rint(hu + noise), -1024, 3071).astype(np.int16)
    return volume, lesions
