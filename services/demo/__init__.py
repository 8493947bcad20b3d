"""``driftline demo``: the whole loop on one machine, and what it is compared with.

Pure parts: :mod:`~services.demo.stream` (the streams), :mod:`~services.demo.baselines`
(in-process baselines), :mod:`~services.demo.analysis` (what the report says: curves,
summary, recovery) and :mod:`~services.demo.report` (the HTML report that draws it).
"""
