"""The README's numbers agree with their sources: the demo's with what bench/demo.sh recorded
(docs/results/demo.json) and with bench/deploy.sh's table (docs/deploy.md), every other result with the section it
links to, the speed-ups with the tables they cite, and every task score names its metric. The measurements
behind the README are in docs/results.md, checked the same way. Every relative link in the docs resolves."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
RESULTS = (ROOT / "docs" / "results.md").read_text()
DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
DEMO = json.loads((ROOT / "docs" / "results" / "demo.json").read_text())
DEMO_ROWS = {"teacher fp32, 6 layers (PyTorch)": ("teacher", "teacher | PyTorch fp32"),
             "PKD-Skip student fp32, 3 layers (PyTorch)": ("student", "student | PyTorch fp32"),
             "PKD-Skip student int8, 3 layers (ONNX Runtime)": ("student_int8", "student | ORT int8")}


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def _row(text: str, first_cell: str) -> list[str]:
    [line] = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


def _words(text: str) -> str:
    return " ".join(text.split())


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(text: str) -> list[tuple[int, str, int]]:
    """(level, anchor, offset) of every heading outside code blocks."""
    found, fence, offset = [], False, 0
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"(#{1,6}) (.*)", line)):
            found.append((len(m.group(1)), _slug(m.group(2)), offset))
        offset += len(line)
    return found


def _anchored(path: Path, anchor: str) -> str:
    """The text of `path` under the heading `anchor`, up to the next heading of the same or a higher level."""
    text = path.read_text()
    heads = _headings(text)
    [(level, _, start)] = [h for h in heads if h[1] == anchor]
    end = next((off for lvl, _, off in heads if off > start and lvl <= level), len(text))
    return text[start:end]


def _tables(text: str) -> list[tuple[str, list[str]]]:
    """(the paragraph before it, its body rows) for every Markdown table."""
    paragraphs = text.split("\n\n")
    return [(paragraphs[i - 1], para.strip().splitlines()[2:]) for i, para in enumerate(paragraphs)
            if i and para.startswith("| ")]


def test_the_demo_table_and_its_words_match_what_demo_sh_recorded():
    acc = DEMO["accuracy"]
    tables = []
    for name, text in (("README.md", README), ("docs/results.md", RESULTS)):
        demo = _section(text, "| model | SST-2 dev acc. (best epoch) |", "\n\n")
        tables.append(demo)
        for model, (key, _) in DEMO_ROWS.items():
            cell = _row(demo, model)[1]
            assert float(cell.split()[0]) == acc[key], (name, model, cell)
            if key != "teacher":
                assert f"({100 * acc[key] / acc['teacher']:.1f}%)" in cell, (name, cell)
        # the demo trains and scores at demo.sh's length, and times at the benchmark's
        assert (f"trained and scored on the full SST-2 dev set at {DEMO['max_seq_len']} tokens, timed at "
                f"{DEMO['bench_seq_len']} tokens") in _words(text), name
        # wherever else a page names the demo student's accuracy, it is the recorded one
        named = re.findall(r"demo student's accuracy \(fp32 ([\d.]+), int8 ([\d.]+)", text)
        assert named and all((float(a), float(b)) == (acc["student"], acc["student_int8"]) for a, b in named), name
    assert tables[0] == tables[1], "the README's demo table and docs/results.md's differ"
    script = (ROOT / "bench" / "demo.sh").read_text()
    assert f"LEN={DEMO['max_seq_len']} " in script and script.count('--max-seq-len "$LEN"') == 2
    assert f"--seq-len {DEMO['bench_seq_len']} " in script


def test_the_demo_tables_sizes_and_speeds_are_deploy_sh_s():
    """Size, latency and throughput come from bench/deploy.sh's table in docs/deploy.md, ratios included."""
    for model, (_, deploy_row) in DEMO_ROWS.items():
        _, _, size, latency, throughput = _row(README, model)
        line = next(line for line in DEPLOY.splitlines() if line.startswith(f"| {deploy_row} |"))
        _, _, _, mb, ms, ms_x, ex_s, ex_s_x, _ = [c.strip() for c in line.strip("|").split("|")]
        assert size == f"{mb} MB", (model, size, mb)
        assert latency.split(" (")[0] == f"{ms} ms" and throughput.split(" (")[0] == f"{ex_s} ex/s", model
        if "(" in latency:
            assert latency.endswith(f"({ms_x})") and throughput.endswith(f"({ex_s_x})"), model


