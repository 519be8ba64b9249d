"""Loading and running an export directory (what `pkd export` writes): the model behind the interface evaluation
and benchmarking use, model(**batch).logits, whatever its format and precision.

It owns reading export.json and checking that an export fits the task it is asked to score, the ONNX Runtime
session pkd runs a graph in, the rebuilding of a PyTorch int8 model from its safetensors file, and what decides
which of them is fast here: the CPU's flags (/proc/cpuinfo, read in this one place) and the timing of forwards
(interleaved rounds, medians), which `pkd bench` and `pkd export --precision auto` share. It is kept apart from
writing an export (pkd.deploy) because scoring, predicting and benchmarking need only this half: pkd.deploy
imports it for its parity check, never the other way round.

  onnx   an ONNX Runtime CPU session, one inter-op thread, `threads` intra-op threads and spinning off: spinning
         idle threads steal the CPU from whatever runs next (docs/deploy.md).
  openvino  the IR compiled by OpenVINO's CPU plugin with the recorded precision as its inference precision hint
         (f32 or bf16; the plugin's own default is bf16 on bf16-capable CPUs, so f32 is asked for explicitly).
  torch  save_pretrained's checkpoint (bf16: loaded as bf16, logits bf16; callers take .float()), or for int8 the
         fp32 architecture from config.json, dynamically quantized, with the stored int8 weights set into its
         Linear layers; never a pickle.
"""

from __future__ import annotations

import logging
import platform
import statistics
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForMultipleChoice,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from pkd.config import FORMATS, PRECISIONS, QUANTIZATIONS, record_precision
from pkd.errors import DataError, UsageError
from pkd.models import load_config, load_tokenizer
from pkd.rundir import EXPORT_FILE, read_json, read_record
from pkd.tasks import Task

if TYPE_CHECKING:
    import onnxruntime

INSTALL_HINT = "pip install 'pkd[export]'"
SEQUENCE, MULTIPLE_CHOICE = "sequence-classification", "multiple-choice"
HEADS = {SEQUENCE: AutoModelForSequenceClassification, MULTIPLE_CHOICE: AutoModelForMultipleChoice}


def require_onnxruntime() -> ModuleType:
    """onnxruntime (and onnx), or a one-line error naming the install command."""
    try:
        import onnx  # noqa: F401  (the quantizer and the optimizer need it)
        import onnxruntime
    except ImportError as e:
        raise UsageError(f"ONNX needs the optional dependencies ({e.name} is not installed): {INSTALL_HINT}") from None
    return onnxruntime


def is_export_dir(path: str | Path) -> bool:
    return (Path(path) / EXPORT_FILE).is_file()


def read_export(path: str | Path) -> dict:
    """An export directory's export.json, checked to be one pkd wrote."""
    record = read_json(Path(path) / EXPORT_FILE)
    if not isinstance(record, dict) or record.get("format") not in FORMATS or \
            record.get("quantize") not in QUANTIZATIONS or record.get("kind") not in HEADS or \
            record_precision(record) not in PRECISIONS[:-1]:  # auto is no precision a model is stored in
        raise DataError(f"{Path(path) / EXPORT_FILE}: not a pkd export record")
    return record


def model_bytes(path: str | Path, record: dict) -> int:
    """The size of an export's model on disk: its model file, and for OpenVINO the weights beside it (.bin)."""
    file = Path(path) / record["model_file"]
    weights = file.with_suffix(".bin") if record["format"] == "openvino" else None
    return file.stat().st_size + (weights.stat().st_size if weights is not None and weights.is_file() else 0)


def trained_max_seq_len(path: str | Path, task: Task) -> int:
    """The max_seq_len a model was trained with, to encode its inputs at: its run.json's, an export directory's
    source run's (export.json), else the task's default (a checkpoint trained elsewhere)."""
    if is_export_dir(path):
        recorded = read_export(path).get("max_seq_len")
    else:
        recorded = read_record(path).get("train", {}).get("max_seq_len")
    return recorded or task.default_max_seq_len


def load_exported(path: str | Path, threads: int | None = None
                  ) -> tuple[torch.nn.Module, PreTrainedTokenizerBase | None, dict]:
    """The model of an export directory behind the interface evaluation uses (model(**batch).logits), its
    tokenizer (None if it has none) and export.json."""
    path = Path(path)
    record = read_export(path)
    file = path / record["model_file"]
    if not file.is_file():
        raise DataError(f"{path}: export directory without its model file {record['model_file']}")
    config = load_config(str(path))
    tokenizer = load_tokenizer(str(path)) if (path / "tokenizer_config.json").is_file() else None
    if record["format"] in ("onnx", "openvino"):
        model = OnnxClassifier(file, config, threads) if record["format"] == "onnx" else \
            OpenVinoClassifier(file, config, record_precision(record), threads)
        model.check_inputs(tokenizer, record["kind"])
    elif record_precision(record) == "int8":
        model = load_int8_model(file, config, record["kind"])
    else:  # fp32, or bf16 as stored
        dtype = torch.bfloat16 if record_precision(record) == "bf16" else torch.float32
        model = HEADS[record["kind"]].from_pretrained(path, use_safetensors=True, dtype=dtype).eval()
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


