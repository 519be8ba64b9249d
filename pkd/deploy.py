"""`pkd export`: a trained classifier as a file to serve, checked against its source on a real batch.

An export directory holds the model file, the tokenizer (save_pretrained), config.json and export.json
(source run, format, precision, opset, library versions, the parity check). It is written under a temporary
name and renamed into place, so a failed export leaves nothing behind.

Formats
  onnx   torch.onnx.export with the TorchScript exporter (dynamo=False), opset 17 by default, dynamic batch and
         sequence axes (and choices, for multiple choice); logits only. Chosen over the dynamo exporter: both are
         exact, this one exports faster and ONNX Runtime runs its graph faster, fp32 and int8 (docs/deploy.md
         has the measurements). The model is exported with eager attention: ONNX Runtime's fusions recognise
         that pattern (Attention, EmbedLayerNormalization), not the SDPA one, and it exports from opset 11
         (SDPA needs 14).
  torch  the Hugging Face checkpoint (safetensors), for PyTorch serving.
  openvino  the fp32 ONNX graph above, converted by openvino.convert_model and saved as an IR (openvino_model.xml
         and .bin, f32 weights); fp32 or bf16 is the CPU plugin's inference precision hint, recorded in
         export.json and applied when pkd.inference compiles it (pip install 'pkd[openvino]').

Quantization (--quantize int8): weights stored as int8, activations quantized per batch at run time.
  onnx   onnxruntime.quantization.quantize_dynamic, unsigned 8-bit weights (QUInt8) with one scale and zero point
         per tensor: MatMul -> MatMulInteger (with DynamicQuantizeLinear, an opset-11 op, on the activation, which
         is uint8) and the embedding Gather. Unsigned weights (U8U8) rather than signed (U8S8): on AVX2 CPUs
         without VNNI, ONNX Runtime's U8S8 kernel sums pairs of u8 x s8 products in int16 and can saturate, which
         costs dev accuracy; unsigned weights lose about half as much, for a little more time per batch
         (docs/deploy.md has the measurements).
  torch  torch.ao.quantization.quantize_dynamic of every nn.Linear (embeddings stay fp32); stored as int8
         tensors with their scale and zero point in model-int8.safetensors, never as a pickle.
  openvino  static int8: nncf.quantize (post-training, ModelType.TRANSFORMER: SmoothQuant, then min-max ranges and
         fast bias correction) inserts quantize/dequantize pairs with per-channel weight scales and per-tensor
         activation scales, calibrated on the first CALIBRATION_EXAMPLES training examples (one at a time, the
         run's max_seq_len; export.json's "calibration" names them). The CPU plugin then runs the MatMuls in int8
         with VNNI (vpdpbusd) or AMX-INT8 tiles where the CPU has them. Static ranges cost no per-batch
         quantization, which is why it beat ONNX Runtime's dynamic int8 in docs/deploy.md's probe.
--optimize runs ONNX Runtime's transformer optimizer (attention, LayerNorm and GELU fusion) before quantization.
(--quantize int8 is the older spelling of --precision int8.)

bf16 (--precision bf16, PyTorch only): the model cast to bfloat16 and saved by save_pretrained, 2 bytes a weight
  instead of 4, so half the file; it runs in bf16 end to end (matmuls, LayerNorm, softmax as PyTorch's bf16 CPU
  kernels compute them). bf16 keeps fp32's 8-bit exponent and 7 of its 23 mantissa bits: each weight moves by at
  most 2^-8 of itself, the logits by about as much, which rarely flips a prediction. On CPUs with avx512_bf16
  (vdpbf16ps: 2 bf16 products per fp32 lane) or AMX-BF16 (tile matmuls), oneDNN's bf16 GEMMs beat fp32 and int8
  (docs/deploy.md has the measurements); elsewhere they are emulated and slower than fp32.

auto (--precision auto): every candidate this CPU and install run (AUTO_CANDIDATES: torch fp32, torch int8, torch
  bf16 where the CPU has avx512_bf16 or amx_bf16, ONNX Runtime fp32 and int8 where onnxruntime is installed,
  OpenVINO f32 and bf16 (the latter again only with those flags) where openvino is installed, OpenVINO int8
  where nncf is too) is
  exported as above, scored on the first AUTO_DEV_EXAMPLES dev examples and timed in interleaved rounds
  (pkd.inference.median_seconds) at b=1 and b=--batch-size on --max-seq-len tokens. The winner (choose_candidate):
  the highest throughput at --batch-size among those with score >= score(fp32) - --max-drop; ties go to the
  lower b=1 latency, then the smaller file. Measured, not predicted from the flags: which one is fastest depends
  on the CPU, the model's shape and the batch size. export.json's "auto" records every candidate's score, size,
  speed and parity, the CPU's flags and why the winner won; only the winner's files are kept.

Parity: the source model and the export run on the same real batch (the first examples of the task's dev split,
at the run's max_seq_len; the graph was traced on a different, smaller batch, so this also checks the dynamic
axes). export.json records max |logit_source - logit_export| over the batch and the share of equal predictions
(argmax; for regression the output itself). An fp32 export (and the fp32 graph an int8 ONNX export starts from)
must be within 1e-3, or the export fails; int8 and bf16 are recorded, not bounded - `pkd evaluate` on the export
directory measures what they cost in accuracy on the dev set (a bf16 file must reproduce the bf16 model it was
saved from within 1e-3, so that a broken save does not pass for rounding). The export is run for this check as
pkd.inference runs it for scoring (OnnxClassifier, load_int8_model, a bf16 from_pretrained).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import logging
import os
import platform
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from pkd.config import ExportConfig
from pkd.data import resolve_task
from pkd.encoding import encode_splits, make_collator, model_inputs
from pkd.errors import DataError, ExportError, UsageError
from pkd.inference import (
    HEADS,
    INSTALL_HINT,
    MULTIPLE_CHOICE,
    OPENVINO_HINT,
    SEQUENCE,
    OnnxClassifier,
    OpenVinoClassifier,
    cpu_features,
    cpu_flags,
    cpu_name,
    has_fast_bf16,
    is_export_dir,
    load_exported,
    load_int8_model,
    median_seconds,
    model_bytes,
    quantize_torch,
    quiet_torch_onnx,
    require_onnxruntime,
    require_openvino,
    speed_flags,
    trained_max_seq_len,
)
from pkd.io import atomic_dir, write_json
from pkd.models import load_config, load_tokenizer, resolve_model
from pkd.rundir import EXPORT_FILE, check_out_dir, library_versions
from pkd.tasks import Task

PARITY_LIMIT = 1e-3
PARITY_EXAMPLES = 16
CALIBRATION_EXAMPLES = 300  # training examples NNCF calibrates OpenVINO's int8 on (its own default subset size)
NNCF_HINT = "pip install 'pkd[openvino]' (or pip install nncf)"


def model_file(fmt: str, precision: str) -> str:
    if fmt == "onnx":
        return "model.onnx"
    if fmt == "openvino":
        return "openvino_model.xml"  # its weights: openvino_model.bin, beside it (optimum-intel's names)
    return "model-int8.safetensors" if precision == "int8" else "model.safetensors"


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


def calibration_batches(tokenizer: PreTrainedTokenizerBase, task: Task, data_dir: str | Path | None,
                        max_seq_len: int, examples: int = CALIBRATION_EXAMPLES
                        ) -> tuple[list[dict[str, torch.Tensor]], str]:
    """The first `examples` of the task's training split, each a batch of one, tokenized as training does it: what
    a static int8 export calibrates its activation ranges on. Returns them and where they came from."""
    data = encode_splits(task, "train", tokenizer, max_seq_len, data_dir, examples)[0]
    if not len(data):
        raise DataError(f"{data.split.source}: no training examples to calibrate int8 on")
    collate = make_collator(tokenizer)
    return [model_inputs(collate([data[i]])) for i in range(len(data))], data.split.source


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
                 score: Callable[[Path], dict] | None = None,
                 calibration: Sequence[dict[str, torch.Tensor]] | None = None) -> dict:
    """Write cfg.out, the export directory of a loaded fp32 model (eval mode), at one precision (not auto: see
    export_auto), and return its export.json.

    `batch` is the parity batch; `info` goes into export.json (source, task, max_seq_len). Without a tokenizer
    (random-weight bench models) none is saved. `score`, given the finished directory before it is renamed into
    place, returns dev metrics to record as "dev" (pkd.api.run_export passes its evaluate). `calibration`: the
    batches a static int8 export (OpenVINO) calibrates on (calibration_batches; required there, unused
    elsewhere)."""
    if cfg.precision == "auto":
        raise UsageError("--precision auto: export_auto builds and measures its candidates; export_model writes one")
    if cfg.format == "onnx":
        require_onnxruntime()
    elif cfg.format == "openvino":
        require_openvino()
        if cfg.precision == "int8":
            require_nncf()
            if not calibration:
                raise ValueError("an OpenVINO int8 export needs calibration batches (calibration_batches)")
    reference = logits_of(model, batch)
    multi_label = getattr(model.config, "problem_type", None) == "multi_label_classification"

    def agree(exported: torch.nn.Module) -> dict:
        return compare_logits(reference, logits_of(exported, batch), multi_label)
    record: dict = {**(info or {}), "kind": kind, "format": cfg.format, "precision": cfg.precision,
                    "quantize": cfg.quantize, "opset": cfg.opset, "optimize": cfg.optimize,
                    "model_file": model_file(cfg.format, cfg.precision), "inputs": list(batch),
                    "exporter": EXPORTERS[exporter_name(cfg.format, cfg.precision)],
                    "versions": export_versions(cfg.format)}
    first = next(iter(batch.values()))
    parity: dict = {"examples": int(first.shape[0]), "shape": list(first.shape), "limit_fp32": PARITY_LIMIT}
    with atomic_dir(cfg.out) as tmp:
        if cfg.format == "openvino":
            result, config = write_openvino(model, kind, batch, cfg, tmp, agree, parity, record, calibration)
        else:
            write = write_onnx if cfg.format == "onnx" else write_torch
            result, config = write(model, kind, batch, cfg, tmp, agree, parity, record)
        record.pop("calibration_data", None)  # what calibration read: in "calibration", where it was used
        record["parity"] = {**parity, **result}
        record["size_bytes"] = model_bytes(tmp, record)
        config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_json(tmp / EXPORT_FILE, record)
        if score is not None:
            record["dev"] = score(tmp)
            write_json(tmp / EXPORT_FILE, record)
    return record


EXPORTERS = {"onnx": "torch.onnx.export (TorchScript, dynamo=False), eager attention",
             "openvino": "openvino.convert_model of pkd's fp32 ONNX graph, saved uncompressed (f32 weights)",
             "openvino-int8": "nncf.quantize (ModelType.TRANSFORMER) of openvino.convert_model of pkd's fp32 ONNX "
                              "graph",
             "torch-fp32": "save_pretrained", "torch-int8": "torch.ao dynamic quantization of nn.Linear",
             "torch-bf16": "save_pretrained of the model cast to bfloat16"}
Agree = Callable[[torch.nn.Module], dict]


def exporter_name(fmt: str, precision: str) -> str:
    """The EXPORTERS entry of a format and precision."""
    if fmt == "torch":
        return f"torch-{precision}"
    return "openvino-int8" if (fmt, precision) == ("openvino", "int8") else fmt


def require_nncf() -> ModuleType:
    """nncf, or a one-line UsageError naming the install command."""
    try:
        import nncf
    except ImportError:
        raise UsageError(f"--format openvino --precision int8 needs nncf: {NNCF_HINT}") from None
    return nncf


def write_onnx(model: PreTrainedModel, kind: str, batch: dict[str, torch.Tensor], cfg: ExportConfig, tmp: Path,
               agree: Agree, parity: dict, record: dict) -> tuple[dict, PretrainedConfig]:
    """The ONNX graph (and its int8 quantization) in `tmp`, checked; returns the parity result and the config
    to save. Records the fused and the final operators in `record`, the fp32 graph's parity of an int8 export in
    `parity`."""
    target = tmp / record["model_file"]
    fp32 = target if cfg.precision == "fp32" else tmp / "model-fp32.onnx"
    export_onnx(model, kind, batch, fp32, cfg.opset)
    if cfg.optimize:
        record["fused"] = optimize_onnx(fp32, model.config)
    # The fp32 graph is checked even when it is only the quantizer's input: an int8 error on top of a broken
    # export would be indistinguishable from quantization noise.
    result = agree(OnnxClassifier(fp32, model.config, threads=1))
    _check_fp32(result, f"{cfg.out}: ONNX export" + (" after --optimize" if cfg.optimize else ""))
    if cfg.precision == "int8":
        parity["fp32_max_abs_logit_diff"] = result["max_abs_logit_diff"]
        quantize_onnx(fp32, target)
        fp32.unlink()
        result = agree(OnnxClassifier(target, model.config, threads=1))
    record["operators"] = operator_counts(target)
    return result, model.config


def write_openvino(model: PreTrainedModel, kind: str, batch: dict[str, torch.Tensor], cfg: ExportConfig,
                   tmp: Path, agree: Agree, parity: dict, record: dict,
                   calibration: Sequence[dict[str, torch.Tensor]] | None = None) -> tuple[dict, PretrainedConfig]:
    """pkd's fp32 ONNX graph (export_onnx) converted to an OpenVINO IR in `tmp`, run by the CPU plugin at f32 and
    checked as an fp32 export; for bf16 (the plugin's precision hint on the same IR) the result at bf16 is
    returned, the f32 one recorded in `parity`; for int8 the IR is quantized by NNCF on `calibration` first (the
    f32 IR's parity recorded likewise, the calibration in `record`)."""
    ov = require_openvino()
    onnx_file = tmp / "model-fp32.onnx"
    export_onnx(model, kind, batch, onnx_file, cfg.opset)
    target = tmp / record["model_file"]
    with quiet_torch_onnx():
        graph = ov.convert_model(str(onnx_file))
        ov.save_model(graph, str(target), compress_to_fp16=False)
    onnx_file.unlink()
    result = agree(OpenVinoClassifier(target, model.config, "fp32", threads=1))
    _check_fp32(result, f"{cfg.out}: OpenVINO export")
    if cfg.precision == "fp32":
        return result, model.config
    parity["fp32_max_abs_logit_diff"] = result["max_abs_logit_diff"]
    if cfg.precision == "int8":
        nncf = require_nncf()
        nncf.set_log_level(logging.ERROR)
        names = [i.get_any_name() for i in graph.inputs]
        feeds = [{n: b[n].numpy().astype(np.int64) for n in names} for b in calibration]
        # Its progress bars go to stderr, beside pkd's own: stdout is the record's (the JSON line).
        with quiet_torch_onnx(), contextlib.redirect_stdout(sys.stderr):
            quantized = nncf.quantize(graph, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(feeds))
            ov.save_model(quantized, str(target), compress_to_fp16=False)
        record["calibration"] = {"examples": len(feeds), "data": record.get("calibration_data"),
                                 "method": "nncf.quantize, ModelType.TRANSFORMER", "nncf": nncf.__version__}
    return agree(OpenVinoClassifier(target, model.config, cfg.precision, threads=1)), model.config


def write_torch(model: PreTrainedModel, kind: str, batch: dict[str, torch.Tensor], cfg: ExportConfig, tmp: Path,
                agree: Agree, parity: dict, record: dict) -> tuple[dict, PretrainedConfig]:
    """The PyTorch checkpoint in `tmp`, reloaded as pkd.inference loads it and checked against the source; returns
    the parity result and the config to save (bf16's says dtype bfloat16)."""
    target = tmp / record["model_file"]
    if cfg.precision == "int8":
        save_file(int8_state_dict(quantize_torch(model)), target)
        return agree(load_int8_model(target, model.config, kind)), model.config
    if cfg.precision == "bf16":
        half = copy.deepcopy(model).to(torch.bfloat16).eval()
        half.save_pretrained(tmp, safe_serialization=True)
        reloaded = HEADS[kind].from_pretrained(tmp, use_safetensors=True, dtype=torch.bfloat16).eval()
        # The file must give back the bf16 model it was saved from, exactly up to the fp32 bound: a broken save
        # would otherwise pass as bf16 rounding. Against fp32 the result is recorded, not bounded, as for int8.
        stored = compare_logits(logits_of(half, batch), logits_of(reloaded, batch))
        parity["bf16_file_max_abs_logit_diff"] = stored["max_abs_logit_diff"]
        if stored["max_abs_logit_diff"] > PARITY_LIMIT:
            raise ExportError(f"{cfg.out}: the bf16 file does not reproduce the bf16 model, max |logit difference| "
                              f"{stored['max_abs_logit_diff']:.2e} > {PARITY_LIMIT:g}; nothing was written")
        return agree(reloaded), reloaded.config
    model.save_pretrained(tmp, safe_serialization=True)
    result = agree(HEADS[kind].from_pretrained(tmp, use_safetensors=True).eval())
    _check_fp32(result, f"{cfg.out}: PyTorch export")
    return result, model.config


Score = Callable[..., dict]  # score(directory, task name, max_examples=None) -> dev metrics


def export(source: str | Path, cfg: ExportConfig, score: Score | None = None) -> dict:
    """Export a run directory or checkpoint (a sequence classifier or a multiple-choice model); returns what
    export.json records. The parity batch is the first examples of the dev split of cfg.task (default: the run's).
    `score(directory, task, max_examples)` measures an export on dev: the finished one (see export_model), and
    with --precision auto, which needs it, each candidate on the first AUTO_DEV_EXAMPLES (see export_auto)."""
    if cfg.precision == "auto" and score is None:
        raise UsageError("--precision auto scores its candidates on dev: pass score (pkd.api.run_export does)")
    if cfg.format == "onnx":
        require_onnxruntime()  # before any work
    elif cfg.format == "openvino":
        require_openvino()
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
    calibration = None
    if cfg.precision in ("int8", "auto") and installed(require_nncf) and cfg.format in ("openvino", None):
        calibration, info_data = calibration_batches(tokenizer, task, cfg.data_dir, max_seq_len)
        info_calibration = {"calibration_data": info_data}
    else:
        info_calibration = {}
    info = {"source": str(Path(path).resolve()) if Path(path).exists() else path, "task": task.name,
            "max_seq_len": max_seq_len, "parity_data": parity_data,
            **({"file_task": asdict(task.files)} if task.files is not None else {}), **info_calibration}
    if cfg.precision == "auto":
        if kind != SEQUENCE:
            raise UsageError(f"--precision auto: {path} is a {kind} model; auto times sequence classifiers on "
                             "[batch, tokens] - export it with a fixed --precision")
        return export_auto(model, tokenizer, batch, cfg, info,
                           score=lambda directory, examples=None: score(directory, task.name, examples),
                           calibration=calibration)
    return export_model(model, kind, tokenizer, batch, cfg, info,
                        score=None if score is None else lambda directory: score(directory, task.name),
                        calibration=calibration)


def export_versions(fmt: str) -> dict[str, str]:
    versions = library_versions()
    if fmt == "onnx":
        import onnx
        import onnxruntime

        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    if fmt == "openvino":
        versions["openvino"] = require_openvino().__version__
    versions["machine"] = platform.machine()
    return versions


# ------------------------------------------------------------------------------------------- auto

# The candidates of --precision auto, name -> (format, precision), named as `pkd bench --variants` names them; the
# first is the reference: the fp32 model as it is, whose dev score the others may fall short of by --max-drop.
AUTO_CANDIDATES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "fp32"),
    "torch-int8": ("torch", "int8"),
    "torch-bf16": ("torch", "bf16"),
    "ort": ("onnx", "fp32"),
    "ort-int8": ("onnx", "int8"),
    "ov": ("openvino", "fp32"),
    "ov-bf16": ("openvino", "bf16"),
    "ov-int8": ("openvino", "int8"),
}
AUTO_REFERENCE = "torch"
AUTO_DEV_EXAMPLES = 2000  # each candidate is scored on the first 2000 dev examples: all of most dev sets
AUTO_REPEATS, AUTO_WARMUP = 5, 1
AUTO_RULE = ("the highest throughput at --batch-size among the candidates whose dev score is at least the fp32 "
             "model's minus --max-drop; ties go to the lower b=1 latency, then the smaller file")


