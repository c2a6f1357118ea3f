"""Putting EXIF and the ICC profile back into 16-bit PNG and TIFF files.

Pillow writes EXIF and ICC but cannot write 16-bit RGB; OpenCV writes 16-bit
RGB but, in the versions we support, no metadata. So a 16-bit result is
encoded by OpenCV and its metadata is spliced into the bytes here. Losing the
ICC profile would be the worse loss: a 16-bit photo from a raw converter is
often in a wide-gamut space (ProPhoto, Adobe RGB), and without its profile
every viewer would show it as sRGB, with wrong colours.

PNG gets both (`iCCP` and `eXIf` chunks). TIFF gets the ICC profile (tag
34675); its EXIF lives in a sub-IFD whose offsets would all have to be
relocated, so 16-bit TIFF output does not keep EXIF.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_ICC_TAG = 34675
TIFF_UNDEFINED = 7
EXIF_HEADER = b"Exif\x00\x00"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_metadata(png: bytes, exif: bytes | None, icc_profile: bytes | None) -> bytes:
    """`png` with iCCP/eXIf chunks right after IHDR (both must precede IDAT)."""
    if not (exif or icc_profile):
        return png
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    extra = b""
    if icc_profile:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))
    if exif:
        raw = exif[len(EXIF_HEADER):] if exif.startswith(EXIF_HEADER) else exif
        extra += _png_chunk(b"eXIf", raw)
    return png[:ihdr_end] + extra + png[ihdr_end:]


def tiff_with_icc(tiff: bytes, icc_profile: bytes | None) -> bytes:
    """`tiff` with `icc_profile` as tag 34675 of its first IFD.

    Nothing existing is moved: the profile and a copy of IFD 0 with the new
    entry are appended, and the header is pointed at the copy, so every
    offset in the original file stays valid.
    """
    if not icc_profile:
        return tiff
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        raise ValueError("not a classic TIFF stream")
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
    entries = {}
    for index in range(count):
        raw = tiff[ifd + 2 + 12 * index: ifd + 14 + 12 * index]
        entries[struct.unpack(order + "H", raw[:2])[0]] = raw
    next_ifd = tiff[ifd + 2 + 12 * count: ifd + 6 + 12 * count]

    out = bytearray(tiff)
    if len(out) % 2:
        out += b"\x00"  # TIFF offsets are word-aligned
    profile_at = len(out)
    out += icc_profile
    if len(out) % 2:
        out += b"\x00"
    entries[TIFF_ICC_TAG] = struct.pack(order + "HHII", TIFF_ICC_TAG, TIFF_UNDEFINED, len(icc_profile), profile_at)
    new_ifd = len(out)
    out += struct.pack(order + "H", len(entries))
    for tag in sorted(entries):  # TIFF requires ascending tag order
        out += entries[tag]
    out += next_ifd
    out[4:8] = struct.pack(order + "I", new_ifd)
    return bytes(out)
