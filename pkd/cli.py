"""The `pkd` command line: a thin argparse layer over pkd.api."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Sequence

from pkd.errors import PkdError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other usage error
        self.exit(2, f"pkd: error: {message}\n")


def _train_options(p: argparse.ArgumentParser, epochs: int, lr: float) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs)
    g.add_argument("--batch-size", type=int, default=32, help="global batch size (default 32)")
    g.add_argument("--eval-batch-size", type=int, default=128)
    g.add_argument("--lr", type=float, default=lr)
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--warmup-ratio", type=float, default=0.1)
    g.add_argument("--max-grad-norm", type=float, default=1.0)
    g.add_argument("--max-seq-len", type=int, default=None, help="default 128; 512 for the RACE tasks")
    g.add_argument("--max-train-examples", type=int, default=None,
                   help="use only the first N training examples (RACE: N questions from a fixed sample of passages)")
    g.add_argument("--max-eval-examples", type=int, default=None,
                   help="score only the first N dev examples (per MNLI part; RACE as for training)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--save-every", type=int, default=0, help="checkpoint every N optimizer steps (and each epoch)")
    g.add_argument("--keep-checkpoints", type=int, default=2)
    g.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    g.add_argument("--grad-accum", type=int, default=1)
    g.add_argument("--data-dir", default=None,
                   help="glue_data directory, or for RACE a folder with train.jsonl.gz etc. (also found in its "
                        "race/ or ../race/); default: $PKD_DATA, else the Hub")
    g.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    g.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    g.add_argument("--trust-remote-code", action="store_true")
    g.add_argument("--quiet", action="store_true")


_TRAIN_KEYS = ("epochs", "batch_size", "eval_batch_size", "lr", "weight_decay", "warmup_ratio", "max_grad_norm",
               "max_seq_len", "max_train_examples", "max_eval_examples", "seed", "save_every", "keep_checkpoints",
               "precision", "grad_accum")


def _layers(text: str) -> list[int]:
    from pkd.losses import parse_layer_map

    return parse_layer_map(text)


def _distill_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, help="fine-tuned teacher: run directory or checkpoint")
    p.add_argument("--task", required=True)
    p.add_argument("--student-layers", type=int, required=True)
    p.add_argument("--alpha", type=float, default=0.7, help="weight of the KD term (default 0.7)")
    p.add_argument("--temperature", type=float, default=10.0, help="softmax temperature T (default 10)")
    p.add_argument("--beta", type=float, default=0.65,
                   help="weight of PT (default 0.65 = the paper's 500 at hidden size 768; see docs/method.md)")
    p.add_argument("--student-init", choices=["pretrained", "teacher"], default="pretrained",
                   help="copy layers from the teacher's pre-trained base (paper) or the fine-tuned teacher")
    p.add_argument("--cache-dir", default=None, help="teacher cache root (default: $PKD_CACHE or ~/.cache/pkd)")
    p.add_argument("--out", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pkd", description="Patient Knowledge Distillation for BERT-style encoders.")
    parser.add_argument("--version", action="version", version=f"pkd {__import__('pkd').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("finetune", help="fine-tune a teacher (or any encoder) on a task")
    p.add_argument("--task", required=True)
    p.add_argument("--model", default=None, help="checkpoint path or Hub name (default: all-MiniLM-L6-v2)")
    p.add_argument("--out", required=True)
    _train_options(p, epochs=3, lr=5e-5)

    p = sub.add_parser("distill", help="distill a shallower student from a fine-tuned teacher")
    _distill_options(p)
    p.add_argument("--method", default="pkd-skip", choices=["ft", "kd", "pkd-skip", "pkd-last", "pkd"])
    p.add_argument("--layer-map", type=_layers, default=None, help="explicit teacher layers, e.g. 2,4")
    p.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="match raw [CLS] states in PT instead of L2-normalised ones")
    p.add_argument("--init-layers", type=_layers, default=None,
                   help="which source layers the student starts from (default: the first M)")
    p.add_argument("--pt-projection", action="store_true",
                   help="learn a linear map when student and teacher hidden sizes differ")
    p.add_argument("--live-teacher", action="store_true", help="run the teacher every step instead of caching")
    _train_options(p, epochs=4, lr=5e-5)

    p = sub.add_parser("compare", help="FT, KD, PKD-Skip and PKD-Last over seeds, as one table")
    _distill_options(p)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", default="ft,kd,pkd-skip,pkd-last")
    p.add_argument("--teacher-score", type=float, default=None, help="skip re-scoring the teacher on dev")
    _train_options(p, epochs=4, lr=5e-5)

    p = sub.add_parser("cache", help="build the teacher-output cache for a task")
    p.add_argument("--teacher", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--layers", type=_layers, default=None, help="teacher layers to store (default: all)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--max-seq-len", type=int, default=None, help="default 128; 512 for the RACE tasks")
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--rebuild", action="store_true")

    for name, help_ in (("evaluate", "score a model on a labelled split"),
                        ("predict", "write a submission file (index, prediction)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("model", help="run directory or checkpoint")
        p.add_argument("--task", required=True)
        p.add_argument("--split", default="dev" if name == "evaluate" else "test")
        p.add_argument("--data-dir", default=None)
        p.add_argument("--max-seq-len", type=int, default=None, help="default: the run's own")
        p.add_argument("--batch-size", type=int, default=128)
        p.add_argument("--trust-remote-code", action="store_true")
        if name == "evaluate":
            p.add_argument("--json", action="store_true")
            p.add_argument("--max-examples", type=int, default=None,
                           help="score only the first N examples (RACE: N questions from a fixed sample of passages)")
        else:
            p.add_argument("--out", required=True, help="output TSV")

    p = sub.add_parser("export", help="a run as ONNX or PyTorch, fp32 or int8, checked against it",
                       description=__import__("pkd.deploy").deploy.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run directory or checkpoint (a sequence classifier or multiple-choice model)")
    p.add_argument("--out", required=True, help="the export directory")
    p.add_argument("--format", default="onnx", help="onnx (ONNX Runtime) or torch (default onnx)")
    p.add_argument("--quantize", default="none", help="none or int8 (dynamic: int8 weights; default none)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 11-20 (default 17)")
    p.add_argument("--optimize", action="store_true",
                   help="ONNX Runtime transformer fusions (attention, LayerNorm, GELU) before quantization")
    p.add_argument("--task", default=None, help="task of the parity batch (default: the run's)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--max-seq-len", type=int, default=None, help="of the parity batch (default: the run's)")
    p.add_argument("--evaluate", action="store_true",
                   help="also score the export on the dev split and record it in export.json (for pkd report)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")

    from pkd import bench, report

    p = sub.add_parser("bench", help="parameters, size, memory and speed of models, side by side",
                       description=bench.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(p)
    p = sub.add_parser("report", help="Markdown and HTML report with tables and plots over runs",
                       description=report.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_arguments(p)

    from pkd import sweep

    p = sub.add_parser("sweep", help="grid or random search over distillation hyperparameters",
                       description=sweep.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _distill_options(p)
    p.add_argument("--method", default="pkd-skip", choices=["ft", "kd", "pkd-skip", "pkd-last", "pkd"])
    p.add_argument("--grid", nargs="+", required=True, metavar="NAME=V1,V2",
                   help=f"values to try; NAME is one of {', '.join(sweep.PARAMS)}")
    p.add_argument("--random", type=int, default=None, metavar="N",
                   help="run N combinations drawn from the grid (seeded by --seed) instead of all of it")
    p.add_argument("--jobs", type=int, default=1, help="trials run at a time, each in its own process")
    _train_options(p, epochs=4, lr=5e-5)
    return parser


def run(args: argparse.Namespace) -> int:
    from pkd import api

    train = {k: getattr(args, k) for k in _TRAIN_KEYS if hasattr(args, k)}
    if args.command == "finetune":
        best = api.finetune(args.task, args.out, model=args.model, data_dir=args.data_dir, overwrite=args.overwrite,
                            resume=args.resume, trust_remote_code=args.trust_remote_code, quiet=args.quiet, **train)
        print(json.dumps({"best": best, "out": args.out}))
    elif args.command == "distill":
        best = api.distill(args.teacher, args.task, args.student_layers, args.out, method=args.method,
                           layer_map=args.layer_map, alpha=args.alpha, temperature=args.temperature, beta=args.beta,
                           normalize=args.normalize, student_init=args.student_init, init_layers=args.init_layers,
                           pt_projection=args.pt_projection, data_dir=args.data_dir, cache_dir=args.cache_dir,
                           live_teacher=args.live_teacher, overwrite=args.overwrite, resume=args.resume,
                           trust_remote_code=args.trust_remote_code, quiet=args.quiet, **train)
        print(json.dumps({"best": best, "out": args.out}))
    elif args.command == "compare":
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        api.compare(args.teacher, args.task, args.student_layers, args.out, seeds=args.seeds, methods=methods,
                    alpha=args.alpha, temperature=args.temperature, beta=args.beta, student_init=args.student_init,
                    data_dir=args.data_dir, cache_dir=args.cache_dir, teacher_score=args.teacher_score,
                    overwrite=args.overwrite, resume=args.resume, quiet=args.quiet, **train)
        print(open(os.path.join(args.out, "compare.md")).read(), end="")
    elif args.command == "cache":
        layers = args.layers
        if layers is None:
            from transformers import AutoConfig

            from pkd.models import resolve_model

            layers = list(range(1, AutoConfig.from_pretrained(resolve_model(args.teacher)).num_hidden_layers + 1))
        cache = api.build_cache(args.teacher, args.task, layers, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                max_seq_len=args.max_seq_len, max_train_examples=args.max_train_examples,
                                rebuild=args.rebuild)
        print(json.dumps({"cache": str(cache.path), "examples": len(cache), "layers": cache.layers}))
    elif args.command == "evaluate":
        metrics = api.evaluate(args.model, args.task, args.split, data_dir=args.data_dir,
                               max_seq_len=args.max_seq_len, batch_size=args.batch_size,
                               trust_remote_code=args.trust_remote_code, max_examples=args.max_examples)
        if args.json:
            print(json.dumps(metrics))
        else:
            for k, v in metrics.items():
                print(f"{k:>12}  {v:.2f}")
    elif args.command == "predict":
        for path in api.predict(args.model, args.task, args.out, args.split, data_dir=args.data_dir,
                                max_seq_len=args.max_seq_len, batch_size=args.batch_size,
                                trust_remote_code=args.trust_remote_code):
            print(path)
    elif args.command == "sweep":
        from pkd.sweep import sweep

        sweep(args.teacher, args.task, args.student_layers, args.out, args.grid, random_trials=args.random,
              method=args.method, alpha=args.alpha, temperature=args.temperature, beta=args.beta,
              student_init=args.student_init, data_dir=args.data_dir, cache_dir=args.cache_dir, jobs=args.jobs,
              overwrite=args.overwrite, resume=args.resume, trust_remote_code=args.trust_remote_code,
              quiet=args.quiet, **train)
        print(open(os.path.join(args.out, "results.md")).read(), end="")
    elif args.command == "export":
        record = api.export(args.run, args.out, format=args.format, quantize=args.quantize, opset=args.opset,
                            optimize=args.optimize, task=args.task, data_dir=args.data_dir,
                            max_seq_len=args.max_seq_len, evaluate_dev=args.evaluate, overwrite=args.overwrite)
        print(json.dumps({"out": args.out, "size_bytes": record["size_bytes"], "parity": record["parity"],
                          **({"dev": record["dev"]} if "dev" in record else {})}))
    elif args.command in ("bench", "report"):
        from pkd import bench, report

        print((bench if args.command == "bench" else report).run_cli(args), end="")
    return 0


def _rank0_prints():
    """Under `accelerate launch` every rank runs the command; only rank 0 prints its result."""
    from pkd import dist

    if dist.launched() and not dist.is_main():
        return contextlib.redirect_stdout(io.StringIO())
    return contextlib.nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()  # the load report of a fresh head is expected noise here
    transformers.logging.disable_progress_bar()
    try:
        args = build_parser().parse_args(argv)  # a type= converter (--layer-map) may raise a UsageError
        with _rank0_prints():
            return run(args)
    except PkdError as e:
        print(f"pkd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("pkd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
