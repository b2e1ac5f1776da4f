"""The NDJSON export: one stored event per line, as its ECS document.

Each line is the full stored document, nested the way ECS tools expect
(``{"user": {"name": ...}}``, see :func:`useraudit.schema.nest`), encoded
as compact UTF-8 JSON and ended by ``\\n``; nothing else is in the file,
so ``jq``, Filebeat, ``opensearch-py``'s bulk helpers or a
``for line in f: json.loads(line)`` read it as it is.

:class:`NdjsonWriter` is the one place that turns documents into lines:
a variant that adds to the file (a proof per line, a trailer after the
last) subclasses it and overrides :meth:`~NdjsonWriter.document` or
:meth:`~NdjsonWriter.trailer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import orjson

from useraudit.schema import nest

NDJSON_MIME = "application/x-ndjson"
CHUNK_BYTES = 256 * 1024


class NdjsonWriter:
    """Documents in, NDJSON chunks out."""

    def document(self, doc: dict) -> dict:
        """The JSON object written for one stored (flat) document."""
        return nest(doc)

    def trailer(self) -> bytes:
        """Bytes written after the last document (none: plain NDJSON)."""
        return b""

    def chunks(self, docs: Iterable[dict]) -> Iterator[bytes]:
        """The file as chunks of about 256 KiB."""
        parts: list[bytes] = []
        size = 0
        dumps, document = orjson.dumps, self.document
        for doc in docs:
            line = dumps(document(doc), option=orjson.OPT_APPEND_NEWLINE)
            parts.append(line)
            size += len(line)
            if size >= CHUNK_BYTES:
                yield b"".join(parts)
                parts, size = [], 0
        parts.append(self.trailer())
        yield b"".join(parts)
