"""Runs detections (KQL and Sigma) over local logs in DuckDB."""
