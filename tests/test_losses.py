import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pkd.errors import UsageError
from pkd.losses import (
    LossConfig,
    Projection,
    kd_loss,
    last_map,
    layer_map_for,
    pkd_loss,
    pt_loss,
    skip_map,
)


def test_layer_maps_match_the_paper_table():
    assert skip_map(12, 6) == [2, 4, 6, 8, 10]
    assert last_map(12, 6) == [7, 8, 9, 10, 11]
    assert skip_map(12, 3) == [4, 8]
    assert last_map(12, 3) == [10, 11]
    assert skip_map(6, 3) == [2, 4]
    assert last_map(6, 3) == [4, 5]
    assert skip_map(6, 2) == [3]
    assert last_map(6, 2) == [5]
    assert skip_map(6, 4) == [2, 3, 5]  # 1.5, 3, 4.5 rounded half up
    assert layer_map_for("kd", 12, 6) == [] and layer_map_for("ft", 12, 6) == []


@pytest.mark.parametrize("layer_map, message", [
    ([2, 13], "out of range"), ([0, 4], "out of range"), ([4, 4], "duplicates"), ([2, 4, 6], "needs 2"),
])
def test_explicit_layer_map_is_validated(layer_map, message):
    with pytest.raises(UsageError, match=message):
        layer_map_for("pkd", 12, 3, layer_map)


def test_student_must_be_shallower():
    with pytest.raises(UsageError, match="shallower"):
        layer_map_for("pkd-skip", 6, 6)
    with pytest.raises(UsageError, match="shallower"):
        layer_map_for("kd", 6, 8)


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"), ({"temperature": 0}, "temperature"),
    ({"temperature": -2}, "temperature"), ({"beta": -1}, "beta"),
])
def test_loss_config_is_validated(kwargs, message):
    with pytest.raises(UsageError, match=message):
        LossConfig(**kwargs)


def test_kd_loss_by_hand():
    s = torch.tensor([[1.0, 2.0, 0.5]])
    t = torch.tensor([[2.0, 0.0, 1.0]])
    T = 2.0
    ps = [math.exp(x / T) for x in s[0].tolist()]
    pt = [math.exp(x / T) for x in t[0].tolist()]
    ps = [x / sum(ps) for x in ps]
    pt = [x / sum(pt) for x in pt]
    kl = sum(b * math.log(b / a) for a, b in zip(ps, pt, strict=True))
    assert kd_loss(s, t, T).item() == pytest.approx(T * T * kl, rel=1e-5)
    # batchmean: the mean over examples of the per-example sum over classes
    two = kd_loss(torch.cat([s, t]), torch.cat([t, t]), T).item()
    assert two == pytest.approx(T * T * kl / 2, rel=1e-5)


def test_kd_loss_regression_is_squared_error():
    s, t = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]])
    assert kd_loss(s, t, 10.0, regression=True).item() == pytest.approx((1 + 4) / 2)


def test_pt_loss_by_hand():
    s = torch.tensor([[[3.0, 4.0], [1.0, 0.0]]])  # [batch 1, layers 2, hidden 2]
    t = torch.tensor([[[4.0, 3.0], [0.0, 2.0]]])
    # layer 1: (0.6-0.8)^2 + (0.8-0.6)^2 = 0.08; layer 2: 1 + 1 = 2; mean over layers
    assert pt_loss(s, t).item() == pytest.approx((0.08 + 2.0) / 2, rel=1e-6)
    raw = ((1 + 1) + (1 + 4)) / 2
    assert pt_loss(s, t, normalize=False).item() == pytest.approx(raw)


def test_pkd_loss_weights_the_terms():
    torch.manual_seed(0)
    logits, t_logits = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 1])
    s_cls, t_cls = torch.randn(4, 2, 8), torch.randn(4, 2, 8)
    cfg = LossConfig(alpha=0.7, temperature=5.0, beta=2.0)
    parts = pkd_loss(cfg, logits, labels, False, t_logits, s_cls, t_cls)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    expected = 0.3 * ce + 0.7 * kd_loss(logits, t_logits, 5.0) + 2.0 * pt_loss(s_cls, t_cls)
    assert parts["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    ft = pkd_loss(LossConfig(), logits, labels, False)
    assert ft["loss"].item() == pytest.approx(ce.item(), rel=1e-6) and ft["kd"].item() == 0


def test_projection_maps_each_layer_with_its_own_linear_map():
    torch.manual_seed(0)
    proj = Projection(8, 16, 2)
    x = torch.randn(3, 4, 2, 8)  # [batch, choices, layers, hidden]: any leading dimensions
    y = proj(x)
    assert y.shape == (3, 4, 2, 16)
    for i in range(2):
        torch.testing.assert_close(y[..., i, :], x[..., i, :] @ proj.maps[i].weight.T + proj.maps[i].bias)
    assert not torch.allclose(proj.maps[0](x[..., 0, :]), proj.maps[1](x[..., 0, :]))  # two different maps


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(2, 5), st.integers(1, 3), st.floats(0, 1), st.floats(0.5, 20),
       st.floats(0, 100), st.integers(0, 1000))
def test_pkd_loss_is_finite_and_non_negative(batch, classes, layers, alpha, temperature, beta, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=g) * 10
    t_logits = torch.randn(batch, classes, generator=g) * 10
    labels = torch.randint(0, classes, (batch,), generator=g)
    s_cls = torch.randn(batch, layers, 6, generator=g)
    t_cls = torch.randn(batch, layers, 6, generator=g)
    cfg = LossConfig(alpha=alpha, temperature=temperature, beta=beta)
    parts = pkd_loss(cfg, logits, labels, False, t_logits, s_cls, t_cls)
    for value in parts.values():
        assert torch.isfinite(value) and value.item() >= -1e-6
    # PT vanishes when the student's states equal the teacher's (up to scale, since they are normalised)
    assert pt_loss(t_cls * 3.0, t_cls).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("method, explicit", [("pkd-skip", None), ("pkd-last", None), ("pkd", [])])
def test_a_one_layer_student_has_no_pt_and_is_refused(method, explicit):
    with pytest.raises(UsageError, match="--student-layers 1: a 1-layer student has no intermediate layer"):
        layer_map_for(method, 6, 1, explicit)
    assert layer_map_for("kd", 6, 1) == [] and layer_map_for("ft", 6, 1) == []  # the baselines stay allowed


def test_beta_help_names_both_scales(capsys):
    """pkd's beta is the original code's divided by the hidden size: the help must say what 0.65 is at the default
    teacher's 384 as well as at 768, and every beta grid in the docs must be on pkd's scale."""
    import re
    from pathlib import Path

    from pkd.cli import main

    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0.65 is the original 500 at hidden size 768" in text and "250 at 384" in text
    root = Path(__file__).resolve().parent.parent
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for grid in re.findall(r"beta=([0-9.,]+)", doc.read_text()):
            # the original code's grid starts at 10 (10, 100, 500, 1000); pkd's is that divided by the width
            assert all(float(v) < 10 for v in grid.strip(",").split(",")), f"{doc.name}: beta={grid}"
