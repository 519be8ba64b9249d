"""Per-task recipes (pkd.tasks.Recipe): what --epochs, --lr and --max-seq-len mean when they are not given."""

from __future__ import annotations

import json

import pytest

from pkd.cli import main
from pkd.config import DistillConfig, TrainConfig
from pkd.io import read_jsonl
from pkd.tasks import GLUE_TASKS, RACE_TASKS, get_task


@pytest.mark.parametrize("student", [True, False])
def test_the_recipe_fills_in_only_what_is_not_given(student):
    task = get_task("stsb")
    r = task.recipe
    filled = TrainConfig().for_task(r, student)
    assert (filled.epochs, filled.lr, filled.max_seq_len) == (
        (r.student_epochs, r.student_lr, r.max_seq_len) if student else (r.teacher_epochs, r.teacher_lr, r.max_seq_len))
    given = TrainConfig(epochs=1, lr=1e-3, max_seq_len=32, group_by_length=True)
    assert given.for_task(r, student) == given


def test_single_texts_are_grouped_by_length_and_pairs_keep_the_shuffled_order():
    """The order follows docs/performance.md's paired measurements: a tie on SST-2, a cost on STS-B's pairs."""
    order = {name: TrainConfig().for_task(t.recipe, True).group_by_length
             for name, t in [*GLUE_TASKS.items(), *RACE_TASKS.items()]}
    assert {name for name, grouped in order.items() if grouped} == {"cola", "sst2"}
    assert TrainConfig(group_by_length=True).for_task(get_task("stsb").recipe, True).group_by_length is True
    assert TrainConfig(group_by_length=False).for_task(get_task("sst2").recipe, False).group_by_length is False


def test_a_pair_task_trains_shuffled_and_an_old_grouped_run_refuses_to_resume(tiny_bert, glue_dir, tmp_path, capsys):
    args = ["finetune", "--task", "stsb", "--model", str(tiny_bert), "--data-dir", str(glue_dir), "--epochs", "1",
            "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "t")]) == 0
    assert "group_by_length False" in capsys.readouterr().err  # the line that names what the recipe filled in
    run = json.loads((tmp_path / "t" / "run.json").read_text())
    assert run["train"]["group_by_length"] is False
    # A run made while grouping was every task's default says so in its run.json: --resume names the change.
    run["train"]["group_by_length"] = True
    del run["result"]
    (tmp_path / "t" / "run.json").write_text(json.dumps(run))
    assert main([*args, "--out", str(tmp_path / "t"), "--resume"]) == 2
    assert "train.group_by_length True (now False)" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "g"), "--group-by-length"]) == 0  # what is given wins
    assert json.loads((tmp_path / "g" / "run.json").read_text())["train"]["group_by_length"] is True


def test_the_recipe_picks_the_students_init_unless_it_is_given():
    cfg = DistillConfig(teacher="t", student_layers=2)
    # MRPC's students start from the fine-tuned teacher's layers (92% retention against 89-90%, docs/recipes.md)
    assert cfg.for_task(get_task("mrpc").recipe).student_init == "teacher"
    assert get_task("mrpc").recipe.student_epochs == 2  # they peaked by epoch 2 of 4 from the pre-trained layers
    assert {t.recipe.student_init for t in [*GLUE_TASKS.values(), *RACE_TASKS.values()] if t.name != "mrpc"} == {
        "pretrained"}  # the paper's init everywhere else
    given = DistillConfig(teacher="t", student_layers=2, student_init="pretrained")
    assert given.for_task(get_task("mrpc").recipe) == given
    # A named pre-trained base means its layers: the recipe's "teacher" would refuse it.
    based = DistillConfig(teacher="t", student_layers=2, student_base="b")
    assert based.for_task(get_task("mrpc").recipe).student_init == "pretrained"


def measured_on(monkeypatch, checkpoint) -> None:
    """Make `checkpoint` count as the one the recipes were measured on (all-MiniLM-L6-v2, not in the tests)."""
    import pkd.api

    monkeypatch.setattr(pkd.api, "default_teacher_path", lambda: str(checkpoint))


