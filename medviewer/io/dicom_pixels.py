"""Reading a stack's pixel data into one array, fast and without copies.

The output is allocated once and every frame is written into its own slice of it, from a pool of
threads (one per core) so that compressed series decode on all cores. Uncompressed little-endian
frames are read from the file straight into the output (the header scan already knows where the
pixel data starts); everything else goes through pydicom's decoders. Values stay in the stored type
when no rescale applies; an integer rescale becomes int16 in place when every value fits (CT
Hounsfield units); any other rescale gives float32. A Modality LUT Sequence replaces the rescale
(pydicom applies it, so values match its own pipeline). Colour frames (RGB, YBR, which pydicom turns
into RGB, and PALETTE COLOR through the file's own lookup tables) are kept as 8-bit RGB for display,
with their luminance as the grey values that measurements and models use.
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, iter_pixels
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medviewer.core.errors import CorruptFileError, input_error, reading
from medviewer.io.dicom_frames import FrameRecord
from medviewer.io.dicom_series import DicomFile, read_dataset
from medviewer.io.memory_guard import refuse_if_too_large

PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
#: Explicit VRs whose length field is 4 bytes after 2 reserved bytes (PS3.5 7.1.2).
LONG_VRS = {b"OB", b"OW", b"OD", b"OF", b"OL", b"OV", b"UN"}
#: ITU-R BT.601 weights: how colour images are shown as grey.
LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)
INT16 = np.iinfo(np.int16)


@dataclass(frozen=True)
class PixelFormat:
    """How one file stores a grey frame, and whether its bytes can be copied as they are."""

    stored: np.dtype
    samples: int
    direct: bool
    palette: bool = False
    #: Bits that carry a colour sample's value, to bring 16- and 32-bit colour down to 8 bits for display.
    colour_bits: int = 8

    @property
    def colour(self) -> bool:
        return self.samples > 1 or self.palette

    @classmethod
    def of(cls, dicom_file: DicomFile) -> PixelFormat:
        header = dicom_file.header
        bits = int(header.get("BitsAllocated") or 0)
        signed = int(header.get("PixelRepresentation") or 0) == 1
        samples = int(header.get("SamplesPerPixel") or 1)
        palette = str(header.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR"
        if bits not in (8, 16, 32):
            stored = np.dtype(np.uint8)  # bit-packed (1-bit) frames decode to uint8
        else:
            stored = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
        syntax = header.file_meta.get("TransferSyntaxUID") if hasattr(header, "file_meta") else None
        direct = (
            syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
            and samples == 1
            and not palette
            and "ModalityLUTSequence" not in header
            and bits in (8, 16, 32)
            # signed values narrower than their container need sign extension: pydicom does it
            and (not signed or int(header.get("BitsStored") or bits) == bits)
        )
        return cls(stored, samples, direct, palette, _colour_bits(header, palette, bits))


def _colour_bits(header: Dataset, palette: bool, bits: int) -> int:
    """Significant bits of a colour sample: the palette's entry size (LUT descriptor), else BitsStored."""
    if palette:
        descriptor = header.get("RedPaletteColorLookupTableDescriptor")
        try:
            return int(descriptor[2]) if descriptor is not None and len(descriptor) == 3 else 16
        except (TypeError, ValueError):
            return 16
    try:
        return min(int(header.get("BitsStored") or bits), bits or 8)
    except (TypeError, ValueError):
        return bits or 8


@dataclass
class StackPixels:
    array: np.ndarray
    warnings: list[str]
    #: (frames, rows, columns, 3) uint8 RGB when the frames are in colour
    colour: np.ndarray | None = None


def _pixel_data_start(handle: BinaryIO, dicom_file: DicomFile, needed: int) -> int:
    """Offset of the first pixel byte, after checking the element holds at least ``needed`` bytes."""
    handle.seek(dicom_file.pixel_offset)
    head = handle.read(8)
    if head[:4] != PIXEL_DATA_TAG:
        raise CorruptFileError(dicom_file.path, "the file has no pixel data")
    if head[4:6] in LONG_VRS:  # explicit VR: tag, VR, 2 reserved bytes, 4-byte length
        (length,) = struct.unpack("<I", handle.read(4))
        start = dicom_file.pixel_offset + 12
    else:  # implicit VR: tag, 4-byte length
        (length,) = struct.unpack("<I", head[4:8])
        start = dicom_file.pixel_offset + 8
    if length == 0xFFFFFFFF or length < needed:
        raise CorruptFileError(
            dicom_file.path, f"the pixel data holds {length} bytes, but the header declares {needed}"
        )
    return start


