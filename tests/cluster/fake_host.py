#!/usr/bin/env python3
"""One fake host of `make cluster-test`: the soak's fake backends (tests/soak/fake_soak.py,
which is tests/live/fake_openai.py with more classifier answers) listening on the host's
own address inside its network namespace instead of 127.0.0.1.

fake_openai.py binds 127.0.0.1 (right for every other test); here the one server class it
uses is swapped for one that binds --listen, so the fakes run unchanged. One process
plays the classifier, the primary and xAI, told apart by the `model` the router sends;
cluster.sh starts one per host (three for the primary's pool, one as the classifier,
one as xAI).

Usage: fake_host.py --listen 10.77.0.11:8000 [fake_openai.py's options]
"""

import os
import sys
from http.server import ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "soak"))
import fake_soak  # noqa: E402  (tests/soak/fake_soak.py, read-only)
from fake_soak import fake_openai  # noqa: E402  (tests/live/fake_openai.py, read-only)


def main():
    argv = sys.argv[1:]
    if "--listen" not in argv or argv.index("--listen") + 1 >= len(argv):
        sys.exit("usage: fake_host.py --listen HOST:PORT [fake_openai.py's options]")
    at = argv.index("--listen")
    host, port = argv[at + 1].rsplit(":", 1)
    del argv[at:at + 2]
    sys.argv[1:] = argv

    class HostServer(ThreadingHTTPServer):
        # Many router connections at once (two replicas, probes, streams): a deeper queue
        # than socketserver's 5, so a burst is never refused by the fake itself.
        request_queue_size = 128

        def __init__(self, _address, handler):
            super().__init__((host, int(port)), handler)
            print(f"serving on {host}:{self.server_address[1]}", flush=True)

    fake_openai.ThreadingHTTPServer = HostServer
    fake_soak.main()


if __name__ == "__main__":
    main()
