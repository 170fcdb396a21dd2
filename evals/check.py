#!/usr/bin/env python3
"""Check evals/golden.jsonl and print its counts (standard library only).

    python3 evals/check.py [FILE] [--markdown]

Checks every line is a JSON object with exactly the keys id, label, group, messages,
reason, source; ids are unique; labels are SIMPLE, MODERATE, COMPLEX or ENRICH; messages
are OpenAI chat messages ending with a user message; and the set still meets the coverage
minimums in README.md (counted by group-name prefix). Prints the group x label table
(--markdown: as a Markdown table for README.md). Exits 1 if anything is wrong.
"""

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

LABELS = ["SIMPLE", "MODERATE", "COMPLEX", "ENRICH"]
KEYS = {"id", "label", "group", "messages", "reason", "source"}
ROLES = {"system", "user", "assistant"}

# Coverage minimums. Kinds are group-name prefixes: followup-*, lang-<language>, paste-*,
# inject-*, near-*. Multi-turn means more than one user/assistant message.
MIN_TOTAL = 320
MIN_PER_LABEL = 50
MIN_MULTI_TURN = 60
MIN_KIND = {"followup": 40, "lang": 40, "paste": 20, "inject": 15, "near": 40}
MIN_LANGUAGES = 5
PASTE_MIN_CHARS = 300      # a pasted document is at least this long
FOLLOWUP_MAX_CHARS = 300   # a short follow-up is at most this long
# What the classifier sees of the earlier turns (config/router.toml [routing]).
CONTEXT_MESSAGES = 4
CONTEXT_CHARS = 1500
MAX_INPUT_CHARS = 4000


def kind(group):
    head = group.split("-", 1)[0]
    return head if head in MIN_KIND else "plain"