def _direct_frames(
    dicom_file: DicomFile, fmt: PixelFormat, frames: list[int], out: np.ndarray | None, slots: list[int]
) -> Iterator[np.ndarray]:
    """Frames read as raw bytes: into ``out`` itself when it has the stored type, else into a scratch array."""
    header = dicom_file.header
    shape = (int(header.Rows), int(header.Columns))
    frame_bytes = shape[0] * shape[1] * fmt.stored.itemsize
    frame_count = int(header.get("NumberOfFrames") or 1)
    with open(dicom_file.path, "rb") as handle:
        start = _pixel_data_start(handle, dicom_file, frame_bytes * frame_count)
        for frame, slot in zip(frames, slots, strict=True):
            target = out[slot] if out is not None else np.empty(shape, fmt.stored)
            handle.seek(start + frame * frame_bytes)
            if handle.readinto(target.data.cast("B")) != frame_bytes:
                raise CorruptFileError(dicom_file.path, "the file ends before its pixel data does (truncated)")
            yield target


def _decoded_frames(dicom_file: DicomFile, frames: list[int]) -> Iterator[np.ndarray]:
    """Frames through pydicom's decoders, from the whole dataset (deflated files cannot be read from a path)."""
    dataset = read_dataset(dicom_file.path)
    try:
        yield from iter_pixels(dataset, indices=frames)
    except BaseException as exc:  # decoders raise many types on damaged data, a Rust panic among them
        error = input_error(dicom_file.path, exc, "its pixel data")
        if error is None or error is exc:
            raise  # interrupts and medviewer's own errors pass on
        if isinstance(exc, (MemoryError, RecursionError)):
            raise error from exc
        raise CorruptFileError(dicom_file.path, _undecodable(dataset, exc)) from exc


def _undecodable(dataset: Dataset, exc: BaseException) -> str:
    """Why pixels could not be decoded, naming the transfer syntax, without the decoders' internals."""
    meta = getattr(dataset, "file_meta", None)
    syntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else None
    named = f"{syntax.name} ({syntax})" if syntax else "an unnamed transfer syntax"
    bits = dataset.get("BitsStored")
    sample = f", {bits}-bit samples" if bits else ""
    if "Unable to decode" in str(exc) or "no pixel data decoders" in str(exc).lower():
        return (
            f"its pixel data, in {named}{sample}, cannot be decoded by any installed decoder (pylibjpeg, "
            "Pillow, GDCM): the codestream is damaged or uses a form they do not support"
        )
    return f"its pixel data, in {named}{sample}, cannot be decoded ({type(exc).__name__})"


def _display_rgb(pixels: np.ndarray, fmt: PixelFormat, header: Dataset) -> np.ndarray:
    """An 8-bit RGB frame as the file means it: palette indices through the file's LUTs, deep samples shifted."""
    if fmt.palette:
        pixels = apply_color_lut(pixels, header)
    if pixels.dtype != np.uint8:
        shift = max(0, fmt.colour_bits - 8)
        pixels = np.clip(pixels.astype(np.int64) >> shift, 0, 255).astype(np.uint8)
    return pixels


def _store(
    pixels: np.ndarray,
    out: np.ndarray,
    record: FrameRecord,
    slot: int,
    fmt: PixelFormat,
    colour: np.ndarray | None,
) -> None:
    """Write one frame into its slot: colour as RGB and luminance, float32 output rescaled (or through the
    Modality LUT), others as stored."""
    header = record.file.header
    if fmt.colour:
        if colour is None:
            raise CorruptFileError(record.file.path, "colour and grey frames are mixed in one stack")
        rgb = _display_rgb(pixels, fmt, header)
        if rgb.shape != colour.shape[1:]:
            raise CorruptFileError(record.file.path, f"a frame of {rgb.shape} pixels does not match {colour.shape[1:]}")
        colour[slot] = rgb
        out[slot] = np.clip(np.rint(rgb.astype(np.float32) @ LUMINANCE), 0, 255)
        return
    if colour is not None:
        raise CorruptFileError(record.file.path, "colour and grey frames are mixed in one stack")
    if pixels.shape != out.shape[1:]:
        raise CorruptFileError(record.file.path, f"a frame of {pixels.shape} pixels does not match {out.shape[1:]}")
    if "ModalityLUTSequence" in header:
        out[slot] = apply_modality_lut(pixels, header)
    elif out.dtype == np.float32:
        np.multiply(pixels, np.float32(record.slope), out=out[slot], casting="unsafe")
        out[slot] += np.float32(record.intercept)
    else:
        out[slot] = pixels


