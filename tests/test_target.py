"""--address parsing: every accepted form, and every bad one a one-line UsageError."""

import pytest

from doctor.errors import UsageError
from doctor.target import parse_address


@pytest.mark.parametrize(
    "text, host, dashboard, client, scheme",
    [
        ("127.0.0.1", "127.0.0.1", 8265, 10001, "http"),
        ("head.local:8266", "head.local", 8266, 10001, "http"),
        ("http://10.0.0.5:9000", "10.0.0.5", 9000, 10001, "http"),
        ("https://dash.example.com", "dash.example.com", 8265, 10001, "https"),
        ("ray://127.0.0.1:10002", "127.0.0.1", 8265, 10002, "http"),
        ("ray://head", "head", 8265, 10001, "http"),
        ("[::1]:8265", "::1", 8265, 10001, "http"),
        ("::1", "::1", 8265, 10001, "http"),
        ("head:6379", "head", 8265, 10001, "http"),  # RAY_ADDRESS names the GCS: dashboard stays default
        ("  10.1.2.3:8265  ", "10.1.2.3", 8265, 10001, "http"),
    ],
)
def test_accepted_forms(text, host, dashboard, client, scheme):
    addr = parse_address(text)
    assert (addr.host, addr.dashboard_port, addr.client_port, addr.scheme) == (host, dashboard, client, scheme)


def test_port_flags_override():
    addr = parse_address("h", client_port=20001, gcs_port=7000)
    assert addr.client_port == 20001 and addr.gcs_port == 7000
    assert addr.client_url == "ray://h:20001"
    # host:GCS-port is read as the GCS when the GCS port was overridden too
    assert parse_address("h:7000", gcs_port=7000).dashboard_port == 8265


def test_ipv6_urls_are_bracketed():
    addr = parse_address("[::1]:8300")
    assert addr.dashboard_url == "http://[::1]:8300"
    assert addr.client_url == "ray://[::1]:10001"


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty"),
        ("host:abc", "port"),
        ("host:0", "port"),
        ("host:70000", "port"),
        ("ftp://host", "scheme"),
        ("bad host", "not a valid host"),
        ("auto", "cluster on this machine"),
        ("http://h:8265/api", "path"),
        ("[::1", "unclosed"),
        ("http://h:99999", "does not parse"),
        ("ray://:10001", "no host"),
        ("a:b:c", "not a valid host"),
    ],
)
def test_bad_addresses(text, words):
    with pytest.raises(UsageError) as info:
        parse_address(text)
    message = str(info.value)
    assert words in message and "\n" not in message
