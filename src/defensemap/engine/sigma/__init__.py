"""Sigma rules over local logs: our DuckDB SQL backend for pySigma, table pipelines, rule
sets and the one-pass-per-table runner."""
