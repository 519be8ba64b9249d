"""Why is pkd's ONNX Runtime int8 student slower than the issue-14 probe? One factor at a time, measured in one run.

Exports one run (default: the demo's PKD student) to ONNX four ways - attention as pkd exports it (eager) or as
transformers runs it by default (sdpa), weights int8 unsigned (QUInt8, pkd's choice) or signed (QInt8, the
probe's) - plus both fp32 graphs, and times every graph interleaved with the fp32 PyTorch teacher and student at
b=32 x 128 tokens (throughput) and b=1 (latency), in ONNX Runtime sessions made as pkd makes them (pkd.inference:
intra-op threads, spinning off). Prints one table with ratios against the PyTorch teacher.

  .venv/bin/python bench/investigations/ort_variants.py runs/demo/teacher runs/demo/student --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoModelForSequenceClassification

from pkd.inference import ort_session


def export(model, attention: str, path: Path) -> None:
    names = ["input_ids", "attention_mask", "token_type_ids"]

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs, strict=True))).logits

    model.set_attn_implementation(attention)
    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    with torch.no_grad():
        torch.onnx.export(Logits().eval(), example, str(path), input_names=names, output_names=["logits"],
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)


def timer(run, inputs: dict, iters: int) -> float:
    run(inputs)  # warm-up
    start = time.perf_counter()
    for _ in range(iters):
        run(inputs)
    return (time.perf_counter() - start) / iters


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("teacher")
    p.add_argument("student")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seq-len", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()
    student = AutoModelForSequenceClassification.from_pretrained(args.student).eval()
    tmp = Path(tempfile.mkdtemp(prefix="ort-variants-"))
    runners = {"teacher torch fp32": teacher, "student torch fp32": student}
    for attention in ("eager", "sdpa"):
        fp32 = tmp / f"{attention}.onnx"
        export(student, attention, fp32)
        runners[f"student ORT fp32 {attention}"] = fp32
        for weights in (QuantType.QUInt8, QuantType.QInt8):
            q = tmp / f"{attention}-{weights.name}.onnx"
            quantize_dynamic(str(fp32), str(q), weight_type=weights)
            runners[f"student ORT int8 {attention} {weights.name}"] = q

    def runner(target):
        if isinstance(target, Path):
            session = ort_session(target, args.threads)
            return lambda x: session.run(None, {k: v.numpy() for k, v in x.items()})
        return lambda x: target(**x)

    calls = {name: runner(t) for name, t in runners.items()}
    shapes = {"b=32": 32, "b=1": 1}
    gen = torch.Generator().manual_seed(0)
    inputs = {}
    for label, batch in shapes.items():
        ids = torch.randint(1000, 20000, (batch, args.seq_len), generator=gen)
        inputs[label] = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                         "token_type_ids": torch.zeros_like(ids)}
    times = {(name, label): [] for name in calls for label in shapes}
    with torch.inference_mode():
        for _ in range(args.repeats):  # interleaved: every model in every round
            for name, call in calls.items():
                for label, batch in shapes.items():
                    times[name, label].append(timer(call, inputs[label], 3 if batch > 1 else 10))
    med = {k: statistics.median(v) for k, v in times.items()}
    base32, base1 = med["teacher torch fp32", "b=32"], med["teacher torch fp32", "b=1"]
    print(f"{args.threads} threads, {args.seq_len} tokens, {args.repeats} interleaved rounds (medians); "
          f"ratios against the fp32 PyTorch teacher")
    print("| model | ex/s (b=32) | throughput x | latency ms (b=1) | latency x |")
    print("|---|---|---|---|---|")
    for name in calls:
        t32, t1 = med[name, "b=32"], med[name, "b=1"]
        print(f"| {name} | {32 / t32:.1f} | {base32 / t32:.2f}x | {1000 * t1:.1f} | {base1 / t1:.2f}x |")
    print("spread (max/min over rounds, b=32):",
          ", ".join(f"{n}: {max(times[n, 'b=32']) / min(times[n, 'b=32']):.2f}" for n in calls))


if __name__ == "__main__":
    main()
