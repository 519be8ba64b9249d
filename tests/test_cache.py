import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import varied_lengths
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pkd.cache import LiveTeacher, TeacherCache, ensure_cache, teacher_forward
from pkd.data import load_split
from pkd.encoding import EncodedSplit, make_collator
from pkd.errors import DataError
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


def test_a_logits_only_request_is_served_by_a_cache_of_any_pooling(teacher_and_data, tmp_path):
    model, tok, data = teacher_and_data
    mean = ensure_cache(model, tok, data, 24, [1, 2], tmp_path, pooling="mean")
    for pooling in ("cls", "mean", None):  # KD, or PKD at beta 0, asks for logits only: no second teacher pass
        assert ensure_cache(model, tok, data, 24, [], tmp_path, pooling=pooling).path == mean.path
    assert len(list(tmp_path.iterdir())) == 1
    # PT targets in the other pooling are other numbers: a cache of their own
    assert ensure_cache(model, tok, data, 24, [1], tmp_path, pooling="cls").path != mean.path
    alone = ensure_cache(model, tok, data, 24, [], tmp_path / "kd", pooling="mean")
    assert alone.pooling is None and ensure_cache(model, tok, data, 24, [], tmp_path / "kd").path == alone.path


def test_corrupted_cache_is_refused(teacher_and_data, tmp_path):
    """A file of another size is refused on open; a changed byte by `pkd cache --verify` (and verify=True)."""
    model, tok, data = teacher_and_data
    cache = ensure_cache(model, tok, data, 24, [1], tmp_path)
    good = (cache.path / "cls.npy").read_bytes()
    (cache.path / "cls.npy").write_bytes(good[:-4])
    with pytest.raises(DataError, match="checksum mismatch"):
        TeacherCache(cache.path)
    raw = bytearray(good)
    raw[-3] ^= 0xFF
    (cache.path / "cls.npy").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="checksum mismatch"):
        TeacherCache(cache.path, verify=True)
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


