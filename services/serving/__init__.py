"""Serving: hot-swapped model versions over HTTP (Open Inference Protocol) and Kafka."""
