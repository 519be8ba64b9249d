"""Shared fixtures: tiny random-weight encoders built from configs, and small GLUE-layout data sets."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["HF_HUB_OFFLINE"] = "1"  # no test may reach the Hub
os.environ.setdefault("OMP_NUM_THREADS", "1")  # also for the subprocesses some tests start


def pytest_configure(config):
    import torch

    # Tiny models gain nothing from threads, and spinning OpenMP threads on a shared 2-core machine can
    # slow everything else (and themselves) down by orders of magnitude.
    torch.set_num_threads(1)

WORDS = ("good great fine nice happy bad awful poor sad dull the a movie film plot actor is was very not "
         "and it cat dog sat on mat man woman runs walks park city big small red blue").split()


def make_tokenizer(path: Path, words: list[str] | None = None):
    """A word-level BERT tokenizer of WORDS (or `words`: another vocabulary, as a student of another family has)."""
    from transformers import BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "_", "?", *(WORDS if words is None else words)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    assert len(tok) == len(vocab)
    return tok


def make_tiny_model(path: Path, family: str = "bert", layers: int = 4, hidden: int = 32, seed: int = 0,
                    words: list[str] | None = None) -> Path:
    """A pre-trained-looking encoder checkpoint (base model only) with random weights; `words`: its own vocabulary
    (make_tokenizer)."""
    import torch
    from transformers import AutoModel, BertConfig, ElectraConfig, MPNetConfig, RobertaConfig

    tok = make_tokenizer(path, words)
    common = dict(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                  intermediate_size=2 * hidden, max_position_embeddings=80)
    config = {"bert": lambda: BertConfig(**common),
              "roberta": lambda: RobertaConfig(**common, pad_token_id=0, bos_token_id=2, eos_token_id=3),
              "electra": lambda: ElectraConfig(**common, embedding_size=hidden),
              "mpnet": lambda: MPNetConfig(**common, pad_token_id=0)}[family]()
    torch.manual_seed(seed)
    model = AutoModel.from_config(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def make_tiny_mlm(path: Path, hidden: int = 32, seed: int = 0) -> Path:
    """A fill-mask checkpoint (BertForMaskedLM, 2 layers, random weights) of make_tokenizer's vocabulary."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    tok = make_tokenizer(path)
    torch.manual_seed(seed)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=80))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


def varied_lengths(n: int = 70, seed: int = 0):
    """An in-memory SST-2 split of n sentences of 1 to 30 words (the file fixtures' sentences all have 8 tokens)."""
    from pkd.tasks import Example, Split, get_task

    rng = random.Random(seed)
    examples = [Example((" ".join(rng.choices(WORDS, k=rng.randint(1, 30))),), rng.randint(0, 1), str(i))
                for i in range(n)]
    return Split(get_task("sst2"), "train", examples, "memory", f"varied-lengths-{n}-{seed}")


def _sentence(rng: random.Random, positive: bool) -> str:
    mood = rng.choice(WORDS[:5] if positive else WORDS[5:10])
    return f"the {rng.choice(['movie', 'film', 'plot'])} was very {mood} ."


