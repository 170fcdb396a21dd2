#!/usr/bin/env python3
"""The soak's misbehaving-backend clients (used by load.py): a few client threads, next
to the ordinary ones, whose every request goes to fake_hostile.py and how it may end.

soak.sh adds a backend `hostile` (fake_hostile.py, with small timeouts) and two routes:
HOSTILE (name `hostile`, `failover = ["MODERATE"]`) and HOSTILE_BARE (name
`hostile-bare`, no failover). A message holding `hostile-backend-failover` or
`hostile-backend-bare` is labelled so by the fake classifier, and its `mode=NAME` tells
fake_hostile.py how to misbehave. Each client goes round every (mode, stream, route) in
its own shuffled order, so every misbehaviour comes again and again during the load.

How each request may end (`allowed`), from what the misbehaviour does:
- before the first event (every JSON mode; streams that trickle, ping, hang, send one
  oversized event or a 500): HOSTILE fails over, so a whole answer from the primary
  (route `primary`, `x-ai-router-failover: hostile->primary`); HOSTILE_BARE answers the
  router's error (504 upstream_timeout, 502 upstream_invalid_response, the 500);
- after the first event (a stream closed mid-way, pings after a token): 200 on its own
  route, an in-band error, `[DONE]`;
- an endless stream: 200, and the client hangs up after 1.5 × sessions.max_answer_bytes
  of content (or 10 s);
- whatever the mode, an ejected backend (health.failure_threshold failures in a row)
  is not called: HOSTILE fails over, HOSTILE_BARE answers 503 backend_unavailable.
Each must end within its bound: the backend's timeout (streams) or response timeout
(JSON), or the hang-up time, plus a margin. Right after each request the client reads
its session file (before rotation deletes it): it must exist, be at most
--hostile-session-mb, and say the route, classification, outcome and status the client
saw; an answer longer than sessions.max_answer_bytes is kept cut, with `truncated`.
"""

import collections
import http.client
import json
import os
import random
import threading
import time
import urllib.request

STREAM_MODES = ["trickle", "pings", "hang_headers", "endless", "oversized", "close_mid", "error_500",
                "ping_after_token"]
JSON_MODES = ["trickle", "hang_headers", "endless", "oversized", "close_mid", "error_500"]
# Misbehaviours that show after the first event: the stream has started, no failover.
AFTER_FIRST_EVENT = {"close_mid": "upstream_stream_incomplete", "ping_after_token": "upstream_timeout"}
ROUTES = {"HOSTILE": ("hostile-backend-failover", "hostile"),
          "HOSTILE_BARE": ("hostile-backend-bare", "hostile-bare")}
# HOSTILE_BARE, a misbehaviour before the first event: the status and code the client gets.
BARE_ERRORS = {
    "trickle": {(504, "upstream_timeout")},
    "pings": {(504, "upstream_timeout")},
    "hang_headers": {(504, "upstream_timeout")},
    "endless": {(502, "upstream_invalid_response")},
    "oversized": {(502, "upstream_invalid_response")},
    "close_mid": {(502, "upstream_invalid_response")},
    "error_500": {(500, None)},
}
EJECTED = (503, "backend_unavailable")
HANGUP_SECS = 10.0


def kind_of(mode, stream):
    return f"{mode}/{'stream' if stream else 'json'}"


class HostileTally:
    """What the misbehaving clients saw (under the main Tally's lock)."""

    def __init__(self):
        self.sent = collections.Counter()  # kind -> requests
        self.endings = collections.defaultdict(collections.Counter)  # kind -> ending -> n
        self.unexpected = []  # (t, tag, kind, route label, detail), first 50
        self.unexpected_count = 0
        self.elapsed = collections.defaultdict(list)  # kind -> seconds
        self.over_bound = []  # (elapsed, bound, tag, kind, route label)
        self.longest = (0.0, None, None, None)  # (s, tag, kind, ending)
        self.ended_at = {}  # tag -> time.monotonic() when the client was done with it
        self.want = {}  # x-request-id -> the session record fields expected
        self.sessions = collections.Counter()  # checked, missing, with problems, truncated
        self.session_problems = []  # first 50
        self.largest_session = (0, None, None)  # (bytes, file name, the last step's backend)


