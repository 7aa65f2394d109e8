"""Which session predicts for a bundle: the one place that picks TensorFlow or OpenVINO by backend.

Kept apart from :mod:`tagger.bundle` because the sessions subclass the
bundle: the bundle stays a plain reader of a card and its identity, and
this module, above both, imports the one the backend needs, and only then
(TensorFlow takes seconds to import; a cron run on OpenVINO never does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from tagger.bundle import Bundle, BundleError

if TYPE_CHECKING:
    from tagger.decode import Decoded
    from tagger.inference import Session


def load_session(bundle: Bundle) -> Session:
    """A session that predicts for ``bundle`` with its backend; what predicts already is returned as it is.

    ``tf``: :class:`tagger.model.TaggerSession` (imports TensorFlow);
    otherwise :class:`tagger.inference.InferenceSession`, which converts a
    card its builder cannot express from TensorFlow once (``trace_tensorflow``).
    """
    if hasattr(bundle, "predict_with_codes"):  # a session, or a stand-in for one
        return cast("Session", bundle)
    if bundle.backend == "tf":
        try:
            from tagger.model import TaggerSession
        except ImportError as exc:
            raise BundleError(str(exc)) from None
        return TaggerSession(bundle.path, bundle.backend)
    from tagger.inference import InferenceSession

    return InferenceSession(bundle.path, bundle.backend, trace=trace_tensorflow)


def predict_decoded(session: Session, photos: Sequence[Decoded]) -> tuple[np.ndarray, np.ndarray | None]:
    """Stage 3 for photos decoded (each with its pixels): one network pass; probabilities, and packed codes or None."""
    return session.predict_with_codes(np.stack([cast(np.ndarray, photo.pixels) for photo in photos]),
                                      np.stack([cast(np.ndarray, photo.camera) for photo in photos]))


def trace_tensorflow(bundle: Bundle) -> Any:
    """The bundle's network as a TensorFlow concrete function, for OpenVINO to convert."""
    from tagger.model import traced_model

    return traced_model(bundle).get_concrete_function()
