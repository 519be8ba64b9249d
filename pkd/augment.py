"""More text for the teacher to label: the rows of an unlabelled file, and augmented copies of each training text.

A student learns from its teacher's outputs, and the teacher can label any text, so distillation need not stop at
the labelled training split. Two sources of extra rows, appended after the split's own (Split.teacher_only), which
the teacher labels once, in its cache, and on which the student learns KD and PT but never CE (pkd.losses):

- --unlabelled-file: text without labels, in one of the own-data formats (pkd.files), in the task's text columns
  (or --text-columns). A row that is a dev row, or a test row where a test split is known, is refused, naming how
  many there are and the first: the student would learn the teacher's answers on the very texts it is scored on.
  Rows are compared after normalise(): whitespace runs collapsed, the ends stripped, case folded (the own-data
  loader reads texts as they are, and an uncased teacher reads two texts that differ only there alike).
- --augment N: N copies of each training text, in the manner of TinyBERT's generator (Jiao et al. 2020, section
  3.1 and its Algorithm 1): each word of each copy is replaced with probability p (--augment-p, 0.4 as TinyBERT) by
  one of k candidates (--augment-k, 15 as TinyBERT), drawn uniformly. The candidates of a word are

      its k nearest neighbours by cosine in the teacher's input embedding table, among the whole-word single-piece
      entries of its vocabulary (alphabetic, not special, encoding back to themselves as one piece), or with
      --augment-model, the k whole-word single-piece predictions of a fill-mask model for the word masked in its
      original text (TinyBERT's own choice, with BERT's masked LM), the word itself excluded.

  Why the embedding table by default: it needs no second model, it is the teacher's own notion of which words are
  alike, and after one neighbour search per run (one matrix product per chunk of query words, torch.topk) a
  replacement is a dictionary look-up, thousands of texts a second on two cores (bench/augment_speed.py,
  docs/augment.md), where a masked LM runs once per replaced word. Words the tokenizer splits into several pieces
  are kept, as TinyBERT keeps them when it has no GloVe vector for them (pkd has no GloVe), and so are single
  letters (in BERT's vocabulary mostly the pieces of contractions: "s" and "t" are neighbours of "his"). A word
  is a run of letters (a match of \\w+ that is all letters), replaced in place, so punctuation and spacing stay;
  a capitalised word's replacement is capitalised. Each text of a pair is augmented on its own, with its own
  draws. RACE augments the question and the options and keeps the passage: replacing 40% of a passage's words
  would remove the evidence its answer rests on, while the question and options are short and are where the
  choice is made; each RACE copy still costs the teacher a whole passage (four 512-token choices).

Seeded: the draws of the training example at position i come from a generator seeded with (--augment-seed, i), so
the copies depend on neither batching nor chunking, and the first examples under --max-train-examples get the same
copies whatever the limit. The seed is fixed (0) rather than --seed, so that every seed and method of a comparison
shares one augmented set and one teacher cache. The extended split's fingerprint covers the training split's, the
settings, the unlabelled file's sha256 and the generated texts, so the teacher cache (pkd.cache) is rebuilt for a
change and reused for the same settings; run.json records the settings and the file's sha256 and rows, and
--resume refuses a change in them.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pkd.config import AugmentConfig
from pkd.data import load_split, resolve_data_dir
from pkd.dist import is_main, say
from pkd.errors import DataError, UsageError
from pkd.files import check_columns, check_texts, read_file, source_table, split_columns
from pkd.glue import find_glue_file
from pkd.models import load_tokenizer, resolve_model
from pkd.progress import show_progress
from pkd.tasks import Example, FileSpec, Split, Task

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

VERSION = 1  # of the generator: part of the extended split's fingerprint
WORD = re.compile(r"\w+")
CHUNK = 1_000  # training examples augmented at a time (one progress step)
MLM_BATCH = 64  # masked sequences per forward pass of --augment-model
# The rates of the estimate said before generation (generation_seconds), from bench/augment_speed.py on MRPC with 10
# copies on the shared 2-core machine (docs/augment.md), rounded down: 55,000-106,000 texts a second once the
# neighbours are known, and the search's upper-bound arithmetic (12,985 distinct words x 30,522 entries x 384 x 2)
# in 5.0-5.5 s.
TEXTS_PER_SECOND = 40_000
SEARCH_FLOPS = 5e10
MLM_FLOPS = 1e10  # a masked LM's forward passes, 2 * parameters * tokens each: not measured (no such model offline)


# ------------------------------------------------------------------------------------------- words and pieces


def normalise(texts: Sequence[str]) -> tuple[str, ...]:
    """A row as the dev-overlap check compares it: whitespace runs collapsed, the ends stripped, case folded."""
    return tuple(" ".join(t.split()).casefold() for t in texts)


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every word of `text`: a run of \\w that is all letters (numbers and snake_case stay)."""
    return [m.span() for m in WORD.finditer(text) if m.group().isalpha()]


