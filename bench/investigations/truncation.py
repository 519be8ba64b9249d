"""What fraction of each task's training inputs does a max_seq_len cut? (one of issue 16's candidates)

Tokenizes every training example with the default teacher's tokenizer, untruncated, and prints the share of
examples longer than each limit and the median length. Usage: python bench/investigations/truncation.py [DATA_DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from pkd.data import load_split
from pkd.models import load_tokenizer, resolve_model
from pkd.tasks import get_task

LIMITS = (64, 128, 256)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data_dir", nargs="?", default="../shared/data/glue", help="a glue_data directory")
    data = p.parse_args().data_dir
    tok = load_tokenizer(resolve_model(None))
    print("| task | examples | median tokens | " + " | ".join(f"> {n}" for n in LIMITS) + " |")
    print("|---|---|---|" + "---|" * len(LIMITS))
    for name in ("sst2", "mrpc", "rte", "stsb"):
        examples = load_split(get_task(name), "train", data)[0].examples
        columns = list(zip(*(e.texts for e in examples), strict=True))
        lengths = np.array([len(ids) for ids in tok(*columns)["input_ids"]])
        shares = " | ".join(f"{100 * (lengths > n).mean():.1f}%" for n in LIMITS)
        print(f"| {name} | {len(lengths)} | {int(np.median(lengths))} | {shares} |")


if __name__ == "__main__":
    main()
