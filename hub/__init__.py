"""Lienthong Hub: an event-driven integration hub for Vietnamese government agency systems."""

__version__ = "0.1.0"