def whole_word_vocabulary(tokenizer: PreTrainedTokenizerBase) -> dict[int, str]:
    """id -> surface of the tokenizer's whole-word single-piece entries: alphabetic once decoded, of two letters or
    more, not special, and encoding back to themselves as one piece (so WordPiece's ##continuations and BPE
    fragments are left out, and so are single letters, mostly the pieces of contractions: it's reads it ' s)."""
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    surfaces = [tokenizer.convert_tokens_to_string([t]).strip() for t in tokenizer.convert_ids_to_tokens(ids)]
    alphabetic = [(i, s) for i, s in zip(ids, surfaces, strict=True) if s.isalpha() and len(s) > 1]
    if not alphabetic:
        return {}
    encoded = tokenizer([s for _, s in alphabetic], add_special_tokens=False)["input_ids"]
    return {i: s for (i, s), pieces in zip(alphabetic, encoded, strict=True) if pieces == [i]}


def single_pieces(tokenizer: PreTrainedTokenizerBase, words: Sequence[str],
                  vocabulary: dict[int, str]) -> dict[str, int]:
    """word -> its one piece, for the words the tokenizer reads as one whole-word entry of `vocabulary`."""
    if not words:
        return {}
    encoded = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    return {w: pieces[0] for w, pieces in zip(words, encoded, strict=True)
            if len(pieces) == 1 and pieces[0] in vocabulary}


def match_case(word: str, like: str) -> str:
    """`word` capitalised as `like` is: all capitals (of more than one letter), a capital first, or as it is."""
    if len(like) > 1 and like.isupper():
        return word.upper()
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


# ----------------------------------------------------------------------------------------------- replacers


class EmbeddingNeighbours:
    """The candidates of a word: its k nearest whole-word single-piece neighbours by cosine in the teacher's input
    embedding table, searched once for the words that occur, one matrix product per chunk of them.

    The same on every machine: fp32 products (whose last bits depend on the BLAS and its threads) only shortlist
    k + MARGIN candidates, which are ranked again in float64, ties by id, so that the copies, and the teacher
    cache's key and the run's record that cover them, do not depend on where they were made."""

    name = "embedding neighbours"
    MARGIN = 8

    def __init__(self, embeddings: torch.Tensor, tokenizer: PreTrainedTokenizerBase, k: int, words: Iterable[str],
                 chunk: int = 1024):
        start = time.perf_counter()
        vocabulary = whole_word_vocabulary(tokenizer)
        ids = np.array(sorted(i for i in vocabulary if i < embeddings.shape[0]), dtype=np.int64)
        surfaces = [vocabulary[i] for i in ids.tolist()]
        row = {int(i): r for r, i in enumerate(ids)}
        pieces = {w: p for w, p in single_pieces(tokenizer, sorted(set(words)), vocabulary).items() if p in row}
        queries = np.array(sorted({row[p] for p in pieces.values()}), dtype=np.int64)
        self.queries, self.candidates_searched = len(queries), len(ids)
        found: dict[int, tuple[str, ...]] = {}
        take = min(k, len(ids) - 1)
        if len(queries) and take > 0:
            with torch.no_grad():
                exact = torch.nn.functional.normalize(embeddings.detach()[torch.from_numpy(ids)].double(), dim=-1)
                unit = exact.float()
                for lo in range(0, len(queries), chunk):
                    rows = torch.from_numpy(queries[lo:lo + chunk])
                    sims = unit[rows] @ unit.T
                    sims[torch.arange(len(rows)), rows] = -float("inf")  # not the word itself
                    short = torch.topk(sims, min(take + self.MARGIN, len(ids) - 1), dim=-1).indices
                    again = (exact[rows].unsqueeze(1) * exact[short]).sum(-1).numpy()
                    again[short.numpy() == rows.numpy()[:, None]] = -np.inf
                    order = np.lexsort((short.numpy(), -again), axis=-1)[:, :take]  # by cosine, then by id
                    near = np.take_along_axis(short.numpy(), order, axis=-1)
                    found.update({q: tuple(surfaces[j] for j in js) for q, js in zip(rows.tolist(), near.tolist(),
                                                                                      strict=True)})
        self.table: dict[str, tuple[str, ...]] = {w: found[row[p]] for w, p in pieces.items() if row[p] in found}
        self.seconds = time.perf_counter() - start

    def candidates(self, texts: list[str], spans: list[list[tuple[int, int]]],
                   needed: list[np.ndarray]) -> list[list[tuple[str, ...]]]:
        """For each text, each word's candidates (() for a word that is kept: several pieces, or no neighbour)."""
        table = self.table
        return [[table.get(text[a:b], ()) for a, b in text_spans] for text, text_spans in zip(texts, spans,
                                                                                              strict=True)]


