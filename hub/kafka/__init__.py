"""Kafka administration and the local development broker."""
