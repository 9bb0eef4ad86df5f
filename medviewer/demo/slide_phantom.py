"""A synthetic H&E-like whole-slide image written as a tiled, JPEG-compressed pyramidal TIFF.

Tissue fragments come from a smooth random field; nuclei are placed in global coordinates (so no
seams appear at tile borders) and are denser, larger and darker inside the planted tumour polygons,
which are returned as level-0 ground truth. The TIFF is the generic tiled kind that OpenSlide reads,
with the resolution tags that give it an MPP.

``write_pyramid_slide`` makes slides of any size for benchmarks and tests: scattered tissue islands on
an empty background, where every background tile is the same JPEG, encoded once, and only tiles that
touch tissue are rendered, so a 50000 x 40000 slide takes well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from scipy import ndimage
from skimage.draw import polygon2mask
from skimage.measure import points_in_poly

TILE = 512
FIELD_SCALE = 64  # level-0 pixels per cell of the smooth tissue field
LEVEL_STEP = 4  # downsample between pyramid levels, as Aperio scanners write
JPEG_QUALITY = 85
BACKGROUND = np.array([243.0, 241.0, 244.0], dtype=np.float32)
STROMA = np.array([234.0, 164.0, 202.0], dtype=np.float32)
TUMOUR_CYTOPLASM = np.array([214.0, 136.0, 196.0], dtype=np.float32)
NUCLEUS = np.array([88.0, 52.0, 142.0], dtype=np.float32)
STAMP = np.arange(-13, 14)


@dataclass(frozen=True)
class SlideGeometry:
    width: int
    height: int
    mpp: float


@dataclass
class _Nuclei:
    x: np.ndarray
    y: np.ndarray
    rx: np.ndarray
    ry: np.ndarray
    angle: np.ndarray
    darkness: np.ndarray


def _fragment(
    xx: np.ndarray, yy: np.ndarray, centre: tuple[float, float], axes: tuple[float, float], theta: float
) -> np.ndarray:
    """A rotated super-ellipse bump: 1 at its centre, falling steeply beyond its axes."""
    (cx, cy), (ax, ay) = centre, axes
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    return np.exp(-(((u / ax) ** 2 + (v / ay) ** 2) ** 1.5))


def _roughened(rng: np.random.Generator, field: np.ndarray) -> np.ndarray:
    """Smooth noise on the outlines, so fragments look torn rather than drawn."""
    noise = ndimage.gaussian_filter(rng.standard_normal(field.shape).astype(np.float32), 4)
    return field + noise * (0.18 / max(float(noise.std()), 1e-6))


def _tissue_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Values above 0.5 are tissue: two or three fragments with irregular, smooth outlines."""
    fh, fw = shape
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    field = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(2, 4))):
        cx, cy = rng.uniform(0.2, 0.8) * fw, rng.uniform(0.25, 0.75) * fh
        ax, ay = rng.uniform(0.16, 0.26) * fw, rng.uniform(0.2, 0.32) * fh
        field += _fragment(xx, yy, (cx, cy), (ax, ay), rng.uniform(0, np.pi))
    return _roughened(rng, field)


