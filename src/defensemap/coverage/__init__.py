"""Threat-informed coverage: scoring model, computation, gaps and next steps."""
