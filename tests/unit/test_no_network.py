"""The unit tests' guard holds (tests/unit/conftest.py)."""

import socket

import pytest

from tests.unit.conftest import NetworkBlocked


def test_a_unit_test_cannot_open_a_connection():
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(NetworkBlocked), socket.socket() as raw:
        raw.connect(("127.0.0.1", 9))
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo("api.polyv.net", 443)
