"""The no_network fixture fails a test that reaches for the network from
any thread, even when the attempt's error is swallowed there."""

pytest_plugins = ["pytester"]

# Inner tests run under the fixture (imported from the project's conftest,
# already loaded in this process). Each hides the failed attempt the way
# real code might; the fixture must still fail all but the loopback one.
INNER_TESTS = '''
import socket
import threading

import pytest

from conftest import no_network
from nas_tf.data import netcheck

pytestmark = pytest.mark.usefixtures("no_network")


def test_download_check_in_a_daemon_thread():
    # netcheck looks the host up in a daemon thread and reports False.
    assert not netcheck.can_connect("example.com", 443, timeout=2.0)


def test_connection_by_address_in_a_thread():
    def connect():
        # A raw socket: no host lookup on the way.
        try:
            with socket.socket() as sock:
                sock.settimeout(1.0)
                sock.connect(("192.0.2.1", 80))
        except BaseException:
            pass

    thread = threading.Thread(target=connect)
    thread.start()
    thread.join()


def test_lookup_whose_error_is_swallowed():
    try:
        socket.getaddrinfo("example.com", 80)
    except BaseException:
        pass


def test_loopback_is_allowed():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("localhost", port), timeout=2.0):
            pass
'''


def test_network_attempts_fail_the_test_from_any_thread(pytester):
    pytester.makepyfile(test_inner=INNER_TESTS)
    reports = pytester.inline_run("-p", "no:cacheprovider").getreports(
        "pytest_runtest_logreport")
    failures = {}
    for report in reports:
        name = report.nodeid.split("::")[-1]
        failures.setdefault(name, [])
        if report.failed:
            failures[name].append(report.longreprtext)
    assert sorted(failures) == sorted([
        "test_download_check_in_a_daemon_thread",
        "test_connection_by_address_in_a_thread",
        "test_lookup_whose_error_is_swallowed", "test_loopback_is_allowed"])
    assert failures.pop("test_loopback_is_allowed") == []
    for name, texts in failures.items():
        assert len(texts) == 1 and "tried to reach the network" in texts[0], \
            (name, texts)
