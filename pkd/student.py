"""Student construction: a shallower copy of an encoder that keeps chosen layers.

One mechanism for every encoder family: find the encoder's list of layers in the state dict (the keys
"<prefix>.<i>." whose prefix indexes num_hidden_layers modules), keep the chosen ones renumbered 0..M-1, and
copy everything else (embeddings, pooler, relative position tables) as it is.

Which layers: the paper's first M, unless the checkpoint's [CLS] state after layer M is the same for every
input. Then a [CLS]-pooled classifier on top of those layers starts with nothing to separate, and learns only
once the lower layers have learnt to route the input into [CLS]: hundreds of steps at the loss's starting
value. all-MiniLM-L6-v2, trained with mean pooling, is such a checkpoint: the mean pairwise cosine of its
[CLS] state over SST-2 sentences is 1.000 after layers 1-5 and 0.71 after layer 6
(bench/investigations/diagnose_pooling.py). For those, the student takes the first M-1 layers and the
checkpoint's top layer, whose [CLS] output does depend on the input (docs/recipes.md has the measurements).
A checkpoint whose [CLS] is constant even at its top (random weights) keeps the first M.
"""

from __future__ import annotations

import re

import torch
from transformers import AutoConfig, AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from pkd.errors import DataError, UsageError
from pkd.models import has_head, head_class, label_names, load_classifier, load_config, load_tokenizer
from pkd.tasks import Task


def check_student_depth(student_layers: int, depth: int, deeper: str = "the teacher") -> None:
    """A student has at least one layer and fewer than the model it learns from or is copied from (`deeper`,
    of `depth` layers): the one rule for --student-layers, whichever command checks it first."""
    if not 1 <= student_layers < depth:
        raise UsageError(f"--student-layers {student_layers}: must be at least 1 and shallower than {deeper} "
                         f"({depth} layers), so between 1 and {depth - 1}")


def find_layer_prefix(state_dict: dict[str, torch.Tensor], num_layers: int) -> str:
    """The key prefix of the encoder layer list, e.g. "encoder.layer." for BERT."""
    counts: dict[str, set[int]] = {}
    for key in state_dict:
        for m in re.finditer(r"(?:^|\.)(\d+)\.", key):
            counts.setdefault(key[: m.start(1)], set()).add(int(m.group(1)))
    candidates = [p for p, idx in counts.items() if idx == set(range(num_layers))]
    if len(candidates) != 1:
        raise DataError(f"cannot find the encoder's {num_layers} layers in the checkpoint (found {candidates})")
    return candidates[0]


def select_layers(state_dict: dict[str, torch.Tensor], num_layers: int, keep: list[int]) -> dict[str, torch.Tensor]:
    """Keep layers `keep` (0-based) of the layer list, renumbered 0..len(keep)-1."""
    prefix = find_layer_prefix(state_dict, num_layers)
    new_index = {old: new for new, old in enumerate(keep)}
    out = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            layer, rest = key[len(prefix):].split(".", 1)
            if int(layer) in new_index:
                out[f"{prefix}{new_index[int(layer)]}.{rest}"] = value
        else:
            out[key] = value
    return out


# Mean pairwise cosine of the [CLS] state over probe inputs above which it carries nothing about the input.
CONSTANT_CLS = 0.99


def cls_similarities(encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, probes: int = 16,
                     length: int = 16) -> list[float]:
    """For each layer (0 = embeddings), the mean pairwise cosine similarity of the [CLS] state over `probes`
    inputs of `length` random vocabulary tokens (fixed seed; any language), from one forward pass.
    1.0: the same for every input."""
    g = torch.Generator().manual_seed(0)
    special = set(tokenizer.all_special_ids)
    vocab = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
    texts = [tokenizer.decode(vocab[torch.randint(len(vocab), (length,), generator=g)].tolist())
             for _ in range(probes)]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=4 * length, return_tensors="pt")
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        states = encoder(**batch, output_hidden_states=True).hidden_states
    encoder.train(was_training)
    sims = []
    for h in states:
        unit = torch.nn.functional.normalize(h[:, 0].float(), dim=-1)
        sims.append(float(((unit @ unit.T).sum() - probes) / (probes * (probes - 1))))
    return sims


def cls_similarity(encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, layer: int) -> float:
    """cls_similarities of one layer."""
    return cls_similarities(encoder, tokenizer)[layer]


