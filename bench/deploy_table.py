"""The deploy tables (docs/deploy.md) from what bench/deploy.sh wrote, with the issue's targets checked.

Reads OUT/demo-bench.json (teacher and student rows, each variant; optional), the dev scores (OUT/*-torch.dev.json
from `pkd evaluate`, and each export directory's export.json "dev" from `pkd export --evaluate`) and
OUT/bert-base-bench.json. Ratios are against the first row of each bench run: the fp32 PyTorch teacher (12-layer
model for the BERT-base shapes). Prints Markdown.

    .venv/bin/python bench/deploy_table.py runs/deploy
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

VARIANT_NAMES = {"torch": "PyTorch fp32", "torch-int8": "PyTorch int8", "ort": "ORT fp32", "ort-int8": "ORT int8",
                 "ort-opt-int8": "ORT int8, fused"}


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _role(row: dict) -> str:
    name = Path(row["name"]).name
    return "teacher" if name.startswith("teacher") else "student" if name.startswith("student") else name


def demo_tables(out: Path) -> list[str]:
    bench = _load(out / "demo-bench.json")
    if bench is None:
        return ["Demo models: not measured (no runs/demo/{teacher,student}; `make demo`, then bench/deploy.sh).", ""]
    rows = bench["models"]
    features = f" ({bench['cpu_features']})" if "cpu_features" in bench else ""
    lines = [f"Measured {bench['date']}, {bench['machine']}{features}, {bench['threads']} threads, "
             f"{bench['seq_len']} tokens, {bench['repeats']} interleaved rounds (medians); ratios against the fp32 "
             "PyTorch teacher.", "",
             "| model | variant | SST-2 dev acc | size MB | latency ms (b=1) | latency x | ex/s (b=32) | throughput x "
             "| max abs dlogit (parity batch) |", "|---|---|---|---|---|---|---|---|---|"]
    found: dict[tuple[str, str], dict] = {}
    for r in rows:
        role, variant = _role(r), r["variant"]
        record = _load(Path(r["name"]) / "export.json")  # None for the run directories (PyTorch fp32)
        dev = record["dev"]["accuracy"] if record else (_load(out / f"{role}-torch.dev.json") or {}).get("accuracy")
        parity = f"{record['parity']['max_abs_logit_diff']:.1e}" if record else "-"
        found[role, variant] = {**r, "accuracy": dev}
        lines.append(f"| {role} | {VARIANT_NAMES.get(variant, variant)} | {dev:.2f} | {r['size_bytes'] / 1e6:.1f} "
                     f"| {r['latency_ms']:.1f} | {r['latency_speedup']:.2f}x | {r['throughput']:.1f} "
                     f"| {r['throughput_speedup']:.2f}x | {parity} |")
    lines += ["", f"Throughput at b=32 x {bench['seq_len']} as a multiple of the fp32 PyTorch teacher:", "",
              "| model | " + " | ".join(VARIANT_NAMES.values()) + " |", "|---" * (len(VARIANT_NAMES) + 1) + "|"]
    for role in ("teacher", "student"):
        cells = [f"{found[role, v]['throughput_speedup']:.2f}x" if (role, v) in found else "-" for v in VARIANT_NAMES]
        lines.append(f"| {role} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += targets(found)
    return lines


def targets(found: dict[tuple[str, str], dict]) -> list[str]:
    need = [("student", "ort-int8"), ("student", "torch")]
    if any(k not in found for k in need):
        return []
    q, s = found["student", "ort-int8"], found["student", "torch"]
    checks = [
        ("throughput >= 6x the fp32 PyTorch teacher (b=32)", q["throughput_speedup"] >= 6,
         f"{q['throughput_speedup']:.2f}x"),
        ("latency >= 6x better (b=1)", q["latency_speedup"] >= 6, f"{q['latency_speedup']:.2f}x"),
        ("size <= 26% of the fp32 student's", q["size_bytes"] <= 0.26 * s["size_bytes"],
         f"{100 * q['size_bytes'] / s['size_bytes']:.1f}%"),
        ("SST-2 dev within 0.5 points of the fp32 student", abs(q["accuracy"] - s["accuracy"]) <= 0.5,
         f"{q['accuracy'] - s['accuracy']:+.2f} points"),
    ]
    if ("student", "ort-opt-int8") in found:
        o = found["student", "ort-opt-int8"]
        checks.append(("stretch: >= 8x throughput with ORT fusions, parity kept", o["throughput_speedup"] >= 8,
                       f"{o['throughput_speedup']:.2f}x (dev {o['accuracy'] - s['accuracy']:+.2f} points)"))
    lines = ["Targets (PKD student, ONNX Runtime int8, against the fp32 PyTorch teacher):", "",
             "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'no'} |" for name, ok, value in checks]
    return lines + [""]


def shape_table(out: Path) -> list[str]:
    bench = _load(out / "bert-base-bench.json")
    if bench is None:
        return []
    rows = bench["models"]
    lines = [f"BERT-base shapes, random weights (`--shape bert-base --layers 12,6,3`), measured {bench['date']}, "
             f"{bench['threads']} threads, {bench['seq_len']} tokens, {bench['repeats']} interleaved rounds; ratios "
             "against the 12-layer fp32 PyTorch model.", "",
             "| layers | variant | size MB | latency ms (b=1) | latency x | ex/s (b=32) | throughput x |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layers']} | {VARIANT_NAMES.get(r['variant'], r['variant'])} | {r['size_bytes'] / 1e6:.1f} "
                     f"| {r['latency_ms']:.1f} | {r['latency_speedup']:.2f}x | {r['throughput']:.1f} "
                     f"| {r['throughput_speedup']:.2f}x |")
    best = next((r for r in rows if r["layers"] == 3 and r["variant"] == "ort-int8"), None)
    if best:
        ok = "met" if best["throughput_speedup"] >= 10 else "missed"
        lines += ["", f"Target: the 3-layer ORT int8 model >= 10x the 12-layer fp32 PyTorch throughput: "
                      f"{best['throughput_speedup']:.2f}x, {ok}."]
    return lines + [""]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", type=Path, default=Path("runs/deploy"), help="bench/deploy.sh's $OUT")
    out = p.parse_args(argv).out
    print("\n".join(["## Demo models (SST-2)", "", *demo_tables(out), "## BERT-base shapes", "", *shape_table(out)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
