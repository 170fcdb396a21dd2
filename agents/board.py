#!/usr/bin/env python3
"""The review board's small structured jobs, for `agents/run-board` and the agents.

    board.py config BOARD_TOML --router-config FILE [--dir DIR] [--since S] [--out DIR]
        Validate review-board.toml and print the settings run-board needs, one per line,
        fields separated by the ASCII unit separator (0x1f): `set`, `role`, `rule` lines.
        Exit 2 with one message on any problem.
    board.py suspects [--slow-classify-ms N] [--thin-enrich-chars N] [--max N]
        Read `ai-router sessions export` (JSONL) on stdin, print candidate misroutes as JSON.
    board.py patch LIVE_DIR EDITED_DIR --path PREFIX
        Print a unified diff (git-apply compatible) from LIVE_DIR to EDITED_DIR, file names
        written as PREFIX/<file>. Prints nothing when the folders hold the same text.
    board.py compare BASELINE.json CANDIDATE.json --sessions SESSIONS.json [--json]
        Compare two `sessions replay` reports per logged label: agreement before and
        after, and every session whose label differs between them.
    board.py decisions --report CHALLENGER.md --file DECISIONS.md --title TEXT [--note TEXT]
        Append the report's `## Decisions` section to the decisions log.

Python 3.11+ standard library only.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import difflib
import json
import os
import re
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

LABELS = ["SIMPLE", "MODERATE", "COMPLEX", "ENRICH", "META"]
ROLE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
SINCE = re.compile(r"^[0-9]+[mhdw]$")
MAY_CHANGE = {"nothing", "scratch-prompts"}
SEP = "\x1f"
# What run-board gathers into <run>/digest/; a role's `inputs` names some of these.
DIGEST_FILES = {
    "stats.txt", "stats.json", "sessions.json", "fallbacks.json", "errors.json", "slow.json",
    "suspects.json", "check.txt", "replay.txt", "replay.json", "MANIFEST.md",
}

# Open WebUI writes these at the start of (or around) its task prompts. A classified
# session whose messages carry one is a candidate for "META that slipped into
# classification" — a candidate only: the RAG template also starts with `### Task:`.
TASK_MARKERS = [
    "### Task:",
    "<chat_history>",
    "Available Tools: ",
    "Responses from models: ",
    "Existing memories:",
    "### Previous Summary:",
    "Create a concise, 3-5 word title",
]


def fail(message: str, code: int = 2) -> None:
    print(f"board.py: {message}", file=sys.stderr)
    sys.exit(code)


def clean(text: str, limit: int) -> str:
    """One line, at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------- config


