"""Issue 33, item 2: the int8 and compiled routes to VNNI and AMX that `pkd export` does not build, measured beside
the ones it does, on the same models, inputs and CPU, in one run.

Variants of the student (the teacher in fp32 PyTorch is the reference every ratio divides by):
  torch fp32, torch bf16        eager PyTorch, as `pkd export --format torch` writes them
  ort int8 dynamic              what `pkd export --precision int8` writes: quantize_dynamic, QUInt8 weights
  ort int8 static QDQ           quantize_static, QDQ format, per-channel signed weights, uint8 activations
                                calibrated (MinMax) on --calibration training sentences
  ov f32, ov bf16               what `pkd export --format openvino` writes (the fp32 ONNX graph as an IR)
  ov int8 (NNCF)                nncf.quantize on that IR (post-training, ModelType.TRANSFORMER, the same
                                calibration sentences); compiled with the bf16 hint too, for the layers NNCF keeps
                                in floating point
  compile bf16                  torch.compile (inductor) of the bf16 model, freezing on
  compile int8 (pt2e)           torchao's PT2E flow with X86InductorQuantizer (static int8 activations and
                                weights), then torch.compile with freezing: the x86 inductor int8 path

Each variant is scored on the full dev set (fixed batches of 32 x --max-seq-len, the same inputs for all) and
timed interleaved (pkd.inference.median_seconds) at b=1 and b=--batch-size on --seq-len tokens. A route that
fails to build prints its error in the table instead of a number. Needs, beyond pkd[export,openvino] (which
brings nncf): torchao, for the pt2e route only. Keep it out of the venv: transformers imports torchao whenever it is
installed, which slows every pkd command and prints its load warnings.

  .venv/bin/pip install --no-deps --target bench/out/probe-pkgs torchao
  PYTHONPATH=bench/out/probe-pkgs .venv/bin/python bench/deploy_probe.py runs/demo/teacher runs/demo/student \
      --threads 2 --out bench/out/probe.json
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pkd.data import load_split
from pkd.deploy import export_onnx, quantize_onnx
from pkd.inference import SEQUENCE, OnnxClassifier, OpenVinoClassifier, cpu_features, cpu_name, median_seconds
from pkd.tasks import get_task


class Logits(torch.nn.Module):
    """(input_ids, attention_mask) -> logits: the positional form torch.export and torch.compile take."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class Compiled(torch.nn.Module):
    """A compiled (ids, mask) -> logits function behind the model interface: model(**batch).logits, float32."""

    def __init__(self, fn, config):
        super().__init__()
        self.fn, self.config = fn, config

    def forward(self, **inputs: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.fn(inputs["input_ids"], inputs["attention_mask"]).float())


def fixed_batches(tokenizer, texts: list[str], seq_len: int, batch: int) -> list[dict[str, torch.Tensor]]:
    """Every text padded to seq_len, in batches of exactly `batch` (the last one filled with repeats of its first
    text): one input shape, so compiled graphs compile once for scoring."""
    out = []
    for i in range(0, len(texts), batch):
        chunk = texts[i:i + batch]
        chunk = chunk + [chunk[0]] * (batch - len(chunk))
        enc = tokenizer(chunk, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out


def accuracy(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], labels: np.ndarray) -> float:
    with torch.inference_mode():
        preds = np.concatenate([model(**b).logits.float().argmax(-1).numpy() for b in batches])[:len(labels)]
    return 100.0 * float((preds == labels).mean())


def feeds(batches: list[dict[str, torch.Tensor]], names: list[str]) -> list[dict[str, np.ndarray]]:
    """Calibration feeds for ONNX Runtime and NNCF: int64 numpy arrays, token_type_ids zeros."""
    out = []
    for b in batches:
        feed = {"input_ids": b["input_ids"].numpy(), "attention_mask": b["attention_mask"].numpy()}
        feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        out.append({n: feed[n] for n in names})
    return out


def onnx_names(path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]


def build_ort_static(fp32: Path, calib: list[dict[str, np.ndarray]], dst: Path) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    pre = dst.with_name("pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul", "Gemm"])


def build_nncf(fp32: Path, calib: list[dict[str, np.ndarray]], dst: Path) -> None:
    import nncf
    import openvino as ov

    model = ov.convert_model(str(fp32))
    quantized = nncf.quantize(model, nncf.Dataset(calib), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=sum(len(f["input_ids"]) for f in calib))
    ov.save_model(quantized, str(dst), compress_to_fp16=False)


def build_ov(fp32: Path, dst: Path) -> None:
    import openvino as ov

    ov.save_model(ov.convert_model(str(fp32)), str(dst), compress_to_fp16=False)


def build_compile_bf16(student: torch.nn.Module) -> torch.nn.Module:
    import torch._inductor.config as inductor

    inductor.freezing = True
    model = Logits(copy.deepcopy(student).to(torch.bfloat16)).eval()
    return Compiled(torch.compile(model), student.config)


