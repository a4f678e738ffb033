"""Uploads are judged by their bytes: the four allowed types are recognised, anything else or anything
damaged is refused. The small real files built here are used by the integration and web tests too."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest

from meetings.documents import DOCX, JPEG, MB, PDF, PNG, clean_filename, format_size, sniff_type


def make_pdf(text: str = "Attendance report", padding: int = 0) -> bytes:
    """A minimal valid PDF (one page, one line of text) with an accurate xref; `padding` adds a comment."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    if padding:
        out += b"%" + b"x" * padding + b"\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int = 2, height: int = 2, shade: int = 200) -> bytes:
    rows = b"".join(b"\x00" + bytes([shade, 0, 0]) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def make_jpeg(comment: bytes = b"scan") -> bytes:
    """SOI, a JFIF APP0 segment, a comment, quantisation-table-shaped filler, EOI."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    segments = [(0xE0, app0), (0xFE, comment), (0xDB, b"\x00" + bytes(range(1, 65)))]
    body = b"".join(b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data for marker, data in segments)
    return b"\xff\xd8" + body + b"\xff\xd9"


CONTENT_TYPES_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="{main}"/>'
    "</Types>"
)
WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"


def make_docx(text: str = "Support plan", main: str = WORD_MAIN, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES_XML.format(main=main))
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>',
        )
        archive.writestr(
            "word/document.xml",
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>",
        )
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def make_zip_bomb(unzipped_mb: int = 101) -> bytes:
    """A docx-shaped zip whose document part unpacks to more than the limit (about 100 KB packed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES_XML.format(main=WORD_MAIN))
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            zeros = bytes(MB)
            for _ in range(unzipped_mb):
                part.write(zeros)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [(make_pdf(), PDF), (make_png(), PNG), (make_jpeg(), JPEG), (make_docx(), DOCX)],
    ids=["pdf", "png", "jpeg", "docx"],
)
def test_each_allowed_type_is_recognised(data, expected):
    assert sniff_type(data) == expected


def test_a_pdf_with_a_large_body_is_still_recognised():
    assert sniff_type(make_pdf(padding=200_000)) == PDF


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(HTML, id="html"),
        pytest.param(SVG, id="svg"),
        pytest.param(b"Meeting notes\nNothing to see here.\n", id="text-renamed"),
        pytest.param(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(200), id="windows-exe"),
        pytest.param(b"#!/bin/sh\nrm -rf /\n", id="script"),
        pytest.param(make_pdf()[:-40], id="truncated-pdf"),
        pytest.param(make_pdf().replace(b"%PDF-1.4", b"%PDF-x.y"), id="pdf-bad-header"),
        pytest.param(make_png()[:-6], id="truncated-png"),
        pytest.param(make_png()[:8], id="png-signature-only"),
        pytest.param(make_png().replace(b"IHDR", b"IHDX"), id="png-without-ihdr"),
        pytest.param(make_png()[:-4] + b"\x00\x00\x00\x00", id="png-bad-crc"),
        pytest.param(make_png() + HTML, id="png-with-html-after"),
        pytest.param(make_jpeg()[:-2], id="truncated-jpeg"),
        pytest.param(b"\xff\xd8\xff", id="jpeg-header-only"),
        pytest.param(make_docx()[:-30], id="truncated-docx"),
        pytest.param(make_zip({"notes.txt": b"hello", "data.csv": b"a,b"}), id="zip-not-docx"),
        pytest.param(make_zip({"word/document.xml": b"<w:document/>"}), id="zip-without-content-types"),
        pytest.param(make_docx(main="application/vnd.ms-word.document.macroEnabled.main+xml"), id="docm"),
        pytest.param(make_docx(extra={"word/vbaProject.bin": b"\x00" * 10}), id="docx-with-macros"),
        pytest.param(HTML + make_pdf(), id="html-pdf-polyglot"),
        pytest.param(HTML + make_docx(), id="html-then-zip-polyglot"),
        pytest.param(b"<html>" + make_png(), id="html-then-png"),
    ],
)
def test_anything_else_is_refused(data):
    assert sniff_type(data) is None


def test_a_zip_bomb_is_refused_without_unpacking_it():
    bomb = make_zip_bomb()
    assert len(bomb) < 2 * MB  # small on the wire, far too big unpacked
    assert sniff_type(bomb) is None


def test_a_zip_whose_sizes_lie_is_refused():
    honest = make_docx(text="x" * 5000)
    directory_start = zipfile.ZipFile(io.BytesIO(honest)).start_dir
    entry = honest.index(b"word/document.xml", directory_start) - 46  # the central directory record
    assert honest[entry : entry + 4] == b"PK\x01\x02"
    lied = bytearray(honest)
    struct.pack_into("<I", lied, entry + 24, 10)  # declares 10 bytes unpacked: reading stops there, the CRC fails
    assert sniff_type(honest) == DOCX
    assert sniff_type(bytes(lied)) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\dsl\\Desktop\\plan.docx", "plan.docx"),
        ("..", "document"),
        ("", "document"),
        (None, "document"),
        ("photo\u202egnp.exe", "photognp.exe"),  # a right-to-left override would show it as ...exe.png
        ('say "hi"; <b>.pdf', "say _hi__ _b_.pdf"),
        ("  .hidden.pdf  ", "hidden.pdf"),
        ("line\r\nbreak.pdf", "linebreak.pdf"),
    ],
)
def test_filenames_are_cleaned(given, expected):
    assert clean_filename(given) == expected


def test_long_filenames_keep_their_extension():
    cleaned = clean_filename("a" * 400 + ".docx")
    assert len(cleaned) == 255
    assert cleaned.endswith("a.docx")


@pytest.mark.parametrize(
    ("size", "shown"),
    [(300, "300 bytes"), (1024, "1 KB"), (1536, "1.5 KB"), (10 * MB, "10 MB"), (int(12.25 * MB), "12.3 MB")],
)
def test_sizes_read_naturally_and_round_up(size, shown):
    assert format_size(size) == shown


def test_a_file_just_over_the_limit_never_reads_as_the_limit():
    assert format_size(10 * MB + 1) == "10.1 MB"
