"""The domain: events, records, identifiers, units, rules. No Kafka, no I/O."""
