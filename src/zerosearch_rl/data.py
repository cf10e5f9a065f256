"""QA datasets: ZeroSearch/Search-R1 parquet and JSONL, read into ``QAExample``s and written back.

Parquet columns (the field's format): ``data_source``, ``prompt`` (one user message holding the
instruction and the question), ``ability``, ``reward_model = {style: rule, ground_truth: {target:
[answers]}}``, ``extra_info = {split, index}``, plus the raw ``question`` and ``golden_answers``.
``index`` restarts per source, so the example id is ``{data_source}-{split}-{index}``.

JSONL rows: ``{"id", "question", "answers", "source"}``; ``id`` defaults to ``{file stem}-{line}``
and ``source`` to the file stem; other keys are kept in ``metadata``.

A bad row fails with the file, the row number and the field. Light module: no torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zerosearch_rl.jsonl import iter_rows
from zerosearch_rl.protocol import instruction
from zerosearch_rl.records import QAExample

FORMATS = (".parquet", ".jsonl", ".json")


class DataError(ValueError):
    """A data file or row that cannot be used, with a message naming the file, row and field."""


def _answers(value: Any, where: str) -> tuple[str, ...]:
    if hasattr(value, "tolist"):  # numpy arrays from pandas-written parquet
        value = value.tolist()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise DataError(f"{where}: expected a non-empty list of answer strings, got {value!r}")
    out = []
    for a in value:
        if isinstance(a, float) and a.is_integer():
            a = int(a)  # pandas turns whole numbers into floats: 1969.0 must read "1969"
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            a = str(a)  # numeric golds ("1969") sometimes arrive as numbers
        if not isinstance(a, str) or not a.strip():
            raise DataError(f"{where}: every answer must be a non-empty string, got {a!r}")
        out.append(a.strip())
    return tuple(out)


def _nested(row: Mapping[str, Any], path: tuple[str, ...], where: str) -> Any:
    """``row[path[0]][path[1]]...``, None where a level is missing or null; a level that is not a mapping is an
    error naming the field (a parquet column of strings where the format has a struct)."""
    value: Any = row
    for depth, name in enumerate(path):
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise DataError(f"{where}, field {'.'.join(path[:depth])!r}: expected a mapping holding {name!r}, got "
                            f"{type(value).__name__} {value!r:.80}")
        value = value.get(name)
    return value


def _question(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: expected a non-empty question string, got {value!r}")
    return value.strip()


def _prompt(value: Any, where: str) -> list[dict[str, str]]:
    """A row's ``prompt`` column: chat messages ``{role, content}`` (``model.prompt_template=data`` uses them)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise DataError(f"{where}: expected a non-empty list of {{role, content}} messages, got {value!r}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping) or not all(isinstance(m.get(k), str) for k in ("role", "content")):
            raise DataError(f"{where}[{i}]: expected a message with string 'role' and 'content', got {m!r}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _read_jsonl(path: Path) -> list[QAExample]:
    out = []
    with path.open("rb") as fh:
        for line_no, row in iter_rows(fh, path, DataError):
            where = f"{path}: row {line_no}"
            for name in ("question", "answers"):
                if name not in row:
                    raise DataError(f"{where}: missing field {name!r}")
            rid = row.get("id", f"{path.stem}-{line_no}")
            if not isinstance(rid, (str, int)) or isinstance(rid, bool) or not str(rid).strip():
                raise DataError(f"{where}, field 'id': expected a non-empty string, got {rid!r}")
            source = row.get("source", path.stem)
            if not isinstance(source, str) or not source:
                raise DataError(f"{where}, field 'source': expected a non-empty string, got {source!r}")
            out.append(QAExample(
                id=str(rid),
                question=_question(row["question"], f"{where}, field 'question'"),
                answers=_answers(row["answers"], f"{where}, field 'answers'"),
                source=source,
                metadata={k: v for k, v in row.items() if k not in ("id", "question", "answers", "source")},
            ))
    return out


def _read_parquet(path: Path) -> list[QAExample]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    for name in ("data_source", "question"):
        if name not in table.column_names:
            raise DataError(f"{path}: missing column {name!r} (columns: {', '.join(table.column_names)})")
    if "reward_model" not in table.column_names and "golden_answers" not in table.column_names:
        raise DataError(f"{path}: needs column 'reward_model' (ground_truth.target) or 'golden_answers'")
    return [example_from_row(row, f"{path}: row {i + 1}", i) for i, row in enumerate(table.to_pylist())]


def example_from_row(row: Mapping[str, Any], where: str, default_index: int = 0) -> QAExample:
    """One ZeroSearch/Search-R1 row (``data_source``, ``question``, ``reward_model.ground_truth.target`` or
    ``golden_answers``, ``extra_info.{split,index}``) as a ``QAExample``; ``where`` names the row in errors.
    The id is ``source-split-index`` (``index`` restarts per source, so it is not unique on its own)."""
    source = row.get("data_source")
    if not isinstance(source, str) or not source:
        raise DataError(f"{where}, field 'data_source': expected a non-empty string, got {source!r}")
    target = _nested(row, ("reward_model", "ground_truth", "target"), where)
    if target is not None:
        answers = _answers(target, f"{where}, field 'reward_model.ground_truth.target'")
    else:
        answers = _answers(row.get("golden_answers"), f"{where}, field 'golden_answers'")
    split = _nested(row, ("extra_info", "split"), where) or ""
    index = _nested(row, ("extra_info", "index"), where)
    index = default_index if index is None else index
    metadata: dict[str, Any] = {"split": split, "index": index}
    if row.get("prompt") is not None:
        metadata["prompt"] = _prompt(row["prompt"], f"{where}, field 'prompt'")
    return QAExample(
        id=f"{source}-{split}-{index}" if split else f"{source}-{index}",
        question=_question(row.get("question"), f"{where}, field 'question'"),
        answers=answers,
        source=source,
        metadata=metadata,
    )


def read_examples(path: str | Path) -> list[QAExample]:
    """All examples of one file, in file order. The format is chosen by the extension."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {str(p)!r} " + ("is a directory" if p.is_dir() else "does not exist"))
    if p.suffix == ".parquet":
        return _read_parquet(p)
    if p.suffix in (".jsonl", ".json"):
        return _read_jsonl(p)
    raise DataError(f"{p}: unknown data format {p.suffix!r}; valid: {', '.join(FORMATS)}")


def load_examples(
    paths: str | Path | Sequence[str | Path],
    sources: Sequence[str] = (),
    limit: int | None = None,
) -> list[QAExample]:
    """Examples of several files, filtered by ``sources``, at most ``limit`` per file.

    Ids must be unique across all files: GRPO groups, noise draws and resumed data order all key on
    them, so a repeated id is an error (naming both places), never silently merged.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if limit is not None and limit < 0:  # a slice would silently drop the last rows instead
        raise DataError(f"the limit of examples per file must be 0 or more, got {limit}")
    wanted = set(sources)
    seen: dict[str, str] = {}
    out: list[QAExample] = []
    for path in paths:
        examples = [e for e in read_examples(path) if not wanted or e.source in wanted]
        for ex in examples[:limit]:
            if ex.id in seen:
                raise DataError(f"{path}: example id {ex.id!r} repeats an id from {seen[ex.id]}; ids must be unique")
            seen[ex.id] = str(path)
            out.append(ex)
    return out


def to_zerosearch_row(ex: QAExample, split: str, index: int) -> dict[str, Any]:
    """One row of the ZeroSearch/Search-R1 parquet format for ``ex``."""
    return {
        "data_source": ex.source,
        "prompt": [{"role": "user", "content": instruction(ex.question)}],
        "ability": "fact-reasoning",
        "reward_model": {"style": "rule", "ground_truth": {"target": list(ex.answers)}},
        "extra_info": {"split": split, "index": index},
        "question": ex.question,
        "golden_answers": list(ex.answers),
    }


def write_zerosearch_parquet(examples: Iterable[QAExample], path: str | Path, split: str) -> Path:
    """Write examples as ZeroSearch-format parquet; ``index`` restarts per source, as in the original."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    counters: dict[str, int] = {}
    rows = []
    for ex in examples:
        index = counters.get(ex.source, 0)
        counters[ex.source] = index + 1
        rows.append(to_zerosearch_row(ex, split, index))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), p)
    return p


def write_jsonl(examples: Iterable[QAExample], path: str | Path) -> Path:
    """Write examples as JSONL rows ``{id, question, answers, source, **metadata}``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for ex in examples:
            row: Mapping[str, Any] = {"id": ex.id, "question": ex.question, "answers": list(ex.answers),
                                      "source": ex.source, **ex.metadata}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return p


class PromptSampler:
    """Batches of training examples in a seeded order, resumable from ``state()``.

    Each epoch is a permutation drawn from ``random.Random((seed, epoch))`` (the global RNG is never
    used), so a resumed run sees exactly the prompts the uninterrupted run would have seen. Under
    data parallelism every rank draws the same global batch and keeps its own slice of it.
    """

    def __init__(self, examples: Sequence[QAExample], batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        if not examples:
            raise DataError("no training examples: check data.train_files and data.sources")
        if batch_size % world_size:
            raise DataError(f"trainer.batch_size={batch_size} must be divisible by the {world_size} processes")
        self.examples, self.batch_size, self.seed, self.shuffle = list(examples), batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.offset = 0, 0

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.examples)))
        if self.shuffle:
            import random

            random.Random(f"{self.seed}/{epoch}").shuffle(order)
        return order

    def next_batch(self) -> list[QAExample]:
        """The next global batch's slice for this rank (epochs roll over seamlessly)."""
        picked: list[int] = []
        while len(picked) < self.batch_size:
            order = self._order(self.epoch)
            take = order[self.offset : self.offset + self.batch_size - len(picked)]
            picked.extend(take)
            self.offset += len(take)
            if self.offset >= len(order):
                self.epoch, self.offset = self.epoch + 1, 0
        return [self.examples[i] for i in picked[self.rank :: self.world_size]]

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state(self, state: Mapping[str, int]) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
