"""`pkd bench`: parameters, size, peak memory and inference speed of encoders, side by side.

Every model is timed on the same random token ids; models are interleaved within each repeat so that
machine noise (other processes, frequency changes) falls on all of them alike, and medians are reported.
Ratios are relative to the first model, usually the teacher.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BertConfig,
    MPNetConfig,
    PretrainedConfig,
    PreTrainedModel,
)

from pkd import deploy, inference
from pkd.config import ExportConfig, export_variant
from pkd.errors import DataError, UsageError
from pkd.inference import cpu_features
from pkd.models import resolve_model

# Random-weight architectures for `--shape`: BERT's uncased vocabulary and positions, and all-mpnet-base-v2's
# MPNet (12 layers, 768 wide; relative position buckets, no token types), the 12-layer teacher of docs/paper.md.
_BERT = {"vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}
SHAPES: dict[str, tuple[type[PretrainedConfig], dict[str, int]]] = {
    "bert-base": (BertConfig, {**_BERT, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
                               "num_hidden_layers": 12}),
    "minilm-l6-h384": (BertConfig, {**_BERT, "hidden_size": 384, "num_attention_heads": 12,
                                    "intermediate_size": 1536, "num_hidden_layers": 6}),
    "mpnet-base": (MPNetConfig, {"vocab_size": 30527, "max_position_embeddings": 514, "hidden_size": 768,
                                 "num_attention_heads": 12, "intermediate_size": 3072, "num_hidden_layers": 12,
                                 "relative_attention_num_buckets": 32}),
}


# What a user deploys, per model: (format, precision, optimize) of `pkd export`; "torch" is the model as it is.
VARIANTS: dict[str, tuple[str, str, bool] | None] = {
    "torch": None,
    "torch-int8": ("torch", "int8", False),
    "torch-bf16": ("torch", "bf16", False),
    "ort": ("onnx", "fp32", False),
    "ort-int8": ("onnx", "int8", False),
    "ort-opt": ("onnx", "fp32", True),
    "ort-opt-int8": ("onnx", "int8", True),
    "ov": ("openvino", "fp32", False),
    "ov-bf16": ("openvino", "bf16", False),
    "ov-int8": ("openvino", "int8", False),
}

DESCRIPTION = """\
Measures each model (a run directory, a checkpoint, or a random-weight --shape) on random token ids of
length --seq-len with an all-ones attention mask, in eval mode under torch.inference_mode.

  params       all parameters, pooler and classification head included
  w/o emb      params minus base_model.embeddings (word, position, token-type embeddings, their LayerNorm)
  layers only  the Transformer layers alone (base_model.encoder); the PKD paper's "params, emb excluded"
  size         the checkpoint's *.safetensors files; for --shape models, what a safetensors save would hold
               (sum of numel * element size, without the few-kB header)
  peak mem     weights + peak activation memory of one forward at the largest batch size. On cuda the
               activation peak is torch.cuda.max_memory_allocated (allocator-measured, workspaces included);
               on cpu it is the peak of live tensor storages returned by aten ops during the forward, which
               leaves out kernel-internal scratch buffers and allocator overhead (RSS is not used: the
               allocator reuses freed memory, so RSS growth says little about one forward)
  latency      median milliseconds of one forward at the smallest batch size (1 by default)
  throughput   median examples/s at the largest batch size (32 by default)
  speed-up     the first model's time over this model's, at that batch size

