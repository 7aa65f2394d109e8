"""People's corrections: the review page, the order it shows photos in, and the corrections it keeps.

- :mod:`~tagger.review.correct` writes a person's tags into the copies and
  the state (``terc-tag correct`` and the page call the same function), so
  no later run undoes them;
- :mod:`~tagger.review.order` ranks the photos most in need of a look;
- :mod:`~tagger.review.app` is the local web page (``terc-tag review``).
"""
