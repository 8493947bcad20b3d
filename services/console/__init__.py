"""Output for people (rich tables, ``--json`` lists, progress bars), shared by the command
line (:mod:`services.cli`) and the demo (:mod:`services.demo`), below both."""
