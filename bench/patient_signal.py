"""How much PT's targets vary across inputs, per layer, for [CLS] and for the mean of the tokens (pkd.patient).

For a checkpoint (default: all-MiniLM-L6-v2, the default teacher's base; or a fine-tuned teacher's run directory)
and each task given, the mean pairwise cosine of each layer's normalised state over the training inputs that the
auto pooling probes (up to 256, spread over the split): 1.0000 is the same vector for every input, so PT on that
layer has nothing to transfer. Feeds docs/patient.md ("The signal").

    .venv/bin/python bench/patient_signal.py --tasks sst2,stsb,mrpc,rte --data-dir ../shared/data/glue
    .venv/bin/python bench/patient_signal.py --model bench/out/grouping/stsb-teacher-shuffled --tasks stsb
"""

from __future__ import annotations

import argparse

import torch

from pkd.encoding import encode_splits
from pkd.models import load_tokenizer, resolve_model
from pkd.patient import PROBES, probe_spreads
from pkd.tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint or run directory (default: the default teacher's base)")
    p.add_argument("--tasks", default="sst2,stsb,mrpc,rte", help="comma-separated tasks")
    p.add_argument("--data-dir", default="../shared/data/glue")
    p.add_argument("--max-seq-len", type=int, default=128)
    args = p.parse_args()
    from transformers import AutoModel

    path = resolve_model(args.model)
    model, tokenizer = AutoModel.from_pretrained(path), load_tokenizer(path)
    layers = list(range(model.config.num_hidden_layers + 1))  # 0: the embeddings
    print(f"{path}: mean pairwise cosine of each layer's normalised state over up to {PROBES} training inputs\n")
    print("| task | pooling | " + " | ".join("emb." if k == 0 else str(k) for k in layers) + " |")
    print("|---|---|" + "---|" * len(layers))
    torch.manual_seed(0)
    for name in args.tasks.split(","):
        task = get_task(name.strip())
        data = encode_splits(task, "train", tokenizer, args.max_seq_len, args.data_dir)[0]
        spreads = probe_spreads(model, data, tokenizer, layers)
        for pooling in ("cls", "mean"):
            cells = " | ".join(f"{spreads[pooling][k]:.4f}" for k in layers)
            print(f"| {task.name} | {'[CLS]' if pooling == 'cls' else 'mean'} | {cells} |")


if __name__ == "__main__":
    main()