class HostileClient(threading.Thread):
    def __init__(self, index, args, tally, start, deadline):
        super().__init__(name=f"hostile-{index}", daemon=True)
        self.index = index
        self.args = args
        self.tally = tally
        self.start_time = start
        self.deadline = deadline
        self.rng = random.Random(args.seed * 7919 + index)
        self.conn = None
        self.seq = 0
        combos = [(m, True, r) for m in STREAM_MODES for r in ROUTES] + \
                 [(m, False, r) for m in JSON_MODES for r in ROUTES]
        self.rng.shuffle(combos)
        self.combos = combos

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def bound(self, mode, stream):
        a = self.args
        if mode == "endless" and stream:
            return HANGUP_SECS + a.hostile_margin
        return (a.hostile_timeout if stream else a.hostile_response_timeout) + a.hostile_margin

    def run(self):
        time.sleep(self.rng.uniform(0, 1.0))
        while time.monotonic() < self.deadline:
            mode, stream, label = self.combos[self.seq % len(self.combos)]
            self.seq += 1
            tag = f"h{self.index}-{self.seq}"
            marker, _ = ROUTES[label]
            body = {"model": "ai-router", "stream": stream, "messages": [
                {"role": "user", "content": f"Tell me a long story ({marker} mode={mode}) [{tag}]"}]}
            t0 = time.monotonic()
            try:
                ending, problems, rid, saw = self.send(mode, stream, label, body)
            except (OSError, http.client.HTTPException, ValueError) as e:
                ending, problems, rid, saw = "transport error", [f"{type(e).__name__}: {e}"], None, {}
                self.drop()
            t_end = time.monotonic()
            self.record(tag, mode, stream, label, ending, problems, rid, saw, t0, t_end)
            time.sleep(self.rng.uniform(0, self.args.think))
        self.drop()

    # --- one request ------------------------------------------------------------------
    def send(self, mode, stream, label, body):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.args.host, self.args.port, timeout=self.args.timeout)
        self.conn.request("POST", "/v1/chat/completions", body=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json", "User-Agent": "ai-router-soak-hostile/1"})
        resp = self.conn.getresponse()
        rid = resp.getheader("x-request-id")
        route = resp.getheader("x-ai-router-route")
        failover = resp.getheader("x-ai-router-failover")
        own_route = ROUTES[label][1]
        saw = {"status": resp.status, "route": route}
        if resp.status != 200:
            data = resp.read(1 << 20)
            try:
                code = json.loads(data)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = "(not an error envelope)"
            code = code if isinstance(code, str) else None
            ending = f"error {resp.status} {code}"
            allowed = {EJECTED}
            if label == "HOSTILE_BARE" and not (stream and mode in AFTER_FIRST_EVENT) \
                    and not (stream and mode == "endless"):
                allowed |= BARE_ERRORS[mode]
            if label == "HOSTILE_BARE" and (resp.status, code) in allowed:
                return ending, [], rid, {**saw, "outcome": "error"}
            return ending, [f"{ending}: {data[:200]!r}"], rid, {**saw, "outcome": "error"}
        if failover:
            ending = "failover"
            problems = [] if label == "HOSTILE" else [f"failover {failover} on a route without one"]
            if failover != "hostile->primary" or route != "primary":
                problems.append(f"failover {failover!r}, route {route!r}")
            problems += self.read_whole_answer(resp, stream)
            return ending, problems, rid, {**saw, "outcome": "ok"}
        problems = [] if route == own_route else [f"route {route!r}, wanted {own_route}"]
        if not stream:
            data = resp.read(1 << 20)
            return "200 from a misbehaving backend", problems + [f"a JSON answer: {data[:200]!r}"], rid, saw
        return self.read_stream(resp, mode, problems, rid, saw)

    def read_whole_answer(self, resp, stream):
        """A failover answer: whole, as an ordinary request's."""
        if not stream:
            data = resp.read(1 << 20)
            try:
                answer = json.loads(data)
                if not answer["choices"][0]["message"]["content"] or answer.get("model") != "ai-router":
                    return [f"failover answer {data[:200]!r}"]
            except (ValueError, KeyError, IndexError, TypeError):
                return [f"failover answer not a completion: {data[:200]!r}"]
            return []
        content, done, errors = [], False, []
        while True:
            line = resp.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                done = True
                break
            chunk = json.loads(payload)
            if "error" in chunk:
                errors.append(chunk["error"].get("code"))
            for choice in chunk.get("choices") or []:
                content.append((choice.get("delta") or {}).get("content") or "")
        resp.read()
        problems = [] if done and "".join(content) and not errors else \
            [f"failover stream: done={done}, {len(''.join(content))} chars, errors {errors}"]
        return problems

    def read_stream(self, resp, mode, problems, rid, saw):
        """200 from the misbehaving backend itself: a stream that breaks after its first
        event (an in-band error, then [DONE]) or never ends (the client hangs up)."""
        cap = self.args.max_answer_bytes
        hangup_bytes = cap * 3 // 2
        t0 = time.monotonic()
        received = 0
        error = None
        done = False
        while True:
            line = resp.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                done = True
                break
            chunk = json.loads(payload)
            if "error" in chunk:
                error = chunk["error"].get("code")
                continue
            for choice in chunk.get("choices") or []:
                received += len(((choice.get("delta") or {}).get("content") or "").encode())
            if mode == "endless" and (received >= hangup_bytes or time.monotonic() - t0 > HANGUP_SECS):
                self.drop()  # hang up on a stream that would never end
                saw.update(outcome="client_disconnected", received=received)
                return f"hung up after {received / 1048576:.1f} MiB", problems, rid, saw
        if done:
            resp.read()
        else:
            self.drop()
        saw.update(outcome="error", received=received)
        ending = f"in-band {error}" if error else f"200, no error, done={done}"
        want = AFTER_FIRST_EVENT.get(mode)
        if not (done and error and error == want):
            problems.append(f"{ending} after {received} content bytes, wanted in-band {want} then [DONE]")
        return ending, problems, rid, saw

    # --- the tally and the session file -------------------------------------------------
    def record(self, tag, mode, stream, label, ending, problems, rid, saw, t0, t_end):
        kind = kind_of(mode, stream)
        elapsed = t_end - t0
        bound = self.bound(mode, stream)
        want = None
        if rid and "outcome" in saw:
            # A client that hung up is logged with nginx's 499 ("client closed request").
            status = 499 if saw["outcome"] == "client_disconnected" else saw["status"]
            want = {"outcome": saw["outcome"], "http_status": status, "route": saw["route"],
                    "classification": label}
        session = self.check_session(rid, want, saw) if rid else ["no x-request-id"]
        t = self.tally
        h = t.hostile
        with t.lock:
            t.chat_posts += 1
            if rid:
                t.id_count += 1
                t.ids[rid] = ("hostile", label, stream)
                if want:
                    h.want[rid] = want
            h.sent[kind] += 1
            h.endings[kind][ending] += 1
            h.elapsed[kind].append(elapsed)
            h.ended_at[tag] = t_end
            if elapsed > h.longest[0]:
                h.longest = (elapsed, tag, kind, ending)
            if elapsed > bound:
                h.over_bound.append((round(elapsed, 2), bound, tag, kind, label))
            if problems:
                h.unexpected_count += 1
                if len(h.unexpected) < 50:
                    h.unexpected.append((round(t0 - self.start_time, 1), tag, kind, label, "; ".join(problems)))
            if session:
                h.sessions["with problems"] += 1
                if len(h.session_problems) < 50:
                    h.session_problems.append(f"{tag} {kind} {label} {rid}: {'; '.join(session)}")

    def check_session(self, rid, want, saw):
        """Reads this request's session file: it exists (soon), is bounded, says what the
        client saw. Returns the problems."""
        a = self.args
        suffix = f"_{rid}.json"
        deadline = time.monotonic() + 10
        path = None
        while time.monotonic() < deadline:
            try:
                path = next((n for n in os.listdir(a.sessions_dir) if n.endswith(suffix)), None)
            except OSError:
                path = None
            if path:
                break
            time.sleep(0.1)
        h = self.tally.hostile
        if path is None:
            with self.tally.lock:
                h.sessions["missing"] += 1
            return ["no session file within 10 s"]
        full = os.path.join(a.sessions_dir, path)
        problems = []
        try:
            size = os.path.getsize(full)
            with open(full, "rb") as f:
                record = json.loads(f.read())
        except (OSError, ValueError) as e:
            return [f"session file unreadable: {e}"]
        limit = int(a.hostile_session_mb * 1048576)
        if size > limit:
            problems.append(f"session file {size} bytes > {limit}")
        if want:
            wrong = {k: record.get(k) for k, v in want.items() if record.get(k) != v}
            if wrong:
                problems.append(f"wanted {want}, got {wrong}")
        truncated = False
        for step in record.get("steps") or []:
            for field in ("response_content", "reasoning_content"):
                kept = len((step.get(field) or "").encode())
                if kept > a.max_answer_bytes:
                    problems.append(f"{step.get('step')} {field} keeps {kept} bytes > {a.max_answer_bytes}")
            truncated |= bool(step.get("truncated"))
        if saw.get("received", 0) > a.max_answer_bytes and not truncated:
            problems.append(f"{saw['received']} bytes answered, no step says truncated")
        with self.tally.lock:
            h.sessions["checked"] += 1
            h.sessions["truncated"] += truncated
            if size > h.largest_session[0]:
                h.largest_session = (size, path, record.get("steps", [{}])[-1].get("provider"))
        return problems


# --- the judge's part ---------------------------------------------------------------------
def hostile_senders(args, tally, wait=20.0):
    """fake_hostile.py's account, once its senders are done (waits up to `wait` s for
    the last to stop): what it served, how each ended, how long each outlived its client."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.hostile_port}/hostile/status", timeout=10) as r:
                status = json.load(r)
        except OSError as e:
            return {"error": f"{type(e).__name__}: {e}"}
        if status["active"] == 0 or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    served = status["served"]
    ended = collections.Counter(e["ended"] if not str(e["ended"]).startswith("crashed") else "crashed"
                                for e in served)
    ended_at = tally.hostile.ended_at
    lags = [(e["end"] - ended_at[e["tag"]], e["tag"], e["mode"]) for e in served
            if e["end"] is not None and e["tag"] in ended_at]
    lives = [(e["end"] - e["start"], e["tag"], e["mode"], e["stream"]) for e in served if e["end"] is not None]
    most = max(served, key=lambda e: e["bytes"], default=None)
    return {"active": status["active"], "served": len(served), "ended": dict(ended),
            "unknown_tags": sum(e["tag"] not in ended_at for e in served),
            "oddities": [e for e in served if e["ended"] not in ("finished", "router_closed")][:5],
            "longest_life_s": round(max(lives)[0], 2) if lives else None,
            "longest_life": list(max(lives)[1:]) if lives else None,
            "max_outlived_client_s": round(max(lags)[0], 2) if lags else None,
            "max_outlived": list(max(lags)[1:]) if lags else None,
            "most_bytes_sent": most["bytes"] if most else None,
            "most_bytes_mode": f"{most['mode']}/{'stream' if most['stream'] else 'json'}" if most else None}


def peak_bound_mb(args):
    """The most RSS the router may reach: its own ~20 MB under this load with room to
    spare, and per misbehaving client a few copies of the largest answer it may read
    (the buffer, its growth, the parsed copy)."""
    return 64 + args.hostile_clients * 4 * args.hostile_max_bytes / 1048576


def hostile_checks(check, args, h, senders, peak_mb):
    sent = sum(h.sent.values())
    bound = peak_bound_mb(args)
    check("misbehaving backend: peak RSS bounded", peak_mb <= bound,
          f"VmHWM {peak_mb:.1f} MB, allowed {bound:.0f} MB (64 + {args.hostile_clients} clients × 4 × "
          f"max_response_bytes {args.hostile_max_bytes / 1048576:g} MiB)")
    check("misbehaving backend: every request ended as allowed", sent > 0 and h.unexpected_count == 0,
          f"{h.unexpected_count} of {sent} not" + (f"; first: {h.unexpected[0]}" if h.unexpected else ""))
    check("misbehaving backend: none hung", not h.over_bound,
          f"{len(h.over_bound)} took longer than their bound (timeout + {args.hostile_margin:g} s); longest "
          f"{h.longest[0]:.2f} s ({h.longest[1]} {h.longest[2]}, {h.longest[3]})"
          + (f"; first over: {h.over_bound[0]}" if h.over_bound else ""))
    checked = h.sessions["checked"]
    check("misbehaving backend: session files bounded and right",
          checked == sent and h.sessions["with problems"] == 0,
          f"{checked} of {sent} read right after the request, {h.sessions['with problems']} with problems, "
          f"largest {h.largest_session[0] / 1048576:.2f} MiB (allowed {args.hostile_session_mb:g}), "
          f"{h.sessions['truncated']} truncated" + (f"; first: {h.session_problems[0]}" if h.session_problems else ""))
    if senders is None or "error" in senders:
        check("misbehaving backend: its senders stopped", False, f"no account from fake_hostile.py: {senders}")
        return
    lag = senders["max_outlived_client_s"]
    ok = (senders["active"] == 0 and set(senders["ended"]) <= {"finished", "router_closed"}
          and senders["unknown_tags"] == 0 and (lag is None or lag <= args.hostile_margin))
    check("misbehaving backend: its senders stopped", ok,
          f"{senders['served']} served ({senders['ended']}), {senders['active']} still sending; "
          f"a sender outlived its client by at most {lag} s ({senders['max_outlived']}), allowed "
          f"{args.hostile_margin:g}")


def hostile_summary(args, h, senders):
    kinds = sorted(h.sent)
    return {"settings": {"clients": args.hostile_clients, "timeout_s": args.hostile_timeout,
                         "response_timeout_s": args.hostile_response_timeout, "margin_s": args.hostile_margin,
                         "session_mb": args.hostile_session_mb, "max_answer_bytes": args.max_answer_bytes,
                         "max_response_bytes": args.hostile_max_bytes, "peak_bound_mb": peak_bound_mb(args)},
            "sent": sum(h.sent.values()), "unexpected": h.unexpected_count, "unexpected_examples": h.unexpected[:10],
            "by_kind": {k: {"sent": h.sent[k], "endings": dict(h.endings[k]),
                            "max_s": round(max(h.elapsed[k]), 2),
                            "median_s": round(sorted(h.elapsed[k])[len(h.elapsed[k]) // 2], 2)} for k in kinds},
            "endings": dict(sum((h.endings[k] for k in kinds), collections.Counter())),
            "longest": {"s": round(h.longest[0], 2), "tag": h.longest[1], "kind": h.longest[2],
                        "ending": h.longest[3]},
            "over_bound": h.over_bound[:10],
            "sessions": {**h.sessions, "largest_bytes": h.largest_session[0], "largest_file": h.largest_session[1],
                         "problems": h.session_problems[:10]},
            "senders": senders}


def print_hostile(s):
    print(f"misbehaving backend: {s['sent']} requests, {s['unexpected']} not as allowed; longest "
          f"{s['longest']['s']} s ({s['longest']['kind']}, {s['longest']['ending']})")
    print(f"  {'kind':<24} {'sent':>5} {'med s':>6} {'max s':>6}  endings")
    for kind, k in s["by_kind"].items():
        endings = ", ".join(f"{n} {e}" for e, n in sorted(k["endings"].items(), key=lambda x: -x[1]))
        print(f"  {kind:<24} {k['sent']:>5} {k['median_s']:>6.2f} {k['max_s']:>6.2f}  {endings}")
    for example in s["unexpected_examples"][:5]:
        print(f"  unexpected at t={example[0]} s: {example[1:]}"[:300])
    se = s["sessions"]
    print(f"  session files: {se.get('checked', 0)} read, {se.get('with problems', 0)} with problems, "
          f"{se.get('truncated', 0)} truncated, largest {se['largest_bytes'] / 1048576:.2f} MiB ({se['largest_file']})")
    for problem in se["problems"][:5]:
        print(f"    {problem[:300]}")
    f = s["senders"] or {}
    if "error" in f:
        print(f"  fake_hostile.py: {f['error']}")
    elif f:
        print(f"  fake_hostile.py served {f['served']} ({f['ended']}), {f['active']} still sending; longest "
              f"sender {f['longest_life_s']} s {f['longest_life']}; outlived its client by at most "
              f"{f['max_outlived_client_s']} s {f['max_outlived']}; most bytes sent {f['most_bytes_sent']} "
              f"({f['most_bytes_mode']})")
