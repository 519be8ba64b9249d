"""RACE: reading the passages, expanding them into questions, and encoding the four choices of each.

RACE (Lai et al., 2017) holds about 28,000 passages from English exams for Chinese middle- and high-school
students, with nearly 100,000 four-option questions written by teachers. Local data is gzipped JSON lines,
one passage a line: {"id", "level", "article", "questions", "options", "answers"} (train/dev/test.jsonl.gz,
see docs/race.md).
Without a local directory the data comes from the Hugging Face Hub (ehovy/race, one row per question).

Each question becomes one Example with texts (article, question, option A, B, C, D), its label the index
of the answer letter and its index "<passage id>-<question number>". The model sees, per option,
[CLS] article [SEP] question+option [SEP], where the option fills the question's blank when it has one.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pkd.errors import DataError
from pkd.io import load_hub_split, read_lines
from pkd.tasks import Example, Split, Task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LETTERS = ("A", "B", "C", "D")
NUM_CHOICES = len(LETTERS)
LEVELS = ("high", "middle")
SAMPLE_SEED = 0  # the fixed passage order a --max-train-examples subset is drawn in
_BLANK = re.compile(r"_+")


# ---------------------------------------------------------------- files

def find_race_file(root: Path, part: str) -> Path:
    """<root>/<part>.jsonl.gz, else <root>/race/, else <root>/../race/ (root = the GLUE folder of a shared
    data directory that holds glue/ and race/ side by side, as $PKD_DATA often does)."""
    name = f"{part}.jsonl.gz"
    candidates = [root / name, root / "race" / name, root / "RACE" / name, root.parent / "race" / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"{root}: no RACE {name} (looked in {root}, {root / 'race'} and {root.parent / 'race'})")


def read_race(task: Task, path: str | Path, part: str = "train", limit: int | None = None) -> Split:
    """Read a gzipped JSON-lines RACE file, checking every passage; errors name the file, line and passage."""
    path = Path(path)
    raw, lines = read_lines(path, gzipped=True)
    passages = []
    for lineno, line in enumerate(lines, start=1):
        where = f"{path}:{lineno}"
        if not line.strip():
            raise DataError(f"{where}: empty line")
        try:
            record = json.loads(line)
        except UnicodeDecodeError as e:
            raise DataError(f"{where}: not valid UTF-8 (byte {e.start})") from None
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise DataError(f"{where}: invalid JSON (nested too deeply)") from None
        passages.append(_check_passage(record, where))
    if not passages:
        raise DataError(f"{path}: no passages")
    fingerprint = hashlib.sha256(raw).hexdigest()
    return _make_split(task, part, passages, str(path), fingerprint, limit)


def _check_passage(record: object, where: str) -> dict:
    """A validated passage; `where` is the file and line (or the Hub split) for error messages."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, found {type(record).__name__}")
    pid = record.get("id")
    if not isinstance(pid, str) or not pid:
        raise DataError(f"{where}: missing or non-string field 'id'")
    where = f"{where} (passage {_name(pid)})"
    for name in ("id", "level", "article", "questions", "options", "answers"):
        if name not in record:
            raise DataError(f"{where}: missing field '{name}'")
    level, article = record["level"], record["article"]
    questions, options, answers = record["questions"], record["options"], record["answers"]
    if level not in LEVELS:
        raise DataError(f"{where}: level {level!r} is not one of {', '.join(LEVELS)}")
    if not isinstance(article, str):
        raise DataError(f"{where}: 'article' is not a string")
    for name, value in (("questions", questions), ("options", options), ("answers", answers)):
        if not isinstance(value, list):  # empty lists are fine: two RACE train passages have no questions
            raise DataError(f"{where}: '{name}' is not a list")
    if not len(questions) == len(options) == len(answers):
        raise DataError(f"{where}: {len(questions)} questions, {len(options)} option lists and "
                        f"{len(answers)} answers; they must match")
    for q, (question, opts, answer) in enumerate(zip(questions, options, answers, strict=True)):
        if not isinstance(question, str):
            raise DataError(f"{where}: question {q} is not a string")
        if not isinstance(opts, list) or len(opts) != NUM_CHOICES or not all(isinstance(o, str) for o in opts):
            found = len(opts) if isinstance(opts, list) else type(opts).__name__
            raise DataError(f"{where}: question {q} needs {NUM_CHOICES} string options, found {found}")
        if answer not in LETTERS:
            raise DataError(f"{where}: question {q} has answer {answer!r}, expected one of {', '.join(LETTERS)}")
    return {"id": pid, "level": level, "article": article, "questions": questions, "options": options,
            "answers": answers}


def _name(pid: str) -> str:
    """A passage id as it can go into a one-line message."""
    return pid if pid.isprintable() else ascii(pid)


