"""Text out of the files people keep: PDF, HTML and Word, as well as plain text and markdown.

The extracted text *is* the document's text: every offset points into it. What the reader
of a PDF sees as one paragraph reads as one here: a line break inside a paragraph becomes a
space, a hyphen that splits a word at a line end goes, running headers, footers and page
numbers are left out, and a line that is no prose (a table row, a formula) stands as its own
paragraph, so that it never swallows the sentences around it. A PDF's text keeps its pages
(where each starts in the text) and, for every stretch of text, the characters of the page it
came from, so that a citation can be lit up on the page image (``pdf_boxes``).

The kind of a file is known from its bytes, never from its name; a name that says otherwise
is refused.
"""

from __future__ import annotations

import io
import re
import statistics
import struct
import zipfile
import zlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

import msgspec

__all__ = [
    "Extracted",
    "ExtractionError",
    "Kind",
    "Run",
    "extract",
    "page_of",
    "pdf_boxes",
    "render_page",
    "sniff",
]

Kind = Literal["text", "markdown", "pdf", "html", "docx"]

_SUFFIXES: dict[str, Kind] = {
    ".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
    ".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".docx": "docx",
}  # fmt: skip
_HTML = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b",
    re.IGNORECASE | re.DOTALL,
)


class ExtractionError(ValueError):
    """A file that gives no text, said in words a user can act on; ``status`` is the HTTP one."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class Run(msgspec.Struct, array_like=True, frozen=True):
    """``length`` characters of the text from ``start`` on are the page's ``char``-th on."""

    start: int
    page: int  # 0-based
    char: int
    length: int


@dataclass
class Extracted:
    """A file's text, its title if the file names one, and where its pages start."""

    kind: Kind
    text: str
    title: str | None = None
    pages: list[int] | None = None  # offset in ``text`` where each page starts
    runs: list[Run] = field(default_factory=list)  # PDF only: text back to page characters


def sniff(data: bytes) -> Kind | None:
    """The kind of a file from its bytes; None when it is none that is read here."""
    head = data[:1024]
    if head.lstrip(b"\xef\xbb\xbf\r\n\t ").startswith(b"%PDF-"):
        return "pdf"
    if b"%PDF-" in head and not _is_utf8(data):  # junk before the header, as readers allow
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                return "docx" if "word/document.xml" in z.namelist() else None
        except zipfile.BadZipFile:  # cut short: its local headers still name its parts
            return "docx" if b"word/document.xml" in data else None
    if _HTML.match(head.removeprefix(b"\xef\xbb\xbf")):
        return "html"
    return "text" if _is_utf8(data) else None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _what(data: bytes) -> str:
    import filetype

    found = filetype.guess(data)
    return f"{found.mime} data" if found else "binary data that is not UTF-8 text"


def extract(data: bytes, name: str, *, max_pages: int = 500) -> Extracted:
    """The text of a file named ``name``, or :class:`ExtractionError` saying why there is none."""
    kind = sniff(data)
    claimed = _SUFFIXES.get(PurePath(name).suffix.lower())
    if kind is None:
        raise ExtractionError(
            f"{name}: the file is {_what(data)}; upload PDF, HTML, DOCX, text or markdown", 415
        )
    if kind == "text" and claimed == "markdown":
        kind = "markdown"
    if claimed is not None and claimed != kind and not (claimed == "text" and kind == "html"):
        raise ExtractionError(
            f"{name}: the name says {claimed.upper()} but the bytes are {kind.upper()}; "
            "rename the file or upload the right one",
            415,
        )
    if kind == "pdf":
        extracted = _pdf(data, name, max_pages)
    elif kind == "html":
        extracted = _html(data, name)
    elif kind == "docx":
        extracted = _docx(data, name)
    else:
        extracted = Extracted(kind, data.decode("utf-8"))
    if not extracted.text.strip():
        raise ExtractionError(f"{name}: the file holds no text")
    return extracted


def page_of(pages: Sequence[int] | None, offset: int) -> int | None:
    """The 1-based page that holds ``offset``, or None for a document without pages."""
    if not pages:
        return None
    return max(bisect_right(pages, offset), 1)


# --- PDF --------------------------------------------------------------------------------

_PAGE_NUMBER = re.compile(r"^(?:page\s+)?(?:\d{1,4}|[ivxlcdm]{1,6})(?:\s*(?:/|of)\s*\d{1,4})?$",
                          re.IGNORECASE)  # fmt: skip
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_FIGURE = re.compile(r"[(\[]?[-+±]?[\d.,%]*\d[\d.,%]*[)\]]?[,;]?")


@dataclass
class _Line:
    page: int
    char: int  # index of its first character on the page
    text: str


def _open_pdf(data: bytes, name: str, max_pages: int):  # type: ignore[no-untyped-def]
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ExtractionError(
                f"{name}: the PDF is encrypted; remove its password and upload it again"
            ) from exc
        raise ExtractionError(f"{name}: the PDF is damaged or truncated ({exc})") from exc
    if len(pdf) > max_pages:
        n = len(pdf)
        pdf.close()
        raise ExtractionError(
            f"{name}: {n} pages; the limit is {max_pages} (CITEQA_MAX_PDF_PAGES)", 413
        )
    return pdf


