"""The bad-input suite (issue 19 section 3): every command fed what an adversarial new user types.

Each case of the table is a command line, the files it finds (``prepared``), the exit code, words of its one
error line, and a prepared path whose file tree must come out byte for byte the same (nothing written over,
nothing lost). No case may print a traceback, and none may load a model: a bad model path fails before any
loader (or the hub) is asked. The tests after the table train a tiny run for real: resume after a crash,
runs that must not mix, Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from zerosearch_rl.cli import main
from zerosearch_rl.config import SearchConfig, load_config, save_config
from zerosearch_rl.net import RetryPolicy

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
#: The smallest run that trains: one prompt of two samples, one turn of a few tokens, a checkpoint per step.
TINY = (f"--config {SMOKE} data.train_files=[qa.jsonl] trainer.batch_size=1 rollout.n_samples=2 "
        "trainer.mini_batches=1 trainer.micro_batch_size=2 rollout.max_turns=1 rollout.max_new_tokens=6 "
        "trainer.total_steps=2 curriculum.steps=2 trainer.save_every=1 trainer.keep_checkpoints=5")
LONG_QUESTION = " ".join(["word"] * 40)


def tree(path: Path) -> dict[str, str]:
    """Every file and folder under ``path`` with a digest of its bytes (folders: "dir")."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*"))}


def fake_run(folder: Path, advantage: str = "grpo", steps: tuple[int, ...] = (0, 1)) -> None:
    """A finished run's folder as the trainer leaves it (metrics, config, checkpoints, final/), with small files:
    every refusal happens before a model loads, so the weights need not fit one."""
    import torch
    from safetensors.torch import save_file

    from zerosearch_rl.run_folder import checkpoint_dir

    cfg = load_config(SMOKE, [f"trainer.output_dir={folder.name}", f"algorithm.advantage={advantage}",
                              "data.train_files=[qa.jsonl]"])
    save_config(cfg, folder / "config.yaml")
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward/mean": 0.5}) + "\n" for s in steps))
    for s in steps:
        ckpt = checkpoint_dir(folder, s)
        (ckpt / "policy").mkdir(parents=True)
        torch.save({"step": s}, ckpt / "state.pt")
        save_file({"w": torch.zeros(4)}, str(ckpt / "policy" / "model.safetensors"))
        save_config(cfg, ckpt / "config.yaml")
    (folder / "final").mkdir()
    (folder / "final" / "config.json").write_text("{}")


