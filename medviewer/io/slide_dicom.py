"""One DICOM VL Whole Slide Microscopy instance read with pydicom, for instances OpenSlide refuses.

OpenSlide 4 reads conformant DICOM WSI series, but refuses single instances that leave out what it
needs to classify them (ImageType, for one: "Couldn't get image flavor"). Such an instance still holds
a full tiled pixel matrix, so it opens here as a one-level slide. Frames are located once from the
encapsulated item headers (never loading the pixel data whole) and decoded by pydicom on demand;
tiles are placed row-major for TILED_FULL (also assumed when the organisation is not stated and frames
carry no positions) or from each frame's PlanePositionSlideSequence for TILED_SPARSE.
"""

from __future__ import annotations

import bisect
import math
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.core.errors import CorruptFileError, UnsupportedFileError, reading
from medviewer.io.slide_tiles import TiledSlide, TileGrid

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


class DicomWsiSlide(TiledSlide):
    name = "pydicom"

    def __init__(self, path: Path) -> None:
        import pydicom

        handle = open(path, "rb")  # kept open for tile reads until close()
        try:  # cleanup and re-raise: the handle must not outlive a refused file
            with reading(path, "the DICOM header"):  # damaged headers raise a dozen types, deep nesting included
                dataset = pydicom.dcmread(handle, stop_before_pixels=True)
                if str(dataset.get("SOPClassUID", "")) != WSI_SOP_CLASS:
                    raise UnsupportedFileError(path, "not a DICOM whole-slide microscopy image")
                _check_matrix(path, dataset)
                self._frame_spans = _frame_spans(path, handle, dataset)
                self._tile_frames = _tile_frames(path, dataset, len(self._frame_spans))
                self._decode_options = _decode_options(path, dataset)
                self._transfer_syntax = dataset.file_meta.TransferSyntaxUID
                grid = TileGrid(
                    int(dataset.TotalPixelMatrixColumns), int(dataset.TotalPixelMatrixRows), dataset.Columns,
                    dataset.Rows,
                )
                mpp, objective_power = _mpp(dataset), _objective_power(dataset)
        except BaseException:
            handle.close()
            raise
        super().__init__(path, [grid], handle)
        self.vendor = "dicom"
        self.mpp = mpp
        self.objective_power: float | None = objective_power
        self.associated_image_names: list[str] = []

    def associated_image(self, name: str) -> np.ndarray:
        raise KeyError(name)

    def _tile(self, level: int, column: int, row: int) -> np.ndarray | None:
        from pydicom.encaps import encapsulate
        from pydicom.pixels import get_decoder

        frame = self._tile_frames.get((column, row))
        if frame is None:
            return None
        what = f"frame {frame + 1} (tile {column}, {row})"
        if frame >= len(self._frame_spans):
            raise CorruptFileError(self.path, f"{what} is missing from the pixel data")
        data = b"".join(self._read_bytes(offset, length, what) for offset, length in self._frame_spans[frame])
        encapsulated = self._transfer_syntax.is_encapsulated
        with reading(self.path, what):  # decoders raise many types on damaged data, a Rust panic among them
            pixels, _ = get_decoder(self._transfer_syntax).as_array(
                encapsulate([data]) if encapsulated else data, index=0, **self._decode_options
            )
        return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels

    def close(self) -> None:
        self._handle.close()


def _first(dataset: Dataset, keyword: str) -> Any:
    """The first item of a sequence, or an empty dataset, so optional nested values read simply."""
    from pydicom.dataset import Dataset

    sequence = dataset.get(keyword)
    return sequence[0] if sequence else Dataset()


def _mpp(dataset: Dataset) -> float | None:
    """Micrometres per pixel from PixelSpacing (mm; rows then columns), shared or, if misplaced, top-level."""
    measures = _first(_first(dataset, "SharedFunctionalGroupsSequence"), "PixelMeasuresSequence")
    spacing = measures.get("PixelSpacing") or dataset.get("PixelSpacing")
    try:
        return float(spacing[1]) * 1000.0 if spacing else None  # the Slide checks it is a plausible size
    except (TypeError, ValueError, IndexError):
        return float("nan")


def _objective_power(dataset: Dataset) -> float | None:
    """The objective's magnification when it is a positive number; None for absent or damaged values (no
    magnification shown is better than a made-up one)."""
    value = _first(dataset, "OpticalPathSequence").get("ObjectiveLensPower")
    try:
        power = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return power if power is not None and math.isfinite(power) and power > 0 else None


def _check_matrix(path: Path, dataset: Dataset) -> None:
    """Tiles and the pixel matrix must have a size before anything is divided by it or looped over."""
    sizes = {
        keyword: int(dataset.get(keyword) or 0)
        for keyword in ("Rows", "Columns", "TotalPixelMatrixRows", "TotalPixelMatrixColumns", "NumberOfFrames")
    }
    empty = [keyword for keyword, size in sizes.items() if size < 1]
    if empty:
        raise CorruptFileError(path, f"the header declares no size for {', '.join(empty)}")


