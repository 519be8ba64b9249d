"""`pkd export`: a trained classifier as a file to serve, checked against its source on a real batch.

An export directory holds the model file, the tokenizer (save_pretrained), config.json and export.json
(source run, format, quantization, opset, library versions, the parity check). It is written under a temporary
name and renamed into place, so a failed export leaves nothing behind.

Formats
  onnx   torch.onnx.export with the TorchScript exporter (dynamo=False), opset 17 by default, dynamic batch and
         sequence axes (and choices, for multiple choice); logits only. Chosen by measuring (docs/deploy.md):
         it exports in ~5 s where the dynamo exporter takes ~22 s, and ONNX Runtime ran its graph faster, fp32
         and int8. The model is exported with eager attention: ONNX Runtime's fusions recognise that pattern
         (Attention, EmbedLayerNormalization), not the SDPA one, and it exports from opset 11 (SDPA needs 14).
  torch  the Hugging Face checkpoint (safetensors), for PyTorch serving.

Quantization (--quantize int8): weights stored as int8, activations quantized per batch at run time.
  onnx   onnxruntime.quantization.quantize_dynamic, unsigned 8-bit weights (QUInt8) with one scale and zero point
         per tensor: MatMul -> MatMulInteger (with DynamicQuantizeLinear, an opset-11 op, on the activation, which
         is uint8) and the embedding Gather. Unsigned weights (U8U8) rather than signed (U8S8): on AVX2 CPUs
         without VNNI, like this one, ONNX Runtime's U8S8 kernel sums pairs of u8 x s8 products in int16 and can
         saturate. Measured on a real 3-layer SST-2 student (docs/deploy.md): dev -0.34 points against fp32 with
         U8U8, -0.69 with U8S8, for 6% more time per batch.
  torch  torch.ao.quantization.quantize_dynamic of every nn.Linear (embeddings stay fp32); stored as int8
         tensors with their scale and zero point in model-int8.safetensors, never as a pickle.
--optimize runs ONNX Runtime's transformer optimizer (attention, LayerNorm and GELU fusion) before quantization.

Parity: the source model and the export run on the same real batch (the first examples of the task's dev split,
at the run's max_seq_len; the graph was traced on a different, smaller batch, so this also checks the dynamic
axes). export.json records max |logit_source - logit_export| over the batch and the share of equal predictions
(argmax; for regression the output itself). An fp32 export (and the fp32 graph an int8 ONNX export starts from)
must be within 1e-3, or the export fails; int8 is recorded, not bounded - `pkd evaluate` on the export directory
measures what it costs in accuracy on the dev set.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModelForMultipleChoice,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from pkd.config import FORMATS, QUANTIZATIONS, ExportConfig
from pkd.data import load_split, resolve_task
from pkd.errors import DataError, ExportError, UsageError
from pkd.io import atomic_dir, write_json
from pkd.models import EncodedSplit, load_tokenizer, make_collator, resolve_model
from pkd.rundir import check_out_dir, library_versions
from pkd.tasks import Task

if TYPE_CHECKING:
    import onnxruntime

PARITY_LIMIT = 1e-3
PARITY_EXAMPLES = 16
EXPORT_FILE = "export.json"
INSTALL_HINT = "pip install 'pkd[export]'"
SEQUENCE, MULTIPLE_CHOICE = "sequence-classification", "multiple-choice"
HEADS = {SEQUENCE: AutoModelForSequenceClassification, MULTIPLE_CHOICE: AutoModelForMultipleChoice}


def model_file(fmt: str, quantize: str) -> str:
    if fmt == "onnx":
        return "model.onnx"
    return "model-int8.safetensors" if quantize == "int8" else "model.safetensors"


def require_onnxruntime() -> ModuleType:
    """onnxruntime (and onnx), or a one-line error naming the install command."""
    try:
        import onnx  # noqa: F401  (the quantizer and the optimizer need it)
        import onnxruntime
    except ImportError as e:
        raise UsageError(f"ONNX needs the optional dependencies ({e.name} is not installed): {INSTALL_HINT}") from None
    return onnxruntime


def classifier_kind(config: PretrainedConfig, where: str | Path) -> str:
    archs = config.architectures or []
    if any(a.endswith("ForMultipleChoice") for a in archs):
        return MULTIPLE_CHOICE
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return SEQUENCE
    raise DataError(f"{where}: not a classifier (architectures: {archs or 'none'}); only sequence classifiers and "
                    "multiple-choice models are exported - fine-tune or distill one first")


def _load_config(path: str | Path) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(path)
    except Exception as e:
        raise DataError(f"{path}: cannot load config ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def load_source(path: str | Path) -> tuple[PreTrainedModel, str]:
    """The fp32 classifier to export, in eval mode, and its kind."""
    config = _load_config(path)
    kind = classifier_kind(config, path)
    try:
        model = HEADS[kind].from_pretrained(path, use_safetensors=True)
    except Exception as e:
        raise DataError(f"{path}: cannot load model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return model.eval(), kind


# ------------------------------------------------------------------------------------------------ batches


def parity_batch(tokenizer: PreTrainedTokenizerBase, task: Task, data_dir: str | Path | None, max_seq_len: int,
                 examples: int = PARITY_EXAMPLES) -> tuple[dict[str, torch.Tensor], str]:
    """The first `examples` of the task's dev split, tokenized and padded as evaluation does it."""
    part = load_split(task, "dev", data_dir, examples)[0]
    if not part.examples:
        raise DataError(f"{part.source}: no examples for the parity check")
    data = EncodedSplit(part, tokenizer, max_seq_len)
    batch = make_collator(tokenizer)([data[i] for i in range(min(examples, len(data)))])
    return {k: v for k, v in batch.items() if k not in ("idx", "labels")}, part.source