def prepare(root: Path) -> None:
    """The files the table's commands meet, relative to the folder they run in."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "qa.jsonl").write_text('{"id": "1", "question": "Where was Ada born?", "answers": ["Marlow"]}\n')
    (root / "afile").write_text("x")
    (root / "emptydir").mkdir()
    (root / "nonutf.jsonl").write_bytes(b"\xff\xfe{}\n")
    (root / "nonutf.yaml").write_bytes(b"trainer:\n  lr: \xff\n")
    (root / "inf.yaml").write_text("trainer:\n  lr: .inf\n")
    (root / "corpus.jsonl").write_text('{"id": "d1", "title": "T", "text": "Ada"}\n{"id": "d2", "title": "U"}\n')
    for name, row in (("rm_str", {"reward_model": '{"ground_truth": 1}'}),
                      ("gt_str", {"reward_model": {"ground_truth": "Marlow"}}),
                      ("extra_str", {"golden_answers": ["Marlow"], "extra_info": "train"})):
        pq.write_table(pa.Table.from_pylist([{"data_source": "nq", "question": "Q?", **row}]), root / f"{name}.parquet")
    (root / "metrics.jsonl").write_text('{"step": 0, "reward/mean": 1.0}\n')
    (root / "nonutf_metrics.jsonl").write_bytes(b'\xff{"step": 0}\n')
    (root / "badline_metrics.jsonl").write_text('{"step": 0, "reward/mean": 1}\n{"step": 1, "rew\n{"step": 2}\n')
    (root / "nostep_metrics.jsonl").write_text('{"reward/mean": 1}\n')
    (root / "noweights").mkdir()
    (root / "noweights" / "config.json").write_text('{"model_type": "llama"}')
    (root / "notokenizer").mkdir()
    (root / "notokenizer" / "config.json").write_text('{"model_type": "llama"}')
    (root / "notokenizer" / "model.safetensors").write_bytes(b"")
    (root / "metrics_only").mkdir()
    (root / "metrics_only" / "metrics.jsonl").write_text('{"step": 0, "reward/mean": 0.5}\n')
    (root / "done").mkdir()
    fake_run(root / "done")
    (root / "broken").mkdir()
    fake_run(root / "broken", steps=(0,))
    (root / "broken" / "checkpoints" / "step-000000" / "state.pt").write_bytes(b"PK\x03\x04 cut")


@dataclass(frozen=True)
class Case:
    id: str
    argv: str  # as typed in a shell, in the prepared folder; {tiny} is the tiny run's config
    code: int
    words: tuple[str, ...]
    keep: str = ""  # a prepared path that must come out byte for byte the same
    absent: str = ""  # a path that must still not exist afterwards


CASES = [
    # values that slipped through
    Case("lr-inf", "config show trainer.lr=inf", 2, ("trainer.lr must be a finite number, got inf",)),
    Case("lr-minus-inf", "config show trainer.lr=-inf", 2, ("trainer.lr must be a finite number, got -inf",)),
    Case("lr-overflow", "config show trainer.lr=1e999", 2, ("trainer.lr must be a finite number",)),
    Case("nan-bound", "config show health.reward_drop=.nan", 2, ("health.reward_drop must be a finite number",)),
    Case("inf-in-yaml", "config show inf.yaml", 2, ("trainer.lr must be a finite number",)),
    Case("train-lr-inf", "train {tiny} trainer.output_dir=new trainer.lr=inf", 2, ("trainer.lr", "finite"),
         absent="new"),
    Case("yaml-not-utf8", "config show nonutf.yaml", 2, ("nonutf.yaml: not UTF-8",)),
    Case("config-dir", "config show emptydir", 2, ("config file 'emptydir' is a directory",)),
    Case("fields-no-section", "config fields traner", 2, ("no config section 'traner'", "valid: model")),
    Case("limit-negative", "data check qa.jsonl --limit -5", 2, ("argument --limit", "at least 1, got -5")),
    Case("limit-zero", "data check qa.jsonl --limit 0", 2, ("argument --limit", "at least 1, got 0")),
    Case("limit-word", "data check qa.jsonl --limit five", 2, ("argument --limit", "whole number")),
    Case("eval-limit-negative", "eval --data qa.jsonl --limit -1", 2, ("argument --limit", "at least 1")),
    Case("engines-limit-negative", "engines --limit -3", 2, ("argument --limit", "at least 1")),
    Case("sources-none-match", "data check qa.jsonl --sources nq", 2, ("no examples in qa.jsonl", "hold: qa")),
    Case("ask-empty", "ask ''", 2, ("argument question: must not be empty",)),
    Case("ask-blank", "ask '   '", 2, ("argument question: must not be empty",)),
    Case("ask-empty-answer", "ask 'Where was Ada born?' --answer ''", 2, ("argument --answer: must not be empty",)),
    Case("search-empty", "search ''", 2, ("argument query: must not be empty",)),
    Case("search-empty-answer", "search Ada --answer ' '", 2, ("argument --answer: must not be empty",)),
    # model paths: said at once, offline, before any loader runs
    Case("policy-empty-folder", "train {tiny} trainer.output_dir=new model.policy=emptydir", 2,
         ("model.policy", "no config.json in emptydir", "nothing loaded or written"), absent="new"),
    Case("policy-missing", "train {tiny} trainer.output_dir=new model.policy=no/such/folder", 2,
         ("model.policy: 'no/such/folder' does not exist", "models are not downloaded"), absent="new"),
    Case("policy-hub-name-not-cached", "eval --data qa.jsonl model.policy=SomeOrg/not-on-this-disk "
         "search.backend=fake", 2, ("model.policy: 'SomeOrg/not-on-this-disk' does not exist",
                                    "local Hugging Face cache")),
    Case("policy-no-weights", "ask 'Where was Ada born?' model.policy=noweights search.backend=fake", 2,
         ("model.policy: no weights in noweights",)),
    Case("policy-no-tokenizer", "ask 'Where was Ada born?' model.policy=notokenizer search.backend=fake", 2,
         ("model.policy: no tokenizer in notokenizer",)),
    Case("policy-is-a-file", "ask 'Where was Ada born?' model.policy=afile search.backend=fake", 2,
         ("model.policy: 'afile' is a file, not a model folder",)),
    Case("tokenizer-with-tiny-random", "train {tiny} trainer.output_dir=new model.tokenizer=emptydir", 2,
         ("model.tokenizer='emptydir' is not used with model.policy=tiny-random",), absent="new"),
    Case("simulator-model-empty", "search Ada --engine simulate_sft", 2, ("simulator.model is empty",)),
    Case("simulator-model-empty-folder", "search Ada --engine simulate_prompt simulator.model=emptydir", 2,
         ("simulator.model: no config.json in emptydir",)),
    Case("simulator-model-missing", "search Ada --engine simulate_sft simulator.model=gone", 2,
         ("simulator.model: 'gone' does not exist",)),
    # errors the code words well, once tracebacks
    Case("corpus-bad-row", "search Ada --engine bm25 search.corpus=corpus.jsonl", 2,
         ("corpus.jsonl: row 2", "'text'")),
    Case("prompt-too-long-ask", f"ask '{LONG_QUESTION}' model.policy=tiny-random search.backend=fake "
         "rollout.max_prompt_tokens=20", 2, ("exceeds rollout.max_prompt_tokens=20",)),
    Case("prompt-too-long-train", "train {tiny} trainer.output_dir=new rollout.max_prompt_tokens=20", 2,
         ("longer than rollout.max_prompt_tokens=20", "question '1'"), absent="new"),
    Case("chat-without-template", "train {tiny} trainer.output_dir=new model.prompt_style=chat", 2,
         ("model.prompt_style=chat", "use model.prompt_style=base"), absent="new"),
    Case("parquet-struct-is-string", "data check rm_str.parquet", 2,
         ("rm_str.parquet: row 1, field 'reward_model': expected a mapping", "got str")),
    Case("parquet-nested-is-string", "data check gt_str.parquet", 2,
         ("gt_str.parquet: row 1, field 'reward_model.ground_truth'",)),
    Case("parquet-extra-info-is-string", "data check extra_str.parquet", 2,
         ("extra_str.parquet: row 1, field 'extra_info'",)),
    Case("data-not-utf8", "data check nonutf.jsonl", 2, ("nonutf.jsonl: row 1: not valid UTF-8",)),
    Case("plot-no-metrics", "plot emptydir", 2, ("no metrics at emptydir/metrics.jsonl",)),
    Case("plot-missing-folder", "plot gone", 2, ("no metrics at gone",)),
    Case("plot-metrics-not-utf8", "plot nonutf_metrics.jsonl", 2, ("nonutf_metrics.jsonl: row 1: not valid UTF-8",)),
    Case("plot-bad-line", "plot badline_metrics.jsonl", 2, ("badline_metrics.jsonl: row 2: not valid JSON",)),
    Case("plot-no-step", "plot nostep_metrics.jsonl", 2, ("row 1: no integer 'step'",)),
    Case("plot-unknown-key", "plot metrics.jsonl --keys reward/mena", 2,
         ("none of reward/mena is in the metrics", "they hold: reward/mean")),
    Case("plot-unknown-format", "plot metrics.jsonl --out curves.foo", 2, ("cannot draw a .foo", ".png")),
    Case("plot-out-missing-folder", "plot metrics.jsonl --out gone/curves.png", 2,
         ("gone/curves.png: No such file or directory",)),
    Case("plot-out-under-a-file", "plot metrics.jsonl --out afile/curves.png", 2,
         ("afile/curves.png: afile is a file, not a folder",), keep="afile"),
    Case("plot-out-is-a-folder", "plot metrics.jsonl --out emptydir", 2, ("cannot draw a file without a suffix",)),
    # output paths that are a file or under one
    Case("run-folder-is-a-file", "train {tiny} trainer.output_dir=afile", 2,
         ("trainer.output_dir=afile", "afile is a file, not a folder"), keep="afile"),
    Case("run-folder-under-a-file", "train {tiny} trainer.output_dir=afile/run", 2,
         ("trainer.output_dir=afile/run: afile is a file, not a folder",), keep="afile"),
    Case("eval-out-is-a-file", "eval --data qa.jsonl --out afile model.policy=tiny-random search.backend=fake", 2,
         ("afile is a file, not a folder",), keep="afile"),
    Case("world-out-under-a-file", "world build --out afile/world", 2, ("afile/world: afile is a file",),
         keep="afile"),
    Case("fanoutqa-out-under-a-file", "data fanoutqa afile/fq --no-corpus", 2, ("afile is a file, not a folder",),
         keep="afile"),
    # a run folder that holds a run is never written over by accident
    Case("train-into-a-finished-run", "train {tiny} trainer.output_dir=done", 2,
         ("trainer.output_dir=done holds a run", "metrics.jsonl of 2 lines", "checkpoints up to step-000001",
          "--resume continues it", "--overwrite replaces it"), keep="done"),
    Case("train-into-a-run-with-metrics-only", "train {tiny} trainer.output_dir=metrics_only", 2,
         ("holds a run (metrics.jsonl of 1 line)",), keep="metrics_only"),
    Case("resume-missing-folder", "train {tiny} trainer.output_dir=gone --resume", 2,
         ("nothing to resume: trainer.output_dir=gone does not exist",), absent="gone"),
    Case("resume-no-checkpoint", "train {tiny} trainer.output_dir=metrics_only --resume", 2,
         ("nothing to resume in metrics_only: no checkpoint", "--overwrite starts the run again"),
         keep="metrics_only"),
    Case("resume-empty-folder", "train {tiny} trainer.output_dir=emptydir --resume", 2,
         ("nothing to resume in emptydir",), keep="emptydir"),
    Case("resume-every-checkpoint-broken", "train {tiny} trainer.output_dir=broken --resume", 2,
         ("every checkpoint is broken (step-000000: state.pt is truncated",), keep="broken"),
    Case("resume-another-algorithm", "train {tiny} trainer.output_dir=done --resume algorithm.advantage=gae", 2,
         ("cannot resume from done/checkpoints/step-000001 with another algorithm or model",
          "algorithm.advantage: 'grpo' in the checkpoint, 'gae' now"), keep="done"),
    Case("resume-with-lora", "train {tiny} trainer.output_dir=done --resume model.lora_rank=8", 2,
         ("model.lora_rank: 0 in the checkpoint, 8 now",), keep="done"),
    Case("resume-and-overwrite", "train {tiny} trainer.output_dir=done --resume --overwrite", 2,
         ("argument --overwrite: not allowed with argument --resume",), keep="done"),
]


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """The table's folder, and no model loader: a case that reaches one has failed to fail early."""
    import transformers

    def no_loading(*args, **kwargs):
        raise AssertionError(f"a model or tokenizer was loaded: {args}")

    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(cls, "from_pretrained", no_loading)
    monkeypatch.chdir(tmp_path)
    prepare(tmp_path)
    return tmp_path


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``zerosearch ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def error_line(out: str, err: str) -> str:
    """The one error line: the last of stderr, and the only one that says error (argparse's usage may stand above
    it, notices such as retries before it). Never a traceback."""
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines, "no error line"
    assert [line for line in lines if "error:" in line] == [lines[-1]], err
    return lines[-1]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, prepared, capsys):
    before = tree(prepared / case.keep) if case.keep else None
    code, out, err = run(shlex.split(case.argv.format(tiny=TINY)), capsys)
    line = error_line(out, err)
    assert code == case.code, line
    for words in case.words:
        assert words in line
    if line.startswith("zerosearch: error:"):
        assert err.strip() == line  # nothing but the one line
    if case.keep:
        assert tree(prepared / case.keep) == before
    if case.absent:
        assert not (prepared / case.absent).exists()


