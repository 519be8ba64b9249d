"""TextBrewer's side of bench/vs_textbrewer.sh: one student distilled by GeneralDistiller, the teacher run every batch.

Runs in TextBrewer's own venv (torch, transformers, textbrewer; no pkd), on what pkd distill gets: the first N
SST-2 training sentences, the same student initialisation (saved by pkd beforehand), tokenizer, max_seq_len,
batch size, epochs, AdamW with weight decay 0.01 off biases and LayerNorm, linear warm-up over 10% of the
steps, gradient clipping at 1.0, and dev accuracy on all of SST-2 dev after every epoch.

The loss is pkd's: (1 - alpha) CE + alpha T^2 KL + beta * mean over the mapped layers of the normalised
[CLS] distance. TextBrewer's KD term is the soft cross-entropy without T^2 (the same gradient as the KL), so
its weight is alpha T^2; its "pkd" match is one layer's term, so each of the L matches weighs beta / L.
--method: pkd (the [CLS] matches of --layer-map: 2,4 for PKD-Skip, 4,5 for PKD-Last), kd (no matches), or ft:
TextBrewer's side at its fastest, a plain PyTorch loop on the labels with no teacher loaded (the issue allows it).
Prints one JSON line: {"dev_accuracy": best over epochs, "per_epoch": [...], "seconds": wall from start-up}.
Feeds docs/performance.md through bench/vs_textbrewer.sh.
"""

import argparse
import json
import time

START = time.perf_counter()

import torch  # noqa: E402
from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    get_linear_schedule_with_warmup,
)


def read_sst2(path, limit=None):
    """glue_data SST-2: a header, then sentence<TAB>label, read with quoting off."""
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            sentence, label = line.rstrip("\n").split("\t")
            rows.append((sentence, int(label)))
    return rows


def encode(rows, tokenizer, max_len):
    enc = tokenizer([s for s, _ in rows], truncation=True, max_length=max_len)
    return [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
             "token_type_ids": enc["token_type_ids"][i], "labels": y} for i, (_, y) in enumerate(rows)]


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("--teacher", "--student-init", "--data-dir", "--out"):
        p.add_argument(name, required=True)
    p.add_argument("--max-train-examples", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--alpha", type=float, default=0.7)
    p.add_argument("--temperature", type=float, default=10.0)
    p.add_argument("--beta", type=float, default=1.3)
    p.add_argument("--layer-map", default="2,4", help="teacher layers for student layers 1..M-1 (PKD-Skip: 2,4)")
    p.add_argument("--method", choices=("pkd", "kd", "ft"), default="pkd")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    torch.manual_seed(args.seed)

    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    train = encode(read_sst2(f"{args.data_dir}/SST-2/train.tsv", args.max_train_examples), tokenizer,
                   args.max_seq_len)
    dev = encode(read_sst2(f"{args.data_dir}/SST-2/dev.tsv"), tokenizer, args.max_seq_len)
    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    # A plain dict: TextBrewer unpacks a batch as keyword arguments only when `type(batch) is dict`, and the
    # collator returns a BatchEncoding (a dict subclass), which it would pass as positional strings.
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True,
                                         collate_fn=lambda rows: dict(collate(rows)),
                                         generator=torch.Generator().manual_seed(args.seed))
    student = AutoModelForSequenceClassification.from_pretrained(args.student_init)

    no_decay = ("bias", "LayerNorm.weight")
    params = list(student.named_parameters())
    optimizer = torch.optim.AdamW([
        {"params": [q for n, q in params if not n.endswith(no_decay)], "weight_decay": 0.01},
        {"params": [q for n, q in params if n.endswith(no_decay)], "weight_decay": 0.0}], lr=args.lr)
    total = len(loader) * args.epochs
    scheduler_args = {"num_warmup_steps": int(0.1 * total), "num_training_steps": total}
    scores = []

    def evaluate(model, step):
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(dev), 128):
                batch = collate(dev[start:start + 128])
                labels = batch.pop("labels")
                correct += (model(**batch).logits.argmax(-1) == labels).sum().item()
        scores.append(100.0 * correct / len(dev))

    if args.method == "ft":
        scheduler = get_linear_schedule_with_warmup(optimizer, **scheduler_args)
        for epoch in range(args.epochs):
            student.train()
            for batch in loader:
                student(**batch).loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            evaluate(student, epoch)
    else:
        distill(args, student, optimizer, loader, scheduler_args, evaluate)
    print(json.dumps({"dev_accuracy": max(scores), "per_epoch": scores,
                      "seconds": round(time.perf_counter() - START, 1)}))


def distill(args, student, optimizer, loader, scheduler_args, evaluate) -> None:
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()

    def adaptor(batch, outputs):
        return {"logits": outputs.logits, "hidden": outputs.hidden_states, "losses": outputs.loss}

    layer_map = [int(k) for k in args.layer_map.split(",")] if args.method == "pkd" else []
    matches = [{"layer_T": k, "layer_S": j, "feature": "hidden", "loss": "pkd", "weight": args.beta / len(layer_map)}
               for j, k in enumerate(layer_map, start=1)]
    distill_config = DistillationConfig(temperature=args.temperature, hard_label_weight=1 - args.alpha,
                                        kd_loss_type="ce", kd_loss_weight=args.alpha * args.temperature ** 2,
                                        intermediate_matches=matches)
    train_config = TrainingConfig(device="cpu", output_dir=args.out, log_dir=None)
    distiller = GeneralDistiller(train_config=train_config, distill_config=distill_config, model_T=teacher,
                                 model_S=student, adaptor_T=adaptor, adaptor_S=adaptor)
    with distiller:
        distiller.train(optimizer, loader, args.epochs, scheduler_class=get_linear_schedule_with_warmup,
                        scheduler_args=scheduler_args, max_grad_norm=1.0, callback=evaluate,
                        output_hidden_states=bool(matches))  # KD needs no hidden states


if __name__ == "__main__":
    main()