def probe_init_layers(encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      num_layers: int) -> tuple[list[int], str]:
    """The first M layers (the paper), or the first M-1 and the top one when the [CLS] state after layer M is
    constant over inputs and the top layer's is not (see the module docstring); with the measured reason, in
    words."""
    first = list(range(1, num_layers + 1))
    depth = encoder.config.num_hidden_layers
    if num_layers >= depth:
        return first, f"the first {num_layers} (the source has {depth} layers)"
    sims = cls_similarities(encoder, tokenizer)
    measured = (f"mean pairwise cosine of [CLS] over random inputs {sims[num_layers]:.3f} after layer {num_layers}, "
                f"{sims[depth]:.3f} after layer {depth}; constant above {CONSTANT_CLS}")
    if sims[num_layers] > CONSTANT_CLS >= sims[depth]:
        return first[:-1] + [depth], f"the first {num_layers - 1} and the top one, as [CLS] is the same for every " \
                                     f"input after layer {num_layers} and not after the top ({measured})"
    if sims[num_layers] > CONSTANT_CLS:
        return first, f"the first {num_layers}, the paper's: [CLS] is the same for every input after the top layer " \
                      f"too, so taking it would not help ({measured})"
    return first, f"the first {num_layers}, the paper's: [CLS] depends on the input after layer {num_layers} " \
                  f"({measured})"


def default_init_layers(encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, num_layers: int) -> list[int]:
    """The layers of probe_init_layers."""
    return probe_init_layers(encoder, tokenizer, num_layers)[0]


def choose_init_layers(source: str, num_layers: int, task: Task,
                       trust_remote_code: bool = False) -> tuple[list[int], str]:
    """probe_init_layers on `source`'s encoder, as make_student loads it."""
    full = _load_source(source, task, trust_remote_code)[0]
    encoder = getattr(full, full.base_model_prefix, full)
    return probe_init_layers(encoder, load_tokenizer(source, trust_remote_code), num_layers)


def _load_source(source: str, task: Task, trust_remote_code: bool) -> tuple[PreTrainedModel, bool]:
    """The source checkpoint, and whether it is a classifier for the task whose head the student keeps."""
    config = load_config(source, trust_remote_code)
    keep_head = has_head(config, task) and (task.is_multiple_choice or config.num_labels == task.num_labels)
    if keep_head:
        return load_classifier(source, task, trust_remote_code), True
    return AutoModel.from_pretrained(source, use_safetensors=True, trust_remote_code=trust_remote_code), False


def make_student(source: str, num_layers: int, task: Task, init_layers: list[int] | None = None,
                 trust_remote_code: bool = False) -> PreTrainedModel:
    """A sequence classifier (multiple-choice model for RACE) with `num_layers` layers initialised from `source`.

    init_layers are 1-based layers of the source (default: probe_init_layers - the first M, as in the
    paper, unless their [CLS] output is constant; DistilBERT takes every other one). If `source` is already a
    classifier for the task (the fine-tuned teacher), its head is kept; otherwise the head starts fresh.
    """
    config = load_config(source, trust_remote_code)
    depth = config.num_hidden_layers
    if not 1 <= num_layers <= depth:  # all of them: a whole small pre-trained model (another family) as the student
        raise UsageError(f"--student-layers {num_layers}: must be at least 1 and at most the {depth} layers of the "
                         f"source {source}")
    full, keep_head = _load_source(source, task, trust_remote_code)
    if init_layers is None:
        encoder = getattr(full, full.base_model_prefix, full)
        init_layers = default_init_layers(encoder, load_tokenizer(source, trust_remote_code), num_layers)
    init_layers = list(init_layers)
    if len(init_layers) != num_layers or len(set(init_layers)) != num_layers:
        raise UsageError(f"--init-layers {init_layers}: needs {num_layers} distinct layers")
    if not all(1 <= i <= depth for i in init_layers):
        raise UsageError(f"--init-layers {init_layers}: layers must be in 1..{depth}")
    state = select_layers(full.state_dict(), depth, [i - 1 for i in init_layers])

    student_config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    student_config.num_hidden_layers = num_layers
    student_config.num_labels = task.num_labels
    student_config.problem_type = "regression" if task.is_regression else "single_label_classification"
    for key, value in label_names(task).items():
        setattr(student_config, key, value)
    student = head_class(task).from_config(student_config, trust_remote_code=trust_remote_code)
    target = student if keep_head else getattr(student, student.base_model_prefix)
    missing, unexpected = target.load_state_dict(state, strict=False)
    # Buffers such as position_ids may be absent from older checkpoints, and some heads (RoBERTa, ELECTRA)
    # classify without the base model's pooler; any other mismatch is a bug.
    missing = [k for k in missing if not k.endswith("position_ids")]
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]
    if missing or unexpected:
        raise DataError(f"{source}: student weights do not line up (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    student.config.pkd_init = {"source": source, "layers": init_layers}
    return student
