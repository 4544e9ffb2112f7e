"""The web UI, JSON API and static site: the same documents as the CLI, as pages."""
