"""Logs in: read log files of every supported format into typed DuckDB tables."""