def _page_lines(page_text: str, page: int) -> list[_Line]:
    lines, char = [], 0
    for raw in re.split(r"(\r\n|\n|\r)", page_text):
        if raw in ("\r\n", "\n", "\r"):
            char += len(raw)
            continue
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            lines.append(_Line(page, char + lead, stripped))
        char += len(raw)
    return lines


def _running(pages: list[list[_Line]]) -> set[tuple[int, int]]:
    """(page, line) of running headers, footers and page numbers.

    They are among the first and last two lines of a page, and are a bare page number, or
    read the same (figures aside) at the edge of most pages.
    """
    if not pages:
        return set()

    def shape(text: str) -> str:
        return re.sub(r"\d+", "#", text.lower())

    edges: Counter[str] = Counter()
    for lines in pages:
        edges.update({shape(line.text) for line in (lines[:2] + lines[-2:])})
    common = {s for s, n in edges.items() if len(pages) >= 3 and n >= max(3, len(pages) // 2)}
    found = set()
    for p, lines in enumerate(pages):
        for k in {0, 1, len(lines) - 2, len(lines) - 1}:
            if 0 <= k < len(lines):
                text = lines[k].text
                if _PAGE_NUMBER.match(text) or shape(text) in common:
                    found.add((p, k))
    return found


def _is_prose(text: str) -> bool:
    """Whether a line reads as running text, not a table row or a formula.

    Mostly letters, and mostly words: a row of a table ("Austria 8.9 83,879 Vienna") has a
    figure in every other cell.
    """
    tokens = text.split()
    figures = sum(1 for token in tokens if _FIGURE.fullmatch(token))
    return len(_LETTERS.findall(text)) >= 0.6 * len(text.replace(" ", "")) and (
        len(tokens) < 3 or figures < 0.3 * len(tokens)
    )


def _pdf(data: bytes, name: str, max_pages: int) -> Extracted:
    pdf = _open_pdf(data, name, max_pages)
    try:
        title = (pdf.get_metadata_dict().get("Title") or "").strip() or None
        pages = []
        for p in range(len(pdf)):
            textpage = pdf[p].get_textpage()
            pages.append(_page_lines(textpage.get_text_range(), p))
    finally:
        pdf.close()
    if not any(pages):
        raise ExtractionError(
            f"{name}: the PDF has no text layer (a scan, or images of text); no OCR runs here, "
            "so run OCR on it first (for example ocrmypdf) and upload the result"
        )
    skip = _running(pages)
    text: list[str] = []
    runs: list[Run] = []
    starts: list[int] = []
    size = 0

    def put(piece: str, line: _Line | None = None, char: int = 0) -> None:
        nonlocal size
        if line is not None and piece:
            runs.append(Run(size, line.page, line.char + char, len(piece)))
        text.append(piece)
        size += len(piece)

    previous: _Line | None = None
    width = 0.0
    for p, lines in enumerate(pages):
        kept = [line for k, line in enumerate(lines) if (p, k) not in skip]
        for n, line in enumerate(kept):
            body = line.text
            if previous is not None:
                before = previous.text
                if not (_is_prose(body) and _is_prose(before)) or len(before) < 0.8 * width:
                    # A short line ends its paragraph; a line that is no prose stands alone.
                    put("\n\n")
                elif n == 0 and not body[:1].islower():
                    put("\n\n")  # a page that opens a paragraph of its own
                elif before.endswith("-") and body[:1].islower() and before[-2:-1].isalpha():
                    # "exam-" + "ple": the hyphen only split the word at the line end
                    text[-1] = text[-1][:-1]
                    size -= 1
                    last = runs[-1]
                    runs[-1] = Run(last.start, last.page, last.char, last.length - 1)
                else:
                    put(" ")  # a line break inside a paragraph, or a sentence across pages
            if n == 0:
                starts.append(size)
                width = statistics.median(len(kept_line.text) for kept_line in kept)
            char = 0
            # pdfium joins a word it split with a hyphen at a line end itself, marking the
            # place with U+FFFE: the mark goes, the word reads whole.
            for piece in body.split("\ufffe"):
                put(piece, line, char)
                char += len(piece) + 1
            previous = line
        if not kept:
            starts.append(size)
    if title is None:  # the first line, if it is short enough to be a heading
        first = next((line.text for lines in pages for line in lines), "")
        title = first if 0 < len(first.split()) <= 12 else None
    return Extracted("pdf", "".join(text), title, starts, runs)


def pdf_boxes(
    data: bytes, runs: Sequence[Run], start: int, end: int
) -> dict[int, list[tuple[float, float, float, float]]]:
    """The boxes (left, bottom, right, top, in PDF points) of text ``[start, end)``, by page.

    One box per line of the page: the characters of a run are merged into the box that
    holds them.
    """
    import pypdfium2 as pdfium

    boxes: dict[int, list[tuple[float, float, float, float]]] = {}
    textpages: dict[int, Any] = {}  # each page's text loaded once, for all its runs
    pdf = pdfium.PdfDocument(data)
    try:
        for run in runs:
            lo, hi = max(start, run.start), min(end, run.start + run.length)
            if lo >= hi:
                continue
            if run.page not in textpages:
                textpages[run.page] = pdf[run.page].get_textpage()
            textpage = textpages[run.page]
            chars = [textpage.get_charbox(run.char + i - run.start) for i in range(lo, hi)]
            chars = [c for c in chars if c[2] > c[0]]
            if chars:
                box = (min(c[0] for c in chars), min(c[1] for c in chars),
                       max(c[2] for c in chars), max(c[3] for c in chars))  # fmt: skip
                boxes.setdefault(run.page, []).append(box)
    finally:
        pdf.close()
    return boxes


def render_page(
    data: bytes,
    page: int,
    boxes: Sequence[tuple[float, float, float, float]] = (),
    scale: float = 1.5,
) -> bytes:
    """PNG of the 0-based ``page``, with ``boxes`` (PDF points) lit up in yellow."""
    import numpy as np
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        pdf_page = pdf[page]
        height = pdf_page.get_height()
        bitmap = pdf_page.render(scale=scale, rev_byteorder=True)  # RGB(A), not BGR(A)
        image = np.array(bitmap.to_numpy()[..., :3], dtype=np.float32)
    finally:
        pdf.close()
    rows, cols = image.shape[:2]
    for left, bottom, right, top in boxes:
        y0, y1 = (
            max(int((height - top) * scale) - 1, 0),
            min(int((height - bottom) * scale) + 2, rows),
        )
        x0, x1 = max(int(left * scale) - 1, 0), min(int(right * scale) + 2, cols)
        if y0 < y1 and x0 < x1:
            image[y0:y1, x0:x1] = 0.62 * image[y0:y1, x0:x1] + 0.38 * np.array(_YELLOW)
    return _png(image.round().clip(0, 255).astype(np.uint8))


_YELLOW = (255.0, 221.0, 0.0)


def _png(rgb: Any) -> bytes:
    """An 8-bit RGB array as a PNG file: rows, each with filter 0, deflated."""
    import numpy as np

    rows, cols = rgb.shape[:2]
    raw = np.concatenate([np.zeros((rows, 1), dtype=np.uint8), rgb.reshape(rows, cols * 3)], 1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))  # fmt: skip

    header = struct.pack(">IIBBBBB", cols, rows, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))  # fmt: skip


