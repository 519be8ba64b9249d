"""Issue 34's generation target: texts a second of `--augment N` with the embedding-neighbour replacer (pkd.augment),
on a GLUE task's training split (default MRPC, every pair), with the fixed cost of the neighbour search apart, and
the peak RSS of the process. Trains nothing and runs no teacher pass; feeds docs/augment.md.

Usage: python bench/augment_speed.py [--data-dir ../shared/data/glue] [--task mrpc] [--copies 10] [--json]
       [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/glue", help="a glue_data directory")
    parser.add_argument("--task", default="mrpc")
    parser.add_argument("--teacher", default=None, help="checkpoint whose input embeddings give the neighbours "
                        "(default: all-MiniLM-L6-v2, the default teacher)")
    parser.add_argument("--copies", type=int, default=10, help="--augment N")
    parser.add_argument("--p", type=float, default=0.4, help="--augment-p")
    parser.add_argument("--k", type=int, default=15, help="--augment-k")
    parser.add_argument("--max-examples", type=int, default=None, help="the first N training examples only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--out", default=None, help="also write them to this JSON file")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModel

    from pkd import augment
    from pkd.config import AugmentConfig
    from pkd.data import load_split
    from pkd.models import load_tokenizer, quiet_transformers, resolve_model
    from pkd.tasks import get_task

    quiet_transformers()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    split = load_split(task, "train", args.data_dir, args.max_examples)[0]
    path = resolve_model(args.teacher)
    tokenizer = load_tokenizer(path)
    embeddings = AutoModel.from_pretrained(path, use_safetensors=True).get_input_embeddings().weight
    fields = augment.augmented_fields(task)
    texts = [ex.texts[f] for ex in split.examples for f in fields]
    estimate = augment.generation_seconds(len(split.examples), AugmentConfig(augment=args.copies, augment_p=args.p,
                                                                             augment_k=args.k), task, texts,
                                          embeddings.shape[1], len(tokenizer))
    start = time.perf_counter()
    words = {m.group() for t in texts for m in augment.WORD.finditer(t) if m.group().isalpha()}
    replacer = augment.EmbeddingNeighbours(embeddings, tokenizer, args.k, words)
    search = time.perf_counter() - start
    cfg = AugmentConfig(augment=args.copies, augment_p=args.p, augment_k=args.k)
    start = time.perf_counter()
    copies = augment.generate(split.examples, task, cfg, replacer, progress=False)
    seconds = time.perf_counter() - start
    generated = len(copies) * len(fields)
    changed = sum(c.texts != split.examples[i // args.copies].texts for i, c in enumerate(copies))
    result = {"task": task.name, "examples": len(split.examples), "copies": args.copies, "texts_generated": generated,
              "distinct_words": len(words), "query_words": replacer.queries,
              "vocabulary_entries": replacer.candidates_searched, "neighbour_search_seconds": round(search, 2),
              "generation_seconds": round(seconds, 2), "estimated_seconds": round(estimate, 1),
              "texts_per_second": round(generated / seconds),
              "texts_per_second_with_search": round(generated / (seconds + search)),
              "copies_changed": round(changed / max(len(copies), 1), 4),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "threads": torch.get_num_threads()}
    if args.out:
        from pkd.io import write_json

        write_json(args.out, result)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>30}  {value}")
        first = split.examples[0]
        print("\nexample:", " | ".join(first.texts))
        for copy in copies[:3]:
            print("   copy:", " | ".join(copy.texts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
