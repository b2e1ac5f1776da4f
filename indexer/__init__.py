"""Shipping: the durable spool, enrichment, the bulk indexer and its dead-letter store.

Importing this package is cheap (the host app imports the spool writer);
the indexer's heavier pieces load from their own modules.
"""
