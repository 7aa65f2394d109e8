"""How fast does ``terc-tag review`` show its first thumbnails, and how large does the server grow?

Starts the real command (``python -m tagger review OUTPUT --no-browser``) on
a tagged OUTPUT with its thumbnail cache emptied, asks for the page, the
photo list and then thumbnails as the browser would, and reports

* the first thumbnail's latency (goal: under 1.5 s),
* the server's resident memory after 8 thumbnails (goal: under 300 MB),
* the first screen (``--screen`` thumbnails) made fresh, then again from
  the cache after a restart of the server (a reopened page), as a ratio.

    python benchmarks/review_thumbnails.py /tmp/tagged-fullres --screen 40
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tagger.discover import STATE_DIR_NAME
from tagger.thumbnails import THUMBNAILS_DIR_NAME


class Running:
    """The review command in a child process, and a client holding its cookie."""

    def __init__(self, output: Path):
        started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "tagger", "review", str(output), "--no-browser"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        self.listening_s = time.perf_counter() - started
        self.url = line.split("open ", 1)[1].split()[0]
        self.base = self.url.split("/?", 1)[0]
        self.client = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.get(self.url)

    def get(self, url: str) -> bytes:
        with self.client.open(url, timeout=120) as answer:
            return answer.read()

    def thumbnail(self, path: str) -> float:
        started = time.perf_counter()
        self.get(f"{self.base}/thumb/{urllib.parse.quote(path)}")
        return time.perf_counter() - started

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="a tagged OUTPUT (its thumbnail cache is emptied first)")
    parser.add_argument("--screen", type=int, default=40, help="thumbnails on a first screen")
    args = parser.parse_args()

    shutil.rmtree(args.output / STATE_DIR_NAME / THUMBNAILS_DIR_NAME, ignore_errors=True)
    server = Running(args.output)
    try:
        baseline = server.rss_mb()
        paths = [p["path"] for p in json.loads(server.get(f"{server.base}/api/photos"))["photos"]][:args.screen]
        fresh = []
        for path in paths:
            fresh.append(server.thumbnail(path))
            if len(fresh) == 8:
                after_eight = server.rss_mb()
        after_eight = after_eight if len(paths) >= 8 else server.rss_mb()
    finally:
        server.stop()
    reopened = Running(args.output)  # the page opened again: every thumbnail from the cache
    try:
        cached = [reopened.thumbnail(path) for path in paths]
    finally:
        reopened.stop()
    print(f"{args.output}: the first screen's {len(paths)} thumbnails (noisy on a shared machine)")
    print(f"server listening after {server.listening_s:.2f} s, {baseline:.0f} MB")
    print(f"first thumbnail: {fresh[0]:.3f} s (goal < 1.5 s)")
    print(f"server after {min(8, len(paths))} thumbnails: {after_eight:.0f} MB (goal < 300 MB)")
    print(f"first screen made fresh: {sum(fresh):.3f} s; reopened, from the cache: {sum(cached):.3f} s "
          f"({sum(fresh) / sum(cached):.1f}x faster)")

if __name__ == "__main__":
    main()