def auto_candidates(flags: set[str] | Sequence[str], onnxruntime: bool, openvino: bool = False, nncf: bool = False
                    ) -> tuple[list[str], dict[str, str]]:
    """The candidates this CPU and install support, and why each other one is left out."""
    names, skipped = [], {}
    for name, (fmt, precision) in AUTO_CANDIDATES.items():
        if fmt == "onnx" and not onnxruntime:
            skipped[name] = f"onnxruntime is not installed ({INSTALL_HINT})"
        elif fmt == "openvino" and not openvino:
            skipped[name] = f"openvino is not installed ({OPENVINO_HINT})"
        elif (fmt, precision) == ("openvino", "int8") and not nncf:
            skipped[name] = f"nncf is not installed ({NNCF_HINT})"
        elif precision == "bf16" and not has_fast_bf16(flags):
            skipped[name] = "the CPU has neither avx512_bf16 nor amx_bf16: bf16 would be emulated, slower than fp32"
        else:
            names.append(name)
    return names, skipped


def choose_candidate(rows: Sequence[dict], max_drop: float, batch_size: int, reference: str = AUTO_REFERENCE
                     ) -> tuple[str, str]:
    """The winner of AUTO_RULE and a sentence saying why it won.

    Args:
        rows: one per candidate: name, score (dev, in points), throughput (examples/s at batch_size), latency_ms
            (b=1) and size_bytes; one of them is `reference`, the fp32 model.
    """
    by_name = {r["name"]: r for r in rows}
    if reference not in by_name:
        raise ValueError(f"no reference candidate {reference!r} among {sorted(by_name)}")
    floor = by_name[reference]["score"] - max_drop
    kept = [r for r in rows if r["score"] >= floor - 1e-9]  # the reference itself always is
    best = max(kept, key=lambda r: (r["throughput"], -r["latency_ms"], -r["size_bytes"]))
    ratio = best["throughput"] / by_name[reference]["throughput"]
    reason = (f"{best['name']}: the fastest at b={batch_size} ({best['throughput']:.1f} ex/s, {ratio:.2f}x "
              f"{reference}) of the {len(kept)} of {len(rows)} candidates scoring >= {floor:.2f} on dev "
              f"({reference} {by_name[reference]['score']:.2f} - {max_drop:g})")
    lost = [r for r in rows if r not in kept and r["throughput"] > best["throughput"]]
    if lost:
        reason += "; faster but below it: " + ", ".join(
            f"{r['name']} ({r['score'] - by_name[reference]['score']:+.2f} points)" for r in lost)
    return best["name"], reason


