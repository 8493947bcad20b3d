"""Getting labelled examples and their stream configs into Kafka: data sources (pure), the
example producer and the stream-config publisher (edges)."""
