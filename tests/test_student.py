import pytest
import torch
from conftest import make_tiny_model
from transformers import AutoModel

from pkd.errors import UsageError
from pkd.student import find_layer_prefix, make_student
from pkd.tasks import get_task

SST2 = get_task("sst2")


@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "mpnet"])
def test_student_copies_chosen_layers(tmp_path, family):
    src = make_tiny_model(tmp_path / family, family=family, layers=4)
    teacher = AutoModel.from_pretrained(src)
    student = make_student(str(src), 2, SST2, init_layers=[2, 4])
    assert student.config.num_hidden_layers == 2 and student.config.num_labels == 2
    t_state = teacher.state_dict()
    s_state = getattr(student, student.base_model_prefix).state_dict()
    t_prefix, s_prefix = find_layer_prefix(t_state, 4), find_layer_prefix(s_state, 2)
    for new, old in ((0, 1), (1, 3)):  # student layer 0 <- source layer 2, 1 <- 4 (0-based 1, 3)
        keys = [k for k in s_state if k.startswith(f"{s_prefix}{new}.")]
        assert keys
        for k in keys:
            torch.testing.assert_close(s_state[k], t_state[f"{t_prefix}{old}." + k[len(f'{s_prefix}{new}.'):]])
    # everything outside the layer list (embeddings, pooler, relative position tables) is copied as is
    for k, v in s_state.items():
        if not k.startswith(s_prefix) and k in t_state:
            torch.testing.assert_close(v, t_state[k])


def test_default_is_first_layers_and_forward_runs(tiny_bert):
    student = make_student(str(tiny_bert), 3, SST2)
    assert student.config.pkd_init["layers"] == [1, 2, 3]
    out = student(input_ids=torch.tensor([[2, 10, 11, 3]]), output_hidden_states=True)
    assert out.logits.shape == (1, 2) and len(out.hidden_states) == 4


def test_student_from_fine_tuned_teacher_keeps_its_head(tiny_teacher):
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    student = make_student(str(tiny_teacher), 2, SST2)
    torch.testing.assert_close(student.classifier.weight, teacher.classifier.weight)


@pytest.mark.parametrize("layers, init, message", [
    (5, None, "at most the 4 layers"), (0, None, "at least 1"), (2, [1, 1], "distinct"), (2, [1, 9], "in 1..4"),
    (2, [1], "needs 2"),
])
def test_bad_student_shapes_are_refused(tiny_bert, layers, init, message):
    with pytest.raises(UsageError, match=message):
        make_student(str(tiny_bert), layers, SST2, init_layers=init)


def test_a_student_may_take_every_layer_of_its_source(tiny_bert):
    """A whole small pre-trained model as the student (--student-base of another family); the teacher must still
    be deeper (pkd.losses)."""
    assert make_student(str(tiny_bert), 4, SST2).config.pkd_init["layers"] == [1, 2, 3, 4]


def loud_checkpoint(src, path, loud: list[int]):
    """The tiny model at `src` with the attention of layers `loud` (0-based) scaled up, so that [CLS] mixes in the
    input there; at init scale the residual stream keeps [CLS] nearly the same for every input. Saved to `path`."""
    from pkd.models import load_tokenizer

    model = AutoModel.from_pretrained(src)
    with torch.no_grad():
        for i in loud:
            model.encoder.layer[i].attention.self.value.weight.mul_(100)
            model.encoder.layer[i].attention.output.dense.weight.mul_(100)
    model.save_pretrained(path)
    load_tokenizer(str(src)).save_pretrained(path)
    return model


def test_constant_cls_below_the_top_takes_the_top_layer(tmp_path):
    """A checkpoint whose lower layers leave [CLS] the same for every input (all-MiniLM-L6-v2 is one: mean
    pooling never trained it) gives a student of its first M-1 layers and its top layer; others the first M."""
    from pkd.models import load_tokenizer
    from pkd.student import cls_similarity, default_init_layers

    src = make_tiny_model(tmp_path / "src", layers=4)
    tok = load_tokenizer(str(src))

    def checkpoint(name: str, loud: list[int]):
        return loud_checkpoint(src, tmp_path / name, loud)

    top_only = checkpoint("top-only", [3])
    assert cls_similarity(top_only, tok, 3) > 0.999 and cls_similarity(top_only, tok, 4) < 0.99
    assert default_init_layers(top_only, tok, 3) == [1, 2, 4]
    assert default_init_layers(top_only, tok, 2) == [1, 4]
    assert make_student(str(tmp_path / "top-only"), 3, SST2).config.pkd_init["layers"] == [1, 2, 4]
    explicit = make_student(str(tmp_path / "top-only"), 3, SST2, init_layers=[1, 2, 3])
    assert explicit.config.pkd_init["layers"] == [1, 2, 3]
    everywhere = checkpoint("everywhere", [0, 1, 2, 3])
    assert cls_similarity(everywhere, tok, 3) < 0.99 and default_init_layers(everywhere, tok, 3) == [1, 2, 3]
    # Constant even at the top (init scale): taking the top layer would not help, so the paper's first M.
    assert default_init_layers(AutoModel.from_pretrained(src), tok, 3) == [1, 2, 3]


def test_distill_says_which_layers_the_probe_chose_and_why(tiny_teacher, glue_dir, tmp_path, capsys):
    """One line on stderr names the chosen layers and the measured [CLS] similarities; run.json records them. A
    source whose [CLS] carries the input after layer M gets the paper's first M; one whose [CLS] is the same for
    every input until the top layer gets the first M-1 and the top one."""
    import json

    from pkd.cli import main

    src = make_tiny_model(tmp_path / "src", layers=4)
    for name, loud, chosen, why in (("everywhere", [0, 1, 2, 3], [1, 2, 3],
                                     "the first 3, the paper's: [CLS] depends on the input after layer 3"),
                                    ("top-only", [3], [1, 2, 4], "the first 2 and the top one")):
        loud_checkpoint(src, tmp_path / name, loud)
        out = tmp_path / f"run-{name}"
        assert main(["distill", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "3",
                     "--method", "kd", "--student-base", str(tmp_path / name), "--data-dir", str(glue_dir),
                     "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--max-train-examples", "32",
                     "--batch-size", "16", "--max-seq-len", "24", "--lr", "2e-3", "--out", str(out), "--quiet"]) == 0
        [line] = [line for line in capsys.readouterr().err.splitlines() if "student layers" in line]
        assert line.startswith(f"pkd: student layers from {tmp_path / name}: {','.join(map(str, chosen))}, {why}")
        assert "after layer 3" in line and "after layer 4" in line, line  # the measurements behind the choice
        assert json.loads((out / "run.json").read_text())["init_layers"] == chosen
    # [CLS] the same for every input even at the top (random init): the first M, and the words say why
    from pkd.models import load_tokenizer
    from pkd.student import probe_init_layers

    layers, reason = probe_init_layers(AutoModel.from_pretrained(src), load_tokenizer(str(src)), 3)
    assert layers == [1, 2, 3] and reason.startswith("the first 3, the paper's: [CLS] is the same for every input "
                                                     "after the top layer too"), reason
