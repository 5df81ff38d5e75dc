"""Is the model hub reachable? Asked once before a download, so an offline machine fails in seconds, not minutes.

huggingface_hub retries unreachable hosts for about 40 s before giving up. A 3-second TCP probe answers the same
question; when it fails, loading goes straight to the local cache for the *same* model and revision, and a cache miss
is a :class:`~imgcaption.errors.ModelLoadError` that says so. Nothing falls back to a different model.
"""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "true", "yes", "on"}


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)


def hub_offline_requested() -> bool:
    return any(os.environ.get(name, "").lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """False when offline mode is requested or a TCP connection to the hub cannot be opened in ``timeout_s``."""
    if hub_offline_requested():
        return False
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # only the proxy can tell; let huggingface_hub try through it
    parts = urlsplit(hub_endpoint())
    host = parts.hostname or "huggingface.co"
    port = parts.port or (443 if parts.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError as exc:
        logger.info("model hub %s:%s unreachable (%s); using the local cache only", host, port, exc)
        return False