class MaskedLMPredictions:
    """The candidates of a word: a fill-mask model's k most likely whole-word single-piece fillers for it, masked
    alone in its original text (TinyBERT's generator), the word itself excluded; predicted in batches, only for the
    words some copy replaces."""

    name = "masked-LM predictions"

    def __init__(self, name_or_path: str, k: int, trust_remote_code: bool = False):
        from transformers import AutoModelForMaskedLM

        path = resolve_model(name_or_path)
        self.tokenizer = load_tokenizer(path, trust_remote_code)
        if self.tokenizer.mask_token_id is None:
            raise UsageError(f"--augment-model {name_or_path}: its tokenizer has no mask token; name a fill-mask "
                             "checkpoint")
        try:
            self.model = AutoModelForMaskedLM.from_pretrained(path, use_safetensors=True,
                                                              trust_remote_code=trust_remote_code).eval()
        except Exception as e:
            raise DataError(f"--augment-model {name_or_path}: cannot load a fill-mask model ({type(e).__name__}: "
                            f"{(str(e).strip().splitlines() or [''])[0][:200]})") from None
        self.k = k
        size = self.model.get_output_embeddings().weight.shape[0]
        self.vocabulary = {i: s for i, s in whole_word_vocabulary(self.tokenizer).items() if i < size}
        self.allowed = torch.full((size,), -float("inf"))  # what a prediction may be: whole single-piece words
        self.allowed[torch.tensor(sorted(self.vocabulary), dtype=torch.long)] = 0.0
        self.parameters = sum(p.numel() for p in self.model.parameters())

    def candidates(self, texts: list[str], spans: list[list[tuple[int, int]]],
                   needed: list[np.ndarray]) -> list[list[tuple[str, ...]]]:
        """For each text, each word's candidates: predicted for the single-piece words marked in `needed`."""
        out = [[() for _ in text_spans] for text_spans in spans]
        words = sorted({texts[t][a:b] for t, text_spans in enumerate(spans) for (a, b), want in
                        zip(text_spans, needed[t], strict=True) if want})
        pieces = single_pieces(self.tokenizer, words, self.vocabulary)
        jobs = [(t, w) for t, text_spans in enumerate(spans) for w, ((a, b), want) in
                enumerate(zip(text_spans, needed[t], strict=True)) if want and texts[t][a:b] in pieces]
        mask = self.tokenizer.mask_token
        for lo in range(0, len(jobs), MLM_BATCH):
            batch = jobs[lo:lo + MLM_BATCH]
            masked = [texts[t][:spans[t][w][0]] + mask + texts[t][spans[t][w][1]:] for t, w in batch]
            for (t, w), fillers in zip(batch, self._predict(masked, [pieces[texts[t][slice(*spans[t][w])]]
                                                                     for t, w in batch]), strict=True):
                out[t][w] = fillers
        return out

    @torch.no_grad()
    def _predict(self, masked: list[str], originals: list[int]) -> list[tuple[str, ...]]:
        enc = self.tokenizer(masked, padding=True, truncation=True, max_length=512, return_tensors="pt")
        device = next(self.model.parameters()).device
        logits = self.model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu()
        rows, cols = (enc["input_ids"] == self.tokenizer.mask_token_id).nonzero(as_tuple=True)
        first = {}
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):  # one mask per text; truncation may drop it
            first.setdefault(r, c)
        result = []
        for r, original in enumerate(originals):
            if r not in first:
                result.append(())
                continue
            scores = logits[r, first[r]] + self.allowed
            scores[original] = -float("inf")
            top = torch.topk(scores, min(self.k, len(self.vocabulary) - 1)).indices.tolist()
            result.append(tuple(self.vocabulary[i] for i in top))
        return result