# ------------------------------------------------------------------------------------------ ONNX Runtime


def ort_session(path: str | Path, threads: int | None = None) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session with `threads` intra-op threads (default: torch's) and spinning off: spinning
    idle threads steal the CPU from whatever runs next (docs/deploy.md)."""
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


class GraphClassifier(torch.nn.Module):
    """A compiled graph (ONNX Runtime, OpenVINO) behind the model interface pkd evaluates and benchmarks:
    model(**batch).logits, float32.

    A module without parameters, so that .to(), .eval() and .train() from the shared evaluation code do no
    harm. A missing token_type_ids is zeros, as in the Hugging Face models; other missing inputs are an error.
    Subclasses set input_ranks (each input's name and rank, in the graph's order) and run a feed."""

    def __init__(self, path: str | Path, config: PretrainedConfig):
        super().__init__()
        self.path, self.config = Path(path), config
        self.input_ranks: dict[str, int] = {}

    @property
    def input_names(self) -> list[str]:
        return list(self.input_ranks)

    def check_inputs(self, tokenizer: PreTrainedTokenizerBase | None, kind: str) -> None:
        """The graph's inputs must be among what the tokenizer produces, with one rank per kind of model. A tokenizer
        output the graph lacks is one the model does not take (MPNet takes no token_type_ids, which a BERT
        tokenizer produces), and is left out of the feed; a graph input the tokenizer lacks is refused."""
        rank = 3 if kind == MULTIPLE_CHOICE else 2
        for name, found in self.input_ranks.items():
            if found != rank:
                raise DataError(f"{self.path}: input {name} has rank {found}, a {kind} model takes {rank}")
        if tokenizer is None:
            return
        produced = list(tokenizer.model_input_names)
        if not set(self.input_names) <= set(produced):
            raise DataError(f"{self.path}: the graph's inputs {self.input_names} do not match the tokenizer's "
                            f"{produced}")

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def forward(self, **inputs: torch.Tensor) -> SimpleNamespace:
        feed = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None and name == "token_type_ids" and "input_ids" in inputs:
                value = torch.zeros_like(inputs["input_ids"])
            if value is None:
                raise DataError(f"{self.path}: the model needs input {name}, got {sorted(inputs)}")
            feed[name] = value.detach().cpu().numpy().astype(np.int64, copy=False)
        return SimpleNamespace(logits=torch.from_numpy(np.asarray(self.run(feed), dtype=np.float32)))


class OnnxClassifier(GraphClassifier):
    """An ONNX Runtime session (ort_session) behind the model interface."""

    def __init__(self, path: str | Path, config: PretrainedConfig, threads: int | None = None):
        super().__init__(path, config)
        self.session = ort_session(path, threads)
        self.input_ranks = {i.name: len(i.shape) for i in self.session.get_inputs()}

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], feed)[0]


# ----------------------------------------------------------------------------------------------- OpenVINO

OPENVINO_HINT = "pip install 'pkd[openvino]'"
# export.json's precision -> the CPU plugin's INFERENCE_PRECISION_HINT. Set for fp32 too: on CPUs with bf16
# instructions the plugin's default is bf16.
# The CPU plugin's inference precision hint per recorded precision. An int8 IR carries its own quantize /
# dequantize pairs (NNCF's); the hint sets what stays floating point (LayerNorm, softmax, GELU): f32, the accurate
# choice, which the probe of docs/deploy.md measured as fast as bf16 there.
OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def require_openvino() -> ModuleType:
    """openvino, or a one-line error naming the install command."""
    try:
        import openvino
    except ImportError as e:
        raise UsageError(f"OpenVINO needs the optional dependency ({e.name} is not installed): {OPENVINO_HINT}"
                         ) from None
    return openvino


class OpenVinoClassifier(GraphClassifier):
    """An OpenVINO IR (openvino_model.xml + .bin) compiled for the CPU at `precision` (fp32 or bf16: the plugin's
    inference precision hint; the IR itself is f32), `threads` inference threads (default torch's), one stream
    (the LATENCY hint: one request at a time, as pkd runs it)."""

    def __init__(self, path: str | Path, config: PretrainedConfig, precision: str = "fp32",
                 threads: int | None = None):
        super().__init__(path, config)
        ov = require_openvino()
        core = ov.Core()
        try:
            graph = core.read_model(str(path))
            self.compiled = core.compile_model(graph, "CPU", {
                "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": threads or torch.get_num_threads()})
        except Exception as e:
            raise DataError(f"{path}: cannot load OpenVINO model ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]})") from None
        self.precision = precision
        self.input_ranks = {i.get_any_name(): i.get_partial_shape().rank.get_length() for i in graph.inputs}
        self.output = self.compiled.output("logits")

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.compiled(feed)[self.output]


# ------------------------------------------------------------------------------------------- PyTorch int8


def quantize_torch(model: PreTrainedModel) -> PreTrainedModel:
    """int8 weights for every nn.Linear, activations quantized per batch; a new model, the source is kept.
    Exporting quantizes with it, and loading rebuilds the quantized architecture with it before setting the
    stored weights."""
    import copy

    from torch.ao.quantization import quantize_dynamic

    with quiet_torch_onnx():  # torch.ao quantization warns that it is deprecated in favour of torchao
        return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def load_int8_model(path: Path, config: PretrainedConfig, kind: str) -> PreTrainedModel:
    """Rebuild a model saved by pkd.deploy.int8_state_dict: the fp32 architecture from config.json with every
    tensor but the Linear layers' filled in, quantized, then the int8 Linear weights set."""
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


@contextmanager
def quiet_torch_onnx() -> Iterator[None]:
    """The exporter, the optimizer and the quantizers log warnings a user can do nothing about."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


# -------------------------------------------------------------------------------------------- the CPU

# The CPU flags that decide int8 and bf16 speed: without VNNI, x86 int8 kernels (FBGEMM, ONNX Runtime's MLAS)
# multiply u8 x s8 in three instructions where VNNI takes one, so int8's gain over fp32 differs by about 2x
# between hosts of the same core count; without avx512_bf16 or amx_bf16, bf16 matrix products are emulated and
# slower than fp32 (docs/deploy.md).
SPEED_FLAGS = ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's flags as /proc/cpuinfo lists them (x86 "flags", Arm "Features"); empty when there is no file."""
    return set(cpuinfo_field(cpuinfo, ("flags", "Features")).split())


def speed_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """Which of SPEED_FLAGS the CPU has, in SPEED_FLAGS' order."""
    flags = cpu_flags(cpuinfo)
    return [f for f in SPEED_FLAGS if f in flags]


def has_fast_bf16(flags: set[str] | Sequence[str]) -> bool:
    """Whether the CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX-BF16)."""
    return any(f in flags for f in BF16_FLAGS)


def cpu_features(cpuinfo: Path = CPUINFO) -> str:
    """torch's CPU kernel level and the int8/bf16 flags the CPU has, e.g. "AVX2; none of avx512f, ... amx_bf16"."""
    have = speed_flags(cpuinfo)
    return f"{torch.backends.cpu.get_cpu_capability()}; " + (" ".join(have) if have else
                                                             "none of " + ", ".join(SPEED_FLAGS))


def cpu_name() -> str:
    # platform.processor() is empty on most Linux systems
    return cpuinfo_field(CPUINFO, ("model name",)) or platform.processor()


def cpuinfo_field(cpuinfo: Path, names: tuple[str, ...]) -> str:
    """The value of the first line of `cpuinfo` that starts with one of `names` ("" when none, or no file)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(names):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


# --------------------------------------------------------------------------------------------- timing


def timing_inputs(config: PretrainedConfig, batch: int, seq_len: int, device: str = "cpu"
                  ) -> dict[str, torch.Tensor]:
    """Random token ids of shape [batch, seq_len] with an all-ones mask; the same ids for every model of a
    vocabulary, so that models timed side by side see the same input."""
    g = torch.Generator().manual_seed(batch * 7919 + seq_len)
    ids = torch.randint(0, config.vocab_size, (batch, seq_len), generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_seconds(models: Sequence[torch.nn.Module], seq_len: int, batch_sizes: Sequence[int], repeats: int,
                   warmup: int, device: str = "cpu") -> list[dict[int, float]]:
    """Per model, the median seconds of one forward at each batch size, on timing_inputs.

    Each model first runs `warmup` forwards per batch size; then each of `repeats` rounds times one forward of
    every model in turn, starting from a different model each round, so that machine noise (other processes,
    frequency changes) falls on all of them alike and no model always runs right after the same neighbour."""
    inputs = {(i, b): timing_inputs(m.config, b, seq_len, device) for i, m in enumerate(models) for b in batch_sizes}
    times: dict[tuple[int, int], list[float]] = {key: [] for key in inputs}
    n = len(models)
    with torch.inference_mode():
        for _ in range(warmup):
            for (i, _b), x in inputs.items():
                models[i](**x)
        sync(device)
        for r in range(repeats):
            for b in batch_sizes:
                for i in [(r + k) % n for k in range(n)]:
                    start = time.perf_counter()
                    models[i](**inputs[i, b])
                    sync(device)
                    times[i, b].append(time.perf_counter() - start)
    return [{b: statistics.median(times[i, b]) for b in batch_sizes} for i in range(n)]