def test_cache_files_have_normal_modes(teacher_and_data, tmp_path):
    model, tok, data = teacher_and_data
    cache = ensure_cache(model, tok, data, 24, [1], tmp_path)
    mask = os.umask(0)
    os.umask(mask)
    for p in [cache.path, *cache.path.iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == (0o777 if p.is_dir() else 0o666) & ~mask, p.name


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_cache_key_covers_tokenizer_settings_and_config_only_changes(tiny_teacher, glue_dir, tmp_path):
    """Copies of the teacher differing only in a tokenizer setting or a config value (identical weights) get
    caches of their own; an identical copy at another path finds the same cache."""
    def key(teacher_dir):
        model = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
        tok = AutoTokenizer.from_pretrained(teacher_dir)
        data = EncodedSplit(load_split(SST2, "train", glue_dir, 32)[0], tok, 24)
        return ensure_cache(model, tok, data, 24, [1], tmp_path / "cache").path.name

    base = key(tiny_teacher)
    variants = {"same": {}, "truncation_side": {"tokenizer_config.json": {"truncation_side": "left"}},
                "padding_side": {"tokenizer_config.json": {"padding_side": "left"}},
                "model_max_length": {"tokenizer_config.json": {"model_max_length": 16}},
                "layer_norm_eps": {"config.json": {"layer_norm_eps": 1e-3}},
                "hidden_act": {"config.json": {"hidden_act": "relu"}}}
    keys = {}
    for name, edits in variants.items():
        copy = Path(shutil.copytree(tiny_teacher, tmp_path / name, ignore=shutil.ignore_patterns("checkpoints")))
        for file, changes in edits.items():
            _edit_json(copy / file, **changes)
        keys[name] = key(copy)
    assert keys.pop("same") == base  # the path of the teacher is not part of the key
    assert len(set(keys.values()) | {base}) == len(keys) + 1, keys  # every change gives another key


def _cached_and_live(cache, model, tok, data, layers):
    batch = make_collator(tok)(list(data))
    return cache.outputs(batch, layers), LiveTeacher(model).outputs(batch, layers)


def test_hidden_states_beyond_fp16_are_stored_in_float32(teacher_and_data, tmp_path):
    """A teacher whose layer-1 [CLS] states exceed 65504: fp16 would store inf (and distillation would fail later
    with a non-finite loss); that array is kept in float32 instead, the logits stay fp16."""
    model, tok, data = teacher_and_data
    with torch.no_grad():
        model.bert.encoder.layer[0].output.LayerNorm.weight.mul_(1e5)
    cache = ensure_cache(model, tok, data, 24, [1, 3], tmp_path, batch_size=64)
    assert np.isfinite(cache.cls).all() and np.abs(cache.cls[:, 0]).max() > 65504
    assert cache.meta["dtype"] == {"logits": "float16", "cls": "float32"}
    (logits, cls), (live_logits, live_cls) = _cached_and_live(cache, model, tok, data, [1, 3])
    torch.testing.assert_close(cls, live_cls, atol=0, rtol=1e-5)
    torch.testing.assert_close(logits, live_logits, atol=2e-3, rtol=2e-3)


def test_overflow_part_way_through_a_build_widens_what_was_written(teacher_and_data, tmp_path, monkeypatch):
    """From the third batch on, the teacher's [CLS] states are 1e5 times larger: the rows written before are
    copied into the float32 array, the rest stored exactly (whatever order the build runs the examples in)."""
    import pkd.cache

    model, tok, data = teacher_and_data
    real, calls = pkd.cache.teacher_forward, {"n": 0}
    with torch.no_grad():
        ref = real(model.eval(), make_collator(tok)(list(data)), [2])[1]

    def large_from_batch_3(teacher, batch, layers, pooling):
        calls["n"] += 1
        logits, cls = real(teacher, batch, layers, pooling)
        return logits, cls * (1e5 if calls["n"] >= 3 else 1.0)

    monkeypatch.setattr(pkd.cache, "teacher_forward", large_from_batch_3)
    cache = ensure_cache(model, tok, data, 24, [2], tmp_path / "wide", batch_size=16)
    assert calls["n"] == len(data) // 16 and cache.cls.dtype == np.float32 and np.isfinite(cache.cls).all()
    cls = torch.from_numpy(np.array(cache.cls, dtype=np.float32))
    small = [i for i in range(len(data)) if cls[i].abs().max() < 1e3]
    assert len(small) == 32  # the two fp16 batches, copied over as they were
    for i in range(len(data)):
        if i in small:
            torch.testing.assert_close(cls[i], ref[i], atol=2e-3, rtol=2e-3)  # fp16
        else:
            torch.testing.assert_close(cls[i], ref[i] * 1e5, atol=1.0, rtol=1e-4)  # float32, up to batching


def test_a_teacher_with_non_finite_outputs_is_refused(teacher_and_data, tmp_path):
    model, tok, data = teacher_and_data
    with torch.no_grad():
        model.classifier.bias.fill_(float("inf"))
    with pytest.raises(DataError, match=r"teacher's outputs are not finite for example \d+ of the training split"):
        ensure_cache(model, tok, data, 24, [1], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_build_in_length_order_stores_the_rows_of_an_in_order_build(teacher_and_data, tmp_path):
    """The build runs the examples longest first, in batches of similar length; every row must still hold its own
    example's outputs, as the plain in-order build (the same batch size, file order) gives them."""
    model, tok, _ = teacher_and_data
    data = EncodedSplit(varied_lengths(), tok, 24)
    lengths = [len(data[i]["input_ids"]) for i in range(len(data))]
    assert len(set(lengths)) > 10 and lengths != sorted(lengths, reverse=True)  # not already in length order
    cache = ensure_cache(model, tok, data, 24, [1, 3], tmp_path, batch_size=16)
    in_order = torch.utils.data.DataLoader(data, batch_size=16, shuffle=False, collate_fn=make_collator(tok))
    with torch.no_grad():
        outputs = [teacher_forward(model, batch, [1, 3]) for batch in in_order]
    logits = torch.cat([lg for lg, _ in outputs]).half().numpy()
    cls = torch.cat([c for _, c in outputs]).half().numpy()
    # fp16 storage of fp32 outputs that may differ in their last bits with the padding: equal, or one fp16 step
    np.testing.assert_allclose(cache.logits, logits, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(cache.cls, cls, rtol=2e-3, atol=2e-3)


# `pkd cache` in a process that (1) waits until $PKD_TEST_DIR holds N ready-* files, so that the processes started
# together call ensure_cache together, and (2) logs every build to builds-<pid> and makes it last 3 s, longer than
# the others need to reach theirs.
TOGETHER = """
import os, sys, time
from pathlib import Path
import pkd.api, pkd.cache
from pkd.cli import main

shared, n = Path(os.environ["PKD_TEST_DIR"]), int(os.environ["PKD_TEST_N"])
real_ensure, real_shard = pkd.api.ensure_cache, pkd.cache._write_shard

def together(*args, **kwargs):
    (shared / f"ready-{os.getpid()}").touch()
    while len(list(shared.glob("ready-*"))) < n:
        time.sleep(0.01)
    return real_ensure(*args, **kwargs)

def slow_build(*args, **kwargs):
    (shared / f"builds-{os.getpid()}").touch()
    time.sleep(3)
    return real_shard(*args, **kwargs)

pkd.api.ensure_cache, pkd.cache._write_shard = together, slow_build
sys.exit(main(sys.argv[1:]))
"""


def cache_together(teacher: Path, glue_dir: Path, tmp_path: Path, *options: str) -> list[dict]:
    """Two `pkd cache` processes (TOGETHER) for one cache under tmp_path/cache, started at the same moment; checks
    that both succeeded and that the teacher ran once, and returns what each printed."""
    shared, cache_dir = tmp_path / "shared", tmp_path / "cache"
    shared.mkdir()
    cmd = [sys.executable, "-c", TOGETHER, "cache", "--teacher", str(teacher), "--task", "sst2",
           "--data-dir", str(glue_dir), "--cache-dir", str(cache_dir), "--max-seq-len", "24", "--layers", "1",
           *options]
    env = {**os.environ, "PKD_TEST_DIR": str(shared), "PKD_TEST_N": "2"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert len(list(shared.glob("builds-*"))) == 1  # the teacher ran once
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in results]


def test_processes_started_together_build_a_cache_once(tiny_teacher, glue_dir, tmp_path):
    """Two `pkd cache` runs for the same cache at the same moment: one builds it, the other waits and opens it."""
    cache_dir = tmp_path / "cache"
    paths = {printed["cache"] for printed in cache_together(tiny_teacher, glue_dir, tmp_path)}
    assert len(paths) == 1 and [p.name for p in cache_dir.iterdir()] == [Path(*paths).name]  # nothing else left


def test_opening_a_cache_checks_sizes_and_verify_checks_every_byte(tiny_teacher, glue_dir, tmp_path, monkeypatch,
                                                                      capsys):
    """Opening reads no file through: a cache of millions of examples opens at once (docs/performance.md)."""
    import pkd.cache
    from pkd.cli import main

    args = ["cache", "--teacher", str(tiny_teacher), "--task", "sst2", "--data-dir", str(glue_dir), "--cache-dir",
            str(tmp_path), "--max-seq-len", "24", "--layers", "1"]
    assert main(args) == 0
    path = Path(json.loads(capsys.readouterr().out)["cache"])
    meta = json.loads((path / "meta.json").read_text())
    assert meta["bytes"] == {n: (path / f"{n}.npy").stat().st_size for n in ("logits", "cls")}
    real = pkd.cache.sha256_of

    def no_hashing(file):
        raise AssertionError(f"{file} was hashed on open")

    monkeypatch.setattr(pkd.cache, "sha256_of", no_hashing)
    assert len(TeacherCache(path)) == meta["num_examples"]
    monkeypatch.setattr(pkd.cache, "sha256_of", real)
    assert main([*args, "--verify"]) == 0 and json.loads(capsys.readouterr().out)["verified"] is True
    arr = np.load(path / "logits.npy", mmap_mode="r+")
    arr[3, 0] += 1  # the same size, another value
    arr.flush()
    del arr
    assert main([*args, "--verify"]) == 2
    *notes, error = capsys.readouterr().err.splitlines()  # notes: what defaults chose, before any work
    assert error.startswith(f"pkd: error: {path / 'logits.npy'}: checksum mismatch") and "error" not in str(notes)


def mapped_kb(root: Path) -> int:
    """Resident kB of this process's mappings of files under `root` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5].startswith(str(root))
        elif inside and fields and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_the_cache_is_written_and_read_without_mapping_its_pages(tiny_teacher, tmp_path, monkeypatch):
    # Issue 35, item 7: written through np.memmap, every cache page the build wrote stayed in its resident set
    # (a build's peak RSS grew by the whole cache), and an epoch of batches mapped it all again.
    import pkd.cache

    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    data = EncodedSplit(varied_lengths(2000), tok, 24)
    root = tmp_path.resolve()
    during, real = [], pkd.cache.teacher_forward

    def forward(*args, **kwargs):
        during.append(mapped_kb(root))
        return real(*args, **kwargs)

    monkeypatch.setattr(pkd.cache, "teacher_forward", forward)
    cache = ensure_cache(model, tok, data, 24, [1, 2], root, batch_size=64)
    cls_kb = (cache.path / "cls.npy").stat().st_size // 1024
    assert cls_kb >= 200 and len(during) == 32 and max(during) <= 8
    collate, rows = make_collator(tok), np.random.default_rng(0).permutation(len(data))
    for start in range(0, len(data), 250):
        batch = collate([data[int(i)] for i in rows[start:start + 250]])
        logits, cls = cache.outputs(batch, [2])
        assert cls.shape == (len(batch["idx"]), 1, model.config.hidden_size)
    assert mapped_kb(root) <= 8
    # what was read is what was written: the whole arrays (memory-mapped) against a batch read by rows
    batch = collate([data[i] for i in (7, 1999, 0)])
    np.testing.assert_array_equal(cache.outputs(batch, [1, 2])[1].numpy(),
                                  np.asarray(cache.cls[[7, 1999, 0]], np.float32))
