"""The NDJSON export with its proof: ``actions.ndjson?proof=1``.

The same lines as the plain export, then the signed checkpoints and one
inclusion path per line (``useraudit.integrity.export``), so the account's
own auditor can check the file with ``useraudit verify-export FILE
--public-key K`` and nothing else.
"""

from __future__ import annotations

from useraudit.integrity.export import Proofs

from .ndjson import NdjsonWriter


class ProofNdjsonWriter(NdjsonWriter):
    def __init__(self, proofs: Proofs) -> None:
        self.proofs = proofs

    def document(self, doc: dict) -> dict:
        self.proofs.line(doc)
        return super().document(doc)

    def trailer(self) -> bytes:
        return self.proofs.trailer()