--variants adds, per model, what `pkd export` makes of it, exported into a temporary directory and timed in the
same interleaved rounds: torch (the model as it is, fp32), torch-int8 (dynamic int8 nn.Linear), torch-bf16 (bf16
weights and activations: fast where the CPU has avx512_bf16 or amx_bf16, emulated and slow elsewhere), ort /
ort-int8 (ONNX Runtime, fp32 / int8 weights), ort-opt / ort-opt-int8 (ONNX Runtime's transformer fusions first),
ov / ov-bf16 (OpenVINO's CPU plugin at f32 / bf16 inference precision), ov-int8 (NNCF's static int8, calibrated
on random ids here; pip install 'pkd[openvino]'). An
export directory given as a model is timed as it is. For these, size is the model file on disk, parameters
are the source architecture's, and peak memory is not measured ("-"): ONNX Runtime's and the quantized
kernels' allocations are invisible to the tracker. ONNX Runtime runs with --threads intra-op threads and
spinning off, so its idle threads do not steal the CPU from the next model.

Each model first runs --warmup forwards per batch size; then each of --repeats rounds times one forward of
every model in turn (round-robin, starting from a different model each round) and medians are taken.
On a CPU shared with other work, pass --threads so that torch does not oversubscribe the cores: busy
OpenMP threads waiting on descheduled ones can make small models look hundreds of times slower.
"""


def parse_int_list(text: str) -> list[int]:
    """'12,6,3' -> [12, 6, 3]; an argparse type, so a bad value is a one-line usage error."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive integers")
    return values


def parse_variants(text: str) -> list[str]:
    """'torch,ort-int8' -> ['torch', 'ort-int8']; an argparse type, so a bad name is a one-line usage error."""
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(VARIANTS)}")
    return list(dict.fromkeys(names))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL_OR_RUN", help="run directories or checkpoints")
    p.add_argument("--shape", choices=sorted(SHAPES), default=None,
                   help="benchmark random-weight models of this architecture instead")
    p.add_argument("--layers", type=parse_int_list, default=None,
                   help="with --shape: layer counts, e.g. 12,6,3 (default: the shape's own depth)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-sizes", type=parse_int_list, default=[1, 32],
                   help="latency at the smallest, throughput at the largest (default 1,32)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None,
                   help="torch and ONNX Runtime CPU threads (default: torch's own)")
    p.add_argument("--variants", type=parse_variants, default=["torch"],
                   help=f"per model, comma-separated: {', '.join(VARIANTS)} (default torch)")
    p.add_argument("--json", action="store_true", help="print JSON (for `pkd report --bench`)")


def run_cli(args: argparse.Namespace) -> str:
    """The text `pkd bench` prints."""
    results = bench_models(args.models, shape=args.shape, layers=args.layers, device=args.device,
                           seq_len=args.seq_len, batch_sizes=args.batch_sizes, repeats=args.repeats,
                           warmup=args.warmup, threads=args.threads, variants=args.variants)
    if args.json:
        import json

        settings = {"seq_len": args.seq_len, "batch_sizes": sorted(set(args.batch_sizes)),
                    "repeats": args.repeats, "warmup": args.warmup, "variants": args.variants}
        report = {**environment(args.device, args.threads), **settings, "models": results}
        return json.dumps(report, indent=2) + "\n"
    return bench_markdown(results)


def environment(device: str, threads: int | None = None) -> dict:
    """Where the numbers were measured; timings mean little without it."""
    env = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "device": device,
           "torch": torch.__version__, "threads": threads or torch.get_num_threads(),
           "cpu_count": os.cpu_count(),
           "machine": f"{platform.machine()} {inference.cpu_name()}".strip(), "cpu_features": cpu_features()}
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


# ---------------------------------------------------------------------------------------------- models


def shape_config(shape: str, layers: int | None = None) -> PretrainedConfig:
    """The 2-label configuration of a --shape, with `layers` layers (default: the shape's)."""
    if shape not in SHAPES:
        raise UsageError(f"--shape {shape}: choose one of {', '.join(sorted(SHAPES))}")
    config_class, dims = SHAPES[shape]
    return config_class(**{**dims, "num_labels": 2, **({"num_hidden_layers": layers} if layers else {})})


def build_shape_model(shape: str, layers: int | None = None) -> PreTrainedModel:
    """A random-weight 2-label classifier. Under `with torch.device("meta")` it only counts parameters."""
    return AutoModelForSequenceClassification.from_config(shape_config(shape, layers))


