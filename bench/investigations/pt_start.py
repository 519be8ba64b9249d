"""Where does PT start? The patient term of a fresh student against its teacher, per layer map and pooling.

Issue 24 asked why STS-B's PKD-Last students (teacher layers 4, 5) fell below 90% of the teacher with two
seeds of three while PKD-Skip's (2, 4) did not. With [CLS] targets that are one vector for every input, PT
cannot teach anything about the input, but it still pulls: its value at the start is the distance between the
student's (constant) [CLS] direction and the teacher's, and its gradient reshapes the student's lower layers
towards that direction, whatever the input. This prints, over the first training inputs, for each map and
pooling: the PT value at initialisation (0 = already matched, 4 = opposite), the mean pairwise cosine of the
teacher's targets and of the student's states, and the cosine between each mapped layer's mean target and the
student's mean state; then the loss's balance at the start: the task and KD terms, (1 - alpha) * CE + alpha * KD,
against beta * PT, with the distillation defaults. Feeds docs/patient.md ("Why PKD-Last fell on STS-B").

    .venv/bin/python bench/investigations/pt_start.py --teacher bench/out/grouping/stsb-teacher-shuffled --task stsb
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from pkd.config import DistillConfig
from pkd.encoding import encode_splits, make_collator, model_inputs
from pkd.losses import last_map, pkd_loss, pt_loss, skip_map
from pkd.models import load_classifier, load_tokenizer, pooled_states
from pkd.patient import mean_pairwise_cosine
from pkd.rundir import read_record
from pkd.student import make_student
from pkd.tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="fine-tuned teacher run directory")
    p.add_argument("--student-base", default=None, help="the students' source (default: the teacher's base)")
    p.add_argument("--task", default="stsb")
    p.add_argument("--student-layers", type=int, default=3)
    p.add_argument("--examples", type=int, default=256)
    p.add_argument("--data-dir", default="../shared/data/glue")
    args = p.parse_args()
    task = get_task(args.task)
    base = args.student_base or read_record(args.teacher)["base_model"]
    teacher = load_classifier(args.teacher, task, require_head=True).eval()
    student = make_student(base, args.student_layers, task).eval()
    tokenizer = load_tokenizer(args.teacher)
    data = encode_splits(task, "train", tokenizer, 128, args.data_dir, args.examples)[0]
    batch = make_collator(tokenizer)([data[i] for i in range(len(data))])
    inputs = model_inputs(batch)
    depth = teacher.config.num_hidden_layers
    with torch.no_grad():
        t_out = teacher(**inputs, output_hidden_states=True)
        s_out = student(**inputs, output_hidden_states=True)
    t_hidden, s_hidden = t_out.hidden_states, s_out.hidden_states
    student_layers = list(range(1, args.student_layers))
    print(f"{args.teacher} ({depth} layers) -> {args.student_layers}-layer student from {base} "
          f"(layers {student.config.pkd_init['layers']}), {len(data)} {task.name} training inputs\n")
    print("| map | pooling | PT at init | teacher targets' cosine | student states' cosine | cos(mean target, "
          "mean student state) |")
    print("|---|---|---|---|---|---|")
    pts = {}
    for name, layer_map in (("PKD-Skip", skip_map(depth, args.student_layers)),
                            ("PKD-Last", last_map(depth, args.student_layers))):
        for pooling in ("cls", "mean"):
            t = pooled_states(t_hidden, layer_map, batch["input_ids"], batch["attention_mask"], pooling)
            s = pooled_states(s_hidden, student_layers, batch["input_ids"], batch["attention_mask"], pooling)
            pt = float(pt_loss(s, t))
            spread_t = ", ".join(f"{mean_pairwise_cosine(t[:, i].numpy()):.4f}" for i in range(len(layer_map)))
            spread_s = ", ".join(f"{mean_pairwise_cosine(s[:, i].numpy()):.4f}" for i in range(len(layer_map)))
            align = ", ".join(f"{float(F.cosine_similarity(F.normalize(t[:, i], dim=-1).mean(0), F.normalize(s[:, i], dim=-1).mean(0), dim=0)):+.3f}"  # noqa: E501
                              for i in range(len(layer_map)))
            print(f"| {name} {','.join(map(str, layer_map))} | {pooling} | {pt:.3f} | {spread_t} | {spread_s} | "
                  f"{align} |")
            pts[name, pooling] = pt
    # Where PT sits in the loss: the same student's logits against the teacher's and the gold labels.
    weights = DistillConfig(teacher=args.teacher, student_layers=args.student_layers).loss
    parts = pkd_loss(weights, s_out.logits, batch["labels"], task.is_regression, t_out.logits)
    rest = float((1 - weights.alpha) * parts["ce"] + weights.alpha * parts["kd"])
    print(f"\nAt the start: (1 - alpha) * CE + alpha * KD = {rest:.3f} (CE {float(parts['ce']):.3f}, KD "
          f"{float(parts['kd']):.3f}; alpha {weights.alpha}, T {weights.temperature}); beta * PT with beta "
          f"{weights.beta}, as a share of the whole loss:")
    for (name, pooling), pt in pts.items():
        print(f"- {name}, {pooling}: {weights.beta * pt:.3f} ({weights.beta * pt / (rest + weights.beta * pt):.0%})")


if __name__ == "__main__":
    main()
