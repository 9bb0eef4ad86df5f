"""Text inside an ICC colour profile, blanked without touching its colour data.

A slide's optical path carries the scanner's ICC profile (Type 1C: it must stay for the export to be valid
and its colours right). Its description, copyright and other text tags are free text that a scanner or a
site fills in; each character is overwritten with "X" in place, so every offset, length and count in the
profile stays as it was and the colour transforms are untouched. The header's device manufacturer, model
and creator signatures (four characters each) and the profile ID (an MD5 of the profile) are zeroed, which
ICC.1 defines as "not given" and "not computed".
"""

from __future__ import annotations

_HEADER, _ENTRY = 128, 12
_ZEROED_HEADER_FIELDS = (slice(48, 56), slice(80, 100))  # manufacturer, model; creator, profile ID


class IccError(ValueError):
    """The bytes are not an ICC profile whose text tags can be found."""


def blank_text(profile: bytes) -> bytes:
    """``profile`` with the characters of its text, textDescription and multiLocalizedUnicode tags
    replaced by "X" (ICC.1:2001-04 and ICC.1:2022 tag types)."""
    if len(profile) < _HEADER + 4 or profile[36:40] != b"acsp":
        raise IccError("not an ICC profile")
    out = bytearray(profile)
    for field in _ZEROED_HEADER_FIELDS:
        out[field] = bytes(field.stop - field.start)
    count = _u32(out, _HEADER)
    for entry in range(_HEADER + 4, _HEADER + 4 + count * _ENTRY, _ENTRY):
        offset, size = _u32(out, entry + 4), _u32(out, entry + 8)
        if offset + size > len(out) or size < 12:
            raise IccError("a tag lies outside the profile")
        _blank_tag(out, offset, offset + size)
    return bytes(out)


def _u32(data: bytes | bytearray, at: int) -> int:
    if at + 4 > len(data):
        raise IccError("the profile is cut short")
    return int.from_bytes(data[at : at + 4], "big")


def _blank_tag(out: bytearray, start: int, end: int) -> None:
    kind = bytes(out[start : start + 4])
    if kind == b"text":
        _blank_ascii(out, start + 8, end)
    elif kind == b"desc":
        ascii_end = start + 12 + _u32(out, start + 8)
        _blank_ascii(out, start + 12, min(ascii_end, end))
        unicode_start = ascii_end + 8
        if unicode_start <= end:
            unicode_end = min(unicode_start + 2 * _u32(out, ascii_end + 4), end)
            _blank_utf16(out, unicode_start, unicode_end)
            out[unicode_end:end] = bytes(end - unicode_end)  # the Macintosh ScriptCode string and its count
    elif kind == b"mluc":
        records, record_size = _u32(out, start + 8), _u32(out, start + 12)
        for record in range(start + 16, start + 16 + records * record_size, record_size):
            length, offset = _u32(out, record + 4), _u32(out, record + 8)
            _blank_utf16(out, start + offset, min(start + offset + length, end))


def _blank_ascii(out: bytearray, start: int, end: int) -> None:
    for i in range(start, end):
        if out[i]:
            out[i] = ord("X")


def _blank_utf16(out: bytearray, start: int, end: int) -> None:
    for i in range(start, end - 1, 2):
        if out[i] or out[i + 1]:
            out[i : i + 2] = b"\0X"
