"""`pkd export`: a trained classifier as a file to serve, checked against its source on a real batch.

An export directory holds the model file, the tokenizer (save_pretrained), config.json and export.json
(source run, format, quantization, opset, library versions, the parity check). It is written under a temporary
name and renamed into place, so a failed export leaves nothing behind.

Formats
  onnx   torch.onnx.export with the TorchScript exporter (dynamo=False), opset 17 by default, dynamic batch and
         sequence axes (and choices, for multiple choice); logits only. Chosen over the dynamo exporter: both are
         exact, this one exports faster and ONNX Runtime runs its graph faster, fp32 and int8 (docs/deploy.md
         has the measurements). The model is exported with eager attention: ONNX Runtime's fusions recognise
         that pattern (Attention, EmbedLayerNormalization), not the SDPA one, and it exports from opset 11
         (SDPA needs 14).
  torch  the Hugging Face checkpoint (safetensors), for PyTorch serving.

Quantization (--quantize int8): weights stored as int8, activations quantized per batch at run time.
  onnx   onnxruntime.quantization.quantize_dynamic, unsigned 8-bit weights (QUInt8) with one scale and zero point
         per tensor: MatMul -> MatMulInteger (with DynamicQuantizeLinear, an opset-11 op, on the activation, which
         is uint8) and the embedding Gather. Unsigned weights (U8U8) rather than signed (U8S8): on AVX2 CPUs
         without VNNI, ONNX Runtime's U8S8 kernel sums pairs of u8 x s8 products in int16 and can saturate, which
         costs dev accuracy; unsigned weights lose about half as much, for a little more time per batch
         (docs/deploy.md has the measurements).
  torch  torch.ao.quantization.quantize_dynamic of every nn.Linear (embeddings stay fp32); stored as int8
         tensors with their scale and zero point in model-int8.safetensors, never as a pickle.
--optimize runs ONNX Runtime's transformer optimizer (attention, LayerNorm and GELU fusion) before quantization.

Parity: the source model and the export run on the same real batch (the first examples of the task's dev split,
at the run's max_seq_len; the graph was traced on a different, smaller batch, so this also checks the dynamic
axes). export.json records max |logit_source - logit_export| over the batch and the share of equal predictions
(argmax; for regression the output itself). An fp32 export (and the fp32 graph an int8 ONNX export starts from)
must be within 1e-3, or the export fails; int8 is recorded, not bounded - `pkd evaluate` on the export directory
measures what it costs in accuracy on the dev set. The export is run for this check as pkd.inference runs it for
scoring (OnnxClassifier, load_int8_model).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from pkd.config import ExportConfig
from pkd.data import resolve_task
from pkd.encoding import encode_splits, make_collator, model_inputs
from pkd.errors import DataError, ExportError
from pkd.inference import (
    HEADS,
    MULTIPLE_CHOICE,
    SEQUENCE,
    OnnxClassifier,
    is_export_dir,
    load_int8_model,
    quantize_torch,
    quiet_torch_onnx,
    require_onnxruntime,
    trained_max_seq_len,
)
from pkd.io import atomic_dir, write_json
from pkd.models import load_config, load_tokenizer, resolve_model
from pkd.rundir import EXPORT_FILE, check_out_dir, library_versions
from pkd.tasks import Task

PARITY_LIMIT = 1e-3
PARITY_EXAMPLES = 16


def model_file(fmt: str, quantize: str) -> str:
    if fmt == "onnx":
        return "model.onnx"
    return "model-int8.safetensors" if quantize == "int8" else "model.safetensors"


def classifier_kind(config: PretrainedConfig, where: str | Path) -> str:
    archs = config.architectures or []
    if any(a.endswith("ForMultipleChoice") for a in archs):
        return MULTIPLE_CHOICE
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return SEQUENCE
    raise DataError(f"{where}: not a classifier (architectures: {archs or 'none'}); only sequence classifiers and "
                    "multiple-choice models are exported - fine-tune or distill one first")


def load_source(path: str | Path) -> tuple[PreTrainedModel, str]:
    """The fp32 classifier to export, in eval mode, and its kind."""
    config = load_config(str(path))
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
    data = encode_splits(task, "dev", tokenizer, max_seq_len, data_dir, examples)[0]
    part = data.split
    if not part.examples:
        raise DataError(f"{part.source}: no examples for the parity check")
    batch = make_collator(tokenizer)([data[i] for i in range(min(examples, len(data)))])
    return model_inputs(batch), part.source


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
    # eval() on the wrapper too: the TorchScript exporter exports the mode it finds, and would bake dropout into
    # the graph.
    wrapper = _LogitsOnly(model, names).eval()
    attention = model.config._attn_implementation
    model.set_attn_implementation("eager")  # the pattern ONNX Runtime fuses; see the module docstring
    try:
        with torch.no_grad(), quiet_torch_onnx():
            torch.onnx.export(wrapper, tuple(trace[n] for n in names), str(path), input_names=names,
                              output_names=["logits"], dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    finally:
        model.set_attn_implementation(attention)


def optimize_onnx(path: Path, config: PretrainedConfig) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer in place; returns the count of each fused operator."""
    from onnxruntime.transformers.optimizer import optimize_model

    with quiet_torch_onnx():
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
    with quiet_torch_onnx():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


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


