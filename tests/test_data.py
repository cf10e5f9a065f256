"""Data files: ZeroSearch/Search-R1 parquet and JSONL read into ``QAExample``s, errors, round trips."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zerosearch_rl.data import DataError, load_examples, read_examples, write_jsonl, write_zerosearch_parquet
from zerosearch_rl.protocol import INSTRUCTION, instruction
from zerosearch_rl.records import QAExample

# (source, question, gold answers), in file order. ``index`` restarts at 0 for each source, exactly as
# in the preprocessing scripts, which process one source at a time and then concatenate.
FIELD_DATA = [
    ("nq", "who wrote the declaration of independence?", ["Thomas Jefferson"]),
    ("nq", "when did the first man land on the moon?", ["1969", "July 20, 1969"]),
    ("nq", "what is the capital of portugal?", ["Lisbon"]),
    ("hotpotqa", "Which band formed first, Blur or Oasis?", ["Blur"]),
    ("hotpotqa", "Who directed the film in which Tom Hanks plays a FedEx employee?", ["Robert Zemeckis"]),
]

# Fact from PeterGriffinJin/Search-R1 scripts/data_process/nq_search.py (make_prefix, "base") and ZeroSearch's
# inference.py: the instruction of the field's parquet rows, up to the question.
SEARCH_R1_PREFIX = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time "
    "you get new information. After reasoning, if you find you lack some knowledge, you can call a search "
    "engine by <search> query </search> and it will return the top searched results between <information> "
    "and </information>. You can search as many times as your want. If you find no further external "
    "knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed "
    "illustrations. For example, <answer> Beijing </answer>. Question: "
)


def field_rows(split: str = "train") -> list[dict]:
    """Rows as the ZeroSearch / Search-R1 preprocessing scripts produce them."""
    rows = []
    counters: dict[str, int] = {}
    for source, question, answers in FIELD_DATA:
        index = counters.get(source, 0)
        counters[source] = index + 1
        rows.append({
            "data_source": source,
            "prompt": [{"role": "user", "content": SEARCH_R1_PREFIX + question + "\n"}],
            "ability": "fact-reasoning",
            "reward_model": {"style": "rule", "ground_truth": {"target": list(answers)}},
            "extra_info": {"split": split, "index": index},
            "question": question,
            "golden_answers": list(answers),
        })
    return rows


def write_rows(rows: list[dict], path: Path, writer: str = "pyarrow") -> Path:
    if writer == "pandas":
        pd = pytest.importorskip("pandas")
        pd.DataFrame(rows).to_parquet(path, index=False)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def loc(path: Path) -> str:
    """The start of every error message about ``path``."""
    return re.escape(str(path))


# --- 1. the field's parquet ---------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["pyarrow", "pandas"])
def test_field_parquet_reads_every_example(tmp_path, writer):
    path = write_rows(field_rows(), tmp_path / "train.parquet", writer)
    examples = read_examples(path)
    assert [(e.source, e.question, list(e.answers)) for e in examples] == [
        (s, q, a) for s, q, a in FIELD_DATA
    ]
    assert all(isinstance(a, str) for e in examples for a in e.answers)
    assert all(isinstance(e.answers, tuple) for e in examples)


@pytest.mark.parametrize("writer", ["pyarrow", "pandas"])
def test_field_parquet_ids_are_unique_although_indexes_repeat(tmp_path, writer):
    rows = field_rows()
    # The premise: the raw index is not unique across sources.
    assert [r["extra_info"]["index"] for r in rows] == [0, 1, 2, 0, 1]
    path = write_rows(rows, tmp_path / "train.parquet", writer)
    ids = [e.id for e in read_examples(path)]
    assert len(set(ids)) == len(ids) == 5
    assert ids == ["nq-train-0", "nq-train-1", "nq-train-2", "hotpotqa-train-0", "hotpotqa-train-1"]


def test_field_parquet_ids_are_stable(tmp_path):
    path = write_rows(field_rows(), tmp_path / "train.parquet")
    first = {e.question: e.id for e in read_examples(path)}
    second = {e.question: e.id for e in read_examples(path)}
    assert first == second
    # The id follows the row's own (source, split, index), not its position in the file.
    shuffled = write_rows(list(reversed(field_rows())), tmp_path / "shuffled.parquet")
    assert {e.question: e.id for e in read_examples(shuffled)} == first


def test_field_parquet_split_keeps_ids_of_train_and_test_apart(tmp_path):
    train = write_rows(field_rows("train"), tmp_path / "train.parquet")
    test = write_rows(field_rows("test"), tmp_path / "test.parquet")
    examples = load_examples([train, test])
    assert len(examples) == 10
    assert len({e.id for e in examples}) == 10
    assert examples[0].metadata == {"split": "train", "index": 0, "prompt": field_rows()[0]["prompt"]}
    assert examples[5].metadata["split"] == "test" and examples[5].metadata["index"] == 0


def test_load_examples_filters_by_source(tmp_path):
    path = write_rows(field_rows(), tmp_path / "train.parquet")
    hotpot = load_examples(path, sources=["hotpotqa"])
    assert [e.question for e in hotpot] == [q for s, q, _ in FIELD_DATA if s == "hotpotqa"]
    assert {e.source for e in hotpot} == {"hotpotqa"}
    both = load_examples(str(path), sources=("nq", "hotpotqa"))
    assert len(both) == 5
    assert load_examples(path, sources=["musique"]) == []


def test_load_examples_limit_is_per_file(tmp_path):
    train = write_rows(field_rows("train"), tmp_path / "train.parquet")
    test = write_rows(field_rows("test"), tmp_path / "test.parquet")
    limited = load_examples([train, test], limit=2)
    assert [e.id for e in limited] == ["nq-train-0", "nq-train-1", "nq-test-0", "nq-test-1"]
    assert load_examples([train, test], limit=0) == []
    assert len(load_examples([train, test], limit=None)) == 10


def test_load_examples_limit_applies_after_source_filter(tmp_path):
    train = write_rows(field_rows("train"), tmp_path / "train.parquet")
    test = write_rows(field_rows("test"), tmp_path / "test.parquet")
    limited = load_examples([train, test], sources=["hotpotqa"], limit=1)
    assert [e.id for e in limited] == ["hotpotqa-train-0", "hotpotqa-test-0"]


# --- 2. where the answers come from -------------------------------------------------------------------


def test_answers_come_from_reward_model_target(tmp_path):
    rows = field_rows()[:1]
    rows[0]["reward_model"]["ground_truth"]["target"] = ["from target"]
    rows[0]["golden_answers"] = ["from golden_answers"]
    (ex,) = read_examples(write_rows(rows, tmp_path / "a.parquet"))
    assert ex.answers == ("from target",)


@pytest.mark.parametrize("writer", ["pyarrow", "pandas"])
def test_answers_fall_back_to_golden_answers_without_reward_model(tmp_path, writer):
    rows = field_rows()
    for row in rows:
        del row["reward_model"]
    examples = read_examples(write_rows(rows, tmp_path / "a.parquet", writer))
    assert [list(e.answers) for e in examples] == [a for _, _, a in FIELD_DATA]


def test_answers_fall_back_to_golden_answers_when_reward_model_is_null(tmp_path):
    rows = field_rows()[:2]
    rows[1]["reward_model"] = None
    rows[1]["golden_answers"] = ["fallback"]
    examples = read_examples(write_rows(rows, tmp_path / "a.parquet"))
    assert examples[0].answers == tuple(FIELD_DATA[0][2])
    assert examples[1].answers == ("fallback",)


def test_numeric_answers_become_strings(tmp_path):
    rows = [
        {"data_source": "nq", "question": "year of the moon landing?",
         "reward_model": {"style": "rule", "ground_truth": {"target": [1969]}},
         "extra_info": {"split": "train", "index": 0}},
    ]
    (ex,) = read_examples(write_rows(rows, tmp_path / "target.parquet"))
    assert ex.answers == ("1969",)

    rows = [{"data_source": "nq", "question": "how many moons has mars?", "golden_answers": [2]}]
    (ex,) = read_examples(write_rows(rows, tmp_path / "golden.parquet"))
    assert ex.answers == ("2",)

    path = write_lines(tmp_path / "n.jsonl", [json.dumps({"question": "q", "answers": [1969, "July 1969"]})])
    (ex,) = read_examples(path)
    assert ex.answers == ("1969", "July 1969")


def test_parquet_without_extra_info_uses_row_position(tmp_path):
    rows = [{"data_source": "nq", "question": f"q{i}", "golden_answers": ["a"]} for i in range(3)]
    examples = read_examples(write_rows(rows, tmp_path / "bare.parquet"))
    assert [e.id for e in examples] == ["nq-0", "nq-1", "nq-2"]


# --- 3. JSONL -----------------------------------------------------------------------------------------


def test_jsonl_rows(tmp_path):
    path = write_lines(tmp_path / "dev.jsonl", [
        json.dumps({"id": "q1", "question": "capital of France?", "answers": ["Paris"], "source": "nq"}),
        json.dumps({"id": "q2", "question": "  Who wrote Hamlet?  ", "answers": ["Shakespeare", "W. S."],
                    "source": "triviaqa"}),
    ])
    assert read_examples(path) == [
        QAExample(id="q1", question="capital of France?", answers=("Paris",), source="nq"),
        QAExample(id="q2", question="Who wrote Hamlet?", answers=("Shakespeare", "W. S."), source="triviaqa"),
    ]


def test_jsonl_defaults_and_blank_lines(tmp_path):
    path = write_lines(tmp_path / "mini.jsonl", [
        json.dumps({"id": "given", "question": "q one", "answers": ["a"], "source": "popqa"}),
        "",
        "   ",
        json.dumps({"question": "q four", "answers": ["b"]}),
    ])
    examples = read_examples(path)
    assert len(examples) == 2
    assert (examples[0].id, examples[0].source) == ("given", "popqa")
    # Defaults: id from the file stem and the (1-based) line number, source from the stem.
    assert (examples[1].id, examples[1].source) == ("mini-4", "mini")
    assert examples[1].question == "q four"


def test_jsonl_integer_id_becomes_string(tmp_path):
    path = write_lines(tmp_path / "ints.jsonl", [json.dumps({"id": 7, "question": "q", "answers": ["a"]})])
    assert read_examples(path)[0].id == "7"


def test_jsonl_extra_keys_go_to_metadata(tmp_path):
    row = {"id": "x", "question": "q", "answers": ["a"], "source": "musique", "level": "hard", "hops": 3,
           "support": [{"title": "t"}]}
    (ex,) = read_examples(write_lines(tmp_path / "m.jsonl", [json.dumps(row)]))
    assert ex.metadata == {"level": "hard", "hops": 3, "support": [{"title": "t"}]}


def test_jsonl_single_string_answer(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", [json.dumps({"question": "q", "answers": "Lisbon"})])
    (ex,) = read_examples(path)
    assert ex.answers == ("Lisbon",)


def test_json_extension_is_read_as_jsonl(tmp_path):
    path = write_lines(tmp_path / "rows.json", [json.dumps({"question": "q", "answers": ["a"]})])
    assert read_examples(path) == [QAExample(id="rows-1", question="q", answers=("a",), source="rows")]


# --- 4. bad input -------------------------------------------------------------------------------------


def jsonl_with_bad_row(tmp_path: Path, bad: str, row: int = 2) -> Path:
    good = [json.dumps({"question": f"good {i}", "answers": ["a"]}) for i in range(1, 4)]
    good[row - 1] = bad
    return write_lines(tmp_path / "bad.jsonl", good)


def test_error_missing_answers(tmp_path):
    path = jsonl_with_bad_row(tmp_path, json.dumps({"question": "q"}))
    with pytest.raises(DataError, match=rf"{loc(path)}: row 2: missing field 'answers'"):
        read_examples(path)


def test_error_missing_question(tmp_path):
    path = jsonl_with_bad_row(tmp_path, json.dumps({"answers": ["a"]}), row=1)
    with pytest.raises(DataError, match=rf"{loc(path)}: row 1: missing field 'question'"):
        read_examples(path)


def test_error_empty_answers(tmp_path):
    path = jsonl_with_bad_row(tmp_path, json.dumps({"question": "q", "answers": []}))
    with pytest.raises(DataError, match=rf"{loc(path)}: row 2, field 'answers': .*non-empty list"):
        read_examples(path)


def test_error_answer_not_a_string(tmp_path):
    path = jsonl_with_bad_row(tmp_path, json.dumps({"question": "q", "answers": ["ok", {"text": "x"}]}))
    with pytest.raises(DataError, match=rf"{loc(path)}: row 2, field 'answers': .*\{{'text': 'x'\}}"):
        read_examples(path)


@pytest.mark.parametrize("answer", [True, None, "   "])
def test_error_other_bad_answers(tmp_path, answer):
    path = jsonl_with_bad_row(tmp_path, json.dumps({"question": "q", "answers": [answer]}), row=3)
    with pytest.raises(DataError, match=rf"{loc(path)}: row 3, field 'answers'"):
        read_examples(path)


@pytest.mark.parametrize("question", ["", "   ", None, 12])
def test_error_bad_question(tmp_path, question):
    path = jsonl_with_bad_row(tmp_path, json.dumps({"question": question, "answers": ["a"]}))
    with pytest.raises(DataError, match=rf"{loc(path)}: row 2, field 'question'"):
        read_examples(path)


def test_error_invalid_json_row_3(tmp_path):
    path = jsonl_with_bad_row(tmp_path, '{"question": "q", "answers": ["a"]', row=3)
    with pytest.raises(DataError, match=rf"{loc(path)}: row 3: not valid JSON"):
        read_examples(path)


def test_error_row_is_a_list(tmp_path):
    path = jsonl_with_bad_row(tmp_path, json.dumps(["q", ["a"]]))
    with pytest.raises(DataError, match=rf"{loc(path)}: row 2: expected a JSON object \(one per line\), got list"):
        read_examples(path)


def test_error_row_number_counts_blank_lines(tmp_path):
    path = write_lines(tmp_path / "gaps.jsonl", [
        json.dumps({"question": "q", "answers": ["a"]}), "", json.dumps({"question": "q"}),
    ])
    with pytest.raises(DataError, match=rf"{loc(path)}: row 3: missing field 'answers'"):
        read_examples(path)


def test_error_missing_parquet_column_question(tmp_path):
    rows = field_rows()
    for row in rows:
        del row["question"]
    path = write_rows(rows, tmp_path / "noq.parquet")
    with pytest.raises(DataError, match=rf"{loc(path)}: missing column 'question'"):
        read_examples(path)


def test_error_parquet_without_any_answers_column(tmp_path):
    rows = field_rows()
    for row in rows:
        del row["reward_model"], row["golden_answers"]
    path = write_rows(rows, tmp_path / "noa.parquet")
    with pytest.raises(DataError, match=rf"{loc(path)}: needs column 'reward_model'.*'golden_answers'"):
        read_examples(path)


def test_error_parquet_empty_target_names_row_and_field(tmp_path):
    rows = field_rows()
    rows[1]["reward_model"]["ground_truth"]["target"] = []
    path = write_rows(rows, tmp_path / "empty_target.parquet")
    with pytest.raises(DataError, match=rf"{loc(path)}: row 2, field 'reward_model\.ground_truth\.target'"):
        read_examples(path)


def test_error_parquet_empty_question_names_row(tmp_path):
    rows = field_rows()
    rows[3]["question"] = "  "
    path = write_rows(rows, tmp_path / "empty_q.parquet")
    with pytest.raises(DataError, match=rf"{loc(path)}: row 4, field 'question'"):
        read_examples(path)


def test_error_parquet_missing_data_source_value(tmp_path):
    rows = field_rows()
    rows[2]["data_source"] = None
    path = write_rows(rows, tmp_path / "nosrc.parquet")
    with pytest.raises(DataError, match=rf"{loc(path)}: row 3, field 'data_source'"):
        read_examples(path)


def test_error_not_a_parquet_file(tmp_path):
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=rf"{loc(path)}: not a readable parquet file"):
        read_examples(path)


def test_error_unknown_extension_lists_formats(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("question,answers\nq,a\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{loc(path)}: unknown data format '\.csv'; valid: "
                                        r"\.parquet, \.jsonl, \.json"):
        read_examples(path)


def test_error_file_does_not_exist(tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(DataError, match=rf"{loc(path)}.*does not exist"):
        read_examples(path)
    with pytest.raises(DataError, match=rf"{loc(path)}.*does not exist"):
        load_examples([path])


def test_error_same_id_in_two_files_names_both(tmp_path):
    first = write_lines(tmp_path / "first.jsonl", [
        json.dumps({"id": "dup", "question": "q", "answers": ["a"]}),
    ])
    second = write_lines(tmp_path / "second.jsonl", [
        json.dumps({"id": "other", "question": "q", "answers": ["a"]}),
        json.dumps({"id": "dup", "question": "q2", "answers": ["b"]}),
    ])
    with pytest.raises(DataError, match=rf"^{loc(second)}: example id 'dup' repeats an id from {loc(first)}"):
        load_examples([first, second])


def test_error_same_file_loaded_twice(tmp_path):
    path = write_rows(field_rows(), tmp_path / "train.parquet")
    with pytest.raises(DataError, match=r"example id 'nq-train-0' repeats"):
        load_examples([path, path])


# --- 5. round trips -----------------------------------------------------------------------------------


def examples_interleaved() -> list[QAExample]:
    order = [0, 3, 1, 4, 2]  # nq, hotpotqa, nq, hotpotqa, nq
    return [
        QAExample(id=f"orig-{i}", question=FIELD_DATA[i][1], answers=tuple(FIELD_DATA[i][2]),
                  source=FIELD_DATA[i][0])
        for i in order
    ]


def test_parquet_round_trip(tmp_path):
    original = examples_interleaved()
    path = write_zerosearch_parquet(original, tmp_path / "out" / "train.parquet", "train")
    assert path == tmp_path / "out" / "train.parquet"
    back = read_examples(path)
    assert [(e.question, e.answers, e.source) for e in back] == [
        (e.question, e.answers, e.source) for e in original
    ]
    assert len({e.id for e in back}) == len(back)


def test_written_parquet_has_field_columns_and_per_source_index(tmp_path):
    original = examples_interleaved()
    path = write_zerosearch_parquet(original, tmp_path / "train.parquet", "train")
    table = pq.read_table(path)
    assert set(table.column_names) >= {
        "data_source", "prompt", "ability", "reward_model", "extra_info", "question", "golden_answers"
    }
    rows = table.to_pylist()
    assert [r["data_source"] for r in rows] == ["nq", "hotpotqa", "nq", "hotpotqa", "nq"]
    assert [r["extra_info"]["index"] for r in rows] == [0, 0, 1, 1, 2]
    assert {r["extra_info"]["split"] for r in rows} == {"train"}
    for r, ex in zip(rows, original, strict=True):
        assert r["reward_model"] == {"style": "rule", "ground_truth": {"target": list(ex.answers)}}
        assert r["golden_answers"] == list(ex.answers)
        assert r["question"] == ex.question


def test_written_parquet_prompt_is_one_user_message_with_instruction(tmp_path):
    original = examples_interleaved()
    path = write_zerosearch_parquet(original, tmp_path / "train.parquet", "test")
    rows = pq.read_table(path).to_pylist()
    head = INSTRUCTION.split("{question}")[0]
    for r, ex in zip(rows, original, strict=True):
        assert len(r["prompt"]) == 1
        (message,) = r["prompt"]
        assert message["role"] == "user"
        assert ex.question in message["content"]
        assert head in message["content"]
        assert message["content"] == instruction(ex.question)


def test_jsonl_round_trip(tmp_path):
    original = [
        QAExample(id="a-1", question="Qui a écrit « Les Misérables » ?", answers=("Victor Hugo",),
                  source="fr"),
        QAExample(id="b-2", question="when?", answers=("1969", "July 1969"), source="nq",
                  metadata={"level": "easy", "hops": 1, "support": [{"title": "Apollo 11"}]}),
        QAExample(id="c-3", question="who?", answers=("x",), source="nq", metadata={}),
    ]
    path = write_jsonl(original, tmp_path / "sub" / "out.jsonl")
    assert path == tmp_path / "sub" / "out.jsonl"
    assert read_examples(path) == original


def test_parquet_examples_survive_a_jsonl_round_trip(tmp_path):
    from_parquet = read_examples(write_rows(field_rows(), tmp_path / "train.parquet"))
    back = read_examples(write_jsonl(from_parquet, tmp_path / "train.jsonl"))
    assert back == from_parquet
    assert back[3].metadata == {"split": "train", "index": 0, "prompt": field_rows()[3]["prompt"]}
