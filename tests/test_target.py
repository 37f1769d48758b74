"""--address parsing: every accepted form, and every bad one a one-line UsageError."""

import pytest

from doctor.errors import UsageError
from doctor.origin import Origin
from doctor.target import HeadAddress, is_loopback, named_by_user, parse_address, token_withheld


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
        ("a" * 64 + ".example", "not a valid host"),  # a label is at most 63 characters
        (".".join(["abcdefghi"] * 26), "not a valid host"),  # a name is at most 253
        ("-head", "not a valid host"),
        ("head..example", "not a valid host"),
        ("http://", "has no host name"),
        (":8265", "has no host name"),
        ("[]:8265", "has no host name"),
        ("[::1]8265", "does not parse"),
        ("[::1]x", "does not parse"),
        ("AUTO", "cluster on this machine"),
        ("Local", "cluster on this machine"),
        ("HTTP://h:8265/x", "path"),
        ("gcs://h:6379", "unknown scheme 'gcs'"),
        ("[::1]]:8265", "does not parse"),
        ("http://h://x", "a path is not expected"),
    ],
)
def test_bad_addresses(text, words):
    with pytest.raises(UsageError) as info:
        parse_address(text)
    message = str(info.value)
    assert words in message and "\n" not in message


# -- what the rest of raydoctor reads from an address (issue 20: these held no test) ----------


def test_an_address_serialises_with_its_urls():
    addr = parse_address("https://[::1]:9443", client_port=20001, gcs_port=7000)
    assert addr.to_dict() == {
        "host": "::1",
        "dashboard": "https://[::1]:9443",
        "client": "ray://[::1]:20001",
        "gcs_port": 7000,
    }
    assert addr.given == "https://[::1]:9443"
    assert parse_address(" h ").given == " h "  # what the user typed, for messages
    assert parse_address("ray://h:10002").given == "ray://h:10002"


@pytest.mark.parametrize("port", ["1", "65535"])
def test_the_first_and_last_ports_are_accepted(port):
    assert parse_address(f"h:{port}").dashboard_port == int(port)


@pytest.mark.parametrize("text", ["h:65536", "h:-1", "h:+80", "h: 80"])
def test_ports_outside_the_range_are_refused(text):
    with pytest.raises(UsageError, match="is not a number from 1 to 65535"):
        parse_address(text)


