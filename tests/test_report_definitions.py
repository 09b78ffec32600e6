"""The page's "Metric definitions" are the README's "What the report says" table, row for
row (review of issue 14, item 10: they had drifted apart)."""

from __future__ import annotations

from pathlib import Path

from bench.report.definitions import DEFINITIONS
from bench.report.html import _definition

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_rows() -> list[tuple[str, str]]:
    text = README.read_text()
    table = text[text.index("| figure | definition |") :].split("\n\n")[0].splitlines()[2:]
    return [tuple(c.strip() for c in row.strip().strip("|").split(" | ", 1)) for row in table]


def test_the_page_defines_every_figure_as_the_readme_does():
    assert list(DEFINITIONS) == _readme_rows()


def test_definitions_render_code_spans_and_escape_the_rest():
    assert (
        str(_definition("`E_meta` < 1 & `x`")) == "<code>E_meta</code> &lt; 1 &amp; <code>x</code>"
    )


def test_the_energy_sentence_of_a_run_with_nothing_finished():
    from bench.report.page import energy_sentence

    # review of issue 15, item 14: an empty run is not "covered by no meter"
    assert energy_sentence({})[0] == "No cell of this run finished: nothing was metered yet."
    assert "No meter and no model" in energy_sentence({"cpu": {"none"}})[0]