def installed(require: Callable[[], object]) -> bool:
    """Whether an optional dependency imports (require_onnxruntime, require_openvino)."""
    try:
        require()
    except UsageError:
        return False
    return True


def candidate_config(cfg: ExportConfig, name: str, out: Path) -> ExportConfig:
    fmt, precision = AUTO_CANDIDATES[name]
    return replace(cfg, out=str(out), format=fmt, precision=precision, quantize="none", max_drop=None,
                   batch_size=None, threads=None, evaluate=False, opset=cfg.opset if fmt == "onnx" else None)


def time_candidates(work: Path, records: dict[str, dict], seq_len: int, batch_size: int, threads: int | None = None
                    ) -> list[dict]:
    """Each candidate of `records` (exported under work/NAME) loaded as pkd.inference loads it and timed in the
    same interleaved rounds at b=1 and b=batch_size, with `threads` torch and ONNX Runtime threads (default:
    torch's); rows for choose_candidate, ratios against the first."""
    names = list(records)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        models = [load_exported(work / name, threads)[0] for name in names]
        medians = median_seconds(models, seq_len, sorted({1, batch_size}), AUTO_REPEATS, AUTO_WARMUP)
    finally:
        torch.set_num_threads(previous)  # an API caller's own setting survives the timing
    rows = []
    for name, median in zip(names, medians, strict=True):
        record = records[name]
        rows.append({"name": name, "format": record["format"], "precision": record["precision"],
                     "size_bytes": record["size_bytes"], "score": record["auto_dev"]["score"],
                     "metrics": record["auto_dev"], "latency_ms": 1000 * median[1],
                     "throughput": batch_size / median[batch_size],
                     "latency_x": medians[0][1] / median[1],
                     "throughput_x": medians[0][batch_size] / median[batch_size],
                     "max_abs_logit_diff": record["parity"]["max_abs_logit_diff"],
                     "agreement": record["parity"]["agreement"]})
    return rows


