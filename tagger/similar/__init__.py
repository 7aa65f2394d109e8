"""Similar photos by compact learned codes: fitting the code map and searching an archive's codes.

- :mod:`~tagger.similar.codes` fits a bundle's map from features to binary
  codes (``terc-tag fit-codes``, and ``train`` with codes) and measures how
  well they retrieve;
- :mod:`~tagger.similar.index` searches a tagged OUTPUT's codes
  (``terc-tag similar``); the model session computes the codes while tagging,
  and :mod:`tagger.hamming` (below every part that handles codes) packs them.
"""
