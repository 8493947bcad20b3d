"""The trainer: drift-triggered batch retraining with a champion/challenger gate.

``window`` (pure: rows, selection, split, lineage), ``train`` (pure: scikit-learn
candidates and the search), ``gate`` (pure: scoring and the promotion decision),
``replay`` (reads windows through the common Kafka client), ``runner`` (one run, with
the registry), ``app`` (the faust edge) and ``settings``.
"""
