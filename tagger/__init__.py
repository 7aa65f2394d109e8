"""terc-tag: tag large photo archives with a trained multi-label classifier.

The package is a library first; ``tagger.cli`` is a thin click layer over it.
Data flows one way, one module per stage:

    discover -> decode -> model (predict) -> metadata / outputs -> report

Importing this package is cheap: TensorFlow is imported only by
``tagger.model`` and ``tagger.train`` (training and the ``tf`` reference
backend), OpenVINO only by ``tagger.inference`` when a photo needs tagging,
so ``terc-tag --help`` and a cron run that finds nothing new stay fast.
Importing any of its modules changes nothing global (environment, warning
filters, logging); the command line (``tagger.cli.main``) may.
"""

__version__ = "0.4.0"

#: The Windows on Earth vocabulary: the 12 tags TERC keeps in XMP and IPTC.
TERC_TAGS = (
    "Volcano",
    "Sunrise Sunset",
    "ISS Structure",
    "Stars",
    "Night",
    "Aurora",
    "Movie",
    "Day",
    "Moon",
    "Inside ISS",
    "Dock Undock",
    "Cupola",
)
