"""Tiled or striped TIFF and OME-TIFF pyramids read with tifffile, for what OpenSlide refuses or under-reads.

OpenSlide refuses TIFFs stored in strips and reads only the first level of an OME-TIFF whose pyramid lives
in SubIFDs; tifffile finds the levels in both (main IFDs, SubIFDs, or an OME series' levels). Brightfield
slides only: 8-bit grey, RGB or RGBA in one plane per level; anything else (fluorescence channels,
16-bit, z-stacks) is refused with the reason.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medviewer.core.errors import CorruptFileError, UnsupportedFileError
from medviewer.io.slide_tiles import TiledSlide, TileGrid, check_grid

if TYPE_CHECKING:
    from tifffile import TiffFile, TiffPage, TiffPageSeries

_MICRONS_PER = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


def is_tiff(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def tifffile_sees_more_levels(path: Path, level_count: int) -> bool:
    """Whether tifffile finds a deeper pyramid than OpenSlide did (an OME-TIFF with SubIFD levels)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tif.is_ome and len(tif.series[0].levels) > level_count
    except (tifffile.TiffFileError, ValueError, IndexError, OSError):
        return False


class TiffSlide(TiledSlide):
    name = "tifffile"

    def __init__(self, path: Path) -> None:
        import tifffile

        self.objective_power: float | None = None
        self.associated_image_names: list[str] = []
        try:
            self._tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, ValueError, IndexError, struct.error) as exc:
            raise UnsupportedFileError(path, "not a TIFF file that can be read") from exc
        try:
            if not self._tif.series:
                raise UnsupportedFileError(path, "the TIFF file holds no image")
            series = self._tif.series[0]
            self._pages = [_checked_page(path, level) for level in series.levels]
            grids = [_grid(path, number, page) for number, page in enumerate(self._pages)]
            for page in self._pages:
                page.decode  # noqa: B018 - builds tifffile's cached decoder now, not racily in tile workers
            self.vendor = "ome-tiff" if self._tif.is_ome else "aperio" if self._tif.is_svs else "generic-tiff"
            self.mpp = _mpp(self._tif)
        except BaseException:
            self._tif.close()
            raise
        super().__init__(path, grids, self._tif.filehandle)

    def associated_image(self, name: str) -> np.ndarray:
        raise KeyError(name)

    def _tile(self, level: int, column: int, row: int) -> np.ndarray | None:
        page = self._pages[level]
        index = row * self._grids[level].columns + column
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        if count == 0:
            return None
        what = f"tile ({column}, {row}) of level {level}"
        data = self._read_bytes(offset, count, what)
        try:
            pixels = page.decode(data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader)[0]
        except (ValueError, RuntimeError, OSError) as exc:
            raise CorruptFileError(self.path, f"{what} cannot be decoded") from exc
        if pixels is None:
            return None
        height, width, samples = pixels.shape[-3:]
        plane = pixels.reshape(height, width, samples)
        return np.repeat(plane, 3, axis=2) if samples == 1 else plane[..., :3]

    def close(self) -> None:
        self._tif.close()


def _checked_page(path: Path, level: TiffPageSeries) -> TiffPage:
    """The one page holding a level, if it is a plane medviewer can show as a brightfield slide."""
    import tifffile

    page = level.keyframe
    if len(level.pages) != 1:
        planes = len(level.pages)
        raise UnsupportedFileError(path, f"{planes} planes per level (channels, z or time); only RGB or grey ones open")
    photometric = tifffile.PHOTOMETRIC
    if page.dtype != np.uint8 or page.samplesperpixel not in (1, 3, 4):
        samples = f"{page.samplesperpixel} samples of {page.dtype}"
        raise UnsupportedFileError(path, f"{samples} per pixel; only 8-bit RGB or grey slides open")
    if page.samplesperpixel > 1 and page.planarconfig != tifffile.PLANARCONFIG.CONTIG:
        raise UnsupportedFileError(path, "colour planes are stored separately, which is not supported")
    allowed = {photometric.MINISBLACK, photometric.RGB} | ({photometric.YCBCR} if page.compression in (6, 7) else set())
    if page.photometric not in allowed:
        name = getattr(page.photometric, "name", f"unknown ({page.photometric})")  # a damaged tag is a bare number
        raise UnsupportedFileError(path, f"the {name} colour model is not supported")
    return page


def _grid(path: Path, level: int, page: TiffPage) -> TileGrid:
    """The level's tiles (or strips), refused when the file lists fewer than its size needs: a damaged
    ImageLength or TileWidth would otherwise send a read past the end of the offsets."""
    width, height = page.imagewidth, page.imagelength
    if page.is_tiled:
        grid = TileGrid(width, height, page.tilewidth, page.tilelength)
    else:
        grid = TileGrid(width, height, width, min(page.rowsperstrip, height))
    check_grid(path, level, grid)
    needed = grid.columns * grid.rows
    stored = min(len(page.dataoffsets), len(page.databytecounts))
    if stored < needed:
        what = "tiles" if page.is_tiled else "strips"
        raise CorruptFileError(
            path, f"level {level} ({width} x {height} pixels) needs {needed} {what}, but the file lists {stored}"
        )
    return grid


def _mpp(tif: TiffFile) -> float | None:
    """The pixel size the file records, and none that it does not: an SVS keeps it in its description
    (Aperio writes no resolution tags, and tifffile's default of 1 pixel per inch would read as 25400 µm)."""
    if tif.is_ome:
        return _ome_mpp(tif.ome_metadata)
    if tif.is_svs:
        return _aperio_mpp(tif.pages.first.description)
    return _resolution_mpp(tif.pages.first)


def _aperio_mpp(description: str) -> float | None:
    """The ``MPP = x`` field of an Aperio ImageDescription, as OpenSlide reads it into ``aperio.MPP``."""
    for field in description.split("|")[1:]:
        key, _, value = field.partition("=")
        if key.strip() == "MPP":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _resolution_mpp(page: TiffPage) -> float | None:
    """MPP from the TIFF resolution tags, when the file has them and their unit is a length (cm or inch)."""
    import tifffile

    if "XResolution" not in page.tags:  # tifffile's default is 1 pixel per inch: nothing the file says
        return None
    unit = page.resolutionunit
    pixels_per_unit = page.resolution[0]
    microns_per_unit: dict[int, float] = {tifffile.RESUNIT.CENTIMETER: 1e4, tifffile.RESUNIT.INCH: 25400.0}
    microns = microns_per_unit.get(unit)
    if microns is None or not pixels_per_unit or pixels_per_unit <= 0:
        return None
    return microns / pixels_per_unit


def _ome_mpp(ome_xml: str | None) -> float | None:
    """MPP from the first image's OME PhysicalSizeX, whose unit defaults to micrometres."""
    if not ome_xml:
        return None
    try:
        root = ElementTree.fromstring(ome_xml)
    except ElementTree.ParseError:
        return None
    pixels = next((element for element in root.iter() if element.tag.endswith("}Pixels")), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    factor = _MICRONS_PER.get(pixels.attrib.get("PhysicalSizeXUnit", "µm"))
    try:
        size = float(pixels.attrib["PhysicalSizeX"])
    except ValueError:
        return None
    return size * factor if factor is not None and size > 0 else None
