"""The citeqa command: index builds keep an existing index unless told to replace it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from service._cli import main
from tests.conftest import ARTICLE


def test_index_build_never_silently_replaces_an_index(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "index"
    first = runner.invoke(main, ["index", "build", str(ARTICLE), "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "indexed 1 documents, 17 sentences" in first.output
    again = runner.invoke(main, ["index", "build", str(ARTICLE), "--out", str(out)])
    assert again.exit_code != 0 and "already holds an index" in again.output
    replaced = runner.invoke(main, ["index", "build", str(ARTICLE), "--out", str(out), "--force"])
    assert replaced.exit_code == 0, replaced.output


def test_eval_keeps_to_an_index_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "served"
    monkeypatch.setenv("CITEQA_INDEX_DIR", str(served))
    result = CliRunner().invoke(main, ["eval", "--mode", "extractive", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "questions: 2" in result.output
    assert not served.exists()  # documents added to the served index cannot sway the figures
    assert [p.name[:5] for p in tmp_path.iterdir()] == ["eval-"]