def write_glue(root: Path, n_train: int = 256, n_dev: int = 24, seed: int = 0) -> Path:
    """Every GLUE task in the glue_data layout: header names, header-less CoLA, BOM'd MRPC, MNLI's two devs."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)

    def pair(label: int) -> tuple[str, str]:
        a = _sentence(rng, True)
        return a, (a if label else _sentence(rng, False))

    def write(task: str, name: str, header: str | None, rows: list[str], bom: bool = False):
        d = root / task
        d.mkdir(exist_ok=True)
        text = ("\ufeff" if bom else "") + ("" if header is None else header + "\n") + "".join(r + "\n" for r in rows)
        (d / name).write_text(text, encoding="utf-8")

    for split, n in (("train", n_train), ("dev", n_dev)):
        labels = [rng.randint(0, 1) for _ in range(n)]
        write("SST-2", f"{split}.tsv", "sentence\tlabel", [f"{_sentence(rng, y == 1)} \t{y}" for y in labels])
        write("CoLA", f"{split}.tsv", None,
              [f"gj04\t{y}\t{'' if y else '*'}\t{_sentence(rng, y == 1)}" for y in labels])
        write("MRPC", f"{split}.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
              [f"{y}\t{100 + i}\t{200 + i}\t" + "\t".join(pair(y)) for i, y in enumerate(labels)], bom=True)
        write("STS-B", f"{split}.tsv",
              "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
              [f"{i}\tmain\tf\t2012\t{i}\tnone\tnone\t" + "\t".join(pair(y)) + f"\t{4.0 * y + 0.5:.3f}"
               for i, y in enumerate(labels)])
        write("QQP", f"{split}.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
              [f"{i}\t{i}\t{i + 1}\t" + "\t".join(pair(y)) + f"\t{y}" for i, y in enumerate(labels)])
        write("QNLI", f"{split}.tsv", "index\tquestion\tsentence\tlabel",
              [f"{i}\t" + "\t".join(pair(y)) + f"\t{'entailment' if y else 'not_entailment'}"
               for i, y in enumerate(labels)])
        for task in ("RTE", "WNLI"):
            lab = (lambda y: "entailment" if y else "not_entailment") if task == "RTE" else str
            write(task, f"{split}.tsv", "index\tsentence1\tsentence2\tlabel",
                  [f"{i}\t" + "\t".join(pair(y)) + f"\t{lab(y)}" for i, y in enumerate(labels)])
        mnli_header = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
                       "sentence1_parse\tsentence2_parse\tsentence1\tsentence2")
        names = ("contradiction", "entailment", "neutral")
        if split == "train":
            write("MNLI", "train.tsv", mnli_header + "\tlabel1\tgold_label",
                  [f"{i}\t1\t1n\tfic\t-\t-\t-\t-\t" + "\t".join(pair(y)) + f"\t{names[y]}\t{names[y]}"
                   for i, y in enumerate(labels)])
        else:
            for part in ("dev_matched", "dev_mismatched"):
                write("MNLI", f"{part}.tsv", mnli_header + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label",
                      [f"{i}\t1\t1n\tfic\t-\t-\t-\t-\t" + "\t".join(pair(y)) + f"\t{names[y]}" * 6
                       for i, y in enumerate(labels)])
    # Unlabeled test files: index plus text columns.
    write("SST-2", "test.tsv", "index\tsentence", [f"{i}\t{_sentence(rng, i % 2 == 0)}" for i in range(10)])
    write("CoLA", "test.tsv", "index\tsentence", [f"{i}\t{_sentence(rng, True)}" for i in range(10)])
    write("MRPC", "test.tsv", "index\t#1 ID\t#2 ID\t#1 String\t#2 String",
          [f"{i}\t1\t2\t" + "\t".join(pair(1)) for i in range(10)])
    write("STS-B", "test.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2",
          [f"{i}\tmain\tf\t2012\t{i}\tnone\tnone\t" + "\t".join(pair(1)) for i in range(10)])
    write("QQP", "test.tsv", "id\tquestion1\tquestion2", [f"{i}\t" + "\t".join(pair(1)) for i in range(10)])
    for task, header in (("QNLI", "index\tquestion\tsentence"), ("RTE", "index\tsentence1\tsentence2"),
                         ("WNLI", "index\tsentence1\tsentence2")):
        write(task, "test.tsv", header, [f"{i}\t" + "\t".join(pair(1)) for i in range(10)])
    for part in ("test_matched", "test_mismatched"):
        write("MNLI", f"{part}.tsv", "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
              "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2",
              [f"{i}\t1\t1n\tfic\t-\t-\t-\t-\t" + "\t".join(pair(1)) for i in range(10)])
    return root


@pytest.fixture(scope="session")
def glue_dir(tmp_path_factory) -> Path:
    return write_glue(tmp_path_factory.mktemp("glue"))


TINY_TRAIN = dict(epochs=3, batch_size=16, eval_batch_size=32, lr=2e-3, max_seq_len=24, seed=0)


@pytest.fixture(scope="session")
def tiny_teacher(tiny_bert, glue_dir, tmp_path_factory) -> Path:
    """A 4-layer tiny BERT fine-tuned on the SST-2 fixture."""
    import pkd

    out = tmp_path_factory.mktemp("teacher") / "run"
    pkd.finetune("sst2", out, model=str(tiny_bert), data_dir=glue_dir, quiet=True, **TINY_TRAIN)
    return out
