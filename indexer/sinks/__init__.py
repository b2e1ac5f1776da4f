"""Streaming sinks: the indexer forwards stored events to other systems (docs/sinks.md)."""
