"""The CSV export's cell rule: nothing a spreadsheet would run or split, numbers as numbers."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interfaces.http.listing import cell

UNSAFE_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


@pytest.mark.parametrize(
    "text",
    ["=1+2", "+cmd|' /C calc'!A0", "-2-3", "@SUM(A1)", "\tx", "\rx", "\nx", "\0x", "-", "+",
     "-5x", "--5", "-1.5.2", "+3 ", "-inf", "-nan", "- 5", "=5"],
)  # fmt: skip
def test_text_a_spreadsheet_would_run_or_split_gets_a_leading_quote(text: str) -> None:
    assert cell(text) == f"'{text}"


@pytest.mark.parametrize("text", ["-5", "-1.5", "+3", "-0", "-.5", "+1e5", "-2.5E-3", "-7."])
def test_a_plain_number_stays_a_number(text: str) -> None:
    assert cell(text) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ""), (-5, "-5"), (-1.5, "-1.5"), (0, "0"), (True, "true"),
     ({"a": "=1"}, '{"a":"=1"}'), (["-x"], '["-x"]'), ("plain", "plain"), ("", "")],
)  # fmt: skip
def test_values_that_are_not_text_are_json(value: object, expected: str) -> None:
    assert cell(value) == expected


@given(st.text())
def test_no_cell_starts_unsafe_unless_it_is_a_plain_number(text: str) -> None:
    out = cell(text)
    if out.startswith(UNSAFE_START):
        assert out == text
        float(out)  # a number, which a spreadsheet reads as one
    assert out in (text, f"'{text}")


@given(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
def test_every_number_is_written_as_json_without_a_quote(number: float) -> None:
    assert cell(number) == json.dumps(number)


@given(st.lists(st.text(), min_size=2, max_size=5))
def test_a_row_of_cells_reads_back_as_the_same_cells(texts: list[str]) -> None:
    cells = [cell(text) for text in texts]
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    assert list(csv.reader(io.StringIO(out.getvalue(), newline=""))) == [cells]
