"""How much do the [CLS] state, the pooler output and the mean-pooled state vary between inputs?

A classifier head on a representation that barely varies between inputs starts with nothing to separate:
its gradient must first move the encoder. This prints, for the default teacher's pre-trained checkpoint
(all of its layers, and the first M layers that a PKD student starts from), over the first N training
inputs of a task:
  - cos: the mean pairwise cosine similarity of the representations (1.0 = identical for every input);
  - spread: the std across inputs, averaged over hidden units, divided by the mean vector norm;
  - sat: for the pooler (tanh) output, the fraction of values with |value| > 0.99 (saturated: ~zero gradient).
It also prints the [CLS] cosine after every layer, and for 3-layer students built from other choices of the
checkpoint's layers.

For a multiple-choice task (--task race) the head scores each option's sequence, so what matters is how much
the representation varies between the options of one question, not between questions: it prints, after every
layer, the mean cosine between the four options' [CLS] states of the same question ("within") beside the
mean pairwise cosine across questions, and the same for the mean-pooled state.
Usage: python bench/investigations/diagnose_pooling.py [--task sst2] [--n 256] [--depths 6,3] [--max-seq-len 128]
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoConfig, AutoModel

from pkd.data import load_split
from pkd.models import load_tokenizer, resolve_model
from pkd.race import choice_pairs
from pkd.student import select_layers
from pkd.tasks import get_task


def mean_cosine(x: torch.Tensor) -> float:
    unit = torch.nn.functional.normalize(x.float(), dim=-1)
    n = len(x)
    return float(((unit @ unit.T).sum() - n) / (n * (n - 1)))


def stats(x: torch.Tensor) -> str:
    spread = x.float().std(0).mean() / x.float().norm(dim=-1).mean()
    return f"cos {mean_cosine(x):.3f}  spread {spread:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--depths", default="6,3")
    ap.add_argument("--data-dir", default="../shared/data/glue")
    ap.add_argument("--max-seq-len", type=int, default=128)
    args = ap.parse_args()
    task = get_task(args.task)
    path = resolve_model(None)
    tok = load_tokenizer(path)
    examples = load_split(task, "train", args.data_dir, args.n)[0].examples
    if task.is_multiple_choice:
        option_spread(task, path, tok, examples, args.max_seq_len)
        return
    columns = list(zip(*(e.texts for e in examples), strict=True))
    enc = tok(*columns, truncation=True, max_length=args.max_seq_len, padding=True, return_tensors="pt")
    model = AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    mask = enc["attention_mask"].unsqueeze(-1).float()
    print(f"{args.task}: {len(examples)} training inputs, checkpoint {path}")
    for depth in (int(d) for d in args.depths.split(",")):
        h = out.hidden_states[depth]
        cls = h[:, 0]
        pooled = model.pooler.activation(model.pooler.dense(cls))
        mean = (h * mask).sum(1) / mask.sum(1)
        sat = (pooled.abs() > 0.99).float().mean()
        print(f"layer {depth}: [CLS] {stats(cls)} | pooler(tanh) {stats(pooled)} sat {sat:.3f} | "
              f"mean-pooled {stats(mean)}")
    print("[CLS] cos after each layer (0 = embeddings):",
          " ".join(f"{mean_cosine(h[:, 0]):.3f}" for h in out.hidden_states))
    depth = model.config.num_hidden_layers
    for keep in ([1, 2, 3], [1, 3, 5], [2, 4, 6], [1, 2, 6]):
        if max(keep) > depth:
            continue
        config = AutoConfig.from_pretrained(path)
        config.num_hidden_layers = len(keep)
        student = AutoModel.from_config(config).eval()
        student.load_state_dict(select_layers(model.state_dict(), depth, [k - 1 for k in keep]), strict=False)
        with torch.no_grad():
            top = student(**enc).last_hidden_state[:, 0]
        print(f"3-layer student from layers {keep}: top [CLS] cos {mean_cosine(top):.3f}")


def within(x: torch.Tensor, choices: int) -> float:
    """Mean cosine between the options of the same question: x is [questions * choices, H], options adjacent."""
    unit = torch.nn.functional.normalize(x.float(), dim=-1).view(-1, choices, x.shape[-1])
    sims = unit @ unit.transpose(1, 2)
    return float((sims.sum((1, 2)) - choices).mean() / (choices * (choices - 1)))


def option_spread(task, path: str, tok, examples: list, max_seq_len: int) -> None:
    pairs = [pair for ex in examples for pair in choice_pairs(ex)]
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation="only_first", max_length=max_seq_len,
              padding=True, return_tensors="pt")
    model = AutoModel.from_pretrained(path).eval()
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    mask = enc["attention_mask"].unsqueeze(-1).float()
    print(f"{task.name}: {len(examples)} training questions x {task.choices} options, {max_seq_len} tokens, "
          f"checkpoint {path}")
    print("layer | [CLS] within a question | [CLS] across questions | mean-pooled within | mean-pooled across")
    for depth, h in enumerate(hidden):
        cls, mean = h[:, 0], (h * mask).sum(1) / mask.sum(1)
        print(f"{depth} | {within(cls, task.choices):.4f} | {mean_cosine(cls[::task.choices]):.4f} | "
              f"{within(mean, task.choices):.4f} | {mean_cosine(mean[::task.choices]):.4f}")


if __name__ == "__main__":
    main()
