"""The learner: ``examples.valid`` -> online model, prequential metrics and drift events.

The pure core (no Kafka, no faust, no database): ``pipeline`` (River pipeline from a
:class:`~schemas.streams.ModelSpec` through an allow-list), ``prequential`` (test-then-train
metrics), ``drift`` (concept and data drift, debounced), ``core`` (:class:`StreamLearner`,
one stream's whole state, picklable for checkpoints) and ``quality`` (detection delays and
false-alarm rates for tests and benchmarks). The edge (``app``) adds offsets, event times,
de-duplication, checkpoints and the registry.
"""
