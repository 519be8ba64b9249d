"""What opening a teacher cache costs: a 100k-example cache, as pkd builds it for a 6-layer MiniLM teacher
(hidden 384) and a 3-layer PKD-Skip student (layers 2 and 4: cls [100000, 2, 384] fp16, 154 MB).

Writes the cache once under DIR (default /tmp/pkd-cache-open), then times TeacherCache(path) 5 times (the files
in the page cache, as after the first open) and prints the median; with pkd's `verify` option, also the full
check (`pkd cache --verify`). Usage: python bench/cache_open.py [DIR] [EXAMPLES]
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time
from pathlib import Path

import numpy as np

from pkd.cache import TeacherCache, sha256_of


def build(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    path.mkdir(parents=True, exist_ok=True)
    arrays = {"logits": rng.normal(size=(n, 2)).astype(np.float16),
              "cls": rng.normal(size=(n, 2, 384)).astype(np.float16)}
    for name, arr in arrays.items():
        np.save(path / f"{name}.npy", arr)
    files = {name: path / f"{name}.npy" for name in arrays}
    (path / "meta.json").write_text(json.dumps({
        "version": 2, "layers": [2, 4], "num_examples": n, "max_seq_len": 64, "data": "synthetic", "shards": 1,
        "dtype": {k: "float16" for k in files}, "sha256": {k: sha256_of(f) for k, f in files.items()},
        "bytes": {k: f.stat().st_size for k, f in files.items()}}))


def timed(make, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        make()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", default="/tmp/pkd-cache-open", help="where the synthetic cache is written")
    parser.add_argument("examples", nargs="?", type=int, default=100_000, help="examples in the cache")
    args = parser.parse_args()
    root, n = Path(args.dir), args.examples
    path = root / f"n{n}"
    if not (path / "meta.json").is_file():
        build(path, n)
    size = sum(p.stat().st_size for p in path.glob("*.npy")) / 1e6
    print(f"cache: {n} examples, {size:.0f} MB")
    print(f"open: {1000 * timed(lambda: TeacherCache(path)):.1f} ms (median of 5)")
    if "verify" in inspect.signature(TeacherCache).parameters:
        print(f"open with verify=True: {1000 * timed(lambda: TeacherCache(path, verify=True)):.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