def export_auto(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, batch: dict[str, torch.Tensor],
                cfg: ExportConfig, info: dict, score: Score,
                calibration: Sequence[dict[str, torch.Tensor]] | None = None) -> dict:
    """--precision auto: every candidate this CPU supports (auto_candidates) exported and parity-checked as
    export_model does, scored with score(directory, AUTO_DEV_EXAMPLES), timed (time_candidates), the winner of
    choose_candidate kept in cfg.out with export.json's "auto" recording every candidate, the CPU and the reason;
    the others are deleted. With cfg.evaluate the winner is also scored on the whole dev split ("dev")."""
    names, skipped = auto_candidates(cpu_flags(), installed(require_onnxruntime), installed(require_openvino),
                                     installed(require_nncf) and bool(calibration))
    with atomic_dir(cfg.out) as tmp:
        work = tmp / "candidates"
        records = {}
        for name in names:
            records[name] = export_model(model, SEQUENCE, tokenizer, batch, candidate_config(cfg, name, work / name),
                                         info, calibration=calibration)
            records[name]["auto_dev"] = score(work / name, AUTO_DEV_EXAMPLES)
        rows = time_candidates(work, records, info["max_seq_len"], cfg.batch_size, cfg.threads)
        winner, reason = choose_candidate(rows, cfg.max_drop, cfg.batch_size)
        for f in (work / winner).iterdir():
            os.replace(f, tmp / f.name)
        shutil.rmtree(work)
        record = {key: value for key, value in records[winner].items() if key != "auto_dev"}
        record["auto"] = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                          "rule": AUTO_RULE, "max_drop": cfg.max_drop, "batch_size": cfg.batch_size,
                          "seq_len": info["max_seq_len"], "repeats": AUTO_REPEATS,
                          "threads": cfg.threads or torch.get_num_threads(),
                          "dev_examples": AUTO_DEV_EXAMPLES, "cpu": f"{platform.machine()} {cpu_name()}".strip(),
                          "cpu_features": cpu_features(), "cpu_flags": speed_flags(), "reference": AUTO_REFERENCE,
                          "candidates": rows, "skipped": skipped, "winner": winner, "reason": reason}
        if cfg.evaluate:
            write_json(tmp / EXPORT_FILE, record)
            record["dev"] = score(tmp)
        write_json(tmp / EXPORT_FILE, record)
    return record