def test_mrpc_students_start_from_the_teacher_by_default(tiny_teacher, tiny_bert, glue_dir, tmp_path, monkeypatch,
                                                         capsys):
    measured_on(monkeypatch, tiny_bert)  # the teacher's base_model
    out = tmp_path / "mrpc"
    assert main(["distill", "--teacher", str(tiny_teacher), "--task", "mrpc", "--student-layers", "2", "--data-dir",
                 str(glue_dir), "--cache-dir", str(tmp_path / "c"), "--max-train-examples", "16", "--batch-size", "16",
                 "--max-seq-len", "24", "--out", str(out), "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert (run["student_init"], run["student_source"]) == ("teacher", str(tiny_teacher))
    assert run["train"]["epochs"] == 2 and len(read_jsonl(out / "metrics.jsonl")) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pkd: mrpc students: ")]
    assert line == ("pkd: mrpc students: lr 0.0002, epochs 2, group_by_length False, student_init teacher from the "
                    "task's recipe, measured on all-MiniLM-L6-v2 with 3-layer students (docs/recipes.md)")


def test_students_of_another_checkpoint_get_the_papers_settings_and_say_so(tiny_teacher, tiny_bert, glue_dir,
                                                                           tmp_path, capsys):
    """The recipes' student values were measured on all-MiniLM-L6-v2; the tiny teacher's base is another
    checkpoint, so MRPC's students start from its pre-trained layers at the paper's lr for 4 epochs."""
    out = tmp_path / "mrpc"
    assert main(["distill", "--teacher", str(tiny_teacher), "--task", "mrpc", "--student-layers", "2", "--data-dir",
                 str(glue_dir), "--cache-dir", str(tmp_path / "c"), "--max-train-examples", "16", "--batch-size", "16",
                 "--out", str(out), "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert (run["student_init"], run["student_source"]) == ("pretrained", str(tiny_bert))
    assert (run["train"]["lr"], run["train"]["epochs"], run["train"]["max_seq_len"]) == (5e-5, 4, 128)
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pkd: mrpc students: ")]
    assert line == (f"pkd: mrpc students: lr 5e-05, epochs 4, max_seq_len 128, group_by_length False, "
                    f"student_init pretrained from the paper's settings: no recipe was measured on students of "
                    f"{tiny_bert} (the recipes were, on all-MiniLM-L6-v2 with 3-layer students; docs/recipes.md)")


def test_students_learn_faster_at_the_recipes_rate_than_at_the_teachers(tiny_teacher, tiny_bert, glue_dir, tmp_path,
                                                                       monkeypatch):
    """A student distilled with the recipe's learning rate (none given) ends the same steps at a lower training
    loss than one given the teacher's rate (at 5e-5 pre-trained-initialised students stalled: docs/recipes.md)."""
    import pkd

    measured_on(monkeypatch, tiny_bert)  # the recipe's 2e-4 applies to students of the checkpoint it was measured on
    recipe = get_task("sst2").recipe
    common = dict(data_dir=glue_dir, cache_dir=str(tmp_path / "cache"), quiet=True, epochs=2, batch_size=16,
                  max_seq_len=24, seed=0)
    losses = {}
    for name, lr in (("recipe", None), ("teacher's", recipe.teacher_lr)):
        out = tmp_path / name
        pkd.distill(str(tiny_teacher), "sst2", 2, out, lr=lr, **common)
        assert json.loads((out / "run.json").read_text())["train"]["lr"] == (lr or recipe.student_lr)
        losses[name] = [h["train_loss"] for h in read_jsonl(out / "metrics.jsonl")]
    assert losses["recipe"][-1] < losses["teacher's"][-1], losses
    assert losses["recipe"][-1] < losses["recipe"][0]  # and it does learn


def test_pair_tasks_keep_long_pairs_whole_by_default(tmp_path):
    """At the recipe's max_seq_len a pair of two 40-word sentences is encoded whole (at 64 tokens 20% of MRPC's
    pairs and 37% of RTE's lose their tail); RACE's passages get 512 tokens."""
    from conftest import WORDS, make_tokenizer

    from pkd.encoding import EncodedSplit
    from pkd.tasks import Example, Split

    tokenizer = make_tokenizer(tmp_path)
    for name in ("mrpc", "rte", "stsb", "qqp", "qnli", "mnli"):
        task = get_task(name)
        first, second = " ".join(WORDS[:40]), " ".join(reversed(WORDS[:40]))
        split = Split(task, "train", [Example((first, second), 0, "0")], "memory", f"long-{name}")
        length = TrainConfig().for_task(task.recipe, student=True).max_seq_len
        ids = EncodedSplit(split, tokenizer, length)[0]["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == f"{first} {second}", name
    for task in RACE_TASKS.values():  # not re-measured: the paper's learning rate, the passages' 512 tokens
        assert (task.recipe.student_lr, task.recipe.max_seq_len) == (5e-5, 512)


def test_distill_and_finetune_train_with_the_tasks_recipe_and_record_it(tiny_teacher, tiny_bert, glue_dir, tmp_path,
                                                                       capsys, monkeypatch):
    measured_on(monkeypatch, tiny_bert)
    common = ["--task", "stsb", "--data-dir", str(glue_dir), "--max-train-examples", "16", "--batch-size", "16",
              "--max-seq-len", "24", "--quiet"]
    recipe = get_task("stsb").recipe
    teacher = tmp_path / "teacher"
    assert main(["finetune", "--model", str(tiny_bert), "--out", str(teacher), *common]) == 0
    run = json.loads((teacher / "run.json").read_text())
    assert (run["train"]["lr"], run["train"]["epochs"]) == (recipe.teacher_lr, recipe.teacher_epochs)
    assert len(read_jsonl(teacher / "metrics.jsonl")) == recipe.teacher_epochs
    assert ("pkd: stsb teacher: lr 5e-05, epochs 3, group_by_length False from the task's recipe (docs/recipes.md)\n"
            in capsys.readouterr().err)

    student = tmp_path / "student"
    distill = ["distill", "--teacher", str(teacher), "--student-layers", "2", "--cache-dir", str(tmp_path / "c"),
               "--out", str(student), *common]
    assert main(distill) == 0
    best = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["best"]
    run = json.loads((student / "run.json").read_text())
    assert (run["train"]["lr"], run["train"]["epochs"]) == (recipe.student_lr, recipe.student_epochs)
    assert len(read_jsonl(student / "metrics.jsonl")) == recipe.student_epochs
    # The recorded values are the resolved ones, so the same command resumes (and finds the run finished)...
    assert main([*distill, "--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["best"] == best
    # ...while a different learning rate is refused, naming it.
    assert main([*distill, "--resume", "--lr", "1e-3"]) == 2
    assert "lr" in capsys.readouterr().err