def test_the_table_covers_every_command_group():
    commands = {shlex.split(c.argv)[0] for c in CASES}
    assert commands >= {"config", "data", "search", "train", "eval", "ask", "plot", "engines", "world"}


def test_debug_shows_the_traceback_instead(prepared, capsys):
    from zerosearch_rl.config import ConfigError

    with pytest.raises(ConfigError, match="finite"):
        main(["config", "show", "trainer.lr=inf", "--debug"])
    with pytest.raises(ConfigError, match="finite"):
        main(["--debug", "config", "show", "trainer.lr=inf"])


def test_an_os_error_that_is_not_about_a_path_given_exits_1(monkeypatch, capsys):
    from zerosearch_rl.cli import root as cli

    def full_disk(cfg):
        raise OSError(28, "No space left on device", "runs/x/metrics.jsonl")

    monkeypatch.setattr(cli, "dump_config", full_disk)
    code, out, err = run(["config", "show"], capsys)
    assert code == 1
    assert error_line(out, err) == "zerosearch: error: runs/x/metrics.jsonl: No space left on device"


@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
def test_zerosearch_script_hands_resume_and_overwrite_to_train(monkeypatch, flag):
    ran = []
    monkeypatch.setattr(os, "execv", lambda path, command: ran.append(command))
    assert main(["script", "train_grpo.sh", flag]) == 0
    (command,) = ran
    assert command[command.index("train") + 1 :].count(flag) == 1 and command[-1] == flag


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_run_folder_in_a_read_only_folder_is_refused_before_anything_loads(prepared, capsys):
    locked = prepared / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, out, err = run(shlex.split(f"train {TINY} trainer.output_dir=locked/run"), capsys)
    finally:
        locked.chmod(0o755)
    assert code == 2 and "no permission to write in locked" in error_line(out, err)


