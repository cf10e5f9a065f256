"""The cold-start teacher's turns, as a table of cases (no model: the turn depends only on the text so far)."""

import pytest

from zerosearch_rl.records import QAExample
from zerosearch_rl.wiki_recipe.cold_start import teacher_turn

EX = QAExample(id="q", question="Who painted the Mona Lisa?", answers=("Leonardo da Vinci",),
               metadata={"evidence": ["Mona Lisa"]})
PAGE_WITH = "<information>Doc 1 (Title: Mona Lisa) painted by Leonardo da Vinci.</information>"
PAGE_WITHOUT = "<information>Doc 1 (Title: Louvre) a museum in Paris.</information>"


@pytest.mark.parametrize(("response", "expected"), [
    ("", "<search> Who painted the Mona Lisa? </search>"),                          # first: the question
    (f"<search> q </search>{PAGE_WITH}", "<answer> Leonardo da Vinci </answer>"),  # the pages hold it
    (f"<search> q </search>{PAGE_WITHOUT}", "<search> Mona Lisa </search>"),       # else the evidence title
    (f"<search> q </search>{PAGE_WITH}<search> t </search>{PAGE_WITHOUT}",         # only the last block counts
     "<answer> </answer>"),
    (f"<search> q </search>{PAGE_WITHOUT}<search> t </search>{PAGE_WITH}", "<answer> Leonardo da Vinci </answer>"),
    (f"<search> q </search>{PAGE_WITHOUT}<search> t </search>{PAGE_WITHOUT}", "<answer> </answer>"),  # dropped
])
def test_the_teacher_answers_only_from_the_last_page_it_read(response: str, expected: str) -> None:
    assert teacher_turn(EX, response) == expected
