"""Would an int8 backend do? NNCF post-training quantization of the default model, measured in one run.

    pip install nncf && python benchmarks/int8.py [--preset performance|mixed] [--keep-head-float]

Calibrates on the model card's training split of the shared ISS photos,
then compares on the held-out photos (validation and test splits, never seen
in calibration), against TensorFlow fp32: the share of tag decisions that
agree at the model's thresholds, the largest probability difference,
``evaluate``'s macro-F1 on the test split, and model-only photos/s (batch 32)
of OpenVINO fp32, bf16, int8 and int8 with bf16 for what stays float.
Issue 29's bar for a default: at least 99.5% of decisions and macro-F1
within 0.005 of TensorFlow's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tagger.cli.common import default_model
from tagger.decode import decode_photo
from tagger.labels import labels_from_metadata
from tagger.metrics import evaluate_predictions
from tagger.model import TaggerSession

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "iss-terc" / "images"


def photos_per_second(compiled, batch: np.ndarray, repeats: int = 6) -> float:
    compiled(batch)
    started = time.perf_counter()
    for _ in range(repeats):
        compiled(batch)
    return len(batch) * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("performance", "mixed"), default="performance")
    parser.add_argument("--keep-head-float", action="store_true", help="leave every MatMul (the heads) unquantized")
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    args = parser.parse_args()
    import nncf
    import openvino

    from tagger._tf import tf

    session = TaggerSession(default_model(), "tf")
    split = session.card["split"]
    held_out = split["validation"] + split["test"]

    def pixels(names):
        return np.stack([decode_photo((args.photos / n).read_bytes(), session.size) for n in names]).astype(np.float32)

    calibration, evaluation = pixels(split["train"]), pixels(held_out)
    traced = tf.function(lambda x: session.model(x, training=False),
                         input_signature=[tf.TensorSpec((None, *session.size[::-1], 3), tf.float32)])
    network = openvino.convert_model(traced.get_concrete_function())
    quantized = nncf.quantize(
        network, nncf.Dataset([calibration[i:i + 1] for i in range(len(calibration))]), subset_size=len(calibration),
        preset=nncf.QuantizationPreset.MIXED if args.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
        ignored_scope=nncf.IgnoredScope(types=["MatMul"]) if args.keep_head_float else None)

    reference = np.concatenate([session.predict(evaluation[i:i + 32]) for i in range(0, len(evaluation), 32)])
    thresholds = session.thresholds()
    test = [held_out.index(n) for n in split["test"]]
    labels, _ = labels_from_metadata(args.photos, [args.photos / n for n in split["test"]], session.vocabulary)
    y = np.array([[t in labels[args.photos / n] for t in session.vocabulary] for n in split["test"]])

    def macro_f1(p):
        return evaluate_predictions(y, p[test], thresholds, session.vocabulary)["overall"]["macro_f1"]

    print(f"{len(calibration)} calibration photos, {len(evaluation)} held out ({len(test)} in the test split)")
    print(f"{'backend':12s} {'photos/s':>9s} {'decisions agreeing':>19s} {'max |p - p_tf|':>15s} {'macro-F1':>9s}")
    print(f"{'tf':12s} {'':>9s} {'100%':>19s} {0:15.3f} {macro_f1(reference):9.3f}")
    core = openvino.Core()
    for name, model, hint in [("openvino", network, "f32"), ("bf16", network, "bf16"),
                              ("int8", quantized, "f32"), ("int8+bf16", quantized, "bf16")]:
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"})
        output = compiled.outputs[0]
        p = np.clip(np.concatenate([compiled(evaluation[i:i + 32])[output] for i in range(0, len(evaluation), 32)]),
                    0, 1)
        agree = np.mean((p >= thresholds) == (reference >= thresholds))
        print(f"{name:12s} {photos_per_second(compiled, evaluation[:32]):9.1f} {agree:19.2%} "
              f"{np.abs(p - reference).max():15.3f} {macro_f1(p):9.3f}")


if __name__ == "__main__":
    main()
