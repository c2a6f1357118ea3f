"""Putting EXIF and the ICC profile back into 16-bit PNG and TIFF files.

Pillow writes EXIF and ICC but cannot write 16-bit RGB; OpenCV writes 16-bit
RGB but, in the versions we support, no metadata. So a 16-bit result is
encoded by OpenCV and its metadata is spliced into the bytes here. Losing the
ICC profile would be the worse loss: a 16-bit photo from a raw converter is
often in a wide-gamut space (ProPhoto, Adobe RGB), and without its profile
every viewer would show it as sRGB, with wrong colours.

PNG gets both (`iCCP` and `eXIf` chunks) and its text chunks (tEXt, zTXt,
iTXt: Author, Comment, XMP…). TIFF gets the ICC profile (tag 34675), the XMP
packet (tag 700) and the EXIF: the camera's descriptive tags join IFD 0, and the Exif
and GPS sub-IFDs are re-serialised by Pillow at their new file offsets.
Pixel-layout tags always stay OpenCV's, so metadata can never make the
pixels unreadable.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_ICC_TAG = 34675
TIFF_XMP_TAG = 700
TIFF_BYTE, TIFF_UNDEFINED = 1, 7
EXIF_HEADER = b"Exif\x00\x00"
EXIF_SUB_IFD_TAG, GPS_SUB_IFD_TAG, INTEROP_SUB_IFD_TAG = 34665, 34853, 40965
ORIENTATION_TAG = 274
# EXIF's IFD-0 tags that describe the photo, not the pixel layout: ImageDescription,
# Make, Model, Software, DateTime, Artist, Copyright.
EXIF_IFD0_TAGS = (270, 271, 272, 305, 306, 315, 33432)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_text_chunks(text: dict[str, str]) -> list[tuple[str, str, str]]:
    """(key, value, chunk type) for each text entry: iTXt for Pillow `iTXt` values or non-Latin-1 text, zTXt past 1 KB.

    Keys must be 1–79 Latin-1 characters (the PNG rule); others are dropped,
    since no chunk can hold them.
    """
    chunks = []
    for key, value in text.items():
        try:
            if not 1 <= len(key) <= 79:
                continue
            key.encode("latin-1")
        except UnicodeEncodeError:
            continue
        value = value if isinstance(value, str) else str(value)
        try:
            value.encode("latin-1")
            latin = True
        except UnicodeEncodeError:
            latin = False
        if hasattr(value, "lang") or not latin or key == "XML:com.adobe.xmp":
            chunks.append((key, value, "iTXt"))
        else:
            chunks.append((key, value, "zTXt" if len(value) > 1024 else "tEXt"))
    return chunks


def _text_chunk(key: str, value: str, kind: str) -> bytes:
    name = key.encode("latin-1")
    if kind == "tEXt":
        return _png_chunk(b"tEXt", name + b"\x00" + value.encode("latin-1"))
    if kind == "zTXt":
        return _png_chunk(b"zTXt", name + b"\x00\x00" + zlib.compress(value.encode("latin-1")))
    lang = (getattr(value, "lang", "") or "").encode("latin-1", "replace")
    tkey = (getattr(value, "tkey", "") or "").encode("utf-8")
    payload = value.encode("utf-8")
    compressed = len(payload) > 1024
    if compressed:
        payload = zlib.compress(payload)
    return _png_chunk(b"iTXt", name + b"\x00" + bytes([int(compressed), 0]) + lang + b"\x00" + tkey + b"\x00" + payload)


def png_with_metadata(
    png: bytes, exif: bytes | None, icc_profile: bytes | None, text: dict[str, str] | None = None
) -> bytes:
    """`png` with iCCP/eXIf (and text) chunks right after IHDR (iCCP and eXIf must precede IDAT)."""
    if not (exif or icc_profile or text):
        return png
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    extra = b""
    if icc_profile:
        extra += _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))
    if exif:
        raw = exif[len(EXIF_HEADER) :] if exif.startswith(EXIF_HEADER) else exif
        extra += _png_chunk(b"eXIf", raw)
    for key, value, kind in png_text_chunks(text or {}):
        extra += _text_chunk(key, value, kind)
    return png[:ihdr_end] + extra + png[ihdr_end:]


def _descriptive_tags(parsed) -> dict:
    """The photo-describing part of a Pillow `Image.Exif`: EXIF_IFD0_TAGS plus the sub-IFDs, as dicts."""
    tags = {tag: parsed[tag] for tag in EXIF_IFD0_TAGS if tag in parsed}
    for tag in (EXIF_SUB_IFD_TAG, GPS_SUB_IFD_TAG):
        if tag in parsed:
            sub = dict(parsed.get_ifd(tag))
            if tag == EXIF_SUB_IFD_TAG and INTEROP_SUB_IFD_TAG in sub:
                sub[INTEROP_SUB_IFD_TAG] = dict(parsed.get_ifd(INTEROP_SUB_IFD_TAG))
            if sub:
                tags[tag] = sub
    return tags


def exif_of_tiff(image) -> bytes | None:
    """EXIF bytes for an opened TIFF, whose EXIF tags Pillow mixes into the pixel IFD instead of `info["exif"]`."""
    from PIL import Image

    try:
        parsed = image.getexif()
        exif = Image.Exif()
        for tag, value in _descriptive_tags(parsed).items():
            exif[tag] = value
        if ORIENTATION_TAG in parsed:
            exif[ORIENTATION_TAG] = parsed[ORIENTATION_TAG]
        return exif.tobytes() if len(exif) else None
    except Exception:  # malformed tags: the pixels matter more than the metadata
        return None


def exif_of_tiff_bytes(data: bytes, orientation: bool = True) -> bytes | None:
    """EXIF bytes from a whole TIFF-structured file (DNG, CR2, NEF, ARW, float TIFF): its IFD 0 is an EXIF block.

    Only the photo-describing tags are kept (`_descriptive_tags`), plus the
    orientation when `orientation`; None for other layouts (CR3, RAF, ORF's
    own header) or malformed tags.
    """
    from PIL import Image

    if data[:4] not in {b"II*\x00", b"MM\x00*"}:
        return None
    try:
        parsed = Image.Exif()
        parsed.load(data)
        exif = Image.Exif()
        for tag, value in _descriptive_tags(parsed).items():
            exif[tag] = value
        if orientation and ORIENTATION_TAG in parsed:
            exif[ORIENTATION_TAG] = parsed[ORIENTATION_TAG]
        return exif.tobytes() if len(exif) else None
    except Exception:  # malformed tags: the pixels matter more than the metadata
        return None


def _exif_ifd_bytes(header: bytes, exif: bytes, offset: int) -> bytes:
    """EXIF's descriptive tags and sub-IFDs as one IFD laid out to sit at `offset` of a TIFF with `header`.

    Pillow re-packs every value in the TIFF's byte order and points the
    sub-IFD entries at absolute offsets, so nothing needs relocating later.
    Malformed EXIF yields b"" (dropping it beats failing to save the photo).
    """
    from PIL import Image, TiffImagePlugin

    try:
        parsed = Image.Exif()
        parsed.load(exif)
        ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=header)
        for tag, value in _descriptive_tags(parsed).items():
            ifd[tag] = value
        return ifd.tobytes(offset) if len(ifd) else b""
    except Exception:
        return b""


def tiff_with_metadata(tiff: bytes, exif: bytes | None, icc_profile: bytes | None, xmp: bytes | None = None) -> bytes:
    """`tiff` with `icc_profile` (tag 34675), `xmp` (tag 700) and `exif` added to its first IFD.

    Nothing existing is moved: the profile, the EXIF values and a copy of
    IFD 0 with the new entries are appended, and the header is pointed at the
    copy, so every offset in the original file stays valid.
    """
    if not (exif or icc_profile or xmp):
        return tiff
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        raise ValueError("not a classic TIFF stream")
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    entries = _ifd_entries(tiff, ifd, order)
    count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
    next_ifd = tiff[ifd + 2 + 12 * count : ifd + 6 + 12 * count]

    out = bytearray(tiff)
    _word_align(out)
    if icc_profile:
        entries[TIFF_ICC_TAG] = struct.pack(order + "HHII", TIFF_ICC_TAG, TIFF_UNDEFINED, len(icc_profile), len(out))
        out += icc_profile
        _word_align(out)
    if xmp and len(xmp) > 4:  # values of 4 bytes or less would sit inside the entry
        entries[TIFF_XMP_TAG] = struct.pack(order + "HHII", TIFF_XMP_TAG, TIFF_BYTE, len(xmp), len(out))
        out += xmp
        _word_align(out)
    if exif:
        block = _exif_ifd_bytes(tiff[:8], exif, len(out))  # Pillow's Exif.load skips an "Exif\0\0" header itself
        if block:
            for tag, entry in _ifd_entries(block, 0, order).items():
                entries.setdefault(tag, entry)  # OpenCV's own tags describe the pixels: they win
            out += block
            _word_align(out)
    new_ifd = len(out)
    out += struct.pack(order + "H", len(entries))
    for tag in sorted(entries):  # TIFF requires ascending tag order
        out += entries[tag]
    out += next_ifd
    out[4:8] = struct.pack(order + "I", new_ifd)
    return bytes(out)


def _ifd_entries(data: bytes, at: int, order: str) -> dict[int, bytes]:
    """The raw 12-byte entries of the IFD at `at` in `data`, by tag."""
    count = struct.unpack(order + "H", data[at : at + 2])[0]
    entries = {}
    for index in range(count):
        raw = data[at + 2 + 12 * index : at + 14 + 12 * index]
        entries[struct.unpack(order + "H", raw[:2])[0]] = raw
    return entries


def _word_align(out: bytearray) -> None:
    """TIFF offsets must be even."""
    if len(out) % 2:
        out += b"\x00"
