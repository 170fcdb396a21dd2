#!/usr/bin/env python3
"""The soak's sampler: the router process as the kernel and /metrics see it (used by
load.py).

Every --sample seconds it reads the router's VmRSS/VmHWM/threads/CPU from /proc/PID, its
open fds (sockets split into client, backend, listening and other by looking each one up
in /proc/PID/net/tcp{,6}), and /metrics (in-flight gauge, session-log writes, requests),
and keeps one row per sample for the CSV. Also `log`, the soak's progress line on
stderr. Python 3 standard library only.
"""

import collections
import os
import sys
import threading
import time
import urllib.request

MB = 1024.0  # VmRSS is in kB


def read_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def tcp_table(pid):
    table = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    p = line.split()
                    table[p[9]] = (int(p[1].rsplit(":", 1)[1], 16), int(p[2].rsplit(":", 1)[1], 16), p[3])
        except OSError:
            continue
    return table


def fd_breakdown(pid, router_port, backend_ports):
    """Open fds of `pid` by kind; sockets by whom they talk to (`backend_ports`: the fake
    backends' ports, the misbehaving one's included)."""
    counts = collections.Counter()
    table = None
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        counts["total"] += 1
        if link.startswith("socket:["):
            if table is None:
                table = tcp_table(pid)
            entry = table.get(link[8:-1])
            if entry is None:
                counts["sock_other"] += 1
            elif entry[2] == "0A":
                counts["sock_listen"] += 1
            elif entry[0] == router_port:
                counts["sock_client"] += 1
            elif entry[1] in backend_ports:
                counts["sock_backend"] += 1
            else:
                counts["sock_other"] += 1
        elif link.startswith("anon_inode:"):
            counts["anon"] += 1
        elif link.startswith("pipe:"):
            counts["pipe"] += 1
        else:
            counts["file"] += 1
    return counts


def scrape(url):
    """The /metrics figures the soak reads."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {"in_flight": 0.0, "writes_ok": 0.0, "writes_error": 0.0, "requests": 0.0}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name == "ai_router_in_flight_requests":
            out["in_flight"] = float(value)
        elif name.startswith("ai_router_session_log_writes_total"):
            out["writes_ok" if 'result="ok"' in name else "writes_error"] += float(value)
        elif name.startswith("ai_router_requests_total"):
            out["requests"] += float(value)
    return out


CSV_FIELDS = ["t_s", "phase", "rss_mb", "hwm_mb", "threads", "cpu_s", "fds", "fds_client", "fds_backend",
              "fds_listen", "fds_other_sock", "fds_file", "fds_anon", "fds_pipe", "in_flight", "writes_ok",
              "writes_error", "router_requests", "sent", "failed", "loadavg1"]


class Sampler:
    def __init__(self, args, tally, start):
        self.args = args
        self.tally = tally
        self.start = start
        self.rows = []
        self.phase = "idle"
        self.stop = threading.Event()
        self.error = None

    def sample(self):
        a = self.args
        status = read_status(a.pid)
        fds = fd_breakdown(a.pid, a.port, a.backend_ports)
        metrics = scrape(a.url)
        sent, failed = self.tally.totals()
        row = {"t_s": round(time.monotonic() - self.start, 1), "phase": self.phase,
               "rss_mb": round(status["VmRSS"] / MB, 2), "hwm_mb": round(status["VmHWM"] / MB, 2),
               "threads": status["Threads"], "cpu_s": round(status["cpu_s"], 2),
               "fds": fds["total"], "fds_client": fds["sock_client"], "fds_backend": fds["sock_backend"],
               "fds_listen": fds["sock_listen"], "fds_other_sock": fds["sock_other"], "fds_file": fds["file"],
               "fds_anon": fds["anon"], "fds_pipe": fds["pipe"], "in_flight": int(metrics["in_flight"]),
               "writes_ok": int(metrics["writes_ok"]), "writes_error": int(metrics["writes_error"]),
               "router_requests": int(metrics["requests"]), "sent": sent, "failed": failed,
               "loadavg1": os.getloadavg()[0]}
        self.rows.append(row)
        return row

    def run(self):
        next_at = time.monotonic()
        last_report = time.monotonic()
        while not self.stop.is_set():
            try:
                row = self.sample()
            except Exception as e:  # noqa: BLE001 - the router died or /metrics failed: judged later
                self.error = f"{type(e).__name__}: {e}"
                return
            if self.phase == "load" and time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                rate = row["sent"] / max(row["t_s"] - self.args.load_started, 1)
                log(f"t={row['t_s']:.0f}s  requests {row['sent']} ({rate:.0f}/s)  failed {row['failed']}  "
                    f"RSS {row['rss_mb']:.1f} MB  fds {row['fds']}  in flight {row['in_flight']}  "
                    f"load {row['loadavg1']:.2f}")
            next_at += self.args.sample
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def log(message):
    print(f"\033[1m[soak]\033[0m {message}", file=sys.stderr, flush=True)