def build_compile_int8(student: torch.nn.Module, calib: list[dict[str, torch.Tensor]], seq_len: int
                       ) -> torch.nn.Module:
    import torch._inductor.config as inductor
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    inductor.freezing = True
    model = Logits(copy.deepcopy(student)).eval()
    example = (calib[0]["input_ids"], calib[0]["attention_mask"])
    batch, seq = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("seq", min=2, max=seq_len)
    exported = torch.export.export(model, example, dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq})).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for b in calib:
            prepared(b["input_ids"], b["attention_mask"])
    converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    return Compiled(torch.compile(converted), student.config)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher")
    p.add_argument("student")
    p.add_argument("--task", default="sst2")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seq-len", type=int, default=128, help="tokens per timed input")
    p.add_argument("--max-seq-len", type=int, default=64, help="tokens per scored dev input (the run's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--calibration", type=int, default=256, help="training sentences the int8 routes calibrate on")
    p.add_argument("--max-dev-examples", type=int, default=None, help="score on the first N dev examples only")
    p.add_argument("--skip", default="", help="comma-separated variant names to leave out")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    task = get_task(args.task)
    tokenizer = AutoTokenizer.from_pretrained(args.student)
    (dev,) = load_split(task, "dev", args.data_dir, limit=args.max_dev_examples)
    (train,) = load_split(task, "train", args.data_dir, limit=args.calibration)
    labels = np.array([e.label for e in dev.examples])
    dev_batches = fixed_batches(tokenizer, [e.texts[0] for e in dev.examples], args.max_seq_len, args.batch_size)
    calib = fixed_batches(tokenizer, [e.texts[0] for e in train.examples], args.max_seq_len, args.batch_size)

    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()
    student = AutoModelForSequenceClassification.from_pretrained(args.student).eval()
    work = Path(tempfile.mkdtemp(prefix="pkd-probe-"))
    fp32 = work / "model.onnx"
    export_onnx(student, SEQUENCE, {k: v[:2, :16] for k, v in calib[0].items()} | {
        "token_type_ids": torch.zeros_like(calib[0]["input_ids"][:2, :16])}, fp32, 17)
    names = onnx_names(fp32)
    calib_feeds = feeds(calib, names)

    builders = {
        "teacher torch fp32": lambda: teacher,
        "student torch fp32": lambda: student,
        "student torch bf16": lambda: copy.deepcopy(student).to(torch.bfloat16),
        "student ort int8 dynamic (pkd)": lambda: (quantize_onnx(fp32, work / "dyn.onnx"),
                                                    OnnxClassifier(work / "dyn.onnx", student.config,
                                                                   args.threads))[1],
        "student ort int8 static QDQ": lambda: (build_ort_static(fp32, calib_feeds, work / "qdq.onnx"),
                                                 OnnxClassifier(work / "qdq.onnx", student.config, args.threads))[1],
        "student ov f32": lambda: (build_ov(fp32, work / "ov.xml"),
                                   OpenVinoClassifier(work / "ov.xml", student.config, "fp32", args.threads))[1],
        "student ov bf16": lambda: OpenVinoClassifier(work / "ov.xml", student.config, "bf16", args.threads),
        "student ov int8 (NNCF)": lambda: (build_nncf(fp32, calib_feeds, work / "nncf.xml"),
                                           OpenVinoClassifier(work / "nncf.xml", student.config, "fp32",
                                                              args.threads))[1],
        "student ov int8 (NNCF) + bf16 hint": lambda: OpenVinoClassifier(work / "nncf.xml", student.config, "bf16",
                                                                         args.threads),
        "student compile bf16": lambda: build_compile_bf16(student),
        "student compile int8 (pt2e)": lambda: build_compile_int8(student, calib, args.seq_len),
    }
    rows, models = [], []
    for name, build in builders.items():
        if name in skip:
            continue
        t0 = time.perf_counter()
        try:
            model = build()
            score = accuracy(model, dev_batches, labels)  # also compiles at the scoring shape
        except Exception as e:
            traceback.print_exc()
            rows.append({"variant": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"})
            print(f"{name}: failed ({rows[-1]['error']})", flush=True)
            continue
        rows.append({"variant": name, "accuracy": round(score, 2), "build_s": round(time.perf_counter() - t0, 1)})
        models.append((len(rows) - 1, model))
        print(f"{name}: dev accuracy {score:.2f} ({rows[-1]['build_s']} s to build and score)", flush=True)

    timed = median_seconds([m for _, m in models], args.seq_len, [1, args.batch_size], args.repeats, warmup=2)
    ref = timed[0]
    for (i, _), t in zip(models, timed, strict=True):
        rows[i]["latency_ms_b1"] = round(1000 * t[1], 2)
        rows[i][f"throughput_b{args.batch_size}"] = round(args.batch_size / t[args.batch_size], 1)
        rows[i]["x_b1"] = round(ref[1] / t[1], 2)
        rows[i][f"x_b{args.batch_size}"] = round(ref[args.batch_size] / t[args.batch_size], 2)

    host = f"{cpu_name()} ({cpu_features()}), {args.threads} threads"
    print(f"\nhost: {host}; torch {torch.__version__}; dev {task.name} ({len(labels)}), timed at {args.seq_len} "
          f"tokens, medians of {args.repeats} interleaved rounds; ratios against the teacher in torch fp32\n")
    b = args.batch_size
    print(f"| variant | dev acc. | b={b} ex/s | vs teacher | b=1 ms | vs teacher |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | failed: {r['error']} | | | | |")
        else:
            print(f"| {r['variant']} | {r['accuracy']:.2f} | {r[f'throughput_b{b}']} | {r[f'x_b{b}']}x | "
                  f"{r['latency_ms_b1']} | {r['x_b1']}x |")
    if args.out:
        Path(args.out).write_text(json.dumps({"host": host, "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