@pytest.mark.parametrize(
    "text, host",
    [
        ("0:0:0:0:0:0:0:1", "::1"),  # an IP is written in its normal form
        ("[0:0:0:0:0:0:0:1]:8300", "::1"),
        ("http://[0:0:0:0:0:0:0:1]:8300", "::1"),
        ("head.example.com.", "head.example.com."),
        ("ray_head", "ray_head"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_hosts(text, host):
    assert parse_address(text).host == host


@pytest.mark.parametrize(
    "text, message",
    [
        ("  ", "empty address"),
        ("bad host", "address 'bad host': 'bad host' is not a valid host name or IP address"),
        ("http://bad_host!", "address 'http://bad_host!': 'bad_host!' is not a valid host name or IP address"),
        ("h:0", "address 'h:0': port '0' is not a number from 1 to 65535"),
    ],
)
def test_messages_quote_what_the_user_typed(text, message):
    with pytest.raises(UsageError) as info:
        parse_address(text)
    assert info.value.message == message


def test_hints_name_a_form_that_works():
    hints = {}
    for text in ("", "auto", "ftp://h", "http://h/x", "[::1]x", "ray://:1"):
        with pytest.raises(UsageError) as info:
            parse_address(text)
        hints[text] = info.value.hint
    assert hints == {
        "": "e.g. --address 127.0.0.1:8265",
        "auto": "name the dashboard instead, e.g. --address 127.0.0.1:8265",
        "ftp://h": "use http://, https:// or ray://",
        "http://h/x": "give only scheme://host:port",
        "[::1]x": "e.g. [::1]:8265",
        "ray://:1": "e.g. --address 127.0.0.1:8265",
    }


@pytest.mark.parametrize(
    "text, kwargs, want",
    [
        # (host, dashboard, client, gcs, scheme)
        ("HTTPS://Dash.example:9443/", {}, ("dash.example", 9443, 10001, 6379, "https")),
        ("http://h", {"client_port": 20001, "gcs_port": 7000}, ("h", 8265, 20001, 7000, "http")),
        ("ray://h", {"client_port": 20001, "gcs_port": 7000}, ("h", 8265, 20001, 7000, "http")),
        ("ray://h:10005", {"client_port": 20001}, ("h", 8265, 10005, 6379, "http")),
        ("RAY://h:10005", {}, ("h", 8265, 10005, 6379, "http")),
        ("[::1]", {}, ("::1", 8265, 10001, 6379, "http")),
        ("[::1]:6379", {}, ("::1", 8265, 10001, 6379, "http")),
        ("h:8265", {"gcs_port": 8265}, ("h", 8265, 10001, 8265, "http")),
        ("h:6379", {"gcs_port": 7000}, ("h", 6379, 10001, 7000, "http")),  # not the GCS here: the dashboard
        ("h:7000", {"gcs_port": 7000, "client_port": 20001}, ("h", 8265, 20001, 7000, "http")),
    ],
)
def test_every_part_of_the_address(text, kwargs, want):
    addr = parse_address(text, **kwargs)
    assert (addr.host, addr.dashboard_port, addr.client_port, addr.gcs_port, addr.scheme) == want


# -- where the token may go ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("10.0.0.5", False),
        ("::2", False),
        ("0.0.0.0", False),
        ("head.example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("origin", list(Origin) + [None])
def test_only_the_users_own_places_name_the_target(origin):
    assert named_by_user(origin) is (origin in {Origin.FLAG, Origin.ENVIRONMENT, Origin.SETTINGS})


def test_the_token_goes_to_a_named_target_or_dockers_loopback_only():
    far = HeadAddress("10.0.0.5", 8265, given="x.yaml")
    assert token_withheld(None, Origin.COMPOSE, "RAY_AUTH_TOKEN") is None
    for origin in (Origin.FLAG, Origin.ENVIRONMENT, Origin.SETTINGS):
        assert token_withheld(far, origin, "RAY_AUTH_TOKEN") is None
    for host in ("127.0.0.1", "LOCALHOST", "::1"):
        assert token_withheld(HeadAddress(host), Origin.COMPOSE, "RAY_AUTH_TOKEN") is None
    # another loopback address is not where Docker publishes by default: a compose file chose it
    for origin in (Origin.COMPOSE, Origin.CLUSTER_FILE, Origin.DEFAULT, None):
        assert token_withheld(HeadAddress("127.0.0.2"), origin, "RAY_AUTH_TOKEN") is not None
        assert token_withheld(far, origin, "RAY_AUTH_TOKEN") is not None


def test_why_the_token_was_withheld_names_the_source_the_origin_and_the_way_out():
    far = HeadAddress("fd00::5", 8300, given="compose c.yaml")
    why = token_withheld(far, Origin.COMPOSE, "~/.ray/auth_token")
    assert why == (
        "raydoctor has one (from ~/.ray/auth_token) but did not send it to fd00::5: that address comes from "
        "compose file (compose c.yaml), not from --address, RAY_ADDRESS or a settings file you trust; "
        "to send it, name the target yourself: --address [fd00::5]:8300"
    )
    # `where` names the origin; without `given` the dashboard's URL stands for the address
    why = token_withheld(HeadAddress("10.0.0.5", 8266), Origin.CLUSTER_FILE, "RAY_AUTH_TOKEN", "cluster.yaml")
    assert why is not None
    assert "from cluster.yaml (http://10.0.0.5:8266)" in why and why.endswith("--address 10.0.0.5:8266")
    why = token_withheld(HeadAddress("10.0.0.5"), None, "RAY_AUTH_TOKEN")
    assert why is not None and "comes from the target (http://10.0.0.5:8265)" in why