@dataclass
class _Exported:
    """An export directory given as a model: timed as it is."""

    model: torch.nn.Module
    size_bytes: int
    counts: dict[str, int | None]
    variant: str


def _load_export(path: str, threads: int | None = None) -> _Exported:
    model, _, record = inference.load_exported(path, threads)
    if record["kind"] != inference.SEQUENCE:
        raise UsageError(f"{path}: a {record['kind']} export; pkd bench times sequence classifiers on [batch, tokens]")
    with torch.device("meta"):  # the source architecture, for its parameter counts only
        counts = parameter_counts(inference.HEADS[record["kind"]].from_config(model.config))
    return _Exported(model, inference.model_bytes(path, record), counts, export_variant(record))


def load_model(name_or_path: str, threads: int | None = None) -> tuple[PreTrainedModel | _Exported, str]:
    """A classifier if the checkpoint is one, else the bare encoder; safetensors weights only. An export directory
    gives its model as inference.load_exported loads it."""
    path = resolve_model(name_or_path)
    if inference.is_export_dir(path):
        return _load_export(path, threads), path
    try:
        config = AutoConfig.from_pretrained(path)
        archs = config.architectures or []
        is_classifier = any(a.endswith("ForSequenceClassification") for a in archs)
        cls = AutoModelForSequenceClassification if is_classifier else AutoModel
        return cls.from_pretrained(path, use_safetensors=True), path
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{name_or_path}: cannot load model ({type(e).__name__}: {first})") from None


def _unique_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() already skips tied duplicates


def parameter_counts(model: PreTrainedModel) -> dict[str, int | None]:
    base = model.base_model
    # ELECTRA-style models project small embeddings up to the hidden size: that belongs to the embeddings.
    candidates = (getattr(base, "embeddings", None), getattr(base, "embeddings_project", None))
    embedding_modules = [m for m in candidates if m is not None] or [model.get_input_embeddings()]
    embeddings = sum(_unique_params(m) for m in embedding_modules)
    layers = getattr(base, "encoder", None) or getattr(base, "transformer", None)  # DistilBERT: transformer
    total = _unique_params(model)
    return {"params": total, "params_embeddings": embeddings, "params_non_embedding": total - embeddings,
            "params_layers": _unique_params(layers) if layers is not None else None}


def state_dict_bytes(model: torch.nn.Module) -> int:
    """What a safetensors save stores: every state-dict tensor once (tied tensors share storage)."""
    seen, total = set(), 0
    for t in model.state_dict().values():
        meta = t.device.type == "meta"  # shape-only models have no storage to compare
        key = id(t) if meta else (t.untyped_storage().data_ptr(), t.storage_offset(), t.shape)
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def weight_files_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def _weights_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


@dataclass
class _Entry:
    name: str
    model: torch.nn.Module  # a Hugging Face model, or what inference.load_exported gives
    path: str | None
    size_bytes: int
    size_source: str  # files, estimate, or export (the model file of an export directory)
    counts: dict[str, int | None]
    variant: str = "torch"

    @property
    def traced(self) -> bool:
        """Whether the peak-memory tracker sees this model's tensors: plain fp32 PyTorch only."""
        return self.variant == "torch"


