"""Does the patient loss have anything to transfer? The spread of its targets across inputs, and the pooling.

PT matches, for each mapped teacher layer k, the student's normalised vector to the teacher's unit vector
u_i = h_k(x_i) / |h_k(x_i)| of example i. If u_i is (nearly) the same vector for every input, PT only pulls
every example towards one constant direction: it carries no information about the input, and "PKD vs KD"
measures KD. The spread of the targets is their mean pairwise cosine over n inputs, from one pass:

    c = (|sum_i u_i|^2 - n) / (n * (n - 1))        (1.0: the same vector for every input)

all-MiniLM-L6-v2 (the default teacher) was trained for sentence embeddings with mean pooling, so nothing read its
[CLS] state below the top layer: c is 1.000 there for SST-2, STS-B, MRPC and RTE inputs, while the attention-masked
mean of the tokens varies (c about 0.5-0.7; docs/patient.md). Hence `--pt-pooling`:

- cls: the [CLS] vector (the paper's choice);
- mean: the attention-masked mean of the layer's token vectors, normalised as [CLS] is;
- auto (default): cls when every mapped teacher layer's [CLS] targets vary (c <= VARIES on a probe of the training
  inputs), else mean. The choice and its measured reason are printed in one line and recorded in run.json.

A run warns before training when a mapped layer's targets, in the pooling it uses, are the same for every input
(c > CONSTANT over the cached training examples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from pkd.encoding import EncodedSplit, make_collator, model_inputs
from pkd.errors import UsageError
from pkd.models import pooled_states

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

POOLINGS = ("auto", "cls", "mean")
VARIES = 0.9  # auto keeps [CLS] only when every mapped layer's targets are at most this similar across inputs
CONSTANT = 0.99  # above this, a layer's targets are "the same for every input" (as pkd.student's [CLS] probe)
PROBES = 256  # training inputs the auto choice looks at


class Spread:
    """Accumulates c for one stream of vectors: add batches of [b, H] (any leading shape, flattened), read .value."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, vectors: np.ndarray) -> None:
        v = np.asarray(vectors, dtype=np.float64)
        v = v.reshape(-1, v.shape[-1])
        norms = np.linalg.norm(v, axis=-1, keepdims=True)
        unit = v / np.where(norms > 0, norms, 1.0)
        self.total = unit.sum(0) if self.total is None else self.total + unit.sum(0)
        self.count += len(unit)

    @property
    def value(self) -> float:
        """The mean pairwise cosine of the vectors added so far (nan for fewer than 2)."""
        if self.count < 2:
            return float("nan")
        return float((self.total @ self.total - self.count) / (self.count * (self.count - 1)))


def mean_pairwise_cosine(vectors: np.ndarray, chunk: int = 4096) -> float:
    """c of the rows of `vectors` [n, H] (or [..., H], leading dims flattened), read in chunks (memory-mapped
    arrays stay on disk)."""
    flat = vectors.reshape(-1, vectors.shape[-1])
    spread = Spread()
    for start in range(0, len(flat), chunk):
        spread.add(flat[start:start + chunk])
    return spread.value


@torch.no_grad()
def probe_spreads(teacher: torch.nn.Module, data: EncodedSplit, tokenizer: PreTrainedTokenizerBase,
                  layers: Sequence[int], probes: int = PROBES, batch_size: int = 64) -> dict[str, dict[int, float]]:
    """c of each mapped teacher layer in both poolings, over up to `probes` training inputs spread evenly over the
    split (a file sorted by label or length still gives a mixed sample): {"cls": {k: c}, "mean": {k: c}}."""
    n = len(data)
    picks = sorted({i * n // min(n, probes) for i in range(min(n, probes))})
    subset = torch.utils.data.Subset(data, picks)
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, collate_fn=make_collator(tokenizer))
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    spreads = {p: {k: Spread() for k in layers} for p in ("cls", "mean")}
    for batch in loader:
        inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
        hidden = teacher(**inputs, output_hidden_states=True).hidden_states
        for pooling, by_layer in spreads.items():
            states = pooled_states(hidden, list(layers), inputs["input_ids"], inputs.get("attention_mask"), pooling)
            for i, k in enumerate(layers):
                by_layer[k].add(states[..., i, :].float().cpu().numpy())
    teacher.train(was_training)
    return {p: {k: s.value for k, s in by_layer.items()} for p, by_layer in spreads.items()}


def choose_pooling(requested: str, probe: dict[str, dict[int, float]] | None) -> tuple[str, str]:
    """The pooling PT uses, and one line saying why.

    Args:
        requested: "cls", "mean" or "auto" (--pt-pooling).
        probe: probe_spreads' result for the mapped layers; None when PT is off (no map, or beta 0).

    Returns:
        (pooling, reason): "cls" or "mean", and a line to print ("" when PT is off).
    """
    if requested not in POOLINGS:
        raise UsageError(f"--pt-pooling {requested}: choose {', '.join(POOLINGS)}")
    if probe is None:
        return ("cls" if requested == "auto" else requested), ""
    layers = sorted(probe["cls"])
    cls_text = ", ".join(f"{k}: {probe['cls'][k]:.3f}" for k in layers)
    mean_text = ", ".join(f"{k}: {probe['mean'][k]:.3f}" for k in layers)
    measured = f"mean pairwise cosine of the targets over {PROBES} training inputs, [CLS] {cls_text}; mean {mean_text}"
    if requested != "auto":
        return requested, f"pkd: PT pooling {requested} (--pt-pooling; {measured})"
    flat = [k for k in layers if probe["cls"][k] > VARIES]
    if flat:
        return "mean", (f"pkd: PT pooling mean (auto: the [CLS] targets of teacher layer(s) "
                        f"{', '.join(map(str, flat))} are above {VARIES} alike; {measured})")
    return "cls", f"pkd: PT pooling cls (auto: every mapped layer's [CLS] varies; {measured})"


def flat_warning(spreads: dict[int, float], pooling: str, examples: int) -> str:
    """One warning line when a mapped layer's targets are the same for every input (c > CONSTANT), else ""."""
    flat = {k: c for k, c in sorted(spreads.items()) if c > CONSTANT}
    if not flat:
        return ""
    name = "[CLS]" if pooling == "cls" else "mean-pooled"
    values = ", ".join(f"{c:.4f}" for c in flat.values())
    other = "--pt-pooling mean" if pooling == "cls" else "--layer-map with higher layers"
    return (f"pkd: warning: the {name} PT targets of teacher layer(s) {', '.join(map(str, flat))} are the same for "
            f"every input (mean pairwise cosine {values} over {examples} training examples): the patient loss has "
            f"nothing to transfer from them; use {other}, or --method kd")