# ----------------------------------------------------------------------------------------------- generation


def augmented_fields(task: Task) -> tuple[int, ...]:
    """The texts of an example that are augmented: every one, but for RACE the question and options (the passage
    is kept; see the module docstring)."""
    return tuple(range(1, 2 + task.choices)) if task.is_multiple_choice else tuple(range(len(task.text_columns)))


def compose(text: str, spans: list[tuple[int, int]], candidates: list[tuple[str, ...]], draws: np.ndarray,
            picks: np.ndarray, p: float) -> list[str]:
    """The copies of one text: copy c replaces word w when draws[c, w] < p and it has candidates, by candidate
    floor(picks[c, w] * their number)."""
    has = np.fromiter((bool(c) for c in candidates), bool, count=len(candidates))
    chosen = (draws < p) & has
    copies = []
    for c in range(draws.shape[0]):
        parts, last = [], 0
        for w in np.flatnonzero(chosen[c]).tolist():
            a, b = spans[w]
            options = candidates[w]
            parts += [text[last:a], match_case(options[int(picks[c, w] * len(options))], text[a:b])]
            last = b
        parts.append(text[last:])
        copies.append("".join(parts))
    return copies


def augment_examples(examples: list[Example], fields: tuple[int, ...], copies: int, p: float, seed: int,
                     replacer: EmbeddingNeighbours | MaskedLMPredictions, offset: int = 0) -> list[Example]:
    """`copies` augmented copies of each example, example after example (copy c of example i is index~c+1), the
    draws of example i from a generator seeded with (seed, offset + i)."""
    texts = [ex.texts[f] for ex in examples for f in fields]
    spans = [word_spans(t) for t in texts]
    draws, picks, needed = [], [], []
    for i in range(len(examples)):
        rng = np.random.default_rng((seed, offset + i))
        own = spans[i * len(fields):(i + 1) * len(fields)]
        total = sum(len(s) for s in own)
        d, q = rng.random((copies, total)), rng.random((copies, total))
        cuts = np.cumsum([0, *(len(s) for s in own)])
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            draws.append(d[:, lo:hi])
            picks.append(q[:, lo:hi])
            needed.append((d[:, lo:hi] < p).any(axis=0))
    candidates = replacer.candidates(texts, spans, needed)
    made = [compose(t, s, c, d, q, p) for t, s, c, d, q in zip(texts, spans, candidates, draws, picks, strict=True)]
    out = []
    for i, ex in enumerate(examples):
        own = made[i * len(fields):(i + 1) * len(fields)]
        for c in range(copies):
            new = list(ex.texts)
            for f, versions in zip(fields, own, strict=True):
                new[f] = versions[c]
            out.append(Example(tuple(new), None, f"{ex.index}~{c + 1}", ex.level))
    return out


def generate(examples: list[Example], task: Task, cfg: AugmentConfig,
             replacer: EmbeddingNeighbours | MaskedLMPredictions, progress: bool = True) -> list[Example]:
    """cfg.augment copies of every example, CHUNK examples at a time, with a progress line."""
    fields = augmented_fields(task)
    chunks = range(0, len(examples), CHUNK)
    out: list[Example] = []
    start = time.perf_counter()
    bar = show_progress(chunks, len(chunks), "augment", unit="chunk", disable=not progress)
    for lo in bar:
        out += augment_examples(examples[lo:lo + CHUNK], fields, cfg.augment, cfg.augment_p, cfg.augment_seed,
                                replacer, offset=lo)
        bar.set_postfix(texts_per_s=f"{len(out) * len(fields) / (time.perf_counter() - start):.0f}")
    bar.close()
    return out


# ----------------------------------------------------------------------------------------- the unlabelled file


def unlabelled_columns(columns: list[str], source: str, task: Task, text_columns: str | None) -> tuple[str, ...]:
    """The unlabelled file's text columns: --text-columns, else the task's own names (the training file's, or a
    GLUE task's TSV, test or Hub names), whichever the file has."""
    want = len(task.text_columns)
    if text_columns:
        named = split_columns(text_columns)
        if len(named) != want:
            raise UsageError(f"--text-columns {text_columns}: {task.name} has {want} text(s) per example, and the "
                             "unlabelled file must too")
        options = [named]
    else:
        options = list(dict.fromkeys(c for c in (task.text_columns, task.test_text_columns, task.hub_text_columns)
                                     if c))
    for names in options:
        if all(c in columns for c in names):
            return tuple(names)
    shown = " or ".join(",".join(names) for names in options)
    raise DataError(f"{source}: no text column(s) {shown} of task {task.name} (columns: {', '.join(columns)}); "
                    "name them with --text-columns")


