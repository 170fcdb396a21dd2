"""`make demo` as a new user meets it, scripted (run by `make e2e`).

Starts `make demo` in a pseudo-terminal on free ports, then checks what a person does
with it: pastes the printed curl, OpenAI SDK and classify snippets as they are, starts a
second demo by mistake, and presses Ctrl-C. Each check names what a user would see go
wrong. Needs llama-server and the model cached (make e2e builds them) and a Python
with the `openai` package (make e2e's venv runs this script).
"""

import os
import pty
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Terminal:
    """`make demo` on a pseudo-terminal: Ctrl-C reaches it as it would from a shell."""

    def __init__(self, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(ROOT)
            os.execvpe("make", ["make", "demo"], env)
        self.text = ""

    def read_until(self, needle, seconds):
        deadline = time.time() + seconds
        while needle not in self.text and time.time() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            self.text += chunk.decode(errors="replace")
        return needle in self.text

    def wait(self, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return status
            self.read_until("\0never", 0.5)
        os.kill(self.pid, 9)
        return None


def snippet(banner, first, last):
    """The lines of `banner` from the first one holding `first` to the one equal to
    `last` (or to the end of its `\\` continuations when `last` is None), as printed."""
    lines = banner.replace("\r\n", "\n").split("\n")
    start = next(i for i, line in enumerate(lines) if first in line)
    if last is None:
        end = start
        while lines[end].endswith("\\"):
            end += 1
    else:
        end = next(i for i in range(start, len(lines)) if lines[i] == last)
    return "\n".join(lines[start : end + 1]) + "\n"


def paste(text, seconds=180):
    """Runs `text` in bash as if pasted into a terminal at the repository's root, with
    this Python (and its `openai`) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return subprocess.run(
        ["bash", "-c", text], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=seconds,
    )


def main():
    logs = tempfile.mkdtemp(prefix="ai-router-demo-check.")
    port, llama_port = free_port(), free_port()
    env = dict(os.environ, DEMO_PORT=str(port), LLAMA_PORT=str(llama_port), DEMO_LOGS=logs)
    env.setdefault("DEMO_N_PREDICT", "24")
    demo = Terminal(env)
    started = demo.read_until("Press Ctrl-C", 900)
    check(started, "make demo starts and prints how to try it")
    if not started:
        print(demo.text[-3000:])
        return
    banner = demo.text

    sdk = snippet(banner, "python3 - <<'PY'", "PY")
    done = paste(sdk)
    check(
        done.returncode == 0 and "ai-router" in done.stdout,
        f"the printed SDK snippet runs as pasted ({done.returncode}: {done.stderr[-300:]})",
    )
    curl = snippet(banner, "curl -N", None)
    done = paste(curl)
    check(
        done.returncode == 0 and "[DONE]" in done.stdout,
        f"the printed curl streams an answer ({done.returncode}: {done.stderr[-300:]})",
    )
    classify = snippet(banner, "target/release/ai-router classify", None)
    done = paste(classify)
    check(
        done.returncode == 0 and "decision:" in done.stdout,
        f"the printed classify command works during the demo ({done.returncode}: {done.stderr[-300:]})",
    )

    router_log = os.path.join(logs, "router.log")
    before = open(router_log, "rb").read()
    second = subprocess.run(
        ["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    said = second.stdout + second.stderr
    check(second.returncode != 0, "a second make demo on the same ports fails")
    check("already in use" in said, "…and says the port is in use")
    check("is running on" not in said, "…without printing the running banner")
    check(
        open(router_log, "rb").read().startswith(before) and listening(port),
        "…and leaves the running demo and its log alone",
    )

    os.write(demo.fd, b"\x03")
    status = demo.wait(30)
    tail = demo.text[len(banner):]
    check(status is not None, "Ctrl-C stops the demo within 30 s")
    check("stopping" in tail and "stopped" in tail, "Ctrl-C says it is stopping and stopped")
    check(not re.search(r"Error \d+", tail), f"Ctrl-C ends without a make error: {tail[-300:]!r}")
    check(not listening(port) and not listening(llama_port), "both servers are gone")
    shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
    print(f"demo check: {len(failures)} failed")
    sys.exit(1 if failures else 0)