# --------------------------------------------------------------------------------------------- parity


def compare_logits(reference: np.ndarray, exported: np.ndarray, multi_label: bool = False) -> dict:
    """max |Δlogit| and prediction agreement: argmax for one label per example; for multi-label, each label's
    decision (logit > 0) compared label by label, as the model predicts; a regression output is compared as is.

    Args:
        reference, exported: [B, C] logits of the PyTorch model and of its export on the same batch.
    """
    diff = float(np.abs(reference - exported).max()) if reference.size else 0.0
    if multi_label:
        agree, rule = (reference > 0) == (exported > 0), "each label's logit > 0"
    elif reference.shape[-1] == 1:
        agree, rule = np.isclose(reference[:, 0], exported[:, 0], atol=PARITY_LIMIT), "|value difference| <= limit"
    else:
        agree, rule = reference.argmax(-1) == exported.argmax(-1), "argmax"
    return {"max_abs_logit_diff": diff, "agreement": float(np.mean(agree)) if agree.size else 1.0,
            "agreement_of": rule}


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
    multi_label = getattr(model.config, "problem_type", None) == "multi_label_classification"

    def agreement_with(exported: torch.nn.Module, parity_batch: dict[str, torch.Tensor]) -> dict:
        return compare_logits(reference, logits_of(exported, parity_batch), multi_label)
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
            result = agreement_with(OnnxClassifier(fp32, model.config, threads=1), batch)
            _check_fp32(result, f"{out}: ONNX export" + (" after --optimize" if optimize else ""))
            if quantize == "int8":
                parity["fp32_max_abs_logit_diff"] = result["max_abs_logit_diff"]
                quantize_onnx(fp32, target)
                fp32.unlink()
                result = agreement_with(OnnxClassifier(target, model.config, threads=1), batch)
        elif quantize == "int8":
            save_file(int8_state_dict(quantize_torch(model)), target)
            result = agreement_with(load_int8_model(target, model.config, kind), batch)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
            reloaded = HEADS[kind].from_pretrained(tmp, use_safetensors=True).eval()
            result = agreement_with(reloaded, batch)
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


def export(source: str | Path, cfg: ExportConfig, score: Callable[[Path, str], dict] | None = None) -> dict:
    """Export a run directory or checkpoint (a sequence classifier or a multiple-choice model); returns what
    export.json records. The parity batch is the first examples of the dev split of cfg.task (default: the run's).
    `score(directory, task)` measures the finished export on dev (see export_model)."""
    if cfg.format == "onnx":
        require_onnxruntime()  # before any work
    check_out_dir(cfg.out, cfg.overwrite, inputs=[("--data-dir", cfg.data_dir)], nests=[("the source run", source)])
    path = resolve_model(str(source))
    if is_export_dir(path):
        raise DataError(f"{path}: already an export directory; export the run it came from ({EXPORT_FILE})")
    model, kind = load_source(path)
    task = resolve_task(cfg.task, None, path)  # the run's own (a file task's from its recorded data)
    if task.is_multiple_choice != (kind == MULTIPLE_CHOICE):
        raise DataError(f"{path}: a {kind} model cannot run task {task.name}")
    max_seq_len = cfg.max_seq_len or trained_max_seq_len(path, task)
    tokenizer = load_tokenizer(path)
    batch, parity_data = parity_batch(tokenizer, task, cfg.data_dir, max_seq_len)
    info = {"source": str(Path(path).resolve()) if Path(path).exists() else path, "task": task.name,
            "max_seq_len": max_seq_len, "parity_data": parity_data,
            **({"file_task": asdict(task.files)} if task.files is not None else {})}
    return export_model(model, kind, tokenizer, batch, cfg, info,
                        score=None if score is None else lambda directory: score(directory, task.name))


def export_versions(fmt: str) -> dict[str, str]:
    versions = library_versions()
    if fmt == "onnx":
        import onnx
        import onnxruntime

        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    versions["machine"] = platform.machine()
    return versions
