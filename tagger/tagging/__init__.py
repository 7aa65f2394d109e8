"""``terc-tag tag``: a tagged copy of a folder, incrementally, on one machine or a Ray cluster.

This package owns the tagging run and nothing else:

- :mod:`~tagger.tagging.pipeline` plans a run (which photos are new or
  changed), holds OUTPUT's lock, and hands the batches to an engine
  (:class:`~tagger.tagging.pipeline.LocalEngine` here, or one passed in);
- :mod:`~tagger.tagging.stages` are the stages every engine runs, as plain
  functions over plain data: predict, write the copy's metadata, record;
- :mod:`~tagger.tagging.ray_engine` runs those stages as a Ray Data job;
  the pipeline never imports it, the command line passes it in;
- :mod:`~tagger.tagging.predictions` and :mod:`~tagger.tagging.report`
  are stage 5: ``predictions.csv``, the ``--review`` CSV, and the report.

The stages before (discover, decode) and the parts they share with other
commands (model sessions, metadata, state, outputs) live at the top of
:mod:`tagger`.
"""
