"""The playground page in a real browser: Debian's Chromium driven by Playwright.

The page is served by a live server over the fake runtime, so the answers are scripted;
what is under test is the page: streaming, markers, highlights from offsets, abstention,
the document list and the drop zone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pydantic import SecretStr

from tests.conftest import ROOT, QueuedUpstream, cma_reply

CHROMIUM = Path("/usr/bin/chromium")
KOREA = "Which platform underpins the Korean models?"
ROCKET = "The rocket 🚀🌕 burns methane fuel."
EMOJI_DOC = f"Launch day 👩‍🚀 was loud. {ROCKET} Crews boarded at dawn 🌅."
SCREENSHOT = ROOT / "var" / "screenshots" / "playground-answer.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` "
            "(scripts/setup does so when it can)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


def _ask(page: Page, question: str, state: str) -> None:
    page.get_by_label("Question").fill(question)
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.locator(f'#answer[data-state="{state}"]')).to_be_visible()


def _sentence(base: str, doc_id: str, needle: str) -> str:
    doc = httpx.get(f"{base}/v1/documents/{doc_id}").json()
    (text,) = [s["text"] for s in doc["sentences"] if needle in s["text"]]
    return str(text)


def _label_after_rewarm(upstream: QueuedUpstream, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for request in reversed(upstream.requests):
            system = request["messages"][0]["content"]
            lines = [ln for ln in system.splitlines() if needle in ln]
            if lines:
                return lines[0].split("]")[0] + "]"
        time.sleep(0.05)
    raise AssertionError(f"no prompt showed {needle!r}")


def _open(browser: Browser, base: str) -> tuple[Page, list[str]]:
    """The page at ``base``, and the JavaScript errors it raises."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base + "/")
    return page, errors


def _drop(page: Page, upload: Path) -> None:
    """Add a file through the drop zone, with the admin key."""
    page.get_by_text("Add a document").click()
    page.get_by_label("Admin key").fill("admin-1")
    with page.expect_file_chooser() as chooser:
        page.locator("#drop-zone").press("Enter")
    chooser.value.set_files(str(upload))


def test_the_playground_lights_up_cited_sentences_and_says_when_documents_do_not(
    live_server: Callable[..., str],
    upstream: QueuedUpstream,
    browser: Browser,
    tmp_path: Path,
) -> None:
    base = live_server(admin_keys=SecretStr("admin-1"))
    page, errors = _open(browser, base)
    expect(
        page.get_by_role("button", name=re.compile(r"^Renault and Geely sign .* \(\d+ sentences\)"))
    ).to_be_visible()

    # A cited answer; its marker lights up the exact sentence in the document.
    upstream.queue(cma_reply(upstream))
    _ask(page, KOREA, "done")
    page.get_by_role("button", name="Show source 1 in its document").click()
    lit = page.locator("mark.current")
    expect(lit).to_have_text(_sentence(base, "renault-geely-mou", "Lingke"))
    assert lit.evaluate("e => document.activeElement === e")  # focus follows the marker
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # An unanswerable question is said plainly, with nothing cited.
    upstream.queue("NOT FOUND")
    _ask(page, "What colour is the Geely logo?", "abstained")
    expect(page.locator("#answer")).to_contain_text("The documents don't say.")
    expect(page.locator("#sources li")).to_have_count(0)

    # A document with emoji, added through the drop zone: offsets count code points.
    upload = tmp_path / "launch.txt"
    upload.write_text(EMOJI_DOC, encoding="utf-8")
    _drop(page, upload)
    expect(page.locator("#add-status")).to_contain_text("Added launch")
    expect(page.get_by_role("button", name="launch (3 sentences)")).to_be_visible()
    label = _label_after_rewarm(upstream, "methane")
    upstream.queue(f"The rocket burns methane fuel {label}.")
    _ask(page, "What fuel does the rocket burn?", "done")
    page.get_by_role("button", name="Show source 1 in its document").click()
    expect(page.locator("mark.current")).to_have_text(ROCKET)
    assert errors == []


