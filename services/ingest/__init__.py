"""Getting labelled examples into Kafka: data sources (pure) and the producer (edge)."""
