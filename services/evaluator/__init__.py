"""The live evaluator: scores what is served, promotes challengers, rolls back regressions.

The pure core (no Kafka, no database): ``scoring`` (live metrics per stream, version and
role), ``decision`` (the sequential promotion test and the rollback rule), ``join``
(shadow pairs waiting for their labels) and ``state`` (the whole picklable state and
what a batch of labelled examples does to it). The edge (``app``) adds the consumers,
the model subscriber, the registry's compare-and-set moves and checkpoints;
``__main__`` wires settings to it (``driftline run evaluator``,
``python -m services.evaluator``).
"""