def random_batch(config: PretrainedConfig, kind: str, batch: int = 4, seq_len: int = 16, choices: int = 4,
                 seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ids with some padding, for exports of random-weight models (`pkd bench --shape`)."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, choices, seq_len) if kind == MULTIPLE_CHOICE else (batch, seq_len)
    ids = torch.randint(0, config.vocab_size, shape, generator=g)
    mask = torch.ones_like(ids)
    mask[..., seq_len // 2:][0] = 0  # one padded example, so that the mask matters
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def _trace_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two examples, at most 8 tokens and fewer than the parity batch has, the last one padded: a shape unlike the
    parity batch's (checking the dynamic axes), and a mask that is not all ones (the graph keeps the masking)."""
    length = max(1, min(8, next(iter(batch.values())).shape[-1] - 1))
    small = {k: v[:2, ..., :length].clone() for k, v in batch.items()}
    if "attention_mask" in small and small["attention_mask"].shape[-1] > 1:
        small["attention_mask"][-1, ..., -1] = 0
    return small


class _LogitsOnly(torch.nn.Module):
    """Positional inputs in a fixed order, logits out: what the ONNX graph computes."""

    def __init__(self, model: PreTrainedModel, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs, strict=True))).logits


# -------------------------------------------------------------------------------------------- exporting


def export_onnx(model: PreTrainedModel, kind: str, batch: dict[str, torch.Tensor], path: Path, opset: int) -> None:
    names = list(batch)
    axes = {0: "batch", 1: "choices", 2: "sequence"} if kind == MULTIPLE_CHOICE else {0: "batch", 1: "sequence"}
    dynamic = {**{n: axes for n in names}, "logits": {0: "batch"}}
    trace = _trace_batch(batch)
    # eval() on the wrapper too: the TorchScript exporter exports the mode it finds, and dropout left on in the
    # graph cost 0.2 in max |logit difference| when this was measured.
    wrapper = _LogitsOnly(model, names).eval()
    attention = model.config._attn_implementation
    model.set_attn_implementation("eager")  # the pattern ONNX Runtime fuses; see the module docstring
    try:
        with torch.no_grad(), _quiet_torch_onnx():
            torch.onnx.export(wrapper, tuple(trace[n] for n in names), str(path), input_names=names,
                              output_names=["logits"], dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    finally:
        model.set_attn_implementation(attention)


def optimize_onnx(path: Path, config: PretrainedConfig) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer in place; returns the count of each fused operator."""
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet_torch_onnx():
        optimized = optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                                   hidden_size=config.hidden_size)
        optimized.save_model_to_file(str(path))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


def operator_counts(path: Path) -> dict[str, int]:
    """How many nodes of each operator the graph has: which MatMuls int8 reached, what the optimizer fused."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def quantize_onnx(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Shape inference cannot type the com.microsoft operators of an optimized graph: say they are float.
    with _quiet_torch_onnx():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def quantize_torch(model: PreTrainedModel) -> PreTrainedModel:
    """int8 weights for every nn.Linear, activations quantized per batch; a new model, the source is kept."""
    import copy

    from torch.ao.quantization import quantize_dynamic

    with _quiet_torch_onnx():  # torch.ao quantization warns that it is deprecated in favour of torchao
        return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def int8_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A dynamically quantized model as plain tensors: each quantized Linear's int8 weight, scale, zero point and
    bias, and every other tensor of the state dict as it is."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    out: dict[str, torch.Tensor] = {}
    quantized = set()
    for name, module in model.named_modules():
        if isinstance(module, QLinear):
            w = module.weight()
            out[f"{name}.weight_int8"] = w.int_repr().contiguous()
            out[f"{name}.weight_scale"] = torch.tensor(w.q_scale(), dtype=torch.float64)
            out[f"{name}.weight_zero_point"] = torch.tensor(w.q_zero_point(), dtype=torch.int64)
            if module.bias() is not None:
                out[f"{name}.bias"] = module.bias().detach().contiguous()
            quantized.add(name)
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor) and not value.is_quantized and key.rsplit(".", 1)[0] not in quantized:
            out[key] = value.detach().contiguous()
    return out


