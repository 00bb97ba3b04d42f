"""Faults a source can put on the one HTTP client, each fetch run in a child process and
judged from outside: how long it took, what it said, and how much its peak memory grew.

DESIGN.md: "Work is bounded: a source fetch has a total deadline, a body a size cap that
holds after decompression."
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from feeds import repeated, trickle

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
CAP = 10 * 1024 * 1024
GIB = 1024 * 1024 * 1024
TOO_LARGE = "sent more than 10240 KiB, the response size cap."
# The child's body may reach the cap, and one copy of it as bytes: well under this.
RSS_GROWTH_LIMIT_KIB = 60 * 1024

# Peak memory is read from /proc/self/status (VmHWM, this process's own high-water mark, reset
# to the current size once the imports are done). ru_maxrss is printed too but not judged:
# after fork and exec it starts at the parent's peak (here pytest's), so it hides the growth.
CHILD = """
import json, resource, sys, time
from webapp.sources.http import FetchError, FetchPolicy, fetch

def status(field):
    with open("/proc/self/status") as lines:
        return int(next(line for line in lines if line.startswith(field + ":")).split()[1])

def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

url, timeout, cap = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
policy = FetchPolicy(allow_private=True, timeout=timeout, max_bytes=cap)
try:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM := VmRSS
except OSError:
    pass  # then the growth below counts from the current size: an overestimate, never less
before, maxrss_before = status("VmRSS"), maxrss()
started = time.monotonic()
try:
    outcome = {"size": len(fetch(url, policy).content)}
except FetchError as exc:
    outcome = {"error": str(exc)}
outcome["seconds"] = round(time.monotonic() - started, 3)
outcome["peak_growth_kib"] = status("VmHWM") - before
outcome["ru_maxrss_kib"] = [maxrss_before, maxrss()]
print(json.dumps(outcome))
"""


def fetch_in_child(url: str, timeout: float) -> dict:
    """Run webapp.sources.http.fetch in a fresh Python; return what it printed, plus the
    wall time seen from here (interpreter start and imports included)."""
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(timeout), str(CAP)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    wall = time.monotonic() - started
    assert finished.returncode == 0, finished.stderr
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    outcome["wall_seconds"] = round(wall, 3)
    print(f"\n{url}: {outcome}")
    return outcome


def gzip_of_zeros(size: int) -> bytes:
    """gzip of `size` zero bytes, compressed a MiB at a time (about 1 MiB for 1 GiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, compressor.flush()])


@pytest.fixture(scope="module")
def gzipped_gib() -> bytes:
    return gzip_of_zeros(GIB)


def test_a_source_trickling_a_byte_every_half_second_is_stopped_at_the_deadline(feed_server):
    """Promised: a fetch ends by its deadline (BYTESTACK_FETCH_TIMEOUT) however the source
    spaces its bytes: here one every 0.5 s, forever, each well within any per-read timeout,
    fails with "did not finish within 3 s" within 3 + 2 s."""
    url = feed_server.serve("/trickle.xml", lambda: trickle(0.5))
    outcome = fetch_in_child(url, timeout=3)
    assert outcome["error"] == f"{url} did not finish within 3 s."
    assert 3 <= outcome["seconds"] < 3 + 2
    assert outcome["wall_seconds"] < 3 + 2 + 5  # the child's start and imports on top


@pytest.mark.parametrize("declared", [True, False], ids=["with-length", "without-length"])
def test_a_gigabyte_body_is_refused_at_the_cap_quickly_and_in_bounded_memory(
    feed_server, declared
):
    """Promised: a body larger than the size cap is refused at the cap, never read whole:
    1 GiB (made on the fly by the server), declared by Content-Length or streamed without
    one, fails with the size-cap error in under 5 s and raises the fetching process's peak
    memory by less than 60 MiB."""
    url = feed_server.serve("/huge.xml", lambda: repeated(GIB), length=GIB if declared else None)
    outcome = fetch_in_child(url, timeout=20)
    assert outcome["error"] == f"{url} {TOO_LARGE}"
    assert outcome["seconds"] < 5
    assert outcome["peak_growth_kib"] < RSS_GROWTH_LIMIT_KIB


@pytest.mark.parametrize("layers", [2, 1], ids=["gzip-of-gzip", "gzip"])
def test_a_gzip_bomb_is_refused_at_the_cap_quickly_and_in_bounded_memory(
    feed_server, gzipped_gib, layers
):
    """Promised: the size cap counts decoded bytes and holds while decoding: 1 GiB of zeros
    as gzip of gzip (under 2 KiB on the wire, Content-Encoding: gzip, gzip) or as one gzip
    (about 1 MiB) fails with the size-cap error in under 5 s and raises the fetching
    process's peak memory by less than 60 MiB."""
    body = gzip.compress(gzipped_gib, compresslevel=9, mtime=0) if layers == 2 else gzipped_gib
    if layers == 2:
        assert len(body) < 2048
    url = feed_server.serve("/bomb.xml", body, encoding=", ".join(["gzip"] * layers))
    outcome = fetch_in_child(url, timeout=20)
    assert outcome["error"] == f"{url} {TOO_LARGE}"
    assert outcome["seconds"] < 5
    assert outcome["peak_growth_kib"] < RSS_GROWTH_LIMIT_KIB