def _decode_options(path: Path, dataset: Dataset) -> dict[str, Any]:
    if dataset.get("BitsAllocated") != 8 or dataset.get("SamplesPerPixel") not in (1, 3):
        raise UnsupportedFileError(path, "only 8-bit RGB or grey whole-slide images open")
    return {
        "rows": dataset.Rows,
        "columns": dataset.Columns,
        "samples_per_pixel": dataset.SamplesPerPixel,
        "bits_allocated": 8,
        "bits_stored": dataset.get("BitsStored", 8),
        "pixel_representation": dataset.get("PixelRepresentation", 0),
        "photometric_interpretation": dataset.PhotometricInterpretation,
        "planar_configuration": dataset.get("PlanarConfiguration", 0),
        "number_of_frames": 1,  # each tile is one frame, decoded alone
    }


def _tile_frames(path: Path, dataset: Dataset, frames_held: int) -> dict[tuple[int, int], int]:
    """Which frame holds each tile (column, row); only the first focal plane and optical path. The grid the
    header declares must be covered by the frames the file holds: a 2^32-pixel matrix over 42 frames is
    refused here, before a tile table of billions of entries is built."""
    grid_columns = -(-int(dataset.TotalPixelMatrixColumns) // dataset.Columns)
    grid_rows = -(-int(dataset.TotalPixelMatrixRows) // dataset.Rows)
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    organisation = dataset.get("DimensionOrganizationType", "TILED_FULL" if not per_frame else "")
    if organisation == "TILED_FULL":
        if grid_columns * grid_rows > frames_held:
            raise CorruptFileError(
                path,
                f"the slide's {dataset.TotalPixelMatrixColumns} x {dataset.TotalPixelMatrixRows} pixels need "
                f"{grid_columns * grid_rows} tiles, but the file holds {frames_held} frames",
            )
        return {(index % grid_columns, index // grid_columns): index for index in range(grid_columns * grid_rows)}
    if not per_frame:
        raise UnsupportedFileError(path, "the frames' positions in the slide are not recorded")
    frames: dict[tuple[int, int], int] = {}
    for index, item in enumerate(per_frame):
        position = _first(item, "PlanePositionSlideSequence")
        column = position.get("ColumnPositionInTotalImagePixelMatrix")
        row = position.get("RowPositionInTotalImagePixelMatrix")
        if column is None or row is None:
            raise CorruptFileError(path, f"frame {index + 1} has no position in the slide")
        frames.setdefault(((int(column) - 1) // dataset.Columns, (int(row) - 1) // dataset.Rows), index)
    return frames


def _frame_spans(path: Path, handle: Any, dataset: Dataset) -> list[list[tuple[int, int]]]:
    """(offset, length) of the bytes of each frame, from the pixel data element found at the handle's position."""
    from pydicom.encaps import parse_basic_offsets, parse_fragments

    syntax = dataset.file_meta.TransferSyntaxUID
    if not syntax.is_little_endian:
        raise UnsupportedFileError(path, "big-endian DICOM whole-slide images are not supported")
    frame_count = int(dataset.get("NumberOfFrames", 1))
    start = handle.tell()
    stored = Path(path).stat().st_size - start
    header = handle.read(8 if syntax.is_implicit_VR else 12)
    if len(header) < 8 or header[:4] != _PIXEL_DATA_TAG:
        raise CorruptFileError(path, "the pixel data is missing (is the file truncated?)")
    if not syntax.is_encapsulated:
        frame_bytes = dataset.Rows * dataset.Columns * dataset.SamplesPerPixel
        if frame_count * frame_bytes > stored:
            raise CorruptFileError(path, f"{frame_count} frames are declared, but the file holds {stored} bytes")
        first = start + len(header)
        return [[(first + index * frame_bytes, frame_bytes)] for index in range(frame_count)]
    try:
        basic_offsets = parse_basic_offsets(handle)
        first_fragment = handle.tell()
        _, positions = parse_fragments(handle)
        spans = []
        for position in positions:
            handle.seek(position + 4)
            spans.append((position + 8, struct.unpack("<I", handle.read(4))[0]))
    except (ValueError, struct.error, EOFError) as exc:
        raise CorruptFileError(path, "the compressed frames cannot be located (is the file truncated?)") from exc
    if len(spans) == frame_count:
        return [[span] for span in spans]
    if len(spans) < frame_count:  # every frame takes at least one fragment
        raise CorruptFileError(
            path, f"the header declares {frame_count} frames, but the pixel data holds {len(spans)} fragments"
        )
    if len(basic_offsets) != frame_count:
        raise UnsupportedFileError(path, "frames split into several fragments without an offset table")
    return _spans_by_offsets(path, spans, [first_fragment + offset for offset in basic_offsets])


def _spans_by_offsets(path: Path, spans: list[tuple[int, int]], starts: list[int]) -> list[list[tuple[int, int]]]:
    """The fragments of each frame, from the offset table's frame starts: one pass over both sorted lists (the
    fragments are in file order), where testing every fragment against every frame took quadratic time."""
    if any(later <= earlier for earlier, later in zip(starts, starts[1:], strict=False)):
        raise CorruptFileError(path, "the offset table's frame starts are not in increasing order")
    items = [span[0] - 8 for span in spans]  # where each fragment's item header starts
    bounds = [bisect.bisect_left(items, start) for start in starts] + [len(spans)]
    frames = [spans[bounds[n] : bounds[n + 1]] for n in range(len(starts))]
    if bounds[0] != 0 or not all(frames):
        raise CorruptFileError(path, "the offset table does not match the fragments of the pixel data")
    return frames