def auto_table(auto: dict) -> str:
    """export.json's "auto" as the Markdown table `pkd export --precision auto` prints, the winner in bold."""
    b = auto["batch_size"]
    header = ["candidate", "format", "precision", "dev", "vs fp32", "size MB", "latency ms (b=1)", "x",
              f"ex/s (b={b})", "x", "max abs dlogit", "kept"]
    reference = next(r for r in auto["candidates"] if r["name"] == auto["reference"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in auto["candidates"]:
        drop = r["score"] - reference["score"]
        name = f"**{r['name']}**" if r["name"] == auto["winner"] else r["name"]
        lines.append("| " + " | ".join([
            name, r["format"], r["precision"], f"{r['score']:.2f}", f"{drop:+.2f}", f"{r['size_bytes'] / 1e6:.1f}",
            f"{r['latency_ms']:.1f}", f"{r['latency_x']:.2f}x", f"{r['throughput']:.1f}", f"{r['throughput_x']:.2f}x",
            f"{r['max_abs_logit_diff']:.1e}", "yes" if drop >= -auto["max_drop"] - 1e-9 else "no"]) + " |")
    lines += [f"| {name} | skipped: {why} |" + " |" * (len(header) - 2) for name, why in auto["skipped"].items()]
    return "\n".join(lines) + "\n"