# ---------------------------------------------------------------- a search server that accepts and never answers


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never says a word; its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def test_a_silent_search_server_prints_each_retry_then_one_error_line(silent_server, prepared, capsys):
    code, out, err = run(["search", "Ada", "--engine", "remote", f"search.urls=[{silent_server}]",
                          "search.timeout_s=0.2", "search.backoff_s=0.01"], capsys)
    line = error_line(out, err)
    assert code == 2
    assert f"no answer from {silent_server}/retrieve after 3 attempts" in line and "ReadTimeout" in line
    retries = err.strip().splitlines()[:-1]
    assert len(retries) == 2
    for i, retry in enumerate(retries, start=1):
        assert retry.startswith(f"zerosearch: remote search: {silent_server}/retrieve failed (attempt {i} of 3: ")
        assert "retrying in" in retry


def test_the_default_client_gives_up_on_a_silent_server_within_a_minute():
    """The worst case of the defaults (every attempt waits its whole timeout), as documented in search.timeout_s."""
    s = SearchConfig()
    policy = RetryPolicy(s.max_retries, s.backoff_s)
    worst = policy.attempts * s.timeout_s + sum(policy.delay(i) for i in range(s.max_retries))
    assert worst < 60
    assert f"{policy.attempts} x {s.timeout_s:g} s by default" in type(s).__dataclass_fields__["timeout_s"].metadata[
        "help"]