def test_with_api_keys_the_page_asks_for_one_and_keeps_it_in_memory(
    live_server: Callable[..., str], upstream: QueuedUpstream, browser: Browser
) -> None:
    base = live_server(api_keys=SecretStr("reader-key"))
    page = browser.new_page()
    page.goto(base + "/")
    key = page.get_by_label("API key")
    expect(key).to_be_visible()  # the document list got a 401
    key.fill("reader-key")
    expect(page.get_by_role("button", name=re.compile(r"^Renault and Geely sign"))).to_be_visible()
    upstream.queue(cma_reply(upstream))
    _ask(page, KOREA, "done")
    assert page.evaluate("() => [localStorage.length, sessionStorage.length]") == [0, 0]
    assert "reader-key" not in page.evaluate("() => document.cookie")


PLANT = "𠀋武汉新工厂将于五月投产。"  # an astral character first: two UTF-16 units, one code point
CHINESE_DOC = f"吉利发布公告。{PLANT}年产能为十万辆。"
CHINESE_SHOT = ROOT / "var" / "screenshots" / "playground-chinese.png"


def test_the_playground_lights_the_right_characters_of_a_chinese_document(
    live_server: Callable[..., str],
    upstream: QueuedUpstream,
    browser: Browser,
    tmp_path: Path,
) -> None:
    base = live_server(admin_keys=SecretStr("admin-1"))
    page, errors = _open(browser, base)
    upload = tmp_path / "wuhan.txt"
    upload.write_text(CHINESE_DOC, encoding="utf-8")
    _drop(page, upload)
    expect(page.get_by_role("button", name="wuhan (3 sentences)")).to_be_visible()
    label = _label_after_rewarm(upstream, "五月投产")
    # Its own words find the plant: the question is asked as it is, not translated.
    upstream.queue(f"将于五月投产 {label}.")
    _ask(page, "武汉新工厂什么时候投产？", "done")
    expect(page.locator("#answer")).to_contain_text("五月投产")
    page.get_by_role("button", name="Show source 1 in its document").click()
    expect(page.locator("mark.current")).to_have_text(PLANT)
    CHINESE_SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(CHINESE_SHOT), full_page=True)
    assert errors == []


PDF_SHOT = ROOT / "var" / "screenshots" / "playground-pdf-page.png"
PDF = ROOT / "tests" / "data" / "files" / "multicolumn.pdf"


def test_a_pdf_citation_shows_its_page_with_the_sentence_lit_up(
    live_server: Callable[..., str],
    upstream: QueuedUpstream,
    browser: Browser,
    tmp_path: Path,
) -> None:
    # The whole corpus in the prompt, so the warm-up shows every sentence's label.
    base = live_server(admin_keys=SecretStr("admin-1"), whole_corpus_chars=50_000)
    page, errors = _open(browser, base)
    upload = tmp_path / "lorem.pdf"
    upload.write_bytes(PDF.read_bytes())
    _drop(page, upload)
    expect(page.locator("#add-status")).to_contain_text("Added Two-Column Document")
    doc = httpx.get(f"{base}/v1/documents/lorem").json()
    second, third = doc["pages"][1], doc["pages"][2]
    sentence = next(
        s["text"] for s in doc["sentences"]
        if second < s["start"] < third and doc["text"].count(s["text"]) == 1
        and len(s["text"]) > 40
    )  # fmt: skip
    label = _label_after_rewarm(upstream, sentence[:30])
    upstream.queue(f"{sentence.rstrip('.')} {label}.")
    _ask(page, f"What does the paper say of {' '.join(sentence.split()[:5])}?", "done")
    page.get_by_role("button", name="Show source 1 in its document").click()
    expect(page.locator("mark.current")).to_have_text(sentence)
    expect(page.locator("#page-caption")).to_have_text(
        re.compile(r"^\[1\] on page 2 of Two-Column")
    )
    image = page.locator("#page-image")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.getElementById('page-image').naturalWidth > 0")
    # The image is the page with the sentence lit up: yellow pixels, as the server drew them.
    yellow = image.evaluate(
        """img => {
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4)
                if (d[i] > 200 && d[i + 1] > 180 && d[i + 2] < 150) n++;
            return n;
        }"""
    )
    assert yellow > 100
    PDF_SHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PDF_SHOT), full_page=True)
    assert errors == []
