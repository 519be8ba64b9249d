"""Recheck the verdicts the docs print against pkd.stats' statistic since issue 35, without the predictions.

Issue 35 (item 3) replaced the interval of `pkd.stats.paired_difference`. For S seeds with per-seed differences
d_s and their mean d it is now

    se^2 = var_s(d_s) / S + max(0, var_boot(d) - sum_s var_boot(d_s - d) / (S (S - 1)))
    95% interval = d -/+ t(0.975, S - 1) * se

The verdicts in README.md and docs/ were computed with the statistic before it (se^2 = var_s(d_s)/S +
var_boot(d), t with Welch-Satterthwaite's df), on runs whose predictions were not kept. Two bounds need only
what the docs print:

- **lower**: the dev-example term is clipped at 0, so se >= sd(d_s) / sqrt(S) and the new half-width is at least
  t(0.975, S - 1) * sd(d_s) / sqrt(S). If |d| is below that, the new interval takes in 0 whatever the dev
  examples add: the verdict is a **tie**, for certain.
- **upper**: the old statistic drew the same bootstrap resamples (the same generator and seed), so the new se^2 is
  at most the old one (it subtracts a variance the old one kept), and the old t, with df >= S - 1, was at least
  the normal quantile z(0.975) = 1.96. So the new half-width is at most t(0.975, S - 1) / z(0.975) times the
  old one. If |d| exceeds that, the old verdict ("better" or "worse") holds for certain.

Between the two the verdict is **undecided without the predictions**: the bench scripts that produced the table
(named in its section; the script prints them) would recompute it. Both bounds hold for the predictions the
old verdict paired (each run's selected epoch, best by default); pkd now pairs each run's last epoch
(docs/method.md), so a rerun may also move d where the best and last epochs differ.

The printed numbers are rounded to 0.01, and the bounds allow for it: each d_s is off by at most 0.005 (0.01
when it is the difference of two printed scores), which moves the lower bound by at most t * e / sqrt(S - 1);
d and each interval end by at most 0.005.

Where the per-seed differences come from, for each table row with an interval `d [low, high]`:
- a "per seed" cell of signed numbers (`+0.76, +0.31, +0.78`);
- a paragraph after the table, `TASK per seed, ... (differences +0.76, ...)`, for the row whose first cell is
  TASK (or starts with "TASK,");
- per-seed score columns (`seed 42 | seed 43 | ...`) minus the row that the interval column's header names
  (`vs KD, 95% interval`);
- a row `TASK, all` pools the per-seed differences of the table's other `TASK, ...` rows (as `pkd report
  --paired` pools every method's seeds).
A row with none of these is listed as not recomputed. An interval computed by the current statistic (from the
predictions, since issue 35) is not an old one and is not bounded: a row whose cells say "recomputed", or any row
of a table whose section, before it, carries the comment `<!-- intervals: current -->`, is listed as current
(a rechecked `d (± ≥X)` in such a table stays a rechecked old one). A row that already shows a rechecked
interval, `d (± ≥X)` (the lower bound) or `d (± ≤X)` (the upper one), is rechecked again from its per-seed
differences and that bound.

pkd.stats has no public function that takes per-seed differences alone (`paired_difference` needs the
predictions), so the t and normal quantiles come from scipy.stats, as in pkd.stats.

Usage (from the repository root; prints Markdown):

    .venv/bin/python bench/verdict_bounds.py                 # README.md and docs/*.md
    .venv/bin/python bench/verdict_bounds.py docs/patient.md
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from scipy import stats as scipy_stats

ROOT = Path(__file__).resolve().parent.parent
NUM = r"[+-]\d+\.\d+"
OLD = re.compile(rf"(?P<d>{NUM})\s+\[(?P<low>{NUM}), (?P<high>{NUM})\]")
RECHECKED = re.compile(rf"(?P<d>{NUM}) \(± (?P<op>[≥≤])(?P<bound>\d+\.\d+)\)")
BARE = re.compile(rf"(?:(?P<d>{NUM})\s+)?\[(?P<low>{NUM}), (?P<high>{NUM})\]")
SIGNED_LIST = re.compile(rf"{NUM}(?:,\s+{NUM})+")
VERDICT = re.compile(r"\b(better|worse|tie)\b")
SCRIPT = re.compile(r"\bbench/[\w/.-]+?\.(?:sh|py)\b")
PRINTED = 0.005  # the largest rounding error of a number printed to 0.01
Z = float(scipy_stats.norm.ppf(0.975))
OWN_NAME = "bench/verdict_bounds.py"  # named beside the rechecked tables; it produced no predictions
CURRENT_MARK = "<!-- intervals: current -->"  # before a table whose intervals are the current statistic's
CURRENT = "current statistic: the printed interval stands"


@dataclass
class Row:
    """One verdict row of a docs table: where it is and what it prints."""

    where: str
    comparison: str
    d: float
    low: float | None  # the old interval; None where the row shows a rechecked one
    high: float | None
    upper: float | None  # a rechecked row's printed upper bound of the half-width, `(± ≤X)`
    old_verdict: str
    scripts: list[str]
    per_seed: list[float] | None = None
    rounding: float = PRINTED  # the largest rounding error of each d_s
    source: str = ""
    cells: list[str] = field(default_factory=list)
    current: bool = False  # computed by the current statistic from predictions: nothing to bound


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(NUM, text)]


def _tables(lines: list[str]):
    """(header cells, [(line index, cells)], index after the table) for every Markdown table."""
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"\s*\|[-| :]+\|\s*$", lines[i + 1]):
            header, j = _cells(lines[i]), i + 2
            rows = []
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                rows.append((j, _cells(lines[j])))
                j += 1
            yield header, rows, j
            i = j
        else:
            i += 1


def _section(lines: list[str], index: int) -> tuple[int, int]:
    """The lines of the section (any heading level) that holds line `index`: (first, end)."""
    heading = re.compile(r"#{1,6} ")
    start = next((k for k in range(index, -1, -1) if heading.match(lines[k])), 0)
    end = next((k for k in range(index + 1, len(lines)) if heading.match(lines[k])), len(lines))
    return start, end


def _scripts(lines: list[str], index: int) -> list[str]:
    """The bench scripts named in the section of line `index`, before it (those that produced its table); else in
    the enclosing section above it."""
    start, _ = _section(lines, index)
    for first in (start, _section(lines, start - 1)[0] if start else start):
        found = [s for s in dict.fromkeys(SCRIPT.findall("\n".join(lines[first:index]))) if s != OWN_NAME]
        if found:
            return found
    return []


def _interval(cell: str) -> tuple[float, float | None, float | None, float | None] | None:
    """(d, old low, old high, printed upper bound) of an old interval `d [low, high]` or a rechecked `d (± ≥X)`,
    `d (± ≤X)`."""
    if m := OLD.search(cell):
        return float(m["d"]), float(m["low"]), float(m["high"]), None
    if m := RECHECKED.search(cell):
        return float(m["d"]), None, None, float(m["bound"]) if m["op"] == "≤" else None
    return None


def _rows_of_table(path: str, lines: list[str], header: list[str], rows: list, end: int) -> list[Row]:
    found = []
    for index, cells in rows:
        hits = [(k, _interval(c)) for k, c in enumerate(cells) if _interval(c)]
        if len(hits) != 1:  # none, or a table of several comparisons a row (cited, not rechecked here)
            continue
        k, (d, low, high, upper) = hits[0]
        column = header[k] if k < len(header) else ""
        if not re.search(r" - |\binterval\b|\bCI\b", column):  # a score column that cites a verdict
            continue
        verdict_col = next((j for j, h in enumerate(header) if h.lower() == "verdict"), None)
        word = VERDICT.search(cells[k]) or (VERDICT.search(cells[verdict_col]) if verdict_col is not None else None)
        what = re.sub(r"\s*[(,]?\s*(?:95% )?(?:interval|CI)\b.*", "", column)
        comparison = ", ".join([cells[0], *(c for c in cells[1:k] if " vs " in c)]) + (f" ({what})" if what else "")
        row = Row(f"{path}:{index + 1}", comparison, d, low, high, upper, word[1] if word else "?",
                  _scripts(lines, index), cells=cells,
                  current=low is not None and (any("recomputed" in c for c in cells) or CURRENT_MARK in "\n".join(
                      lines[_section(lines, index)[0]:index])))
        for j, c in enumerate(cells):
            if j < len(header) and "per seed" in header[j] and SIGNED_LIST.fullmatch(c):
                row.per_seed, row.source = _numbers(c), "per-seed column"
        found.append(row)
    _from_seed_columns(found, header, rows)
    _from_prose(found, lines, end)
    _pooled(found)
    return found


def _from_seed_columns(found: list[Row], header: list[str], rows: list) -> None:
    """Rows with per-seed score columns, against the row that the interval column's header names."""
    seed_cols = [j for j, h in enumerate(header) if re.fullmatch(r"seed \d+", h)]
    named = next((m[1] for h in header if (m := re.match(r"vs (.+?), 95% interval", h))), None)
    reference = next((cells for _, cells in rows if cells[0] == named), None)
    if len(seed_cols) < 2 or reference is None:
        return
    for row in found:
        if row.per_seed is None and all(re.fullmatch(r"\d+\.\d+", row.cells[j]) for j in seed_cols):
            row.per_seed = [round(float(row.cells[j]) - float(reference[j]), 2) for j in seed_cols]
            row.rounding, row.source = 2 * PRINTED, f"seed columns minus the {named} row"


