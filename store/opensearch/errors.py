"""OpenSearch's failures as store errors that say what to do about them."""

from __future__ import annotations

from opensearchpy import exceptions as os_exc

from ..base import StoreError, StoreRefused, StoreUnavailable


def store_error(url: str, exc: os_exc.TransportError, doing: str) -> StoreError:
    """The store error for a failed request (``doing``: "the search", "the bulk request"...).

    * unreachable, overloaded (429) or shards not started (5xx, e.g. an index
      created a moment ago) → :class:`StoreUnavailable`: retry, or "try again";
    * wrong or missing credentials (401), a missing permission (403), or a
      certificate the CA bundle does not vouch for → :class:`StoreRefused`,
      saying what to fix;
    * any other refusal → :class:`StoreError`.
    """
    if isinstance(exc, os_exc.ConnectionError):  # timeouts and TLS failures too
        text = str(exc)
        if isinstance(exc, os_exc.SSLError) or "SSL" in text:
            if "CERTIFICATE_VERIFY_FAILED" in text:
                return StoreRefused(
                    f"the TLS certificate of OpenSearch at {url} is not trusted "
                    f"({_ssl_reason(text)}): give the CA that signed it as "
                    "?ca_certs=/path/ca.pem in the store URL, or ?verify_certs=false to skip "
                    "the check"
                )
            return StoreRefused(
                f"TLS with OpenSearch at {url} failed ({_ssl_reason(text)}): is it serving "
                "HTTPS on that port (or plain HTTP: use an http:// URL)?"
            )
        return StoreUnavailable(f"OpenSearch at {url} unreachable: {exc}")
    status = exc.status_code if isinstance(exc.status_code, int) else 0
    if status == 401:
        return StoreRefused(
            f"OpenSearch at {url} refused the credentials for {doing} (401 Unauthorized): "
            "check the user and password in the store URL (https://user:password@host:9200)"
        )
    if status == 403:
        return StoreRefused(
            f"OpenSearch at {url} denied {doing} (403 Forbidden), a permission the user "
            f"lacks: {_reason(exc)}"
        )
    if status == 429 or status >= 500 or status == 0:
        return StoreUnavailable(f"OpenSearch at {url} answered {status}: {_reason(exc)}")
    return StoreError(f"OpenSearch at {url} refused {doing} ({status}): {_reason(exc)}")


def _ssl_reason(text: str) -> str:
    """OpenSSL's reason inside urllib3's nested message, e.g. "[SSL: ...] certificate verify
    failed: unable to get local issuer certificate"."""
    start = text.find("[SSL")
    if start < 0:
        return text[:200]
    end = min(i for i in (text.find(" (_ssl.c", start), text.find(")", start), len(text)) if i > 0)
    return text[start:end].strip()


def _reason(exc: os_exc.TransportError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    found = info.get("error")
    error = found if isinstance(found, dict) else {}
    root = (error.get("root_cause") or [{}])[0] if error else {}
    return str(root.get("reason") or error.get("reason") or exc.error)