def _string(table: dict, key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value or SEP in value or "\n" in value:
        fail(f"{where}: `{key}` must be a non-empty one-line string")
    return value


def _int(table: dict, key: str, where: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        fail(f"{where}: `{key}` must be a positive integer")
    return value


def _bool(table: dict, key: str, where: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        fail(f"{where}: `{key}` must be true or false")
    return value


def _names(table: dict, key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9._-]+", v) for v in value
    ):
        fail(f"{where}: `{key}` must be a list of plain names")
    return value


def _effective(router_config: Path, section: str, key: str, default: str) -> str:
    """A string setting as the router resolves it: default < file < environment."""
    env = os.environ.get(f"AI_ROUTER_{section.upper()}__{key.upper()}")
    if env:
        return env
    try:
        with router_config.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        fail(f"{router_config}: {e}")
    value = data.get(section, {}).get(key, default)
    return value if isinstance(value, str) and value else default


def cmd_config(args: argparse.Namespace) -> None:
    board_path = Path(args.board)
    try:
        with board_path.open("rb") as f:
            board = tomllib.load(f)
    except FileNotFoundError:
        fail(f"{board_path}: no such file (pass --board FILE)")
    except (OSError, tomllib.TOMLDecodeError) as e:
        fail(f"{board_path}: {e}")

    known = {"board", "digest", "role", "rules"}
    for key in board:
        if key not in known:
            fail(f"{board_path}: unknown table `{key}` (known: {', '.join(sorted(known))})")

    b = board.get("board", {})
    d = board.get("digest", {})
    since = args.since or _string(b, "since", "[board]", "7d")
    if not SINCE.match(since):
        fail(f"--since {since}: use a number and m, h, d or w (30m, 24h, 7d, 2w)", 2)
    settings = {
        "since": since,
        "reports_dir": args.out or _string(b, "reports_dir", "[board]", "agents/reports"),
        "decisions_file": _string(b, "decisions_file", "[board]", "agents/decisions.md"),
        "list_limit": _int(d, "list_limit", "[digest]", 5000),
        "slow_ms": _int(d, "slow_ms", "[digest]", 30000),
        "slow_classify_ms": _int(d, "slow_classify_ms", "[digest]", 3000),
        "thin_enrich_chars": _int(d, "thin_enrich_chars", "[digest]", 200),
        "replay_timeout_minutes": _int(d, "replay_timeout_minutes", "[digest]", 30),
    }

    router_config = Path(args.router_config)
    settings["sessions_dir"] = args.dir or _effective(
        router_config, "sessions", "dir", "logs/sessions"
    )
    settings["prompts_dir"] = _effective(router_config, "server", "prompts_dir", "prompts")

    roles = board.get("role", [])
    if not isinstance(roles, list) or not roles:
        fail(f"{board_path}: needs at least one [[role]]")
    seen: set[str] = set()
    lines = []
    for i, role in enumerate(roles, 1):
        where = f"{board_path}: [[role]] #{i}"
        unknown = set(role) - {
            "name", "spec", "report", "may_change", "timeout_minutes", "needs_sessions",
            "records_decisions", "inputs", "reads_reports", "description",
        }
        if unknown:
            fail(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name = _string(role, "name", where)
        if not ROLE_NAME.match(name) or name in seen:
            fail(f"{where}: `name` must be unique, lower-case letters, digits and dashes")
        seen.add(name)
        where = f"{board_path}: role {name}"
        spec = _string(role, "spec", where)
        if not Path(spec).is_file():
            fail(f"{where}: spec {spec} not found")
        report = _string(role, "report", where, f"{name}.md")
        if "/" in report or not report.endswith(".md"):
            fail(f"{where}: `report` must be a file name ending in .md")
        may_change = _string(role, "may_change", where, "nothing")
        if may_change not in MAY_CHANGE:
            fail(f"{where}: `may_change` must be one of {', '.join(sorted(MAY_CHANGE))}")
        inputs = _names(role, "inputs", where)
        for name_ in inputs:
            if name_ not in DIGEST_FILES:
                fail(f"{where}: input {name_} is not a digest file ({', '.join(sorted(DIGEST_FILES))})")
        reads = _names(role, "reads_reports", where)
        for other in reads:
            if other not in seen or other == name:
                fail(f"{where}: reads_reports names {other}, which is not an earlier role")
        lines.append(
            SEP.join(
                [
                    "role",
                    name,
                    spec,
                    report,
                    may_change,
                    str(_int(role, "timeout_minutes", where, 30)),
                    "yes" if _bool(role, "needs_sessions", where, True) else "no",
                    "yes" if _bool(role, "records_decisions", where, False) else "no",
                    ",".join(inputs),
                    ",".join(reads),
                ]
            )
        )
    if sum(1 for line in lines if line.split(SEP)[4] == "scratch-prompts") > 1:
        fail(f"{board_path}: at most one role may have may_change = \"scratch-prompts\"")
    if sum(1 for line in lines if line.split(SEP)[7] == "yes") > 1:
        fail(f"{board_path}: at most one role may have records_decisions = true")

    rules = board.get("rules", {}).get("text", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        fail(f"{board_path}: [rules] text must be a list of strings")

    for key, value in settings.items():
        text = str(value)
        if SEP in text or "\n" in text:
            fail(f"setting {key} must be one line")
        print(f"set{SEP}{key}{SEP}{text}")
    for line in lines:
        print(line)
    for rule in rules:
        print(f"rule{SEP}" + " ".join(rule.replace(SEP, " ").split()))


# -------------------------------------------------------------------------- suspects


def _texts(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict)
        )
    return ""


def _step(session: dict, name: str) -> dict | None:
    for step in session.get("steps") or []:
        if isinstance(step, dict) and step.get("step") == name:
            return step
    return None


def cmd_suspects(args: argparse.Namespace) -> None:
    found: dict[str, list[dict]] = defaultdict(list)
    asked: dict[tuple[str, str], list[dict]] = defaultdict(list)
    scanned = 0
    bad = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            s = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(s, dict):
            bad += 1
            continue
        scanned += 1
        sid = s.get("id", "?")
        query = s.get("user_query") or ""
        base = {
            "id": sid,
            "timestamp": s.get("timestamp"),
            "route": s.get("route"),
            "class": s.get("classification"),
            "query": clean(query, 80),
        }
        classify = _step(s, "classify")
        if classify is not None:
            evidence, frame = None, None
            if s.get("classification") == "META" and not s.get("classification_fallback"):
                evidence = "the classifier answered META (it was classified, and paid for)"
            for message in s.get("client_messages") or []:
                if evidence or not isinstance(message, dict):
                    break
                text = _texts(message)
                for marker in TASK_MARKERS:
                    at = text.find(marker)
                    if at >= 0:
                        evidence = f"{message.get('role', '?')} message holds {marker.strip()!r}"
                        frame = clean(text[at : at + 60], 60)
                        break
            if evidence:
                row = {**base, "evidence": evidence}
                if frame:
                    row["frame_start"] = frame
                found["meta_in_classification"].append(row)
            ms = s.get("classification_ms") or 0
            if ms >= args.slow_classify_ms:
                found["slow_classification"].append({**base, "classification_ms": ms})
        if s.get("classification") == "ENRICH" or s.get("route") == "enrich":
            enrich = _step(s, "enrich")
            text = (enrich or {}).get("response_content") or ""
            note = s.get("route_fallback")
            if enrich is None or len(text.strip()) < args.thin_enrich_chars or note:
                found["enrich_thin"].append(
                    {
                        **base,
                        "enrich_chars": len(text.strip()),
                        "route_fallback": note,
                        "enrich_error": (enrich or {}).get("error"),
                    }
                )
        if s.get("classification") == "COMPLEX" and s.get("route") != "xai":
            found["complex_kept_local"].append({**base, "route_fallback": s.get("route_fallback")})
        if s.get("route") == "xai":
            answer = _step(s, "answer") or {}
            usage = answer.get("usage") or {}
            if len(query) < 200:
                found["cloud_short_query"].append(
                    {
                        **base,
                        "prompt_tokens": usage.get("prompt_tokens"),
                        "completion_tokens": usage.get("completion_tokens"),
                    }
                )
        answer = _step(s, "answer")
        if answer and answer.get("finish_reason") == "length" and s.get("route") == "primary":
            found["local_answer_cut"].append(base)
        if query and s.get("route") not in (None, "meta"):
            key = (str(s.get("client_ip")), " ".join(query.lower().split())[:200])
            asked[key].append(base)

    for group in asked.values():
        if len(group) > 1:
            group.sort(key=lambda r: r.get("timestamp") or "")
            found["repeated_query"].append(
                {
                    "ids": [r["id"] for r in group],
                    "routes": [r["route"] for r in group],
                    "classes": [r["class"] for r in group],
                    "query": group[0]["query"],
                }
            )

    notes = {
        "meta_in_classification": "classified sessions that look like client task prompts; "
        "check `sessions show ID` (RAG prompts also start with `### Task:`)",
        "slow_classification": "classification_ms at or above the threshold",
        "enrich_thin": "ENRICH sessions whose search hop is missing, short or fell back",
        "complex_kept_local": "labelled COMPLEX but not answered by xAI (see route_fallback)",
        "cloud_short_query": "short queries answered by xAI: candidates for cloud-for-nothing",
        "local_answer_cut": "primary answers that ended on finish_reason=length",
        "repeated_query": "the same client asked the same query more than once "
        "(a retry: often a bad first answer)",
    }
    out = {
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sessions_scanned": scanned,
        "unreadable_lines": bad,
        "thresholds": {
            "slow_classify_ms": args.slow_classify_ms,
            "thin_enrich_chars": args.thin_enrich_chars,
        },
        "note": "candidates, not verdicts; queries cut at 80 chars",
        "categories": {},
    }
    for name, about in notes.items():
        rows = found.get(name, [])
        rows.sort(key=lambda r: r.get("timestamp") or "", reverse=True)
        out["categories"][name] = {
            "about": about,
            "count": len(rows),
            "shown": rows[: args.max],
        }
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


# ----------------------------------------------------------------------------- patch


def _tree(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _read(path: Path | None) -> list[str]:
    if path is None:
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)


def cmd_patch(args: argparse.Namespace) -> None:
    live, edited = _tree(Path(args.live)), _tree(Path(args.edited))
    prefix = args.path.strip("/")
    out = []
    for rel in sorted(set(live) | set(edited)):
        before, after = _read(live.get(rel)), _read(edited.get(rel))
        if before == after:
            continue
        name = f"{prefix}/{rel}"
        old = f"a/{name}" if rel in live else "/dev/null"
        new = f"b/{name}" if rel in edited else "/dev/null"
        out.append(f"diff --git a/{name} b/{name}\n")
        if rel not in live:
            out.append("new file mode 100644\n")
        if rel not in edited:
            out.append("deleted file mode 100644\n")
        for line in difflib.unified_diff(before, after, old, new, n=3):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    sys.stdout.write("".join(out))


# --------------------------------------------------------------------------- compare


def _load(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{path}: {e}", 1)
    return {}


def _labels_now(report: dict, logged: dict[str, str]) -> dict[str, str]:
    changed = {c["id"]: c["after"] for c in report.get("changed", [])}
    failed = {f["id"] for f in report.get("failed", [])}
    now = {}
    for sid, label in logged.items():
        if sid in failed:
            now[sid] = "FAILED"
        else:
            now[sid] = changed.get(sid, label)
    return now


def cmd_compare(args: argparse.Namespace) -> None:
    base, cand = _load(args.baseline), _load(args.candidate)
    rows = _load(args.sessions)
    if not isinstance(rows, list):
        fail(f"{args.sessions}: expected the JSON array of `sessions list --json`", 1)
    logged: dict[str, str] = {}
    was_fallback: set[str] = set()
    query: dict[str, str] = {}
    for r in rows:
        if r.get("meta_match") or not r.get("classification") or not r.get("route"):
            continue
        logged[r["id"]] = r["classification"]
        query[r["id"]] = clean(r.get("query") or "", 60)
        if r.get("classification_fallback"):
            was_fallback.add(r["id"])
    warnings = []
    for name, rep in (("baseline", base), ("candidate", cand)):
        if rep.get("replayed") != len(logged):
            warnings.append(
                f"{name} replayed {rep.get('replayed')} sessions but the sessions list has "
                f"{len(logged)} classified ones: the window moved, --limit/--route was used, "
                "or the list was cut by --limit; per-class numbers are approximate"
            )
        if rep.get("failed"):
            warnings.append(f"{name}: {len(rep['failed'])} sessions failed to classify")
    if base.get("since") != cand.get("since"):
        warnings.append(f"different windows: {base.get('since')} vs {cand.get('since')}")
    if base.get("classifier") != cand.get("classifier"):
        warnings.append("different classifiers: the comparison says nothing about the prompts")

    b_now, c_now = _labels_now(base, logged), _labels_now(cand, logged)
    per_class = []
    for label in LABELS + sorted(set(logged.values()) - set(LABELS)):
        ids = [i for i, lab in logged.items() if lab == label and i not in was_fallback]
        if not ids:
            continue
        ok_b = [i for i in ids if b_now[i] != "FAILED"]
        ok_c = [i for i in ids if c_now[i] != "FAILED"]
        agree_b = sum(1 for i in ok_b if b_now[i] == label)
        agree_c = sum(1 for i in ok_c if c_now[i] == label)
        per_class.append(
            {
                "class": label,
                "n": len(ids),
                "baseline_agree": agree_b,
                "baseline_pct": round(100 * agree_b / len(ok_b), 1) if ok_b else None,
                "candidate_agree": agree_c,
                "candidate_pct": round(100 * agree_c / len(ok_c), 1) if ok_c else None,
            }
        )
    fallback_ids = sorted(was_fallback)
    fb = {
        "n": len(fallback_ids),
        "baseline": dict(Counter(b_now[i] for i in fallback_ids)),
        "candidate": dict(Counter(c_now[i] for i in fallback_ids)),
    }
    flips = [
        {
            "id": i,
            "logged": logged[i],
            "logged_was_fallback": i in was_fallback,
            "baseline": b_now[i],
            "candidate": c_now[i],
            "query": query[i],
        }
        for i in sorted(logged)
        if b_now[i] != c_now[i]
    ]
    result = {
        "baseline": {k: base.get(k) for k in ("generated_at", "since", "replayed", "agreement")},
        "candidate": {k: cand.get(k) for k in ("generated_at", "since", "replayed", "agreement")},
        "per_class": per_class,
        "logged_by_fallback": fb,
        "flips": flips,
        "warnings": warnings,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f}%"

    print(
        f"replay agreement (vs logged labels, as `sessions replay` counts it): "
        f"{100 * (base.get('agreement') or 0):.1f}% → {100 * (cand.get('agreement') or 0):.1f}%"
    )
    print()
    print("| logged label | n (classifier-decided) | baseline agree | candidate agree | Δ |")
    print("|---|---|---|---|---|")
    for row in per_class:
        b, c = row["baseline_pct"], row["candidate_pct"]
        delta = "" if b is None or c is None else f"{c - b:+.1f}" + (" ▼" if c < b else "")
        print(
            f"| {row['class']} | {row['n']} | {row['baseline_agree']} ({pct(b)}) "
            f"| {row['candidate_agree']} ({pct(c)}) | {delta} |"
        )
    print()
    print(
        f"logged by a fallback (not ground truth): n={fb['n']}; now labelled "
        f"baseline {fb['baseline'] or '{}'} → candidate {fb['candidate'] or '{}'}"
    )
    print()
    print(f"flips between baseline and candidate: {len(flips)}")
    if flips:
        print()
        print("| id | logged | baseline → candidate | query (cut) |")
        print("|---|---|---|---|")
        for f in flips:
            mark = " (fallback)" if f["logged_was_fallback"] else ""
            print(
                f"| {f['id']} | {f['logged']}{mark} | {f['baseline']} → {f['candidate']} "
                f"| {f['query'].replace('|', '/')} |"
            )
    for w in warnings:
        print(f"\nwarning: {w}")


# ------------------------------------------------------------------------- decisions

DECISIONS_HEADER = """# Review board decisions

One entry per board run, appended by `agents/run-board` from the challenger's
`## Decisions` table. The `human` line is yours: when you merge or decline a proposal,
replace `pending` with `merged <commit>` or `declined: <why>` (see agents/README.md).
"""


def cmd_decisions(args: argparse.Namespace) -> None:
    try:
        report = Path(args.report).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        fail(f"{args.report}: {e}", 1)
    section = []
    inside = False
    for line in report.splitlines():
        if re.match(r"^##\s+Decisions\s*$", line):
            inside = True
            continue
        if inside and re.match(r"^#{1,2}\s", line):
            break
        if inside:
            section.append(line)
    body = "\n".join(section).strip()
    found = bool(body)
    if not found:
        body = (
            "(the challenger's report has no `## Decisions` section: nothing recorded; "
            "read the report)"
        )
    path = Path(args.file)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = f"\n## {args.title}\n\n"
    if args.note:
        entry += "".join(f"{n}\n" for n in args.note) + "\n"
    entry += body + "\n\nhuman: pending\n"
    with path.open("a", encoding="utf-8") as f:
        if path.stat().st_size == 0:
            f.write(DECISIONS_HEADER)
        f.write(entry)
    print("recorded" if found else "no-decisions")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="board.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config")
    p.add_argument("board")
    p.add_argument("--router-config", required=True)
    p.add_argument("--dir")
    p.add_argument("--since")
    p.add_argument("--out")
    p.set_defaults(run=cmd_config)

    p = sub.add_parser("suspects")
    p.add_argument("--slow-classify-ms", type=int, default=3000)
    p.add_argument("--thin-enrich-chars", type=int, default=200)
    p.add_argument("--max", type=int, default=50, help="rows shown per category")
    p.set_defaults(run=cmd_suspects)

    p = sub.add_parser("patch")
    p.add_argument("live")
    p.add_argument("edited")
    p.add_argument("--path", required=True)
    p.set_defaults(run=cmd_patch)

    p = sub.add_parser("compare")
    p.add_argument("baseline")
    p.add_argument("candidate")
    p.add_argument("--sessions", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_compare)

    p = sub.add_parser("decisions")
    p.add_argument("--report", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--title", required=True)
    p.add_argument("--note", action="append")
    p.set_defaults(run=cmd_decisions)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
