"""The false-verdict rate of pkd.stats.paired_difference: two methods drawn from one distribution, called
"better" or "worse" how often (nominal 5%)? Prints docs/method.md's table; tests/test_stats.py runs a smaller one.

Usage: .venv/bin/python bench/verdict_calibration.py [--trials 1500]
"""

from __future__ import annotations

import argparse

from pkd.stats import false_verdict_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1500, help="trials per cell")
    parser.add_argument("--examples", type=int, default=277, help="dev examples (RTE's 277 by default)")
    args = parser.parse_args()
    print(f"| run-to-run spread ({args.trials} trials, n = {args.examples}) | 2 seeds | 3 seeds | 5 seeds |")
    print("|---|---|---|---|")
    for label, sd in (("none beyond each run's per-example noise", 0.0), ("a seed effect (sd 0.3, logit scale)", 0.3)):
        rates = [false_verdict_rate(s, sd, trials=args.trials, examples=args.examples, seed=s) for s in (2, 3, 5)]
        print(f"| {label} | " + " | ".join(f"{100 * r:.1f}%" for r in rates) + " |")


if __name__ == "__main__":
    main()
