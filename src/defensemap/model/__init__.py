"""Pure typed domain objects; no I/O."""
