"""Reaching the model hub: an offline machine is detected in seconds, not after a minute of retries."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from imgcaption.backends import hub


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def listening_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    accepter = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
    accepter.start()
    yield server.getsockname()[1]
    accepter.join(timeout=5)  # closing the socket under a thread still in accept() would raise in that thread
    server.close()


def test_offline_mode_is_honoured_without_touching_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("must not connect"))
    assert hub.hub_reachable() is False


@pytest.mark.usefixtures("online")
def test_a_listening_endpoint_is_reachable(monkeypatch: pytest.MonkeyPatch, listening_port: int) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listening_port}")
    assert hub.hub_reachable(timeout_s=2) is True


@pytest.mark.usefixtures("online")
def test_a_closed_endpoint_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    assert hub.hub_reachable(timeout_s=2) is False


@pytest.mark.usefixtures("online")
def test_behind_a_proxy_the_hub_is_assumed_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("must not probe"))
    assert hub.hub_reachable() is True
