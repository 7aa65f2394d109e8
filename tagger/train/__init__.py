"""``terc-tag train``: fine-tune ResNet-50 on photos whose tags (or classes) are known.

The recipe, each step cheap enough for a 2-core machine:

1. Split 60/20/20 by photo sequence (``tagger.splits``).
2. Run the frozen backbone once per photo and cache its pooled features,
   for the photos fit under ``views`` dihedral views: by default the photo
   and its mirror image, which keeps the horizon and the cabin's "up"
   (flips and quarter turns beyond that lost in cross-validation).
3. Frozen phase: standardize the (GeM-pooled) features with the training
   statistics and solve a class-balanced, L2-regularized logistic head per tag
   exactly (``tagger.train.logistic``), once per strength ``C`` of the sweep; keep
   the ``C`` whose held-out predictions (validation photos, plus the
   training photos' out-of-fold predictions in 5 folds grouped by sequence)
   keep the most tags at or above their baseline accuracy, then the best
   mean of macro-F1 and exact match.  With ``label_sets`` the head ends in
   ``LabelSetMarginals`` over the tag combinations of the photos it was fit
   on, and the sweep scores its output.  With ``refit`` (the default) the
   head kept is fit once more at the chosen C on the training and
   validation photos together.
4. Optional fine-tune phase (``fine_tune_blocks`` > 0, no refit): unfreeze
   the last residual blocks (counted back across stages) and train them with
   the head by Adam, once per learning rate of the sweep, with early stopping
   on validation loss; keep it only if it lowers the validation loss of the
   frozen phase.
5. Calibrate a threshold per tag on the held-out predictions (validation,
   after fine-tuning), measure the saved bundle on the test split, and write
   the bundle with its model card.

Where every image has exactly one class (HiRISE, EuroSAT), step 3 fits one
softmax regression instead, and the sweep also picks how strongly rare
classes are weighed.  The parts, by name: ``features`` (the backbone's
start, photos, dihedral views), ``heads`` (the heads' exact fits),
``sweep`` (the frozen phase), ``fine_tune``, ``config`` (``TrainConfig``,
every setting, checked once), ``card`` (the model card written) and
``recipe`` (``train`` itself: the phases in order).  The photos and their
views are :mod:`tagger.photos`, shared with the code maps' fitting.
"""


from tagger.photos import VIEWS, read_photos
from tagger.train.config import TrainConfig, TrainError
from tagger.train.features import initial_weights, pretrained_feature_layer, with_camera
from tagger.train.heads import fit_head, head_input, head_output, standardize, tag_combinations
from tagger.train.recipe import train
from tagger.train.sweep import FrozenFeatures, HeadSweep, fit_frozen_head

__all__ = ["FrozenFeatures", "HeadSweep", "TrainConfig", "TrainError", "VIEWS", "fit_frozen_head", "fit_head",
           "head_input", "head_output", "initial_weights", "pretrained_feature_layer", "read_photos", "standardize",
           "tag_combinations", "train", "with_camera"]
