"""The Patient Knowledge Distillation loss and its layer maps.

    L = (1 - alpha) * CE(student, gold) + alpha * KD + beta * PT

KD  = T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), summed over classes and averaged over examples
      (PyTorch's reduction="batchmean"). The original code used reduction="mean", which also divides by the
      number of classes C, so its alpha-weighted term is ours divided by C.
      For regression the KD term is the squared error between student and teacher outputs. For multi-label
      tasks (one sigmoid per label) CE is the binary cross-entropy and KD is T^2 times the binary KL divergence
      between the teacher's and the student's per-label sigmoid at temperature T, both averaged over the [B, C]
      grid of examples and labels: one convention for both terms, so that alpha weighs them as it does for a
      softmax (a one-hot teacher at T = 1 gives KD = CE for any C; summing KD over labels made it C times CE).
PT  = for each mapped student layer j: || h_s(j)/|h_s(j)| - h_t(I(j))/|h_t(I(j))| ||^2 on the [CLS] vector
      (the paper's), or on the attention-masked mean of the layer's tokens (--pt-pooling mean: pkd.patient says
      why), summed over hidden units, averaged over mapped layers and examples. The original code took an
      element-wise mean over hidden units as well, so beta_ours = beta_original / hidden_size
      (the paper's preset beta 500 at hidden size 768 is 0.65 here).

Rows only the teacher labels (--unlabelled-file, --augment; pkd.augment) have no gold label: CE is the mean over
the batch's gold-labelled rows alone (0 for a batch without one), and KD and PT are over every row, so each term
keeps its meaning and alpha weighs them as before, whatever share of the batch is teacher-only. A batch without
teacher-only rows (no `labelled` mask) is computed exactly as it always was.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from pkd.config import METHODS, LossConfig
from pkd.errors import UsageError
from pkd.student import check_student_depth


def skip_map(teacher_layers: int, student_layers: int) -> list[int]:
    """Student layer j (1-based, j < M) -> teacher layer j * N / M, rounded half up when M does not divide N."""
    check_student_depth(student_layers, teacher_layers)
    return [(2 * j * teacher_layers + student_layers) // (2 * student_layers) for j in range(1, student_layers)]


def last_map(teacher_layers: int, student_layers: int) -> list[int]:
    """The M-1 teacher layers just below the top one."""
    check_student_depth(student_layers, teacher_layers)
    return list(range(teacher_layers - student_layers + 1, teacher_layers))


def layer_map_for(method: str, teacher_layers: int, student_layers: int,
                  explicit: list[int] | None = None) -> list[int]:
    """The teacher layers (1-based) matched by student layers 1..M-1; empty for FT and KD."""
    check_student_depth(student_layers, teacher_layers)
    if method not in METHODS:
        raise UsageError(f"--method {method}: unknown (choose from {', '.join(METHODS)})")
    if student_layers == 1 and method not in ("ft", "kd"):
        # Only the top layer, which learns from the logits: PT would be silently off and the run plain KD.
        raise UsageError(f"--student-layers 1: a 1-layer student has no intermediate layer for the PT term of "
                         f"--method {method}; use --method kd (or a deeper student)")
    if explicit is not None:
        if method in ("ft", "kd"):
            raise UsageError(f"--layer-map: not used by --method {method}")
        validate_layer_map(explicit, teacher_layers, student_layers)
        return list(explicit)
    if method == "pkd-skip":
        return skip_map(teacher_layers, student_layers)
    if method == "pkd-last":
        return last_map(teacher_layers, student_layers)
    if method == "pkd":
        raise UsageError("--method pkd needs --layer-map (or use pkd-skip / pkd-last)")
    return []


def pt_layers(layer_map: list[int], loss: LossConfig) -> list[int]:
    """The teacher layers whose PT targets a run reads: the mapped ones, none when beta is 0 (then its teacher
    cache is one of logits only, which any pooling's cache of the same inputs serves; pkd.cache)."""
    return list(layer_map) if loss.beta > 0 else []


def validate_layer_map(layer_map: list[int], teacher_layers: int, student_layers: int) -> None:
    if len(layer_map) != student_layers - 1:
        raise UsageError(f"--layer-map {','.join(map(str, layer_map))}: needs {student_layers - 1} teacher "
                         f"layers for a {student_layers}-layer student (its top layer learns from the logits)")
    if len(set(layer_map)) != len(layer_map):
        raise UsageError(f"--layer-map {','.join(map(str, layer_map))}: has duplicates")
    bad = [i for i in layer_map if not 1 <= i <= teacher_layers]
    if bad:
        raise UsageError(f"--layer-map: layer {bad[0]} is out of range 1..{teacher_layers}")


_METHOD_WEIGHTS = {"ft": (0.0, 0.0), "kd": (None, 0.0)}  # (alpha, beta) a method forces; None: as given


def loss_for(method: str, weights: LossConfig) -> LossConfig:
    """The loss a method trains with: FT is CE alone, KD has no PT term, PKD uses the weights as given."""
    forced_alpha, forced_beta = _METHOD_WEIGHTS.get(method, (None, None))
    return replace(weights, alpha=weights.alpha if forced_alpha is None else forced_alpha,
                   beta=weights.beta if forced_beta is None else forced_beta)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
            regression: bool = False, multi_label: bool = False) -> torch.Tensor:
    """The KD term: T^2 * KL(softmax(teacher / T) || softmax(student / T)), or the squared error for regression,
    or for multi-label T^2 * sum over labels of KL(Bernoulli(sigmoid(teacher / T)) || Bernoulli(sigmoid(student / T))).

    Args:
        student_logits: [B, C] (multiple choice: [B, choices], one score per choice; regression: [B, 1]).
        teacher_logits: the same shape as student_logits.
        temperature: T > 0; ignored for regression.
        regression: a one-output regression task (STS-B).
        multi_label: C independent labels, one sigmoid each.

    Returns:
        A scalar: summed over classes, averaged over the B examples ("batchmean"); multi-label: averaged over
        the [B, C] grid of examples and labels, as task_loss averages its binary cross-entropy. In fp32.
    """
    if regression:
        return F.mse_loss(student_logits.float(), teacher_logits.float())
    if multi_label:
        return binary_kd(student_logits.float() / temperature, teacher_logits.float() / temperature) * \
            temperature * temperature
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * t * t