def _island_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Values above 0.5 are tissue: a dozen or so small islands scattered over a mostly empty slide."""
    fh, fw = shape
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    field = np.zeros(shape, np.float32)
    side = min(fh, fw)
    for _ in range(int(rng.integers(10, 18))):
        centre = (rng.uniform(0.05, 0.95) * fw, rng.uniform(0.05, 0.95) * fh)
        axes = (rng.uniform(0.04, 0.08) * side, rng.uniform(0.04, 0.08) * side)
        field += _fragment(xx, yy, centre, axes, rng.uniform(0, np.pi))
    return _roughened(rng, field)


def _tumour_polygons(rng: np.random.Generator, field: np.ndarray, count: int) -> list[np.ndarray]:
    """Irregular star-shaped polygons (level-0 x, y) lying inside tissue."""
    fh, fw = field.shape
    polygons: list[np.ndarray] = []
    attempts = 0
    while len(polygons) < count and attempts < 10_000:
        attempts += 1
        cx, cy = rng.uniform(0, fw), rng.uniform(0, fh)
        radius = rng.uniform(900, 2000) / FIELD_SCALE
        n = 28
        angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
        wobble = ndimage.gaussian_filter1d(rng.uniform(0.6, 1.25, n), 1.5, mode="wrap")
        px = cx + radius * wobble * np.cos(angles)
        py = cy + radius * wobble * np.sin(angles) * rng.uniform(0.7, 1.0)
        inside = ndimage.map_coordinates(field, [py, px], order=1, mode="constant", cval=0.0)
        centre = ndimage.map_coordinates(field, [[cy], [cx]], order=1)[0]
        if inside.min() < 0.7 or centre < 0.8:
            continue
        poly = np.stack([px, py], axis=1) * FIELD_SCALE
        if any(np.linalg.norm(poly.mean(0) - p.mean(0)) < 4500 for p in polygons):
            continue
        polygons.append(np.round(poly, 1))
    return polygons


def _nuclei(rng: np.random.Generator, field: np.ndarray, geometry: SlideGeometry, tumours: list[np.ndarray]) -> _Nuclei:
    """Nuclei over the whole slide: accepted by tissue density, denser and larger in tumour."""
    normal_density, tumour_density = 1 / 1100.0, 1 / 320.0
    n = rng.poisson(geometry.width * geometry.height * tumour_density * 0.55)
    x = rng.uniform(0, geometry.width, n).astype(np.float32)
    y = rng.uniform(0, geometry.height, n).astype(np.float32)
    tissue = ndimage.map_coordinates(field, [y / FIELD_SCALE - 0.5, x / FIELD_SCALE - 0.5], order=1)
    keep = tissue > 0.5
    x, y, tissue = x[keep], y[keep], tissue[keep]
    in_tumour = np.zeros(x.shape, bool)
    for poly in tumours:
        in_tumour |= points_in_poly(np.stack([x, y], 1), poly)
    accept = rng.uniform(0, 1, x.shape) < np.where(in_tumour, 1.0, normal_density / (tumour_density * 0.55))
    x, y, in_tumour = x[accept], y[accept], in_tumour[accept]
    m = x.size
    rx = np.where(in_tumour, rng.uniform(7, 11, m), rng.uniform(2.5, 4.5, m))
    ry = np.where(in_tumour, rx * rng.uniform(0.75, 1.0, m), rng.uniform(6, 10, m))
    darkness = np.where(in_tumour, rng.uniform(0.75, 0.95, m), rng.uniform(0.55, 0.85, m))
    return _Nuclei(
        x,
        y,
        rx.astype(np.float32),
        ry.astype(np.float32),
        rng.uniform(0, np.pi, m).astype(np.float32),
        darkness.astype(np.float32),
    )


def _interp_matrix(n_out: int, offset: int, n_field: int) -> np.ndarray:
    """Linear interpolation weights from field cells to ``n_out`` pixels starting at ``offset``."""
    pos = np.clip((offset + np.arange(n_out) + 0.5) / FIELD_SCALE - 0.5, 0, n_field - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_field - 1)
    w = (pos - i0).astype(np.float32)
    matrix = np.zeros((n_out, n_field), np.float32)
    matrix[np.arange(n_out), i0] += 1 - w
    matrix[np.arange(n_out), i1] += w
    return matrix


def _support(matrix: np.ndarray) -> slice:
    """The columns of an interpolation matrix holding non-zero weights."""
    used = np.flatnonzero(matrix.any(axis=0))
    return slice(int(used[0]), int(used[-1]) + 1)


class _TileRenderer:
    def __init__(
        self,
        seed: int,
        geometry: SlideGeometry,
        field: np.ndarray,
        stain: np.ndarray,
        tumours: list[np.ndarray],
        nuclei: _Nuclei,
        tile: int = TILE,
    ) -> None:
        self.seed, self.geometry, self.field, self.stain, self.tumours = seed, geometry, field, stain, tumours
        self.nuclei, self.tile = nuclei, tile
        cols = (np.floor(nuclei.x / tile)).astype(np.int64)
        rows = (np.floor(nuclei.y / tile)).astype(np.int64)
        self.tiles_x = -(-geometry.width // tile)
        order = np.argsort(rows * self.tiles_x + cols, kind="stable")
        self.order = order
        self.keys = (rows * self.tiles_x + cols)[order]

    def _nuclei_near(self, tx: int, ty: int) -> np.ndarray:
        found = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                key = (ty + dy) * self.tiles_x + (tx + dx)
                if 0 <= tx + dx < self.tiles_x:
                    lo, hi = np.searchsorted(self.keys, [key, key + 1])
                    found.append(self.order[lo:hi])
        return np.concatenate(found)

    def _nucleus_alpha(self, tx: int, ty: int) -> np.ndarray:
        size = self.tile
        alpha = np.zeros((size, size), np.float32)
        idx = self._nuclei_near(tx, ty)
        nu = self.nuclei
        x, y = nu.x[idx] - tx * size, nu.y[idx] - ty * size
        near = (x > -15) & (x < size + 15) & (y > -15) & (y < size + 15)
        if not near.any():
            return alpha
        idx, x, y = idx[near], x[near], y[near]
        px = np.floor(x)[:, None] + STAMP[None, :]
        py = np.floor(y)[:, None] + STAMP[None, :]
        dx = (px + 0.5 - x[:, None])[:, None, :]
        dy = (py + 0.5 - y[:, None])[:, :, None]
        c, s = np.cos(nu.angle[idx])[:, None, None], np.sin(nu.angle[idx])[:, None, None]
        u = (dx * c + dy * s) / nu.rx[idx][:, None, None]
        v = (-dx * s + dy * c) / nu.ry[idx][:, None, None]
        value = np.clip((1.0 - (u * u + v * v)) * 4.0, 0, 1) * nu.darkness[idx][:, None, None]
        rows = np.broadcast_to(py[:, :, None], value.shape)
        cols = np.broadcast_to(px[:, None, :], value.shape)
        valid = (value > 0) & (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
        vals = value[valid]
        order = np.argsort(vals, kind="stable")
        alpha[rows[valid][order].astype(np.intp), cols[valid][order].astype(np.intp)] = vals[order]
        return alpha

    def render(self, tx: int, ty: int, my: np.ndarray, mx: np.ndarray) -> np.ndarray:
        size = self.tile
        rng = np.random.default_rng([self.seed, 7, ty, tx])
        rows, cols = _support(my), _support(mx)  # only a few field cells shape a tile: skip the zero weights
        my, mx = my[:, rows], mx[:, cols]
        tissue_field = my @ self.field[rows, cols] @ mx.T
        tissue = np.clip((tissue_field - 0.5) * 30.0, 0.0, 1.0)
        grain = rng.standard_normal((size, size)).astype(np.float32)
        if tissue.max() <= 0:
            return np.clip(BACKGROUND + grain[..., None] * 1.5, 0, 255).astype(np.uint8)
        stain = (my @ self.stain[rows, cols] @ mx.T)[..., None]
        tumour = np.zeros((size, size), np.float32)
        for poly in self.tumours:
            local = poly - np.array([tx * size, ty * size])
            if local[:, 0].max() < 0 or local[:, 1].max() < 0 or local[:, 0].min() > size or local[:, 1].min() > size:
                continue
            tumour = np.maximum(tumour, polygon2mask((size, size), local[:, ::-1]).astype(np.float32))
        tumour = tumour[..., None]
        cytoplasm = STROMA * (1 - tumour) + TUMOUR_CYTOPLASM * tumour
        cytoplasm = cytoplasm * stain + grain[..., None] * 6.0
        nucleus = self._nucleus_alpha(tx, ty)[..., None]
        tissue_rgb = cytoplasm * (1 - nucleus) + NUCLEUS * nucleus
        t = tissue[..., None]
        rgb = BACKGROUND * (1 - t) + tissue_rgb * t
        return np.clip(rgb, 0, 255).astype(np.uint8)


def _downsample(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor, -1).astype(np.float32)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def _write_tiff_pyramid(
    path: Path,
    geometry: SlideGeometry,
    level0: Iterator[np.ndarray] | Iterator[bytes],
    level1: np.ndarray,
    levels: int,
    tile: int,
) -> None:
    """Level 0 from tiles (pixels, or JPEG bytes written as they are), then levels shrunk from level 1.

    BLAS runs single-threaded meanwhile: the tiles are rendered on two threads already, and OpenBLAS's own
    threads make each tile's small interpolation product about a hundred times slower, not faster.
    """
    import tifffile
    from threadpoolctl import threadpool_limits

    def write_level(
        tw: tifffile.TiffWriter,
        data: np.ndarray | Iterator[np.ndarray] | Iterator[bytes],
        shape: tuple[int, int],
        level: int,
    ) -> None:
        mpp = geometry.mpp * LEVEL_STEP**level
        tw.write(
            data,
            shape=(*shape, 3),
            dtype=np.uint8,
            tile=(tile, tile),
            photometric="rgb",
            compression="jpeg",
            compressionargs={"level": JPEG_QUALITY},
            resolution=(1e4 / mpp, 1e4 / mpp),
            resolutionunit="CENTIMETER",
            subfiletype=0 if level == 0 else 1,
            maxworkers=2,
            description="medviewer synthetic H&E-like slide" if level == 0 else None,
            metadata=None,
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    with threadpool_limits(limits=1, user_api="blas"), tifffile.TiffWriter(path, bigtiff=True) as tw:
        write_level(tw, level0, (geometry.height, geometry.width), 0)
        current = level1[: geometry.height // LEVEL_STEP, : geometry.width // LEVEL_STEP]
        for level in range(1, levels):
            write_level(tw, np.ascontiguousarray(current), current.shape[:2], level)
            current = _downsample(current, LEVEL_STEP)


def write_demo_slide(
    path: Path, seed: int, geometry: SlideGeometry, tumour_count: int = 3, levels: int = 4
) -> list[np.ndarray]:
    """Write the slide; returns the tumour polygons (level-0 x, y) that were planted."""
    rng = np.random.default_rng([seed, 3])
    field_shape = (-(-geometry.height // FIELD_SCALE), -(-geometry.width // FIELD_SCALE))
    field = _tissue_field(rng, field_shape)
    stain = _stain_field(rng, field_shape)
    tumours = _tumour_polygons(rng, field, tumour_count)
    nuclei = _nuclei(rng, field, geometry, tumours)
    renderer = _TileRenderer(seed, geometry, field, stain, tumours, nuclei)
    tiles_y, tiles_x = -(-geometry.height // TILE), -(-geometry.width // TILE)
    mxs = [_interp_matrix(TILE, tx * TILE, field_shape[1]) for tx in range(tiles_x)]
    level1 = np.zeros((tiles_y * TILE // LEVEL_STEP, tiles_x * TILE // LEVEL_STEP, 3), np.uint8)
    step = TILE // LEVEL_STEP

    def render_row(ty: int) -> list[np.ndarray]:
        my = _interp_matrix(TILE, ty * TILE, field_shape[0])
        row = [renderer.render(tx, ty, my, mxs[tx]) for tx in range(tiles_x)]
        for tx, tile in enumerate(row):
            level1[ty * step : (ty + 1) * step, tx * step : (tx + 1) * step] = _downsample(tile, LEVEL_STEP)
        return row

    def level0_tiles() -> Iterator[np.ndarray]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for row in pool.map(render_row, range(tiles_y)):
                yield from row

    _write_tiff_pyramid(path, geometry, level0_tiles(), level1, levels, TILE)
    return tumours


def _stain_field(rng: np.random.Generator, field_shape: tuple[int, int]) -> np.ndarray:
    """Slow variation of staining intensity across the slide, as real H&E shows."""
    stain = 1.0 + 0.06 * ndimage.gaussian_filter(rng.standard_normal(field_shape).astype(np.float32), 3) / 0.05
    return np.clip(stain, 0.85, 1.12).astype(np.float32)


def default_level_count(width: int, height: int) -> int:
    """Levels, each LEVEL_STEP times smaller, until the smallest fits in 1024 pixels (as scanners stop)."""
    levels = 1
    while max(width, height) / LEVEL_STEP ** (levels - 1) > 1024:
        levels += 1
    return levels


def write_pyramid_slide(
    path: Path, width: int, height: int, seed: int, tile: int = TILE, levels: int | None = None, mpp: float = 0.5
) -> None:
    """Write a tiled JPEG pyramidal TIFF of ``width`` x ``height`` with tissue islands (OpenSlide: generic-tiff).

    ``tile`` must be a multiple of 16 (JPEG blocks, and LEVEL_STEP into whole pixels); ``levels`` defaults
    to ``default_level_count``. The same arguments always give the same file.
    """
    import imagecodecs

    if tile % 16:
        raise ValueError(f"tile size {tile} is not a multiple of 16")
    geometry = SlideGeometry(width, height, mpp)
    levels = default_level_count(width, height) if levels is None else levels
    rng = np.random.default_rng([seed, 5])
    field_shape = (-(-height // FIELD_SCALE), -(-width // FIELD_SCALE))
    field = _island_field(rng, field_shape)
    stain = _stain_field(rng, field_shape)
    renderer = _TileRenderer(seed, geometry, field, stain, [], _nuclei(rng, field, geometry, []), tile)
    tiles_y, tiles_x = -(-height // tile), -(-width // tile)

    def jpeg(pixels: np.ndarray) -> bytes:
        # Without an output buffer imagecodecs returns bytes; its stub says bytes | bytearray for both cases.
        return cast(bytes, imagecodecs.jpeg_encode(pixels, level=JPEG_QUALITY))

    background = np.rint(BACKGROUND).astype(np.uint8)
    background_jpeg = jpeg(np.broadcast_to(background, (tile, tile, 3)).copy())
    step = tile // LEVEL_STEP
    level1 = np.empty((tiles_y * step, tiles_x * step, 3), np.uint8)
    level1[:] = background

    def touches_tissue(tx: int, ty: int) -> bool:
        """Whether any field cell that shapes this tile reaches the tissue threshold of 0.5."""
        x0, y0 = max(tx * tile // FIELD_SCALE - 1, 0), max(ty * tile // FIELD_SCALE - 1, 0)
        x1, y1 = (tx + 1) * tile // FIELD_SCALE + 2, (ty + 1) * tile // FIELD_SCALE + 2
        return bool(field[y0:y1, x0:x1].max() > 0.5)

    def render_row(ty: int) -> list[bytes]:
        my = _interp_matrix(tile, ty * tile, field_shape[0])
        row: list[bytes] = []
        for tx in range(tiles_x):
            if not touches_tissue(tx, ty):
                row.append(background_jpeg)
                continue
            pixels = renderer.render(tx, ty, my, _interp_matrix(tile, tx * tile, field_shape[1]))
            level1[ty * step : (ty + 1) * step, tx * step : (tx + 1) * step] = _downsample(pixels, LEVEL_STEP)
            row.append(jpeg(pixels))
        return row

    def level0_tiles() -> Iterator[bytes]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for row in pool.map(render_row, range(tiles_y)):
                yield from row

    _write_tiff_pyramid(path, geometry, level0_tiles(), level1, levels, tile)