def read_unlabelled(path: str, task: Task, text_columns: str | None) -> tuple[list[tuple[str, ...]], str]:
    """The rows of an unlabelled file as text tuples, every text checked, and the file's sha256."""
    if task.is_multiple_choice:
        raise UsageError(f"--unlabelled-file {path}: not for {task.name}, whose examples are passages with questions "
                         "and options rather than texts in columns (docs/augment.md); --augment works for RACE")
    table = read_file(path)
    columns = unlabelled_columns(table.columns, table.source, task, text_columns)
    check_columns(table, columns, "text")
    check_texts(table, FileSpec(text_columns=columns))
    texts = [[str(v) for v in table.data[c]] for c in columns]
    return [tuple(row) for row in zip(*texts, strict=True)], table.sha256


def held_out_splits(task: Task, data_dir: str | Path | None) -> list[tuple[str, list[Split]]]:
    """The splits no unlabelled row may come from: dev (all of it), and test where a test split is known (a test
    file of the task's own data, or the glue_data folder's test files)."""
    held = [("dev", load_split(task, "dev", data_dir))]
    if task.files is not None:
        known = source_table(task.files, "test") is not None
    else:
        root = resolve_data_dir(data_dir)
        try:
            known = root is not None and not task.is_multiple_choice and all(
                find_glue_file(task, root, part) for part in task.test_files)
        except DataError:
            known = False
    if known:
        held.append(("test", load_split(task, "test", data_dir)))
    return held


def refuse_held_out(rows: list[tuple[str, ...]], source: str, held: list[tuple[str, list[Split]]]) -> None:
    """A one-line error naming how many unlabelled rows are rows of a held-out split, and the first."""
    for name, parts in held:
        seen = {normalise(e.texts) for part in parts for e in part.examples}
        hits = [r for r, texts in enumerate(rows) if normalise(texts) in seen]
        if hits:
            shown = " | ".join(rows[hits[0]])
            shown = shown if len(shown) <= 100 else shown[:97] + "..."
            raise DataError(f"{source}: {len(hits)} of its {len(rows)} rows are {name} rows (first: row "
                            f"{hits[0] + 1}, {shown!r}); remove them: the student would learn the teacher's answers "
                            f"on the texts it is scored on")


# ------------------------------------------------------------------------------------------- the extended split


def generation_seconds(examples: int, cfg: AugmentConfig, task: Task, texts: list[str], hidden: int,
                       vocabulary: int, mlm_parameters: int = 0) -> float:
    """An estimate of the time to make cfg.augment copies of `examples` examples whose augmented texts are `texts`,
    from the rates of bench/augment_speed.py's run (docs/augment.md): the neighbour search's arithmetic (distinct
    words x vocabulary entries x hidden, an upper bound on the query words it multiplies), or with a masked LM, one
    forward of ~30 tokens per word some copy replaces (1 - (1 - p)^N of them); then the copies themselves."""
    words = [m.group() for t in texts for m in WORD.finditer(t) if m.group().isalpha()]
    if mlm_parameters:
        share = 1 - (1 - cfg.augment_p) ** cfg.augment
        fixed = len(words) * share * 30 * 2 * mlm_parameters / MLM_FLOPS
    else:
        fixed = 2 * len(set(words)) * vocabulary * hidden / SEARCH_FLOPS
    return fixed + examples * cfg.augment * len(augmented_fields(task)) / TEXTS_PER_SECOND


def cost_line(split: Split, cfg: AugmentConfig, unlabelled: int, seconds: float, row_bytes: int) -> str:
    """What the extra rows will cost, said before they are made: how many rows and texts, the estimated time, and
    the teacher cache's rows and size."""
    made = len(split.examples) * cfg.augment
    total = len(split.examples) + unlabelled + made
    cache = (f"the teacher cache holds {total:,} rows, {total * row_bytes / 1e6:.1f} MB "
             f"({total / len(split.examples):.1f}x the labelled split's rows and teacher time)")
    if not cfg.augment:
        return f"pkd: extra rows for the teacher: {unlabelled:,} unlabelled ({cfg.unlabelled_file}); {cache}"
    source = f"{cfg.augment_model}'s predictions" if cfg.augment_model else "the teacher's embedding neighbours"
    return (f"pkd: extra rows for the teacher: {unlabelled:,} unlabelled + {made:,} augmented ({len(split.examples):,} "
            f"examples x {cfg.augment} copies, {made * len(augmented_fields(split.task)):,} texts; p {cfg.augment_p}, "
            f"k {cfg.augment_k}, seed {cfg.augment_seed}, {source}): generation about {seconds:.0f} s; {cache}")


