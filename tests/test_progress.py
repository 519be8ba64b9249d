"""Progress: bars at a terminal, a line at each tenth of an epoch (or every 30 s) in a file or a pipe."""

import io
import subprocess
import sys

from tqdm.auto import tqdm

from pkd.progress import LineProgress, show_progress


def test_a_line_at_each_tenth_and_after_30_seconds_without_one():
    out, now = io.StringIO(), [0.0]
    bar = LineProgress(range(25), 25, "epoch 1/2", initial=0, file=out, clock=lambda: now[0])
    for i in bar:
        now[0] += 100.0 if i == 6 else 1.0  # one batch takes 100 s
        bar.set_postfix(loss="0.6931")
    lines = out.getvalue().splitlines()
    # tenths at batches 3, 5, 8, 10, 13, 15, 18, 20, 23, 25; and batch 7, 100 s after the line of batch 5
    assert [line.split()[3] for line in lines] == [f"{n}/25" for n in (3, 5, 7, 8, 10, 13, 15, 18, 20, 23, 25)]
    assert lines[0] == "epoch 1/2: batch 3/25 (12%), loss 0.6931, 3 s"
    assert lines[-1] == "epoch 1/2: batch 25/25 (100%), loss 0.6931, 124 s"


def test_a_resumed_epoch_counts_from_where_it_stopped():
    out = io.StringIO()
    list(LineProgress(range(5), 10, "epoch 2/3", initial=5, file=out))
    assert [line.split()[3] for line in out.getvalue().splitlines()] == [f"{n}/10" for n in range(6, 11)]


def test_bars_at_a_terminal_lines_elsewhere(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert isinstance(show_progress(range(3), 3, "epoch 1/1"), tqdm)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(show_progress(range(3), 3, "epoch 1/1"), LineProgress)
    assert isinstance(show_progress(range(3), 3, "epoch 1/1", disable=True), tqdm)  # shows nothing


def test_a_run_logged_to_a_file_writes_ten_lines_an_epoch(tiny_bert, glue_dir, tmp_path):
    """No bar redraws in a log: 16 batches an epoch give 10 progress lines, then the epoch's dev scores."""
    log = tmp_path / "log"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "pkd.cli", "finetune", "--task", "sst2", "--model",
                               str(tiny_bert), "--data-dir", str(glue_dir), "--epochs", "2", "--batch-size", "16",
                               "--lr", "2e-3", "--max-seq-len", "24", "--out", str(tmp_path / "run")],
                              stdout=f, stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "\r" not in text
    for epoch in (1, 2):
        lines = [line for line in text.splitlines() if line.startswith(f"epoch {epoch}/2: batch ")]
        assert len(lines) == 10 and lines[-1].startswith(f"epoch {epoch}/2: batch 16/16 (100%), loss "), lines
        assert any(line.startswith(f"epoch {epoch}: accuracy ") for line in text.splitlines())
