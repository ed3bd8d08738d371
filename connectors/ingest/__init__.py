"""Ways in: the HTTP gateway, the FHIR adapter, the batch importer."""
