import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pkd.cache import LiveTeacher, TeacherCache, ensure_cache
from pkd.data import load_split
from pkd.errors import DataError
from pkd.models import EncodedSplit, make_collator
from pkd.tasks import get_task

SST2 = get_task("sst2")


@pytest.fixture()
def teacher_and_data(tiny_teacher, glue_dir):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    data = EncodedSplit(load_split(SST2, "train", glue_dir)[0], tok, 24)
    return model, tok, data


def test_cache_holds_the_teachers_outputs(teacher_and_data, tmp_path):
    model, tok, data = teacher_and_data
    cache = ensure_cache(model, tok, data, 24, [3, 1], tmp_path)
    assert cache.layers == [1, 3] and len(cache) == len(data)
    assert cache.logits.dtype == np.float16 and cache.cls.shape == (len(data), 2, model.config.hidden_size)
    batch = make_collator(tok)([data[i] for i in (5, 0, 17)])
    live_logits, live_cls = LiveTeacher(model).outputs(batch, [3])
    logits, cls = cache.outputs(batch, [3])
    torch.testing.assert_close(logits, live_logits, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(cls, live_cls, atol=2e-3, rtol=2e-3)
    # the same inputs find the same cache instead of building another
    assert ensure_cache(model, tok, data, 24, [1, 3], tmp_path).path == cache.path
    assert len(list(tmp_path.iterdir())) == 1


def test_cache_key_changes_with_its_inputs(teacher_and_data, tmp_path):
    model, tok, data = teacher_and_data
    base = ensure_cache(model, tok, data, 24, [1], tmp_path).path
    assert ensure_cache(model, tok, data, 20, [1], tmp_path).path != base  # max_seq_len
    assert ensure_cache(model, tok, data, 24, [2], tmp_path).path != base  # layers
    with torch.no_grad():
        model.classifier.bias.add_(1.0)  # different teacher weights
    assert ensure_cache(model, tok, data, 24, [1], tmp_path).path != base


def test_a_cache_with_more_layers_serves_fewer(teacher_and_data, tmp_path):
    model, tok, data = teacher_and_data
    wide = ensure_cache(model, tok, data, 24, [1, 3], tmp_path / "a")
    batch = make_collator(tok)([data[i] for i in (2, 9)])
    for layers in ([3], []):  # PKD with one of its layers, KD with none: the wide cache, no new build
        found = ensure_cache(model, tok, data, 24, layers, tmp_path / "a")
        assert found.path == wide.path
        exact = ensure_cache(model, tok, data, 24, layers, tmp_path / f"exact{len(layers)}")
        for got, want in zip(found.outputs(batch, layers), exact.outputs(batch, layers), strict=True):
            assert (got is None and want is None) or torch.equal(got, want)
    assert len(list((tmp_path / "a").iterdir())) == 1
    # a layer the cache lacks, or another max_seq_len, needs a cache of its own
    assert ensure_cache(model, tok, data, 24, [1, 2], tmp_path / "a").path != wide.path
    assert ensure_cache(model, tok, data, 20, [1], tmp_path / "a").path != wide.path


def test_corrupted_cache_is_refused(teacher_and_data, tmp_path):
    model, tok, data = teacher_and_data
    cache = ensure_cache(model, tok, data, 24, [1], tmp_path)
    raw = bytearray((cache.path / "cls.npy").read_bytes())
    raw[-3] ^= 0xFF
    (cache.path / "cls.npy").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="checksum mismatch"):
        TeacherCache(cache.path)
    (cache.path / "meta.json").unlink()
    with pytest.raises(DataError, match="not a complete teacher cache"):
        TeacherCache(cache.path)


def test_failed_cache_build_leaves_nothing(teacher_and_data, tmp_path, monkeypatch):
    model, tok, data = teacher_and_data
    import pkd.cache

    calls = {"n": 0}
    real = pkd.cache.teacher_forward

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return real(*args)

    monkeypatch.setattr(pkd.cache, "teacher_forward", failing)
    with pytest.raises(RuntimeError):
        ensure_cache(model, tok, data, 24, [1], tmp_path, batch_size=16)
    assert list(tmp_path.iterdir()) == []


def test_killed_cache_build_is_never_used(tiny_teacher, tmp_path):
    """SIGKILL a cache build part-way: what it leaves is never taken for a cache, and a rerun builds it."""
    from conftest import write_glue

    glue = write_glue(tmp_path / "glue", n_train=20000)
    cache_dir = tmp_path / "cache"
    cmd = [sys.executable, "-m", "pkd.cli", "cache", "--teacher", str(tiny_teacher), "--task", "sst2",
           "--data-dir", str(glue), "--cache-dir", str(cache_dir), "--max-seq-len", "24"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # generous: a loaded CI machine can take minutes to import and tokenize
    while time.time() < deadline and proc.poll() is None and not list(cache_dir.glob(".*/cls.npy")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    leftovers = list(cache_dir.iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers), leftovers  # only the temporary build
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert TeacherCache(info["cache"]).meta["num_examples"] == 20000
