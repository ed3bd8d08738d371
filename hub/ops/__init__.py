"""Operator tools: status, dead-letter listing and replay, the live view."""