def _make_split(task: Task, part: str, passages: list[dict], source: str, fingerprint: str,
                limit: int | None) -> Split:
    """Filter by the task's level, apply the limit, and expand passages into one Example per question."""
    if task.level is not None:
        passages = [p for p in passages if p["level"] == task.level]
        if not passages:
            raise DataError(f"{source}: no {task.level} passages for task {task.name}")
    if limit is not None:
        passages = _sample(passages, limit)
    examples = []
    for p in passages:
        for q, (question, opts, answer) in enumerate(zip(p["questions"], p["options"], p["answers"], strict=True)):
            examples.append(Example((p["article"], question, *opts), LETTERS.index(answer), f"{p['id']}-{q}",
                                    level=p["level"]))
    if limit is not None:
        examples = examples[:limit]
    # The level filter and the limit change which examples there are, so they are part of the fingerprint.
    fingerprint = hashlib.sha256(f"{fingerprint}:level={task.level}:limit={limit}".encode()).hexdigest()
    return Split(task, part, examples, source, fingerprint)


def _sample(passages: list[dict], limit: int) -> list[dict]:
    """Whole passages in a fixed random order (seed 0) until they hold `limit` questions, kept in file order.

    The files list every high-school passage before the middle-school ones, so the first N questions would
    all be high; a sample keeps the two levels in their natural proportion. It depends only on the file and
    N, never on --seed, so every method and seed trains on the same subset.
    """
    order = list(range(len(passages)))
    random.Random(SAMPLE_SEED).shuffle(order)
    chosen, total = [], 0
    for i in order:
        if total >= limit:
            break
        chosen.append(i)
        total += len(passages[i]["questions"])
    return [passages[i] for i in sorted(chosen)]


# ---------------------------------------------------------------- the Hub

_HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def load_race_hub(task: Task, part: str, limit: int | None) -> Split:
    """ehovy/race (one row per question: example_id, article, answer, question, options), grouped into passages."""
    ds = load_hub_split("ehovy/race", task.hub_name, part, _HUB_SPLITS[part])
    source = f"hub:ehovy/race/{task.hub_name}/{part}"
    passages: dict[str, dict] = {}
    for n, row in enumerate(ds):
        pid = row.get("example_id")
        where = f"{source} row {n}"
        if not isinstance(pid, str) or not pid:
            raise DataError(f"{where}: missing example_id")
        if pid not in passages:
            level = task.level or next((lv for lv in LEVELS if pid.startswith(lv)), None)
            if level is None:
                raise DataError(f"{where} (passage {_name(pid)}): cannot tell its level from the id")
            passages[pid] = {"id": pid, "level": level, "article": row.get("article"), "questions": [],
                             "options": [], "answers": []}
        p = passages[pid]
        for field, key in (("question", "questions"), ("options", "options"), ("answer", "answers")):
            if field not in row:
                raise DataError(f"{where} (passage {_name(pid)}): missing field '{field}'")
            p[key].append(row[field])
    checked = [_check_passage(p, source) for p in passages.values()]
    if not checked:
        raise DataError(f"{source}: no rows")
    return _make_split(task, part, checked, source, ds._fingerprint, limit)


# ---------------------------------------------------------------- inputs

def fill(question: str, option: str) -> str:
    """The second segment for one option: the option fills the question's blank, or follows the question.

    A question with k > 1 blanks whose option has k parts separated by ";" (RACE writes "three; two" for
    "_ comedians on _ night") gets one part per blank; otherwise every blank gets the whole option.
    """
    blanks = len(_BLANK.findall(question))
    if blanks == 0:
        return f"{question} {option}".strip()
    parts = [s.strip() for s in option.split(";")]
    if blanks > 1 and len(parts) == blanks:
        fills = iter(parts)
        return _BLANK.sub(lambda m: next(fills), question)
    return _BLANK.sub(lambda m: option.strip(), question)


def choice_pairs(example: Example) -> list[tuple[str, str]]:
    article, question, *options = example.texts
    return [(article, fill(question, option)) for option in options]


def encode_choices(examples: list[Example], tokenizer: PreTrainedTokenizerBase, max_seq_len: int,
                   chunk: int = 512) -> Iterator[dict[str, list[list[int]]]]:
    """The examples' choices, `chunk` examples at a time: per chunk, each tokenizer field as one token list per
    choice, NUM_CHOICES rows per example in example order (pkd.encoding packs them into flat arrays).

    Only the article is truncated ("only_first"), so the question and option are always whole; when they
    alone leave no room for a single article token, that pair falls back to "longest_first" as a last resort.
    """
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    for start in range(0, len(examples), chunk):
        pairs = [pair for ex in examples[start:start + chunk] for pair in choice_pairs(ex)]
        firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
        second_lens = [len(ids) for ids in tokenizer(seconds, add_special_tokens=False)["input_ids"]]
        too_long = {i for i, n in enumerate(second_lens) if n + specials >= max_seq_len}
        ok = [i for i in range(len(pairs)) if i not in too_long]
        rows: dict[str, list] = {}
        for indices, strategy in ((ok, "only_first"), (sorted(too_long), "longest_first")):
            if not indices:
                continue
            enc = tokenizer([firsts[i] for i in indices], [seconds[i] for i in indices], truncation=strategy,
                            max_length=max_seq_len)
            for k in enc:
                column = rows.setdefault(k, [None] * len(pairs))
                for j, i in enumerate(indices):
                    column[i] = enc[k][j]
        yield rows
