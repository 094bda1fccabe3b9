"""Sparkplug B (Eclipse Sparkplug 3.0) at the edge: decoding, the host application's
session rules, and what the agent publishes back (rebirth requests, STATE)."""
