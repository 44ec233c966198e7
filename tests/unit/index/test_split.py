from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from index import split_sentences, split_spans, tokenize
from tests.conftest import ARTICLE_TEXT, CMA

QUIRKY = st.sampled_from(
    [" . ", " , ", "、", "――", "●", "\n", "\n\n", "  ", "\u00a0", "(MoU),", "Mr.", "U.S.", "?", "!",
     "[ Car home ]", "“", "”", "3.5", "18 10000", "e.g.", "\t", "。", "！", "？", "；", "」",
     "）", "雷诺集团", "吉利控股签署了备忘录", "“这是新的开始。”", "她说：", "ですか？"]
)  # fmt: skip
TEXTS = st.lists(st.one_of(st.text(max_size=12), QUIRKY), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_spans_are_exact_ordered_and_cover_all_non_space_text(text: str) -> None:
    spans = split_spans(text)
    covered = []
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip() and piece
        covered.append(piece)
        previous_end = end
    assert "".join("".join(covered).split()) == "".join(text.split())


@settings(max_examples=100, deadline=None)
@given(TEXTS)
def test_sentence_text_is_the_document_slice(text: str) -> None:
    for sentence in split_sentences("d", text):
        assert text[sentence.start : sentence.end] == sentence.text


def test_article_quirks() -> None:
    sentences = [s.text for s in split_sentences("article", ARTICLE_TEXT)]
    cma = [s for s in sentences if CMA in s]
    assert cma == [
        "Renault group and Geely Holding will be based on Lingke energy saving platform CMA "
        "Cooperate with the architecture , Jointly develop models suitable for the Korean market ."
    ]
    # "(MoU)," does not end a sentence, and " . " does.
    assert any("(MoU), Build innovative partnerships ." in s for s in sentences)
    assert sentences[0].startswith("[ Car home")
    assert "● About Renault group" in sentences
    # The 、 lists and ―― stay inside their sentences.
    assert any(
        s.startswith("Renault group has five brands ――") and "Mobilize" in s for s in sentences
    )
    assert any("18 10000 employees" in s for s in sentences)
    assert all(not s.endswith(",") for s in sentences)


def test_single_line_breaks_do_not_split_wrapped_sentences() -> None:
    text = "The method of producing O\n2 gas uses sieves. It works.\n\nNext paragraph"
    assert [text[a:b] for a, b in split_spans(text)] == [
        "The method of producing O\n2 gas uses sieves.",
        "It works.",
        "Next paragraph",
    ]


def test_sentence_ids_depend_on_document_and_content_only() -> None:
    before = {
        s.text: s.sentence_id for s in split_sentences("doc", "Alpha one. Beta two. Gamma three.")
    }
    after = {
        s.text: s.sentence_id for s in split_sentences("doc", "New first. Alpha one. Beta two.")
    }
    assert after["Alpha one."] == before["Alpha one."]
    assert after["Beta two."] == before["Beta two."]
    other_doc = {s.text: s.sentence_id for s in split_sentences("other", "Alpha one.")}
    assert other_doc["Alpha one."] != before["Alpha one."]


def test_repeated_sentences_get_distinct_ids() -> None:
    ids = [s.sentence_id for s in split_sentences("doc", "Same. Same. Same.")]
    assert len(set(ids)) == 3


def test_chinese_sentences_end_at_their_enders_with_exact_offsets() -> None:
    text = (
        "雷诺集团和吉利控股签署了谅解备忘录。双方将在中国和韩国合作！"
        "“这是新的开始。”Renault is big."
    )
    sentences = split_sentences("zh", text)
    assert [s.text for s in sentences] == [
        "雷诺集团和吉利控股签署了谅解备忘录。",
        "双方将在中国和韩国合作！",
        "“这是新的开始。”",
        "Renault is big.",
    ]
    assert all(text[s.start : s.end] == s.text for s in sentences)


def test_chinese_is_searched_by_character_bigrams_and_english_by_stems() -> None:
    assert tokenize("吉利控股基于CMA平台") == [
        "吉利",
        "利控",
        "控股",
        "股基",
        "基于",
        "cma",
        "平台",
    ]
    assert tokenize("Renault group and Geely Holding") == ["renault", "group", "geeli", "hold"]
    assert tokenize("车 and 船") == ["车", "船"]  # a lone character is its own token
