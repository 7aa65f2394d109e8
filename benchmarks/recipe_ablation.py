"""What each ingredient of the training recipe gains, measured in one run.

Trains the default recipe and variants that drop or add one ingredient, on the
same sequence-grouped split, and prints validation and test figures for each.
Choose ingredients by the validation columns; the test columns are the report.
A variant that refits its head on the validation photos has no validation
figures ("-"): its gain shows on test, and in ``head_cv.py --train-folds``.

    python benchmarks/recipe_ablation.py ../shared/data/iss-terc/images \
        --weights ../shared/weights/resnet50_imagenet_msra_conv1-conv4.npz
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tagger.train import TrainConfig, train

INDEPENDENT_AVERAGE = dict(pooling="average", label_sets=False, refit=False, views=1)
VARIANTS = {
    "linear probe (average pooling, one C=1, unbalanced)": dict(c_values=(1.0,), balance=False, **INDEPENDENT_AVERAGE),
    "+ class balance": dict(c_values=(1.0,), balance=True, **INDEPENDENT_AVERAGE),
    "+ C sweep": dict(**INDEPENDENT_AVERAGE),
    "+ GeM pooling": dict(label_sets=False, refit=False, views=1),
    "+ label sets": dict(refit=False, views=1),
    "+ refit on training + validation": dict(views=1),
    "+ mirror view (default recipe)": dict(),
    "+ 4 dihedral views (alternative)": dict(views=4),
    "+ fine-tune last 2 blocks, lr sweep (alternative)": dict(views=1, fine_tune_blocks=2,
                                                               learning_rates=(1e-3, 1e-4), epochs=15),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--only", nargs="*", help="run only variants whose name contains one of these words")
    args = parser.parse_args()
    rows = []
    for name, options in VARIANTS.items():
        if args.only and not any(word in name for word in args.only):
            continue
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            card = train(TrainConfig(args.images, Path(out) / "model", weights=args.weights, **options),
                         log=lambda message: None)
        seconds = time.perf_counter() - started
        m = card["metrics"]
        figures = [m[s][t]["overall"] if s in m else None for s in ("validation", "test")
                   for t in ("threshold_0.5", "calibrated")]
        rows.append((name, seconds, figures, m["test"]["threshold_0.5"]["overall"]["tags_at_or_above_baseline"]))
        print(f"{name}: {seconds:.0f} s", flush=True)
    print("\n| variant | val macro-F1 | val exact | val macro-F1 (cal.) | test macro-F1 | test exact "
          "| test macro-F1 (cal.) | test exact (cal.) | tags >= baseline | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, seconds, (v5, vc, t5, tc), beats in rows:
        figures = (v5["macro_f1"], v5["exact_match"], vc["macro_f1"]) if v5 else ("-",) * 3
        figures += (t5["macro_f1"], t5["exact_match"], tc["macro_f1"], tc["exact_match"])
        print(f"| {name} | " + " | ".join(v if v == "-" else f"{v:.3f}" for v in figures)
              + f" | {beats}/12 | {seconds:.0f} |")


if __name__ == "__main__":
    main()