def _entries(models: Sequence[str], shape: str | None, layers: Sequence[int] | None,
             variants: Sequence[str] = ("torch",), threads: int | None = None, workdir: Path | None = None
             ) -> list[_Entry]:
    if shape and models:
        raise UsageError("give models or --shape, not both")
    if layers and not shape:
        raise UsageError("--layers needs --shape")
    if not shape and not models:
        raise UsageError("nothing to benchmark: give run directories or checkpoints, or --shape")
    sources = []  # (name, fp32 model or an export directory's, path, size, size source)
    if shape:
        for n in layers or [None]:
            model = build_shape_model(shape, n).eval()
            name = f"{shape}-L{model.config.num_hidden_layers}"
            sources.append((name, model, None, state_dict_bytes(model), "estimate"))
    else:
        for name in models:
            model, path = load_model(name, threads)
            if isinstance(model, _Exported):
                sources.append((name, model, path, 0, "export"))
                continue
            on_disk = weight_files_bytes(path) if Path(path).is_dir() else 0
            size, source = (on_disk, "files") if on_disk else (state_dict_bytes(model), "estimate")
            sources.append((name, model.eval(), path if Path(path).is_dir() else None, size, source))
    out = []
    for i, (name, model, path, size, source) in enumerate(sources):
        if isinstance(model, _Exported):
            out.append(_Entry(name, model.model, path, model.size_bytes, "export", model.counts, model.variant))
            continue
        counts = parameter_counts(model)
        for variant in variants:
            settings = VARIANTS[variant]
            if settings is None:
                out.append(_Entry(name, model, path, size, source, counts))
                continue
            fmt, precision, optimize = settings
            kind = deploy.classifier_kind(model.config, name) if shape is None else inference.SEQUENCE
            if kind != inference.SEQUENCE:
                raise UsageError(f"{name}: a {kind} model; --variants times sequence classifiers on [batch, tokens]")
            target = workdir / f"{i}-{variant}"
            cfg = ExportConfig(out=str(target), format=fmt, precision=precision, optimize=optimize)
            calibration = [deploy.random_batch(model.config, kind, batch=1, seed=s) for s in range(8)]
            deploy.export_model(model, kind, None, deploy.random_batch(model.config, kind), cfg, {"source": name},
                                calibration=calibration)
            exported, _, record = inference.load_exported(target, threads)
            file_size = inference.model_bytes(target, record)
            out.append(_Entry(f"{name} {variant}", exported, None, file_size, "export", counts, variant))
    return out


# ------------------------------------------------------------------------------------------- measuring


class _LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages returned by aten ops and still referenced, during a forward on CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[int, list[weakref.ref]]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func: torch._ops.OpOverload, types: tuple[type, ...], args: tuple[object, ...] = (),
                           kwargs: dict[str, object] | None = None) -> object:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes():
                storage = t.untyped_storage()  # views share it, so key by storage, not by tensor
                self.live.setdefault(storage.data_ptr(), (storage.nbytes(), []))[1].append(weakref.ref(t))
        for key, (_, refs) in list(self.live.items()):
            refs[:] = [r for r in refs if r() is not None]
            if not refs:
                del self.live[key]
        self.peak = max(self.peak, sum(n for n, _ in self.live.values()))
        return out


def _peak_memory(model: PreTrainedModel, inputs: dict, device: str) -> int:
    if device == "cuda":
        # Other models sit on the GPU too: count this model's weights plus what its forward added on top.
        inference.sync(device)
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        model(**inputs)
        inference.sync(device)
        return _weights_bytes(model) + torch.cuda.max_memory_allocated() - before
    tracker = _LiveTensorBytes()
    with tracker:
        model(**inputs)
    return _weights_bytes(model) + tracker.peak


