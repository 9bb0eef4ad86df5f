"""Text inside compressed frames, removed without decoding them.

A JPEG or JPEG-LS frame can carry comment (COM) and application (APPn) segments, a JPEG 2000 codestream
comment (COM) segments: scanners and converters write names, accession numbers and free text there, and no
header rewrite reaches them. The segments are cut out of the bitstream, which leaves every coded pixel as
it was (no re-encoding), so the export decodes to the same values. The two APP segments that say how to
decode colour and hold no text (a JFIF APP0 without thumbnail, an Adobe APP14) are kept.
"""

from __future__ import annotations

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
)

JPEG_SYNTAXES = frozenset(
    {JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless}
)
J2K_SYNTAXES = frozenset({JPEG2000Lossless, JPEG2000, HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL})

_COM, _EOI = 0xFE, 0xD9
_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})  # TEM, RSTn, SOI, EOI: no length field
_J2K_SOT, _J2K_SOD, _J2K_COM = 0x90, 0x93, 0x64


class CodestreamError(ValueError):
    """The frame is not the codestream its transfer syntax says; it cannot be cleaned, so it is not exported."""


def strip_text(frame: bytes, transfer_syntax: str) -> bytes:
    """``frame`` without its text segments; unchanged for syntaxes that have none (RLE, deflate)."""
    if transfer_syntax in JPEG_SYNTAXES:
        return _strip_jpeg(frame)
    if transfer_syntax in J2K_SYNTAXES:
        return _strip_j2k(frame)
    return frame


def _harmless_app(marker: int, segment: bytes) -> bool:
    """A JFIF APP0 without a thumbnail, or an Adobe APP14: colour facts a decoder needs, no text."""
    body = segment[4:]
    if marker == 0xE0:
        return body[:5] == b"JFIF\0" and len(body) == 14 and body[12] * body[13] == 0
    return marker == 0xEE and body[:5] == b"Adobe" and len(body) == 12


def _strip_jpeg(frame: bytes) -> bytes:
    """Walk the marker segments of a JPEG or JPEG-LS frame (ITU-T T.81 / T.87 syntax), scans included: in
    the entropy-coded data an 0xFF followed by a byte below 0x80 is stuffing, not a marker, in both."""
    if frame[:2] != b"\xff\xd8":
        raise CodestreamError("a JPEG frame that does not start with SOI")
    out, i, size = bytearray(b"\xff\xd8"), 2, len(frame)
    while i < size:
        stuffed = i + 1 < size and frame[i] == 0xFF and frame[i + 1] < 0x80 and frame[i + 1] != 0x01
        if frame[i] != 0xFF or stuffed:  # entropy-coded data after a scan header: copy up to the next marker
            end = _next_marker(frame, i + 2 if stuffed else i)
            out += frame[i:end]
            i = end
            continue
        marker = frame[i + 1] if i + 1 < size else _EOI
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            out += frame[i : i + 2]
            i += 2
            continue
        if i + 4 > size:
            raise CodestreamError("a JPEG segment is cut short")
        end = i + 2 + int.from_bytes(frame[i + 2 : i + 4], "big")
        segment = frame[i:end]
        if marker != _COM and not (0xE0 <= marker <= 0xEF and not _harmless_app(marker, segment)):
            out += segment
        i = end  # after SOS, the scan's coded data follows
    return bytes(out)


def _next_marker(frame: bytes, start: int) -> int:
    i = frame.find(b"\xff", start)
    while i != -1 and i + 1 < len(frame):
        following = frame[i + 1]
        if following >= 0x80 and not 0xD0 <= following <= 0xD7 and following != 0xFF:
            return i
        i = frame.find(b"\xff", i + 1)
    return len(frame)


def _strip_j2k(frame: bytes) -> bytes:
    """COM segments out of a JPEG 2000 codestream's main header and tile-part headers; each tile-part's
    length (Psot) is corrected for what was cut."""
    if frame[:2] != b"\xff\x4f":
        raise CodestreamError("a JPEG 2000 frame that does not start with SOC")
    out, i = bytearray(frame[:2]), 2
    while i < len(frame) and frame[i + 1] != _J2K_SOT:  # main header
        end = i + 2 + int.from_bytes(frame[i + 2 : i + 4], "big")
        if frame[i + 1] != _J2K_COM:
            out += frame[i:end]
        i = end
    while i + 12 <= len(frame) and frame[i : i + 2] == b"\xff\x90":  # tile-parts
        psot = int.from_bytes(frame[i + 6 : i + 10], "big")
        part_end = len(frame) - 2 if psot == 0 else i + psot  # Psot 0: the last tile-part, up to EOC
        sot = bytearray(frame[i : i + 12])
        header, j = bytearray(), i + 12
        while j < part_end and frame[j + 1] != _J2K_SOD:
            end = j + 2 + int.from_bytes(frame[j + 2 : j + 4], "big")
            if frame[j + 1] != _J2K_COM:
                header += frame[j:end]
            j = end
        part = header + frame[j:part_end]
        if psot:
            sot[6:10] = (12 + len(part)).to_bytes(4, "big")
        out += sot + part
        i = part_end
    return bytes(out + frame[i:])