def check_case(n, obj, problems, warnings):
    where = f"line {n}"
    if not isinstance(obj, dict):
        problems.append(f"{where}: not a JSON object")
        return None
    where = f"line {n} ({obj.get('id', '?')})"
    keys = set(obj)
    if keys != KEYS:
        missing, extra = KEYS - keys, keys - KEYS
        problems.append(f"{where}: keys: missing {sorted(missing)}, unexpected {sorted(extra)}")
        return None
    for key in ("id", "label", "group", "reason", "source"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            problems.append(f"{where}: {key} must be a non-empty string")
            return None
    label, group, reason = obj["label"], obj["group"], obj["reason"]
    if label == "META":
        problems.append(f"{where}: META is decided by rules before the classifier, not in this set")
    elif label not in LABELS:
        problems.append(f"{where}: label {label!r} is not one of {LABELS}")
    if not obj["id"].startswith(label.lower() + "-"):
        problems.append(f"{where}: id should start with '{label.lower()}-'")
    if "\n" in reason:
        problems.append(f"{where}: reason must be one line")
    if group != group.lower() or " " in group:
        problems.append(f"{where}: group should be lower-case with no spaces")
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        problems.append(f"{where}: messages must be a non-empty list")
        return None
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            problems.append(f"{where}: message {i} must have exactly role and content")
            return None
        if m["role"] not in ROLES:
            problems.append(f"{where}: message {i} has role {m['role']!r}")
        if not isinstance(m["content"], str) or not m["content"].strip():
            problems.append(f"{where}: message {i} content must be a non-empty string")
            return None
    if messages[-1]["role"] != "user":
        problems.append(f"{where}: the last message must be the user's")
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    last = messages[-1]["content"]
    k = kind(group)
    if k == "followup":
        if len(turns) < 3:
            problems.append(f"{where}: a follow-up needs earlier turns")
        if len(last) > FOLLOWUP_MAX_CHARS:
            problems.append(f"{where}: a follow-up should be short ({len(last)} chars)")
    if k == "paste" and len(last) < PASTE_MIN_CHARS:
        problems.append(f"{where}: a pasted document should be at least {PASTE_MIN_CHARS} chars")
    if k == "near":
        others = [x for x in LABELS + ["META"] if x != label and f"near {x}" in reason]
        if not others and not any(f"/{x}" in reason for x in LABELS if x != label):
            problems.append(f"{where}: a near-miss reason must say 'near <OTHER LABEL>: why not'")
    if len(last) > MAX_INPUT_CHARS:
        warnings.append(f"{where}: last message is {len(last)} chars; the classifier sees head + tail only")
    seen = turns[:-1][-CONTEXT_MESSAGES:]
    context = sum(len(m["content"]) + len(m["role"]) + 3 for m in seen)
    if k == "followup" and (len(turns) - 1 > CONTEXT_MESSAGES or context > CONTEXT_CHARS):
        warnings.append(f"{where}: earlier turns exceed what the classifier sees "
                        f"({CONTEXT_MESSAGES} messages, {CONTEXT_CHARS} chars)")
    return obj


def table(cases, markdown):
    counts = defaultdict(Counter)
    for c in cases:
        counts[c["group"]][c["label"]] += 1
    order = list(dict.fromkeys(c["group"] for c in cases))
    header = ["group"] + LABELS + ["total"]
    rows = [[g] + [counts[g][x] for x in LABELS] + [sum(counts[g].values())] for g in order]
    totals = Counter(c["label"] for c in cases)
    rows.append(["**total**" if markdown else "TOTAL"] + [totals[x] for x in LABELS] + [len(cases)])
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
        out += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
        return "\n".join(out)
    width = max(len(str(r[0])) for r in rows + [header])
    fmt = lambda r: f"{r[0]:<{width}}" + "".join(f"{str(v):>10}" for v in r[1:])
    lines = [fmt(header)] + [fmt(r) for r in rows[:-1]] + ["-" * (width + 10 * 5), fmt(rows[-1])]
    return "\n".join(lines)


def coverage(cases):
    """(name, count, minimum) for every coverage requirement."""
    by_kind = Counter(kind(c["group"]) for c in cases)
    languages = {c["group"].split("-", 1)[1] for c in cases if kind(c["group"]) == "lang"}
    multi = sum(1 for c in cases if len([m for m in c["messages"] if m["role"] != "system"]) > 1)
    labels = Counter(c["label"] for c in cases)
    rows = [("cases", len(cases), MIN_TOTAL)]
    rows += [(f"label {x}", labels[x], MIN_PER_LABEL) for x in LABELS]
    rows.append(("multi-turn", multi, MIN_MULTI_TURN))
    names = {"followup": "short follow-ups (followup-*)", "lang": "non-English (lang-*)",
             "paste": "pasted documents (paste-*)", "inject": "prompt injection (inject-*)",
             "near": "near-misses (near-*)"}
    rows += [(names[k], by_kind[k], m) for k, m in MIN_KIND.items()]
    rows.append((f"languages ({', '.join(sorted(languages))})", len(languages), MIN_LANGUAGES))
    return rows


def main(argv):
    markdown = "--markdown" in argv
    args = [a for a in argv if a != "--markdown"]
    path = Path(args[0]) if args else Path(__file__).with_name("golden.jsonl")
    problems, warnings, cases = [], [], []
    ids, lasts = Counter(), {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                problems.append(f"line {n}: empty line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"line {n}: invalid JSON: {e}")
                continue
            case = check_case(n, obj, problems, warnings)
            if case is None:
                continue
            ids[case["id"]] += 1
            key = json.dumps(case["messages"], ensure_ascii=False).lower()
            if key in lasts:
                problems.append(f"line {n} ({case['id']}): same messages as {lasts[key]}")
            lasts[key] = case["id"]
            cases.append(case)
    problems += [f"id {i} appears {c} times" for i, c in ids.items() if c > 1]
    print(table(cases, markdown))
    print()
    for name, count, minimum in coverage(cases):
        ok = "ok" if count >= minimum else "TOO FEW"
        print(f"{name:<52} {count:>4}  (min {minimum})  {ok}")
        if count < minimum:
            problems.append(f"{name}: {count}, need at least {minimum}")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {path}", file=sys.stderr)
        return 1
    print(f"\n{path}: {len(cases)} cases, no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
