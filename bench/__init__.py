"""driftline benchmarks: ``python -m bench NAME [--quick]``.

Each benchmark measures its own baseline in the same run and prints, as its very last
line, one JSON object ``{"bench", "value", "unit", "baseline", "ratio", ...}``.
"""
