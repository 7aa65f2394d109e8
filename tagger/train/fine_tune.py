"""The optional fine-tune phase: Adam on the last residual blocks and the head."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tagger._tf import keras


def weighted_bce(pos_weight: np.ndarray) -> Callable[[Any, Any], Any]:
    """Binary cross-entropy per tag, the positives weighted by ``pos_weight``."""
    w = keras.ops.convert_to_tensor(np.asarray(pos_weight, dtype="float32"))

    def loss(y_true: Any, y_pred: Any) -> Any:
        y_pred = keras.ops.clip(y_pred, 1e-7, 1 - 1e-7)
        terms = w * y_true * keras.ops.log(y_pred) + (1 - y_true) * keras.ops.log(1 - y_pred)
        return -keras.ops.mean(terms, axis=-1)

    return loss


def weighted_crossentropy(class_weight: np.ndarray) -> Callable[[Any, Any], Any]:
    """Categorical cross-entropy for a softmax head, each class weighted as ``fit_softmax`` weighs it."""
    w = keras.ops.convert_to_tensor(np.asarray(class_weight, dtype="float32"))

    def loss(y_true: Any, y_pred: Any) -> Any:
        return -keras.ops.sum(w * y_true * keras.ops.log(keras.ops.clip(y_pred, 1e-7, 1.0)), axis=-1)

    return loss


class _EpochLog(keras.callbacks.Callback):
    def __init__(self, log: Callable[[str], object], label: str, epochs: int) -> None:
        super().__init__()
        self.log, self.label, self.epochs = log, label, epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        accuracy = f", val_accuracy {logs['val_accuracy']:.4f}" if "val_accuracy" in logs else ""
        self.log(f"{self.label} epoch {epoch + 1}/{self.epochs}: loss {logs['loss']:.4f}, "
                 f"val_loss {logs['val_loss']:.4f}{accuracy}")


@dataclass
class FineTunePlan:
    """How the fine-tune phase trains: the sweep's learning rates and Adam's run, the loss's class weights."""

    learning_rates: Sequence[float]
    epochs: int
    batch_size: int
    seed: int = 0
    balance: float = 1.0
    single_label: bool = False

    def loss(self, y_train: np.ndarray) -> Callable[[Any, Any], Any]:
        """Class-balanced (``balance``) cross-entropy: softmax for one class per image, else per-tag binary."""
        positives = y_train.sum(axis=0)
        if self.single_label:
            return weighted_crossentropy((len(y_train) / (y_train.shape[1] * np.maximum(positives, 1))) ** self.balance)
        return weighted_bce(np.clip((len(y_train) - positives) / np.maximum(positives, 1), 1, 50) if self.balance
                            else np.ones(y_train.shape[1]))


def fine_tune_top(model: keras.Model, split_layer: str, train: tuple, val: tuple, plan: FineTunePlan,
                  log: Callable[[str], object]) -> dict:
    """Adam on the blocks after ``split_layer`` plus the head; keep the best rate, or the frozen head."""
    top = keras.Model(model.get_layer(split_layer).output, model.output)
    for layer in top.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # too few photos to re-estimate batch statistics
    loss = plan.loss(train[1])
    metrics = ["accuracy"] if plan.single_label else []  # logged per epoch; the choice stays on validation loss
    top.compile(loss=loss, metrics=metrics)
    start = top.get_weights()
    sweep = {"frozen head": float(top.evaluate(*val, batch_size=plan.batch_size, verbose=0, return_dict=True)["loss"])}
    best_lr, best_weights = None, start
    for lr in plan.learning_rates:
        top.set_weights(start)
        keras.utils.set_random_seed(plan.seed)
        top.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=metrics)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
        history = top.fit(*train, validation_data=val, epochs=plan.epochs, batch_size=plan.batch_size, verbose=0,
                          shuffle=True, callbacks=[stop, _EpochLog(log, f"fine-tune lr={lr:g}", plan.epochs)])
        sweep[f"{lr:g}"] = float(np.nanmin(history.history["val_loss"]))
        log(f"fine-tune learning rate {lr:g}: best validation loss {sweep[f'{lr:g}']:.4f}")
        if sweep[f"{lr:g}"] < min(v for k, v in sweep.items() if k != f"{lr:g}"):
            best_lr, best_weights = lr, top.get_weights()
    top.set_weights(best_weights)
    return {"blocks_after": split_layer, "validation_loss": sweep, "learning_rate": best_lr,
            "kept": best_lr is not None}