def _check(device: str, seq_len: int, batch_sizes: Sequence[int], repeats: int, warmup: int,
           threads: int | None) -> None:
    if device not in ("cpu", "cuda"):
        raise UsageError(f"--device {device}: choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    for name, value, least in (("seq-len", seq_len, 1), ("repeats", repeats, 1), ("warmup", warmup, 0),
                               ("threads", 1 if threads is None else threads, 1)):
        if value < least:
            raise UsageError(f"--{name} {value}: must be at least {least}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise UsageError(f"--batch-sizes {batch_sizes}: must be positive integers")


def bench_models(models: Sequence[str] = (), shape: str | None = None, layers: Sequence[int] | None = None,
                 device: str = "cpu", seq_len: int = 128, batch_sizes: Sequence[int] = (1, 32),
                 repeats: int = 5, warmup: int = 1, threads: int | None = None,
                 variants: Sequence[str] = ("torch",)) -> list[dict]:
    """Measure each model (and each of its variants); see DESCRIPTION for what each number is. Ratios are
    relative to the first row."""
    _check(device, seq_len, batch_sizes, repeats, warmup, threads)
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise UsageError(f"--variants {','.join(variants)}: choose from {', '.join(VARIANTS)}")
    if device != "cpu" and any(v != "torch" for v in variants):
        raise UsageError("--variants other than torch run on the CPU: pass --device cpu")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="pkd-bench-") as workdir:
            entries = _entries(models, shape, layers, variants, threads, Path(workdir))
            return _bench(entries, shape, device, seq_len, sorted(set(batch_sizes)), repeats, warmup)
    finally:
        torch.set_num_threads(previous_threads)  # an API caller's own setting survives the benchmark


def _bench(entries: list[_Entry], shape: str | None, device: str, seq_len: int, batch_sizes: list[int],
           repeats: int, warmup: int) -> list[dict]:
    for e in entries:
        limit = getattr(e.model.config, "max_position_embeddings", None)
        if limit and seq_len > limit:
            raise UsageError(f"--seq-len {seq_len}: {e.name} has only {limit} positions")
        e.model.to(device).eval()
    medians = inference.median_seconds([e.model for e in entries], seq_len, batch_sizes, repeats, warmup, device)
    with torch.inference_mode():
        peaks = [_peak_memory(e.model, inference.timing_inputs(e.model.config, batch_sizes[-1], seq_len, device),
                              device) if e.traced else None for e in entries]

    results = []
    for i, e in enumerate(entries):
        timings = []
        for b in batch_sizes:
            median = medians[i][b]
            timings.append({"batch_size": b, "median_ms": 1000 * median, "throughput": b / median,
                            "speedup": medians[0][b] / median})
        results.append({
            "name": e.name, "path": e.path, "shape": shape, "variant": e.variant,
            "layers": e.model.config.num_hidden_layers, "hidden_size": e.model.config.hidden_size, **e.counts,
            "size_bytes": e.size_bytes, "size_source": e.size_source,
            "peak_memory_bytes": peaks[i], "peak_memory_batch_size": batch_sizes[-1], "timings": timings,
            "latency_ms": timings[0]["median_ms"], "latency_speedup": timings[0]["speedup"],
            "throughput": timings[-1]["throughput"], "throughput_speedup": timings[-1]["speedup"],
        })
    for r in results:
        r["params_ratio"] = r["params"] / results[0]["params"]
        r["size_ratio"] = r["size_bytes"] / results[0]["size_bytes"]
    return results


# ------------------------------------------------------------------------------------------ formatting


def human_count(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def bench_markdown(results: Sequence[dict]) -> str:
    """A Markdown table, as printed by `pkd bench` and embedded by `pkd report`."""
    if not results:
        return ""
    lat_b = results[0]["timings"][0]["batch_size"]
    thr_b = results[0]["timings"][-1]["batch_size"]
    header = ["model", "layers", "params", "w/o emb", "layers only", "size MB", "size ratio",
              f"peak mem MB (b={thr_b})", f"latency ms (b={lat_b})", "speed-up",
              f"ex/s (b={thr_b})", "speed-up"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [r["name"], str(r["layers"]), human_count(r["params"]),
                 human_count(r["params_non_embedding"]), human_count(r["params_layers"]),
                 f"{r['size_bytes'] / 1e6:.1f}", f"{r['size_ratio']:.2f}",
                 "-" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 1e6:.0f}",
                 f"{r['latency_ms']:.1f}", f"{r['latency_speedup']:.2f}x",
                 f"{r['throughput']:.1f}", f"{r['throughput_speedup']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
