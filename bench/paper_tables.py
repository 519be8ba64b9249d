"""The tables of docs/paper.md from what bench/paper.sh wrote: the 12-layer teacher's students beside the paper's.

Reads each comparison's compare.json (pkd compare) under --out: students from the teacher's own layers
(`<task>-L6`, `<task>-L3`, `<task>-L3-5seeds` where seeds were added) and from all-MiniLM-L6-v2
(`<task>-minilm`). Prints Markdown:

1. per task and student, the dev score of each method (mean ± sample std over seeds, best epoch as
   `pkd compare` selects it), its points below the teacher, and the paper's dev means (KD → PKD) from the
   original repository's result CSVs (issue 36);
2. the paired verdicts of the last epoch's predictions (pkd.stats: t interval with S-1 df over seeds and dev
   examples) of PKD-Skip vs KD, PKD-Last vs KD and PKD-Skip vs PKD-Last, as compare.json holds them;
3. the wall time of each queue step (bench/steps.sh's NAME.done) and the host's CPU flags (cpu.txt).

    .venv/bin/python bench/paper_tables.py [--out bench/out/paper]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The paper's dev means, KD -> PKD, from the original repository's result CSVs (issue 36).
PAPER = {("sst2", 3): "87.5 → 88.1", ("mrpc", 3): "75.3 → 75.3", ("rte", 3): "59.4 → 62.1",
         ("sst2", 6): "90.8 → 91.1", ("mrpc", 6): "82.8 → 83.5", ("rte", 6): "67.5 → 68.2"}
STUDENTS = (("L6", "6 layers of the teacher", 6), ("L3", "3 layers of the teacher", 3),
            ("L3-5seeds", "3 layers of the teacher, 5 seeds", 3),
            ("minilm", "all-MiniLM-L6-v2 (6 layers, 384 wide)", None))
METHODS = ("ft", "kd", "pkd-skip", "pkd-last")
NAMES = {"ft": "FT", "kd": "KD", "pkd-skip": "PKD-Skip", "pkd-last": "PKD-Last"}
PAIRS = (("pkd-skip", "kd"), ("pkd-last", "kd"), ("pkd-skip", "pkd-last"))


def cell(row: dict | None, teacher: float) -> str:
    if not row or not row["scores"]:
        return "not run"
    spread = f" ± {row['std']:.2f}" if len(row["scores"]) > 1 else ""
    return f"{row['mean']:.2f}{spread} ({row['mean'] - teacher:+.2f}; {len(row['scores'])} seeds)"


def comparisons(out: Path) -> list[tuple[str, str, int | None, dict]]:
    found = []
    for task in ("sst2", "mrpc", "rte", "stsb"):
        for suffix, label, depth in STUDENTS:
            path = out / f"{task}-{suffix}" / "compare.json"
            if path.is_file():
                found.append((task, label, depth, json.loads(path.read_text())))
    return found


def score_table(found: list) -> list[str]:
    lines = ["| task | student | teacher | " + " | ".join(NAMES[m] for m in METHODS) + " | paper, KD → PKD |",
             "|---|---|---|" + "---|" * len(METHODS) + "---|"]
    for task, label, depth, c in found:
        teacher = c["teacher_score"]
        cells = [cell(c["methods"].get(m), teacher) for m in METHODS]
        lines.append(f"| {task} | {label} | {teacher:.2f} | " + " | ".join(cells)
                     + f" | {PAPER.get((task, depth), '')} |")
    return lines


def verdict_table(found: list) -> list[str]:
    lines = ["| task | student | A vs B | A - B [95% interval] | per seed | verdict |", "|---|---|---|---|---|---|"]
    for task, label, _, c in found:
        for a, b in PAIRS:
            v = next((v for v in c.get("verdicts", []) if (v["a"], v["b"]) == (a, b)), None)
            if v is None:
                continue
            interval = f"[{v['low']:+.2f}, {v['high']:+.2f}]" if v.get("low") is not None else "(1 seed)"
            per_seed = ", ".join(f"{d:+.2f}" for d in v["per_seed"])
            lines.append(f"| {task} | {label} | {NAMES[a]} vs {NAMES[b]} | {v['diff']:+.2f} {interval} | {per_seed} | "
                         f"{v['verdict']} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench/out/paper", help="bench/paper.sh's output folder")
    out = Path(p.parse_args().out)
    found = comparisons(out)
    print("\n".join(score_table(found)), end="\n\n")
    print("\n".join(verdict_table(found)), end="\n\n")
    cpu = (out / "cpu.txt").read_text().split() if (out / "cpu.txt").is_file() else []
    print(f"Wall time per step (s), host flags {' '.join(cpu[:-1]) or 'unknown'}, {cpu[-1] if cpu else '?'} cores:")
    for done in sorted(out.glob("*.done")):
        print(f"- {done.stem}: {done.read_text().strip()}")


if __name__ == "__main__":
    main()
