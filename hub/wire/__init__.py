"""The wire format: Avro single-object encoding, schema checks, the event catalogue."""