def _read_file(
    dicom_file: DicomFile,
    fmt: PixelFormat,
    items: list[tuple[int, int, FrameRecord]],
    out: np.ndarray,
    ranges: np.ndarray | None,
    colour: np.ndarray | None,
) -> None:
    """Read one file's frames into their slots; with ``ranges``, note each slot's (min, max) while in cache."""
    items = sorted(items, key=lambda item: item[0])
    with reading(dicom_file.path, "its pixel data"):  # a pixel data element cut inside its own header, ...
        _read_frames(dicom_file, fmt, items, out, colour)
    if ranges is not None:
        for _, slot, _ in items:
            ranges[slot] = out[slot].min(), out[slot].max()


def _read_frames(
    dicom_file: DicomFile,
    fmt: PixelFormat,
    items: list[tuple[int, int, FrameRecord]],
    out: np.ndarray,
    colour: np.ndarray | None,
) -> None:
    frames = [frame for frame, _, _ in items]
    slots = [slot for _, slot, _ in items]
    if fmt.direct:
        in_place = out.dtype == fmt.stored
        source = _direct_frames(dicom_file, fmt, frames, out if in_place else None, slots)
        for pixels, (_, slot, record) in zip(source, items, strict=True):
            if not in_place:
                _store(pixels, out, record, slot, fmt, colour)
        return
    for pixels, (_, slot, record) in zip(_decoded_frames(dicom_file, frames), items, strict=True):
        _store(pixels, out, record, slot, fmt, colour)


def _buffer_type(records: list[FrameRecord], formats: list[PixelFormat]) -> tuple[np.dtype, bool]:
    """The type frames are read into, and whether an integer shift to int16 is still to be applied."""
    stored = {fmt.stored for fmt in formats}
    if any(fmt.colour for fmt in formats):
        return np.dtype(np.uint8), False  # luminance of the 8-bit display colours
    if any("ModalityLUTSequence" in r.file.header for r in records):
        return np.dtype(np.float32), False
    if all(r.slope == 1 and r.intercept == 0 for r in records):
        return np.result_type(*stored), False
    integer_shift = all(r.slope == 1 and float(r.intercept).is_integer() for r in records)
    if integer_shift and len(stored) == 1 and next(iter(stored)).itemsize == 2:
        return next(iter(stored)), True
    return np.dtype(np.float32), False


def _shift_to_int16(array: np.ndarray, intercepts: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """stored + intercept as int16, in place when every value fits (16-bit modular addition), else float32."""
    if (ranges[:, 0] + intercepts).min() < INT16.min or (ranges[:, 1] + intercepts).max() > INT16.max:
        values = array.astype(np.float32)
        values += intercepts.astype(np.float32)[:, None, None]
        return values
    unsigned = array.view(np.uint16)
    if np.all(intercepts == intercepts[0]):
        unsigned += np.uint16(int(intercepts[0]) % 65536)
    else:
        for slot, intercept in enumerate(intercepts):
            unsigned[slot] += np.uint16(int(intercept) % 65536)
    return unsigned.view(np.int16)


def read_pixels(records: list[FrameRecord], path: Path) -> StackPixels:
    """The frames of ``records``, in that order, as one (frames, rows, columns) array."""
    files = {id(r.file): r.file for r in records}
    formats = {key: PixelFormat.of(f) for key, f in files.items()}
    dtype, shift = _buffer_type(records, list(formats.values()))
    shape = (len(records), records[0].rows, records[0].columns)
    # an int16 shift that does not fit needs the stored array and a float32 copy at once
    in_colour = any(fmt.colour for fmt in formats.values())
    per_pixel = dtype.itemsize * (3 if shift else 1) + (3 if in_colour else 0)
    refuse_if_too_large(path, int(np.prod(shape)) * per_pixel, "this stack")
    out = np.empty(shape, dtype)
    colour = np.empty((*shape, 3), np.uint8) if in_colour else None
    ranges = np.empty((len(records), 2), np.int64) if shift else None
    work: dict[int, list[tuple[int, int, FrameRecord]]] = defaultdict(list)
    for slot, record in enumerate(records):
        work[id(record.file)].append((record.frame, slot, record))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [
            pool.submit(_read_file, files[key], formats[key], items, out, ranges, colour) for key, items in work.items()
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # one damaged file fails the stack: stop reading the rest
            raise
    warnings: list[str] = []
    if ranges is not None:
        out = _shift_to_int16(out, np.array([int(r.intercept) for r in records], dtype=np.int64), ranges)
    return StackPixels(out, warnings, colour)