# --- HTML and DOCX ----------------------------------------------------------------------


# What frames a page's content, or is no text, removed before the main text is read.
_CHROME = "nav, header, footer, aside, form, script, style, noscript, template, iframe, svg"
_BLOCKS = "h1, h2, h3, h4, h5, h6, p, li, tr, blockquote, pre, dt, dd, figcaption, caption"


def _html(data: bytes, name: str) -> Extracted:
    """The main content of a page: its ``<main>``, else its one ``<article>``, else its body.

    Navigation, headers, footers, asides, forms and scripts are removed first; then each
    block (a heading, a paragraph, a list item, a table row as ``cell | cell``) is one
    paragraph of the text, in document order.
    """
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(data.decode("utf-8", errors="replace"))
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    for node in tree.css(_CHROME):
        node.decompose()
    articles = tree.css("article")
    root = tree.css_first("main") or (articles[0] if len(articles) == 1 else None) or tree.body
    blocks: list[str] = []
    for node in root.css(_BLOCKS) if root is not None else []:
        if node.css_first(_BLOCKS) is not None:
            continue  # its inner blocks are read one by one
        if node.tag == "tr":
            cells = [" ".join(c.text(separator=" ").split()) for c in node.css("th, td")]
            body = " | ".join(c for c in cells if c)
        else:
            body = " ".join(node.text(separator=" ").split())
        if body:
            blocks.append(body)
    if not blocks and root is not None:  # text in bare divs: its lines, as they stand
        blocks = [" ".join(line.split()) for line in root.text(separator="\n").splitlines()]
        blocks = [b for b in blocks if b]
    if not blocks:
        raise ExtractionError(f"{name}: the page has no main text (navigation or scripts only)")
    h1 = tree.css_first("h1")
    title = title or (" ".join(h1.text().split()) if h1 is not None else "")
    return Extracted("html", "\n\n".join(blocks), title[:500] or None)


def _docx(data: bytes, name: str) -> Extracted:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many kinds on a damaged package
        raise ExtractionError(f"{name}: the Word file is damaged or truncated ({exc})") from exc
    blocks: list[str] = []
    heading: str | None = None
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            body = " ".join(item.text.split())
            if body:
                style = (item.style.name if item.style is not None else "") or ""
                if heading is None and (style.startswith("Heading") or style == "Title"):
                    heading = body
                blocks.append(body)
        elif isinstance(item, Table):
            for row in item.rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                if any(cells):
                    blocks.append(" | ".join(dict.fromkeys(cells)))
    title = (document.core_properties.title or "").strip() or heading
    return Extracted("docx", "\n\n".join(blocks), title)
