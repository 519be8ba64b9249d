"""How much do the [CLS] state, the pooler output and the mean-pooled state vary between inputs?

A classifier head on a representation that barely varies between inputs starts with nothing to separate:
its gradient must first move the encoder. This prints, for the default teacher's pre-trained checkpoint
(all of its layers, and the first M layers that a PKD student starts from), over the first N training
inputs of a task:
  - cos: the mean pairwise cosine similarity of the representations (1.0 = identical for every input);
  - spread: the std across inputs, averaged over hidden units, divided by the mean vector norm;
  - sat: for the pooler (tanh) output, the fraction of values with |value| > 0.99 (saturated: ~zero gradient).
It also prints the [CLS] cosine after every layer, and for 3-layer students built from other choices of the
checkpoint's layers. Usage: python bench/diagnose_pooling.py [--task sst2] [--n 256] [--depths 6,3]
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoConfig, AutoModel

from pkd.data import load_split
from pkd.models import load_tokenizer, resolve_model
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
    args = ap.parse_args()
    task = get_task(args.task)
    path = resolve_model(None)
    tok = load_tokenizer(path)
    examples = load_split(task, "train", args.data_dir, args.n)[0].examples
    columns = list(zip(*(e.texts for e in examples), strict=True))
    enc = tok(*columns, truncation=True, max_length=128, padding=True, return_tensors="pt")
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


if __name__ == "__main__":
    main()
