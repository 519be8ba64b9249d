"""The README's numbers agree with their sources: the demo's with what bench/demo.sh recorded
(docs/results/demo.json), the speed-ups with the tables they cite, and every task score names its metric."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DEMO = json.loads((ROOT / "docs" / "results" / "demo.json").read_text())


def _section(start: str, end: str) -> str:
    return README[README.index(start):README.index(end, README.index(start))]


def _row(text: str, first_cell: str) -> list[str]:
    [line] = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_demo_table_and_its_words_match_what_demo_sh_recorded():
    demo = _section("**`make demo`**", "**Teachers**")
    acc = DEMO["accuracy"]
    for model, key in (("teacher fp32, 6 layers (PyTorch)", "teacher"),
                       ("PKD-Skip student fp32, 3 layers (PyTorch)", "student"),
                       ("PKD-Skip student int8, 3 layers (ONNX Runtime)", "student_int8")):
        cell = _row(demo, model)[1]
        assert float(cell.split()[0]) == acc[key], (model, cell)
        if key != "teacher":
            assert f"({100 * acc[key] / acc['teacher']:.1f}%)" in cell, cell
    # the demo trains and scores at demo.sh's length, and times at the benchmark's
    script = (ROOT / "bench" / "demo.sh").read_text()
    assert f"LEN={DEMO['max_seq_len']} " in script and script.count('--max-seq-len "$LEN"') == 2
    assert f"--seq-len {DEMO['bench_seq_len']} " in script
    assert (f"trained and scored\non the full SST-2 dev set at {DEMO['max_seq_len']} tokens, timed at "
            f"{DEMO['bench_seq_len']} tokens") in demo
    # wherever else the README names the demo student's accuracy, it is the recorded one
    deploy = _section("**Deploy**", "**BERT-base shapes**")
    fp32, int8 = re.search(r"demo student's accuracy \(fp32 ([\d.]+), int8 ([\d.]+)", deploy).groups()
    assert (float(fp32), float(int8)) == (acc["student"], acc["student_int8"])


def test_depth_alone_speedups_are_the_ones_their_tables_show():
    deploy_md = (ROOT / "docs" / "deploy.md").read_text()
    [two_threads] = [line for line in deploy_md.splitlines() if line.strip().startswith("| 3 layers | PyTorch fp32 |")]
    one_thread = _row(_section("**BERT-base shapes**", "## Layout"), "3")
    sentence = re.search(r"depth alone gave ([\d.]+x); in the\s+1-thread table below it gives ([\d.]+x)", README)
    assert sentence, "the README's depth-alone speed-ups lost their sources"
    assert two_threads.rstrip(" |").endswith(sentence.group(1)) and one_thread[-1] == sentence.group(2)


def test_every_task_score_names_its_metric():
    recipes = _section("| task (train size), metric: teacher, floor |", "The paper's ordering")
    rows = [line for line in recipes.splitlines() if line.startswith("| ") and not line.startswith("| task")]
    for line in rows:
        first = line.split("|")[1]
        assert ("Pearson" in first) == first.strip().startswith("STS-B") and ("Pearson" in first or "accuracy" in first)
    assert "the linked report shows pkd's combined score instead" in README
    assert "on pkd's combined score, as in the linked report" in README
