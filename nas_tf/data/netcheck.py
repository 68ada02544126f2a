"""Whether a download host answers, decided in a few seconds.

Without network access TFDS retries a download for minutes before it gives
up (about 205 s for CIFAR-10), so the loaders first open one TCP connection
to each host they would download from, honouring an HTTP(S) proxy, and fail
at once with instructions when that does not work.
"""

import socket
import threading
import urllib.parse
import urllib.request
from typing import Iterable

DEFAULT_TIMEOUT_SECONDS = 5.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


def download_endpoint(host: str, scheme: str = "https") -> tuple[str, int]:
    """The host and port a download from ``scheme://host`` connects to
    first: the proxy configured for ``scheme`` unless ``host`` bypasses it,
    else the host itself."""
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"scheme {scheme!r} is not supported; allowed: "
                         f"{', '.join(_DEFAULT_PORTS)}")
    proxy = urllib.request.getproxies().get(scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urllib.parse.urlsplit(proxy if "//" in proxy
                                      else "http://" + proxy)
        if parts.hostname:
            default_port = 443 if parts.scheme == "https" else 80
            return parts.hostname, parts.port or default_port
    return host, _DEFAULT_PORTS[scheme]


def url_endpoint(url: str) -> tuple[str, int]:
    """``download_endpoint`` of a URL's host; an explicit port in the URL
    is kept when no proxy is in the way."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"URL {url!r} has no http(s) host")
    host, port = download_endpoint(parts.hostname, parts.scheme)
    if host == parts.hostname and parts.port:
        port = parts.port
    return host, port


def can_connect(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection opens within ``timeout`` seconds.

    The attempt runs in a daemon thread so that a slow name lookup, which
    socket timeouts do not cover, cannot hold the caller either.
    """
    opened = []

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(opened)


def unreachable(endpoints: Iterable[tuple[str, int]],
                timeout: float = DEFAULT_TIMEOUT_SECONDS
                ) -> list[tuple[str, int]]:
    """The endpoints (host, port) that do not accept a connection within
    ``timeout`` seconds; all are tried at once, so the whole check takes at
    most about ``timeout`` however many there are."""
    endpoints = list(dict.fromkeys(endpoints))
    results = {}

    def attempt(endpoint):
        # Looked up at call time so tests can replace `can_connect`.
        results[endpoint] = can_connect(endpoint[0], endpoint[1], timeout)

    threads = [threading.Thread(target=attempt, args=(e,), daemon=True)
               for e in endpoints]
    for thread in threads:
        thread.start()
    for thread in threads:
        # can_connect itself returns after `timeout`; the margin covers
        # thread start-up.
        thread.join(timeout + 1.0)
    return [e for e in endpoints if not results.get(e, False)]