def record(cfg: AugmentConfig, unlabelled_sha256: str | None = None, unlabelled_rows: int = 0,
           augmented_rows: int = 0) -> dict:
    """run.json's "augment": the settings, and what they gave (--resume compares all but where the file lies)."""
    settings = asdict(cfg)
    if cfg.unlabelled_file is not None:
        settings["unlabelled_file"] = str(Path(cfg.unlabelled_file).expanduser().resolve())
    return {**settings, "unlabelled_sha256": unlabelled_sha256, "unlabelled_rows": unlabelled_rows,
            "augmented_rows": augmented_rows}


def augmented_copies(split: Split, cfg: AugmentConfig, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                     unlabelled: int, row_bytes: int, trust_remote_code: bool, progress: bool) -> list[Example]:
    """cfg.augment copies of each example of `split`, after the line that says what they will cost."""
    texts = [ex.texts[f] for ex in split.examples for f in augmented_fields(split.task)]
    hidden, n = teacher.config.hidden_size, len(split.examples)
    if cfg.augment_model is not None:
        replacer: EmbeddingNeighbours | MaskedLMPredictions = MaskedLMPredictions(cfg.augment_model, cfg.augment_k,
                                                                                  trust_remote_code)
        seconds = generation_seconds(n, cfg, split.task, texts, hidden, len(tokenizer), replacer.parameters)
        say(cost_line(split, cfg, unlabelled, seconds, row_bytes))
    else:
        say(cost_line(split, cfg, unlabelled, generation_seconds(n, cfg, split.task, texts, hidden, len(tokenizer)),
                      row_bytes))
        words = {m.group() for t in texts for m in WORD.finditer(t) if m.group().isalpha()}
        replacer = EmbeddingNeighbours(teacher.get_input_embeddings().weight, tokenizer, cfg.augment_k, words)
    return generate(split.examples, split.task, cfg, replacer, progress)


def cache_row_bytes(task: Task, hidden: int, layers: int) -> int:
    """What one example costs in the teacher cache (pkd.cache): fp16 logits and `layers` pooled states."""
    choices = task.choices or 1
    return 2 * ((choices if task.is_multiple_choice else task.num_labels) + choices * layers * hidden)


def with_extra_rows(split: Split, cfg: AugmentConfig, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                    data_dir: str | Path | None = None, text_columns: str | None = None, layers: int = 0,
                    trust_remote_code: bool = False, progress: bool = True) -> tuple[Split, dict]:
    """The training split with the unlabelled file's rows and cfg.augment copies of each of its examples appended
    (teacher-only rows, label None), and run.json's record of them; `split` itself when there are none.
    layers: how many teacher layers the cache stores, for the cost line."""
    if not cfg.active:
        return split, record(cfg.applied())
    if split.teacher_only:
        raise ValueError("the split already has teacher-only rows")
    rows, sha256 = ([], None) if cfg.unlabelled_file is None else read_unlabelled(cfg.unlabelled_file, split.task,
                                                                                   text_columns)
    if rows:
        refuse_held_out(rows, cfg.unlabelled_file, held_out_splits(split.task, data_dir))
    unlabelled = [Example(texts, None, f"unlabelled-{r + 1}") for r, texts in enumerate(rows)]
    row_bytes = cache_row_bytes(split.task, teacher.config.hidden_size, layers)
    if cfg.augment:
        augmented = augmented_copies(split, cfg, teacher, tokenizer, len(rows), row_bytes, trust_remote_code,
                                     progress and is_main())  # every rank makes the same copies; one shows it
    else:
        augmented = []
        say(cost_line(split, cfg, len(rows), 0.0, row_bytes))
    extra = unlabelled + augmented
    digest = hashlib.sha256()
    for ex in extra:
        digest.update(json.dumps(ex.texts).encode())
    made = record(cfg, sha256, len(rows), len(augmented))
    key = {"train": split.fingerprint, "version": VERSION, "texts": digest.hexdigest(),
           **{k: v for k, v in made.items() if k != "unlabelled_file"}}
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return replace(split, examples=[*split.examples, *extra], fingerprint=fingerprint, teacher_only=len(extra)), made
