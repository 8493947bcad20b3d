"""The validator: ``examples.raw`` -> ``examples.valid`` or ``examples.dead``.

``rules`` (the pure verdict on one message), ``specs`` (the live spec registry) and
``dedupe`` (the duplicate index) are the pure core; ``app`` is the faust edge and
``__main__`` wires settings to it (``driftline run validator``,
``python -m services.validator``).
"""
