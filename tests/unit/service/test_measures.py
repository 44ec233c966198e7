from __future__ import annotations

import pytest

from service.answering import entities_supported, numbers_supported

SALES = (
    "Renault group is in 130 Many countries sell cars , In the world with 18 10000 employees ,"
    "2020 The global sales volume was nearly 300 Ten thousand units ."
)


@pytest.mark.parametrize(
    ("claim", "ok"),
    [
        ("Renault has 180,000 employees.", True),
        ("Renault has 18 10000 employees.", True),
        ("Sales were about 3 million units in 2020.", True),
        ("The two sides cooperate.", True),
        ("Renault compte 180 000 employés.", True),  # thousands grouped by a space
        ("Renault emploie 18万名员工。", True),
        ("Ventes : 3 millions d'unités en 2020.", True),
        ("Ventes : 300 000 unités.", False),  # not "300 Ten thousand"
        ("Renault has 200,000 employees.", False),
        ("Revenue was 10 billion yuan.", False),
    ],
)
def test_claimed_figures_must_be_stated_by_the_source(claim: str, ok: bool) -> None:
    assert numbers_supported(claim, SALES) is ok


def test_invented_names_are_unsupported() -> None:
    source = "Geely Holding Group has mature industrial layout ."
    assert entities_supported("Geely Holding Group has a mature layout.", source, "What?")
    assert not entities_supported("The CEO of Geely is Li Shufu.", source, "Who is the CEO?")
    assert entities_supported("Its CEO is unnamed.", source, "Who is the CEO?")


def test_long_runs_of_numbers_combine_only_a_few_neighbours() -> None:
    from service.answering import numbers_in

    assert 3_000_000 in numbers_in("nearly 300 Ten thousand units")
    run = numbers_in(" ".join(["2"] * 3500))
    assert run == {2.0, 4.0, 8.0, 16.0}  # products of up to four neighbours, not 2**3500