# ---------------------------------------------------------------- real tiny runs

slow = pytest.mark.slow


def train(folder: Path, *extra: str) -> list[str]:
    return shlex.split(f"train {TINY} trainer.output_dir={folder}") + list(extra)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny run trained for real (2 steps, a checkpoint each), in a folder that also holds the questions."""
    root = tmp_path_factory.mktemp("finished")
    prepare_questions(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(train(root / "run")) == 0
    finally:
        os.chdir(cwd)
    return root


def prepare_questions(root: Path) -> None:
    (root / "qa.jsonl").write_text('{"id": "1", "question": "Where was Ada born?", "answers": ["Marlow"]}\n')


@pytest.fixture
def copy_of_run(finished, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "run"


def steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@slow
def test_a_finished_run_is_refused_then_overwritten_whole(copy_of_run, capsys):
    before = tree(copy_of_run)
    code, out, err = run(train(copy_of_run), capsys)
    assert code == 2 and "holds a run" in error_line(out, err)
    assert tree(copy_of_run) == before
    code, out, err = run(train(copy_of_run, "--overwrite", "trainer.total_steps=1", "curriculum.steps=1"), capsys)
    assert code == 0, err
    assert steps(copy_of_run) == [0]  # the old run's lines are gone, not mixed in
    assert sorted(p.name for p in (copy_of_run / "checkpoints").iterdir()) == ["step-000000"]  # no old step-000001


@slow
@pytest.mark.parametrize("cut", ["state.pt", "policy/model.safetensors"])
def test_a_truncated_newest_checkpoint_is_named_and_the_older_one_resumed(copy_of_run, capsys, cut):
    newest = copy_of_run / "checkpoints" / "step-000001"
    data = (newest / cut).read_bytes()
    (newest / cut).write_bytes(data[: len(data) // 2])
    code, out, err = run(train(copy_of_run, "--resume", "trainer.total_steps=3", "curriculum.steps=3"), capsys)
    assert code == 0, err
    assert "Traceback" not in out + err
    assert f"checkpoint {newest} is broken ({cut} is truncated" in err
    assert "resuming from step-000000; the broken step-000001 is moved aside to broken-step-000001" in err
    assert steps(copy_of_run) == [0, 1, 2]
    assert (copy_of_run / "checkpoints" / "broken-step-000001" / cut).read_bytes() == data[: len(data) // 2]


@slow
def test_a_partial_last_metrics_line_is_dropped_with_a_notice(copy_of_run, capsys):
    with (copy_of_run / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 2, "reward/me')  # what a crash while the line was written leaves
    code, _, err = run(train(copy_of_run, "--resume", "trainer.total_steps=3", "curriculum.steps=3"), capsys)
    assert code == 0, err
    assert "metrics.jsonl: dropped a partial last line" in err
    assert steps(copy_of_run) == [0, 1, 2]


@slow
def test_resuming_with_another_model_says_what_differs(copy_of_run, capsys):
    from zerosearch_rl.tiny_models import byte_tokenizer, tiny_llama

    other = copy_of_run.parent / "narrow"
    tokenizer = byte_tokenizer()
    tiny_llama(len(tokenizer), hidden=32).save_pretrained(other)
    tokenizer.save_pretrained(other)
    before = tree(copy_of_run)
    code, out, err = run(train(copy_of_run, "--resume", f"model.policy={other}"), capsys)
    line = error_line(out, err)
    assert code == 2
    assert "cannot resume from" in line and "step-000001" in line
    assert f"model.policy: 'tiny-random' in the checkpoint, '{other}' now" in line
    assert tree(copy_of_run) == before


@slow
def test_ctrl_c_says_where_the_run_stopped_and_resume_continues(finished, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "zerosearch_rl", *train(run_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    # a test run started in the background (`make test &`) inherits SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: the child gets the default disposition back, as a terminal gives it
    proc = subprocess.Popen([*command, "trainer.total_steps=1000", "curriculum.steps=1000"], cwd=finished, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    target = run_dir / "checkpoints" / "step-000001" / "state.pt"
    deadline = time.monotonic() + 300
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith("zerosearch: interrupted at step ") and "`zerosearch train --resume` continues" in line
    stopped = int(line.split("interrupted at step ")[1].split(";")[0])
    saved = int(line.split("the last checkpoint is step ")[1].split(" ")[0])
    assert 1 <= saved <= stopped
    done = steps(run_dir)  # every line whole, no step twice
    assert done == list(range(len(done))) and len(done) >= saved + 1
    resumed = subprocess.run([*command, f"trainer.total_steps={saved + 2}", f"curriculum.steps={saved + 2}",
                              "--resume"], cwd=finished, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert steps(run_dir) == list(range(saved + 2))
