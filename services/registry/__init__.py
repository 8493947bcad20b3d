"""The model registry: a library that owns its tables.

Other services use :mod:`services.registry.client` and never touch the tables.
"""