def _from_prose(found: list[Row], lines: list[str], end: int) -> None:
    """`TASK per seed, ... (differences ...)` paragraphs after the table, up to the next heading."""
    _, stop = _section(lines, end - 1)
    text = "\n".join(lines[end:stop])
    paragraph = rf"(?m)^(?P<task>[\w-]+) per seed\b(?:(?!\n\n).)*?\(differences\s+(?P<d>{SIGNED_LIST.pattern})\)"
    for m in re.finditer(paragraph, text, flags=re.S):
        for row in found:
            first = row.cells[0]
            if row.per_seed is None and (first == m["task"] or first.startswith(m["task"] + ",")):
                row.per_seed, row.source = _numbers(m["d"]), "the paragraph after the table"


def _pooled(found: list[Row]) -> None:
    for row in found:
        if row.per_seed is None and row.cells[0].endswith(", all"):
            task = row.cells[0][: -len(", all")]
            parts = [r for r in found if r is not row and r.cells[0].startswith(task + ",") and r.per_seed]
            if parts:
                row.per_seed = [x for r in parts for x in r.per_seed]
                row.rounding = max(r.rounding for r in parts)
                row.source = "pooled: " + ", ".join(r.cells[0] for r in parts)


def recheck(row: Row) -> dict:
    """The bounds of the new half-width and what they decide (see the module docstring)."""
    result = {"seeds": len(row.per_seed) if row.per_seed else None, "sd": None, "lower": None, "upper": None}
    if row.current:
        return {**result, "verdict": CURRENT}
    if not row.per_seed or len(row.per_seed) < 2:
        return {**result, "verdict": "not recomputed: no per-seed differences printed"}
    s = len(row.per_seed)
    t = float(scipy_stats.t.ppf(0.975, s - 1))
    sd = statistics.stdev(row.per_seed)
    lower = t * sd / math.sqrt(s) - t * row.rounding / math.sqrt(s - 1)  # safe against the rounding of each d_s
    upper = t / Z * ((row.high - row.low) / 2 + PRINTED) if row.low is not None else row.upper
    result = {**result, "sd": sd, "lower": lower, "upper": upper,
              "mean_of_per_seed": statistics.fmean(row.per_seed)}
    if abs(row.d) + PRINTED < lower:
        return {**result, "verdict": "tie"}
    if upper is not None and abs(row.d) - PRINTED > upper:
        return {**result, "verdict": "better" if row.d > 0 else "worse"}
    return {**result, "verdict": "undecided without predictions"}