def load_int8_model(path: Path, config: PretrainedConfig, kind: str) -> PreTrainedModel:
    """Rebuild a model saved by int8_state_dict: the fp32 architecture from config.json with every tensor but the
    Linear layers' filled in, quantized, then the int8 Linear weights set."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    state = load_file(path)
    linears = {k.rsplit(".", 1)[0] for k in state if k.endswith(".weight_int8")}
    model = HEADS[kind].from_config(config)
    plain = {k: v for k, v in state.items() if k.rsplit(".", 1)[0] not in linears}
    missing, unexpected = model.load_state_dict(plain, strict=False)
    missing = [k for k in missing if k.rsplit(".", 1)[0] not in linears]
    if missing or unexpected:
        raise DataError(f"{path}: does not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model = quantize_torch(model).eval()
    qlinears = {name: m for name, m in model.named_modules() if isinstance(m, QLinear)}
    if set(qlinears) != linears:
        raise DataError(f"{path}: int8 weights for {len(linears)} Linear layers, the model has {len(qlinears)}")
    for name, module in qlinears.items():
        weight = torch._make_per_tensor_quantized_tensor(
            state[f"{name}.weight_int8"], float(state[f"{name}.weight_scale"]),
            int(state[f"{name}.weight_zero_point"]))
        module.set_weight_bias(weight, state.get(f"{name}.bias"))
    return model


# --------------------------------------------------------------------------------------------- parity


def compare_logits(reference: np.ndarray, exported: np.ndarray) -> dict[str, float]:
    """max |Δlogit| and prediction agreement (argmax; a regression output is compared as is)."""
    diff = float(np.abs(reference - exported).max()) if reference.size else 0.0
    if reference.shape[-1] == 1:
        agree = np.isclose(reference[:, 0], exported[:, 0], atol=PARITY_LIMIT)
    else:
        agree = reference.argmax(-1) == exported.argmax(-1)
    return {"max_abs_logit_diff": diff, "agreement": float(np.mean(agree)) if agree.size else 1.0}


def logits_of(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.inference_mode():
        return model(**batch).logits.float().numpy()


def _check_fp32(parity: dict[str, float], what: str) -> None:
    if parity["max_abs_logit_diff"] > PARITY_LIMIT:
        raise ExportError(f"{what}: fp32 parity failed, max |logit difference| {parity['max_abs_logit_diff']:.2e} "
                          f"> {PARITY_LIMIT:g} on the parity batch; nothing was written")


# ---------------------------------------------------------------------------------------------- the API


def export_model(model: PreTrainedModel, kind: str, tokenizer: PreTrainedTokenizerBase | None,
                 batch: dict[str, torch.Tensor], cfg: ExportConfig, info: dict | None = None,
                 score: Callable[[Path], dict] | None = None) -> dict:
    """Write cfg.out, the export directory of a loaded fp32 model (eval mode), and return its export.json.

    `batch` is the parity batch; `info` goes into export.json (source, task, max_seq_len). Without a tokenizer
    (random-weight bench models) none is saved. `score`, given the finished directory before it is renamed into
    place, returns dev metrics to record as "dev" (pkd.api.run_export passes its evaluate)."""
    fmt, quantize, opset, optimize, out = cfg.format, cfg.quantize, cfg.opset, cfg.optimize, cfg.out
    if fmt == "onnx":
        require_onnxruntime()
    reference = logits_of(model, batch)
    record: dict = {**(info or {}), "kind": kind, "format": fmt, "quantize": quantize, "opset": opset,
                    "optimize": optimize, "model_file": model_file(fmt, quantize), "inputs": list(batch),
                    "exporter": "torch.onnx.export (TorchScript, dynamo=False), eager attention" if fmt == "onnx"
                    else "save_pretrained" if quantize == "none" else "torch.ao dynamic quantization of nn.Linear",
                    "versions": export_versions(fmt)}
    first = next(iter(batch.values()))
    parity: dict = {"examples": int(first.shape[0]), "shape": list(first.shape), "limit_fp32": PARITY_LIMIT}
    with atomic_dir(out) as tmp:
        target = tmp / record["model_file"]
        if fmt == "onnx":
            fp32 = target if quantize == "none" else tmp / "model-fp32.onnx"
            export_onnx(model, kind, batch, fp32, opset)
            if optimize:
                record["fused"] = optimize_onnx(fp32, model.config)
            # The fp32 graph is checked even when it is only the quantizer's input: an int8 error on top of a
            # broken export would be indistinguishable from quantization noise.
            result = compare_logits(reference, logits_of(OnnxClassifier(fp32, model.config, threads=1), batch))
            _check_fp32(result, f"{out}: ONNX export" + (" after --optimize" if optimize else ""))
            if quantize == "int8":
                parity["fp32_max_abs_logit_diff"] = result["max_abs_logit_diff"]
                quantize_onnx(fp32, target)
                fp32.unlink()
                result = compare_logits(reference, logits_of(OnnxClassifier(target, model.config, threads=1), batch))
        elif quantize == "int8":
            save_file(int8_state_dict(quantize_torch(model)), target)
            result = compare_logits(reference, logits_of(load_int8_model(target, model.config, kind), batch))
        else:
            model.save_pretrained(tmp, safe_serialization=True)
            reloaded = HEADS[kind].from_pretrained(tmp, use_safetensors=True).eval()
            result = compare_logits(reference, logits_of(reloaded, batch))
            _check_fp32(result, f"{out}: PyTorch export")
        record["parity"] = {**parity, **result}
        record["size_bytes"] = target.stat().st_size
        if fmt == "onnx":
            record["operators"] = operator_counts(target)
        model.config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_json(tmp / EXPORT_FILE, record)
        if score is not None:
            record["dev"] = score(tmp)
            write_json(tmp / EXPORT_FILE, record)
    return record


def export(run: str | Path, cfg: ExportConfig, score: Callable[[Path, str], dict] | None = None) -> dict:
    """Export a run directory or checkpoint (a sequence classifier or a multiple-choice model); returns what
    export.json records. The parity batch is the first examples of the dev split of cfg.task (default: the run's).
    `score(directory, task)` measures the finished export on dev (see export_model)."""
    if cfg.format == "onnx":
        require_onnxruntime()  # before any work
    check_out_dir(cfg.out, cfg.overwrite)
    path = resolve_model(str(run))
    if is_export_dir(path):
        raise DataError(f"{path}: already an export directory; export the run it came from ({EXPORT_FILE})")
    model, kind = load_source(path)
    run_info = _read_run(path)
    task_ = resolve_task(cfg.task, None, path)  # the run's own (a file task's from its recorded data)
    if task_.is_multiple_choice != (kind == MULTIPLE_CHOICE):
        raise DataError(f"{path}: a {kind} model cannot run task {task_.name}")
    max_seq_len = cfg.max_seq_len or run_info.get("train", {}).get("max_seq_len") or task_.default_max_seq_len
    tokenizer = load_tokenizer(path)
    batch, source = parity_batch(tokenizer, task_, cfg.data_dir, max_seq_len)
    info = {"source": str(Path(path).resolve()) if Path(path).exists() else path, "task": task_.name,
            "max_seq_len": max_seq_len, "parity_data": source,
            **({"file_task": asdict(task_.files)} if task_.files is not None else {})}
    return export_model(model, kind, tokenizer, batch, cfg, info,
                        score=None if score is None else lambda d: score(d, task_.name))


def _read_run(path: str | Path) -> dict:
    run = Path(path) / "run.json"
    return json.loads(run.read_text()) if run.is_file() else {}


def export_versions(fmt: str) -> dict[str, str]:
    versions = library_versions()
    if fmt == "onnx":
        import onnx
        import onnxruntime

        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    versions["machine"] = platform.machine()
    return versions


# ----------------------------------------------------------------------------------------------- loading


def is_export_dir(path: str | Path) -> bool:
    return (Path(path) / EXPORT_FILE).is_file()


def read_export(path: str | Path) -> dict:
    try:
        record = json.loads((Path(path) / EXPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{Path(path) / EXPORT_FILE}: cannot read ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict) or record.get("format") not in FORMATS or \
            record.get("quantize") not in QUANTIZATIONS or record.get("kind") not in HEADS:
        raise DataError(f"{Path(path) / EXPORT_FILE}: not a pkd export record")
    return record


def load_exported(path: str | Path, threads: int | None = None
                  ) -> tuple[torch.nn.Module, PreTrainedTokenizerBase | None, dict]:
    """The model of an export directory behind the interface evaluation uses (model(**batch).logits), its
    tokenizer (None if it has none) and export.json."""
    path = Path(path)
    record = read_export(path)
    file = path / record["model_file"]
    if not file.is_file():
        raise DataError(f"{path}: export directory without its model file {record['model_file']}")
    config = _load_config(path)
    tokenizer = load_tokenizer(str(path)) if (path / "tokenizer_config.json").is_file() else None
    if record["format"] == "onnx":
        model = OnnxClassifier(file, config, threads)
        model.check_inputs(tokenizer, record["kind"])
    elif record["quantize"] == "int8":
        model = load_int8_model(file, config, record["kind"])
    else:
        model = HEADS[record["kind"]].from_pretrained(path, use_safetensors=True).eval()
    return model, tokenizer, record


def load_for_task(path: str | Path, task: Task, threads: int | None = None
                  ) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """An export directory's model and tokenizer for scoring `task`, after checking that they fit it."""
    model, tokenizer, record = load_exported(path, threads)
    if tokenizer is None:
        raise DataError(f"{path}: export directory without a tokenizer (tokenizer_config.json)")
    if task.is_multiple_choice != (record["kind"] == MULTIPLE_CHOICE):
        raise DataError(f"{path}: a {record['kind']} export cannot run task {task.name}")
    labels = getattr(model.config, "num_labels", None)
    if not task.is_multiple_choice and labels != task.num_labels:
        raise DataError(f"{path}: has {labels} labels, task {task.name} needs {task.num_labels}")
    return model, tokenizer


def ort_session(path: str | Path, threads: int | None = None) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session with `threads` intra-op threads (default: torch's) and spinning off: spinning
    idle threads steal the CPU from whatever runs next (measured: PyTorch rows 20-30% slower)."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise DataError(f"{path}: cannot load ONNX model ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                        ) from None


class OnnxClassifier(torch.nn.Module):
    """An ONNX Runtime session behind the model interface pkd evaluates and benchmarks: model(**batch).logits.

    A module without parameters, so that .to(), .eval() and .train() from the shared evaluation code do no
    harm. A missing token_type_ids is zeros, as in the Hugging Face models; other missing inputs are an error."""

    def __init__(self, path: str | Path, config: PretrainedConfig, threads: int | None = None):
        super().__init__()
        self.path, self.config = Path(path), config
        self.session = ort_session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def check_inputs(self, tokenizer: PreTrainedTokenizerBase | None, kind: str) -> None:
        """The graph's inputs must be what the tokenizer produces, with one rank per kind of model."""
        rank = 3 if kind == MULTIPLE_CHOICE else 2
        for i in self.session.get_inputs():
            if len(i.shape) != rank:
                raise DataError(f"{self.path}: input {i.name} has rank {len(i.shape)}, a {kind} model takes {rank}")
        if tokenizer is None:
            return
        produced = list(tokenizer.model_input_names)
        if set(self.input_names) != set(produced):
            raise DataError(f"{self.path}: ONNX inputs {self.input_names} do not match the tokenizer's {produced}")

    def forward(self, **inputs: torch.Tensor) -> SimpleNamespace:
        feed = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None and name == "token_type_ids" and "input_ids" in inputs:
                value = torch.zeros_like(inputs["input_ids"])
            if value is None:
                raise DataError(f"{self.path}: the model needs input {name}, got {sorted(inputs)}")
            feed[name] = value.detach().cpu().numpy().astype(np.int64, copy=False)
        logits = self.session.run(["logits"], feed)[0]
        return SimpleNamespace(logits=torch.from_numpy(logits))


@contextmanager
def _quiet_torch_onnx() -> Iterator[None]:
    """The exporter, the optimizer and the quantizer log warnings a user can do nothing about."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)
