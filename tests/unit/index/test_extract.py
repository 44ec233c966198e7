"""Documents as people keep them: PDF, HTML and Word read into the text that offsets point into,
and every file that gives no text refused with a reason."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from index import ExtractionError, extract, page_of, pdf_boxes, read_documents, render_page

FILES = Path(__file__).resolve().parents[2] / "data" / "files"


def _read(name: str) -> bytes:
    return (FILES / name).read_bytes()


def _docx(*paragraphs: str, table: list[list[str]] | None = None, title: str = "") -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("Quarterly report", level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
        document.add_paragraph("The table above lists the offices.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_a_pdf_reads_as_whole_sentences_with_the_page_each_starts_on() -> None:
    found = extract(_read("pdflatex-4-pages.pdf"), "paper.pdf")
    assert found.kind == "pdf" and found.pages is not None and len(found.pages) == 4
    assert found.pages[0] == 0 and found.pages == sorted(found.pages)
    # Line breaks inside a paragraph are spaces: no line of the page survives as a line.
    paragraphs = [p for p in found.text.split("\n\n") if p.strip()]
    assert all("\n" not in p for p in paragraphs)
    assert max(len(p) for p in paragraphs) > 200
    # A sentence that runs onto the next page reads whole across the page break.
    assert "you will get no information" in found.text
    # A running page number at the foot of each page is left out.
    assert not any(p.strip().isdigit() for p in paragraphs)
    last_page_text = found.text[found.pages[3] :]
    assert page_of(found.pages, found.pages[3] + 1) == 4 and last_page_text.strip()
    assert page_of(found.pages, 0) == 1 and page_of(None, 10) is None


def test_every_run_of_pdf_text_is_the_page_characters_it_came_from() -> None:
    import pypdfium2 as pdfium

    data = _read("pdflatex-4-pages.pdf")
    found = extract(data, "paper.pdf")
    pdf = pdfium.PdfDocument(data)
    for run in found.runs[:200]:
        page_text = pdf[run.page].get_textpage().get_text_range()
        assert found.text[run.start : run.start + run.length] == page_text[
            run.char : run.char + run.length
        ] or page_text[run.char : run.char + run.length].endswith("-")
    pdf.close()


def test_a_cited_sentence_is_lit_up_on_its_page_image() -> None:
    from PIL import Image

    data = _read("pdflatex-4-pages.pdf")
    found = extract(data, "paper.pdf")
    assert found.pages is not None
    start = found.pages[1] + 10
    boxes = pdf_boxes(data, found.runs, start, start + 60)
    assert list(boxes) == [1] and boxes[1]
    plain = Image.open(io.BytesIO(render_page(data, 1)))
    lit = Image.open(io.BytesIO(render_page(data, 1, boxes[1])))
    assert plain.size == lit.size and plain.format == "PNG"
    assert _yellow(lit) > 50  # the highlight is drawn
    assert _yellow(plain) == 0


def _yellow(image: object) -> int:
    import numpy as np

    rgb = np.asarray(image.convert("RGB")).astype(int)  # type: ignore[attr-defined]
    return int(((rgb[..., 0] > 200) & (rgb[..., 1] > 180) & (rgb[..., 2] < 150)).sum())


def test_two_columns_are_read_one_after_the_other() -> None:
    found = extract(_read("multicolumn.pdf"), "multicolumn.pdf")
    assert found.kind == "pdf" and found.text.strip()
    # No line of running text is glued to a line of the other column: pdfium gives the
    # columns in the order they are set, and paragraphs read whole.
    assert all("\n" not in p for p in found.text.split("\n\n"))
    # Each row of the table on page 3 stands alone: rows never run together, or into prose.
    paragraphs = found.text.split("\n\n")
    assert "Austria 8.9 83,879 Vienna German" in paragraphs
    # A word the typesetter split with a hyphen at a line end reads whole.
    assert "adipiscing elit" in found.text and "\ufffe" not in found.text
    assert found.title == "Two-Column Document with Lorem Ipsum"


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [
        ("libreoffice-writer-password.pdf", 422, "encrypted"),
        ("imagemagick-lzw.pdf", 422, "no text layer"),
    ],
)
def test_a_pdf_without_text_is_refused_with_its_reason(name: str, status: int, says: str) -> None:
    with pytest.raises(ExtractionError) as refused:
        extract(_read(name), name)
    assert refused.value.status == status and says in str(refused.value)


def test_a_truncated_pdf_a_wrong_name_and_a_page_limit_are_refused() -> None:
    data = _read("pdflatex-4-pages.pdf")
    with pytest.raises(ExtractionError, match="damaged or truncated"):
        extract(data[: len(data) // 3], "cut.pdf")
    with pytest.raises(ExtractionError, match="name says DOCX but the bytes are PDF") as wrong:
        extract(data, "report.docx")
    assert wrong.value.status == 415
    with pytest.raises(ExtractionError, match="4 pages; the limit is 3") as long:
        extract(data, "paper.pdf", max_pages=3)
    assert long.value.status == 413
    # Text that speaks of a PDF header is text.
    assert extract(b"Every PDF file opens with %PDF-1.7, then objects.", "notes.txt").kind == "text"
    with pytest.raises(ExtractionError, match="image/png") as image:
        extract(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "photo.txt")
    assert image.value.status == 415


def test_a_web_page_keeps_its_article_without_navigation_or_scripts() -> None:
    found = extract(_read("article.html"), "page.html")
    assert found.kind == "html" and found.pages is None
    assert found.title == "Renault and Geely sign a memorandum on hybrid cars"
    assert "memorandum of understanding" in found.text and "Renault Samsung" in found.text
    for noise in ("Sign in", "dataLayer", "Accept all", "Most read", "All rights reserved"):
        assert noise not in found.text
    # The type is read from the bytes: an HTML page named .txt is still read as a page.
    assert extract(_read("article.html"), "page.txt").kind == "html"


def test_html_with_no_text_is_refused() -> None:
    page = b"<!doctype html><html><head><script>x()</script></head><body><nav>Home</nav></body>"
    with pytest.raises(ExtractionError, match="no main text"):
        extract(page, "empty.html")


def test_a_word_file_keeps_its_paragraphs_and_tables_in_order() -> None:
    data = _docx(
        "Revenue rose by 12 percent in the quarter.",
        "The board approved a new office in Lyon.",
        table=[["City", "Staff"], ["Lyon", "40"], ["Porto", "25"]],
    )
    found = extract(data, "report.docx")
    assert found.kind == "docx" and found.title == "Quarterly report"
    text = found.text
    assert text.index("Revenue rose") < text.index("Lyon | 40") < text.index("table above")
    assert extract(_docx("Body.", title="Annual plan"), "plan.docx").title == "Annual plan"
    with pytest.raises(ExtractionError, match="damaged or truncated"):
        extract(data[:-200] + b"\0" * 200, "report.docx")


def test_files_on_disk_become_documents_and_keep_their_originals(tmp_path: Path) -> None:
    (tmp_path / "paper.pdf").write_bytes(_read("pdflatex-4-pages.pdf"))
    (tmp_path / "page.html").write_bytes(_read("article.html"))
    (tmp_path / "report.docx").write_bytes(_docx("Revenue rose by 12 percent."))
    originals: list[tuple[str, bytes]] = []
    docs = read_documents(sorted(tmp_path.iterdir()), originals)
    by_id = {d.doc_id: d for d in docs}
    assert set(by_id) == {"paper", "page", "report"}
    assert by_id["paper"].pages is not None and len(by_id["paper"].pages or []) == 4
    assert by_id["page"].pages is None and by_id["page"].title.startswith("Renault and Geely")
    assert {name for name, _ in originals} == {d.original for d in docs}
    assert all(d.original and d.original.endswith(("pdf", "html", "docx")) for d in docs)