def binary_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(sigmoid(teacher)) || Bernoulli(sigmoid(student))) per label: the cross-entropy of the student's
    sigmoid against the teacher's minus the teacher's own entropy (so it is 0 when they agree).

    Args:
        student_logits: [B, C], already divided by the temperature.
        teacher_logits: [B, C], likewise.

    Returns:
        A scalar: averaged over the [B, C] grid of examples and labels (task_loss's convention for multi-label), in
        fp32.
    """
    target = torch.sigmoid(teacher_logits)
    cross = F.binary_cross_entropy_with_logits(student_logits, target, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher_logits, target, reduction="none")
    return (cross - entropy).mean()


def pt_loss(student_cls: torch.Tensor, teacher_cls: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """The patient term: squared distance between the student's and the teacher's [CLS] vectors, layer by layer.

    Args:
        student_cls: [B, L, H], the [CLS] vectors of student layers 1..L (multiple choice: [B, choices, L, H]),
            already projected to the teacher's H when the hidden sizes differ.
        teacher_cls: the same shape: the [CLS] vectors of the mapped teacher layers, in map order.
        normalize: L2-normalise each vector over H first (the paper's choice).

    Returns:
        A scalar: summed over H, averaged over the L layers and the examples (and choices), in fp32.
    """
    s, t = student_cls.float(), teacher_cls.float()
    if normalize:
        s = F.normalize(s, p=2, dim=-1)
        t = F.normalize(t, p=2, dim=-1)
    return (s - t).pow(2).sum(-1).mean()


def task_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool, multi_label: bool = False,
              labelled: torch.Tensor | None = None) -> torch.Tensor:
    """The gold-label term: cross-entropy, squared error (regression), or binary cross-entropy averaged over the
    [B, C] label grid (multi-label, labels 0/1). labelled: [B] 1 for a gold-labelled row, 0 for a teacher-only one;
    the term is then the mean over the labelled rows alone (0 when there is none), and the others' labels are never
    read."""
    if labelled is not None:
        keep = labelled.bool()
        if not keep.any():
            return logits.new_zeros((), dtype=torch.float32)
        return task_loss(logits[keep], labels[keep], regression, multi_label)
    if regression:
        return F.mse_loss(logits.squeeze(-1).float(), labels.float())
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


class Projection(nn.Module):
    """Learned linear maps from student to teacher hidden size, one per mapped layer (beyond the paper)."""

    def __init__(self, student_hidden: int, teacher_hidden: int, num_layers: int):
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(student_hidden, teacher_hidden) for _ in range(num_layers))

    def forward(self, cls: torch.Tensor) -> torch.Tensor:  # [..., L, H_s] -> [..., L, H_t]
        return torch.stack([m(cls[..., i, :]) for i, m in enumerate(self.maps)], dim=-2)


def loss_terms(cfg: LossConfig, with_pt: bool) -> dict[str, float]:
    """The weight of each term of L as pkd_loss computes it: {"ce": 1 - alpha, "kd": alpha, "pt": beta, or 0
    without mapped layers (`with_pt` False)}. A term of weight 0 is not computed."""
    return {"ce": 1 - cfg.alpha, "kd": cfg.alpha, "pt": cfg.beta if with_pt else 0.0}


def pkd_loss(cfg: LossConfig, logits: torch.Tensor, labels: torch.Tensor | None, regression: bool,
             teacher_logits: torch.Tensor | None = None, student_cls: torch.Tensor | None = None,
             teacher_cls: torch.Tensor | None = None, multi_label: bool = False,
             labelled: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """L = (1 - alpha) * CE + alpha * KD + beta * PT, and its parts. Terms with zero weight are not computed.

    Args:
        cfg: the weights alpha, beta, the temperature T and whether PT normalises.
        logits: the student's, [B, C] (multiple choice: [B, choices]; regression: [B, 1]).
        labels: [B] class indices (float targets for regression); needed unless alpha = 1.
        regression: a one-output regression task: CE and KD become squared errors.
        multi_label: C independent labels ([B, C] 0/1 labels): CE and KD work on per-label sigmoids.
        teacher_logits: the same shape as logits; needed when alpha > 0.
        student_cls, teacher_cls: [B, L, H] (multiple choice: [B, choices, L, H]); needed when beta > 0.
        labelled: [B], 1 for a gold-labelled row and 0 for a teacher-only one (CE over the labelled rows only);
            None: every row is labelled.

    Returns:
        {"loss": the weighted total, "ce", "kd", "pt": the unweighted terms (0 when not computed)}, fp32 scalars.
    """
    zero = logits.new_zeros((), dtype=torch.float32)
    ce = task_loss(logits, labels, regression, multi_label, labelled) if cfg.alpha < 1 else zero
    kd = kd_loss(logits, teacher_logits, cfg.temperature, regression, multi_label) if cfg.alpha > 0 else zero
    pt = pt_loss(student_cls, teacher_cls, cfg.normalize) if cfg.beta > 0 and student_cls is not None else zero
    total = (1 - cfg.alpha) * ce + cfg.alpha * kd + cfg.beta * pt
    return {"loss": total, "ce": ce, "kd": kd, "pt": pt}
