"""The validator: ``examples.raw`` -> ``examples.valid`` or ``examples.dead``.

``rules`` (the pure verdict on one message), ``specs`` (the live spec registry) and
``dedupe`` (the duplicate index) are the pure core; ``app`` (routing, the index, the
spec feed, the opt-in faust agent) and ``loop`` (consume, judge, produce, commit after the
acks: the default) are the edge, and ``__main__`` wires settings to it (``driftline run validator``,
``python -m services.validator``).
"""