def test_the_readme_results_are_in_the_sections_they_link_to():
    """Every number of the README's results tables (but the demo's, above) is in the section its caption links to."""
    results = README[README.index("## Results"):README.index("## Layout")]
    checked = 0
    for caption, rows in _tables(results):
        if rows[0].startswith("| teacher fp32"):
            continue
        links = re.findall(r"\]\((docs/[^)#]+\.md)#([^)]+)\)", caption)
        assert links, f"a results table links to no section: {caption!r}"
        path, anchor = links[-1]
        source = _anchored(ROOT / path, anchor)
        for row in rows:
            for number in re.findall(r"\d+(?:[.,]\d+)*", re.sub(r"`[^`]*`", "", row)):
                assert re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", source), \
                    f"{number} in {row!r} is not in {path}#{anchor}"
            checked += 1
    assert checked >= 10


def test_depth_alone_speedups_are_the_ones_their_tables_show():
    # the first: bench/deploy.sh's latest run (docs/deploy.md keeps the earlier host's below it)
    two_threads = next(line for line in DEPLOY.splitlines() if line.strip().startswith("| 3 | PyTorch fp32 |"))
    one_thread = _row(_anchored(ROOT / "docs" / "results.md", "bert-base-shapes"), "3")
    sentence = re.search(r"depth alone gave ([\d.]+x); in the\s+1-thread table above, \[BERT-base shapes\]"
                         r"\(#bert-base-shapes\), it gives ([\d.]+x)", RESULTS)
    assert sentence, "docs/results.md's depth-alone speed-ups lost their sources"
    assert two_threads.rstrip(" |").endswith(sentence.group(1)) and one_thread[-1] == sentence.group(2)
    # that table is docs/bench-shapes.md's measurement
    shapes = _row((ROOT / "docs" / "bench-shapes.md").read_text(), "bert-base-L3")
    assert one_thread[1:] == [shapes[2], shapes[4], f"{shapes[5]} MB", f"{shapes[8]} ms", shapes[9],
                              f"{shapes[10]} ex/s", shapes[11]]
    # and the README's BERT-base speed-up is that table's
    readme_row = _row(README, "BERT-base shapes, 3 layers, b=32")
    assert readme_row[1] == one_thread[6] and readme_row[3].split()[0] == one_thread[7], readme_row


def test_every_task_score_names_its_metric():
    recipes = _section(RESULTS, "| task (train size), metric: teacher, floor |", "The paper's ordering")
    rows = [line for line in recipes.splitlines() if line.startswith("| ") and not line.startswith("| task")]
    for line in rows:
        first = line.split("|")[1]
        assert ("Pearson" in first) == first.strip().startswith("STS-B") and ("Pearson" in first or "accuracy" in first)
    assert "the linked report shows pkd's combined score instead" in RESULTS
    assert "on pkd's combined score, as in the linked report" in RESULTS
    # the README's table names each task's metric in a column of its own
    table = _section(README, "| task, training | metric |", "\n\n")
    rows = [_row(table, line.split("|")[1].strip()) for line in table.splitlines()[2:]]
    assert rows
    for task, metric, *_ in rows:
        expected = "mean of Pearson and Spearman" if task.startswith("STS-B") else "accuracy"
        assert metric == expected, (task, metric)


def test_every_relative_link_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "bench" / "README.md"]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = page.parent / path if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in {h[1] for h in _headings(linked.read_text())}:
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_the_readme_stays_a_front_page():
    """Issue 27: a README a newcomer reads to the end; measurements go to docs/results.md and the docs it links."""
    assert len((ROOT / "README.md").read_bytes()) < 10_000
