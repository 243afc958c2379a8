"""Taskcluster actions of the pipeline (registered by `translations_taskgraph.register`)."""