def find_rows(paths: list[Path]) -> tuple[list[Row], dict[str, list[str]]]:
    rows, texts = [], {}
    for path in paths:
        name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        lines = path.read_text().splitlines()
        texts[name] = lines
        for header, table_rows, end in _tables(lines):
            rows.extend(_rows_of_table(name, lines, header, table_rows, end))
    return rows, texts


def citations(rows: list[Row], texts: dict[str, list[str]]) -> list[tuple[str, str, Row | None]]:
    """Every other place that prints an old interval: (file:line, the interval, the rechecked row it matches)."""
    on_rows = {r.where for r in rows}
    by_interval = {(r.low, r.high): r for r in rows if r.low is not None}
    found = []
    for name, lines in texts.items():
        text, starts = "\n".join(lines), [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)
        for m in BARE.finditer(text):
            line = next(k for k in range(len(starts)) if starts[k + 1] > m.start()) + 1
            if f"{name}:{line}" in on_rows and OLD.fullmatch(m[0]):
                continue
            found.append((f"{name}:{line}", " ".join(m[0].split()),
                          by_interval.get((float(m["low"]), float(m["high"])))))
    return found


def markdown(rows: list[Row], cited: list[tuple[str, str, Row | None]]) -> str:
    out = ["| where | comparison | S | d | sd(d_s) | new half-width ≥ | new half-width ≤ | old verdict | new verdict "
           "| per seed from | rerun |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    counts: dict[str, int] = {}
    for row in rows:
        r = recheck(row)
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        interval = (f"{row.d:+.2f} [{row.low:+.2f}, {row.high:+.2f}]" if row.low is not None
                    else f"{row.d:+.2f} (rechecked)")
        fmt = "{:.2f}".format
        lower = f"{math.floor(r['lower'] * 100) / 100:.2f}" if r["lower"] is not None else ""
        upper = f"{math.ceil(r['upper'] * 100) / 100:.2f}" if r["upper"] is not None else ""
        out.append(f"| {row.where} | {row.comparison}: {interval} | {r['seeds'] or ''} | {row.d:+.2f} | "
                   f"{fmt(r['sd']) if r['sd'] is not None else ''} | {lower} | {upper} | {row.old_verdict} | "
                   f"{r['verdict']} | {row.source or '-'} | {', '.join(row.scripts) or '?'} |")
    out += ["", "Counts: " + "; ".join(f"{v}: {n}" for v, n in sorted(counts.items())) + f" (of {len(rows)} rows)",
            "", "Other places that print an interval (prose, or tables of several comparisons a row):", "",
            "| where | interval | same interval as | new verdict there |", "|---|---|---|---|"]
    for where, interval, row in cited:
        out.append(f"| {where} | {interval} | {row.where if row else '-'} | "
                   f"{recheck(row)['verdict'] if row else 'not a rechecked row'} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="The bounds: see the module docstring (bench/verdict_bounds.py).")
    parser.add_argument("paths", nargs="*", type=Path,
                        help="Markdown files to read (default: README.md and docs/*.md of this checkout)")
    args = parser.parse_args()
    paths = [p.resolve() for p in args.paths] or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    rows, texts = find_rows(paths)
    print(markdown(rows, citations(rows, texts)), end="")


if __name__ == "__main__":
    main()
