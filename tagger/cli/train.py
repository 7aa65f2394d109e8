"""``terc-tag train DIR --out models/NAME``."""

from __future__ import annotations

from pathlib import Path

import click

from tagger.cli.common import (
    class_map_option,
    code_bits_option,
    echo_line,
    folder_labels_option,
    follow_symlinks_option,
    labels_option,
    one_label_source,
    parse_vocabulary,
    progress_log,
    quiet_option,
)
from tagger.errors import EXIT_OK


def _positive_list(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    """A comma-separated list of positive numbers, such as 0.1,0.01,0.001."""
    try:
        numbers = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: give numbers like 0.01 or 0.1,0.01,0.001") from None
    if not numbers or not all(n > 0 for n in numbers):
        raise click.BadParameter(f"{value!r}: every value must be positive")
    return numbers


@click.command("train")
@click.argument("folder", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the new model bundle, e.g. models/mine.")
@labels_option
@class_map_option
@folder_labels_option
@click.option("--vocabulary", help="Tags to learn: comma-separated or a file, one per line "
                                   "(default: the 12 TERC tags, or the labels file's classes).")
@click.option("--weights", default="imagenet", show_default=True,
              help="Backbone start: 'imagenet' (downloads), 'none', or a local .npz/.h5 weights file.")
@click.option("--input-size", type=click.IntRange(32, 1024), default=224, show_default=True,
              help="Square input size in pixels.")
@click.option("--epochs", type=click.IntRange(1, 10000), default=30, show_default=True,
              help="Most fine-tune epochs; early stopping on validation loss usually ends sooner.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--c", "c_values", default="0.01,0.03,0.1,0.3,1", show_default=True, callback=_positive_list,
              help="Inverse L2 strength of the logistic head, or a comma-separated sweep; "
                   "judged on the validation photos plus the training photos' out-of-fold predictions.")
@click.option("--fine-tune-blocks", type=click.IntRange(0, 16), default=0, show_default=True,
              help="Then fine-tune this many of the last residual blocks with the head (Adam), counted back "
                   "across stages: 13 is every block of stages 2-4 (only the stem stays frozen).")
@click.option("--lr", "learning_rates", default="0.0001", show_default=True, callback=_positive_list,
              help="Fine-tune learning rate, or a comma-separated sweep (e.g. 0.1,0.01,0.001,0.0001); "
                   "the best validation loss wins.")
@click.option("--views", type=click.IntRange(1, 8), default=2, show_default=True,
              help="Dihedral views of each photo fit: 2 adds its mirror image; 4 and 8 add vertical flips "
                   "and quarter turns.")
@click.option("--balance/--no-balance", default=True, show_default=True,
              help="Weight each tag's positives and negatives equally.")
@click.option("--pooling", type=click.Choice(["gem", "average"]), default="gem", show_default=True,
              help="Pool the backbone's feature map by generalized mean (p=3) or by plain average.")
@click.option("--label-sets/--independent-tags", default=True, show_default=True,
              help="Weigh each photo's tags as a whole, toward the tag combinations seen in training, "
                   "or decide every tag on its own.")
@click.option("--refit/--no-refit", default=True, show_default=True,
              help="Once C is chosen, fit the head again on training + validation photos (not with "
                   "--fine-tune-blocks, which stops early on validation).")
@click.option("--sequence-gap", type=click.IntRange(0), default=100, show_default=True,
              help="Frames at most this far apart form one sequence, kept within one split.")
@click.option("--camera/--no-camera", default=False, show_default=True,
              help="Also read the camera's evidence from EXIF (exposure, ISO, focal length, f-number) as a second "
                   "input; photos without EXIF still get tags from their pixels.")
@click.option("--head", type=click.Choice(["auto", "sigmoid", "softmax"]), default="auto", show_default=True,
              help="sigmoid: independent tags; softmax: one class per image (the top class is written); auto: "
                   "softmax where every labelled image has exactly one class.")
@click.option("--backbone-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the frozen backbone here, shared by every bundle trained on it (e.g. models/backbones), "
                   "instead of inside the bundle (with --fine-tune-blocks the bundle keeps only its tuned blocks).")
@code_bits_option
@click.option("--seed", type=int, default=0, show_default=True)
@follow_symlinks_option
@quiet_option
def command(folder, out_dir, labels_file, class_map, folder_labels, vocabulary, weights, input_size, epochs, batch_size,
            c_values, fine_tune_blocks, learning_rates, views, balance, pooling, label_sets, refit, sequence_gap,
            camera, head, backbone_dir, code_bits, seed, follow_symlinks, quiet):
    """Train a model on the photos of DIR, using the tags in their metadata.

    Splits the photos 60/20/20 by photo sequence, fits a sigmoid head (a
    softmax head where every image has exactly one class) on
    cached, GeM-pooled ResNet-50 features (optionally fine-tuning the last
    blocks), weighs each photo's tags toward the combinations seen in training,
    refits the head on training + validation photos, calibrates per-tag
    thresholds on held-out predictions, measures the test split, and writes a
    model bundle (weights.npz + model.json), with the map to similarity codes
    for `terc-tag similar` fit on the same photos (codes.npz + codes.json).

    \b
    Examples:
      terc-tag train ./labelled --out models/mine --weights imagenet
      terc-tag train ./labelled --out models/mine --weights resnet50_conv1-conv4.npz \\
          --fine-tune-blocks 2 --lr 0.1,0.01,0.001,0.0001
      terc-tag train ./hirise/images --labels ./hirise/labels.txt --out models/hirise --sequence-gap 100000 \\
          --views 8 --backbone-dir models/backbones
      terc-tag train ./eurosat --folder-labels --out models/eurosat --input-size 128 --views 2 --sequence-gap 0
    """
    import tagger
    from tagger.labels import label_source
    from tagger.tagging.report import console as make_console
    from tagger.tagging.report import evaluation_table, overall_lines
    from tagger.train import TrainConfig, train

    one_label_source(labels_file, folder_labels)
    source = label_source(folder, labels_file, class_map, folder_labels, follow_symlinks)
    vocab = parse_vocabulary(vocabulary) or source.vocabulary or tagger.TERC_TAGS
    config = TrainConfig(folder, out_dir, vocabulary=vocab, labels=source.labels, labels_source=source.name,
                         weights=weights, input_size=input_size, epochs=epochs, batch_size=batch_size,
                         c_values=c_values, learning_rates=learning_rates,
                         fine_tune_blocks=fine_tune_blocks, views=views, balance=balance, pooling=pooling,
                         label_sets=label_sets, refit=refit, sequence_gap=sequence_gap,
                         camera=camera, head=head, backbone_dir=backbone_dir, code_bits=code_bits, seed=seed,
                         follow_symlinks=follow_symlinks)
    card = train(config, log=progress_log(quiet))
    if quiet:
        raise SystemExit(EXIT_OK)
    console = make_console()
    report = next(iter(card["metrics"]["test"].values()))  # threshold 0.5, or the top class of a softmax head
    console.print(evaluation_table(report))
    for line in overall_lines(report):
        console.print(line)
    echo_line(f"model bundle written to {out_dir} in {card['training']['seconds']:.0f} s")
    raise SystemExit(EXIT_OK)
