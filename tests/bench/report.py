"""Turns a bench run's raw figures into issue 7's derived figures and targets, prints them
as one table and shapes the JSON written to tests/bench/results/."""


def _sub(a, b):
    return None if a is None or b is None else a - b


def _ratio(a, b):
    return None if a is None or not b else a / b


def derive(f):
    lat, tp32, tp256, st = (f["latency_c1"], f["throughput_c32"], f["throughput_c256"],
                            f["streaming"])
    direct = lat["direct"]
    added = {path: {k: _sub(v[k], direct[k]) for k in ("p50_ms", "p99_ms", "p999_ms")}
             for path, v in lat.items() if path != "direct"}
    routers = ("router", "router_sessions")
    mem = f["memory"]
    return {
        "added_latency_c1": added,
        "classification_share_ms": _sub(added["simple"]["p50_ms"], added["meta"]["p50_ms"]),
        "stream_ttfc_added_ms": {p: _sub(st[p]["ttfc_ms"], st["direct"]["ttfc_ms"])
                                 for p in st if p != "direct"},
        "cpu_ratio_to_nginx": {p: _ratio(tp32[p]["cpu_us_per_req"],
                                         tp32["nginx"]["cpu_us_per_req"])
                               for p in ("meta", "meta_sessions", "simple")},
        "sessions_cost": {
            "p50_added_ms": _sub(added["meta_sessions"]["p50_ms"], added["meta"]["p50_ms"]),
            "throughput_c32_on_over_off": _ratio(tp32["meta_sessions"]["rps"],
                                                 tp32["meta"]["rps"]),
            "cpu_us_per_req_added": _sub(tp32["meta_sessions"]["cpu_us_per_req"],
                                         tp32["meta"]["cpu_us_per_req"]),
        },
        "rss_idle_mb": max(mem["idle"][r]["rss_mb"] for r in routers),
        "rss_peak_c256_mb": max(mem["after_c256"][r]["hwm_mb"] for r in routers),
    }


def targets(f, d):
    lat_nginx = d["added_latency_c1"]["nginx"]["p50_ms"]
    add = d["added_latency_c1"]
    tp32, tp256, st = f["throughput_c32"], f["throughput_c256"], f["streaming"]["meta"]
    share = d["classification_share_ms"]

    def le(value, limit):
        return None if value is None or limit is None else value <= limit

    def ge(value, limit):
        return None if value is None else value >= limit
    rows = [
        ("META added p50 (ms)", add["meta"]["p50_ms"], "≤ 2× nginx hop's added p50",
         2 * lat_nginx if lat_nginx is not None else None),
        ("SIMPLE added p50 (ms)", add["simple"]["p50_ms"], "≤ 2× nginx hop's added p50",
         2 * lat_nginx if lat_nginx is not None else None),
        ("META added p99 (ms)", add["meta"]["p99_ms"], "≤ 0.3 ms", 0.3),
        ("SIMPLE added p99 (ms)", add["simple"]["p99_ms"], "≤ 0.3 ms", 0.3),
    ]
    out = [{"name": n, "value": v, "target": t, "limit": lim, "met": le(v, lim)}
           for n, v, t, lim in rows]
    out += [
        {"name": "c=32 req/s ÷ nginx, sessions off", "value": tp32["meta"]["ratio_to_nginx"],
         "target": "≥ 0.5", "limit": 0.5, "met": ge(tp32["meta"]["ratio_to_nginx"], 0.5)},
        {"name": "c=32 req/s ÷ nginx, sessions on",
         "value": tp32["meta_sessions"]["ratio_to_nginx"], "target": "≥ 0.3", "limit": 0.3,
         "met": ge(tp32["meta_sessions"]["ratio_to_nginx"], 0.3)},
    ]
    errors = tp256["meta"]["errors"] + tp256["meta_sessions"]["errors"]
    out.append({"name": "c=256 errors (sessions off + on)", "value": errors, "target": "0",
                "limit": 0, "met": errors == 0})
    cpu = d["cpu_ratio_to_nginx"]["meta"]
    out.append({"name": "CPU per request ÷ nginx hop (c=32, META)", "value": cpu,
                "target": "≤ 3×", "limit": 3, "met": le(cpu, 3)})
    ttfc = d["stream_ttfc_added_ms"]["meta"]
    out.append({"name": "stream: first chunk added (ms)", "value": ttfc, "target": "≤ 0.5 ms",
                "limit": 0.5, "met": le(ttfc, 0.5)})
    late = st["chunks_over_1ms"] + st["chunks_batched"] + st["missing_chunks"] + st["errors"]
    out.append({"name": "stream: chunks late (>1 ms) or batched", "value": late,
                "target": f"0 of {st['chunks']}", "limit": 0, "met": late == 0})
    out.append({"name": "RSS idle (MB)", "value": d["rss_idle_mb"], "target": "≤ 15 MB",
                "limit": 15, "met": le(d["rss_idle_mb"], 15)})
    out.append({"name": "RSS peak at c=256 (MB)", "value": d["rss_peak_c256_mb"],
                "target": "≤ 60 MB", "limit": 60, "met": le(d["rss_peak_c256_mb"], 60)})
    out.append({"name": "router's share of classification (ms)", "value": share,
                "target": "≤ 0.5 ms", "limit": 0.5, "met": le(share, 0.5)})
    return out


def build(figures, opts, machine, now, elapsed):
    derived = derive(figures)
    return {"date": now.isoformat(timespec="seconds"), "machine": machine,
            "options": opts, "elapsed_s": round(elapsed, 1), "figures": figures,
            "derived": derived, "targets": targets(figures, derived)}


def _fmt(value, digits=3):
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _triple(v):
    return " / ".join(_fmt(v[k]) for k in ("p50_ms", "p99_ms", "p999_ms"))


def table(result):
    f, d, m = result["figures"], result["derived"], result["machine"]
    lat, tp32, tp256 = f["latency_c1"], f["throughput_c32"], f["throughput_c256"]
    st, add = f["streaming"], d["added_latency_c1"]
    rows = []

    def row(name, value, target="", ok=None):
        mark = {True: "✓", False: "✗", None: ""}[ok]
        rows.append((name, value, target, mark))

    def section(title):
        rows.append((title, None, None, None))

    names = {"direct": "upstream direct", "nginx": "nginx hop", "meta": "router META",
             "simple": "router SIMPLE", "meta_sessions": "router META, sessions on"}
    section("c=1 latency p50 / p99 / p99.9 (ms), and added over direct")
    for path, label in names.items():
        text = _triple(lat[path])
        if path != "direct":
            text += f"   (+{_triple(add[path])})"
        row(label, text)
    section("throughput: req/s (÷ nginx hop) · errors · CPU µs/request")
    for c, tp in (("32", tp32), ("256", tp256)):
        for path, v in tp.items():
            text = (f"{v['rps']:,.0f} ({_fmt(v['ratio_to_nginx'], 2)}×) · {v['errors']} err"
                    f" · {_fmt(v['cpu_us_per_req'], 1)} µs")
            row(f"c={c} {names[path]}", text)
    section("streaming: first chunk (ms, request leg + first delivery) · per-chunk delay "
            "p50 / p99 / max (ms) · late or batched")
    for path, v in st.items():
        cd = v["chunk_delay_ms"]
        row(names[path], f"{_fmt(v['ttfc_ms'])} · {_fmt(cd['p50'])} / {_fmt(cd['p99'])} / "
            f"{_fmt(cd['max'])} · {v['chunks_over_1ms']} late, {v['chunks_batched']} batched"
            f" of {v['chunks']}")
    section("memory VmRSS idle → VmHWM after c=256 (MB)")
    for name, label in (("router", "router"), ("router_sessions", "router, sessions on"),
                        ("hop", "nginx hop (master + workers)")):
        row(label, f"{_fmt(f['memory']['idle'][name]['rss_mb'], 1)} → "
            f"{_fmt(f['memory']['after_c256'][name]['hwm_mb'], 1)}")
    sc = d["sessions_cost"]
    section("session logging (on − off)")
    row("added p50 at c=1 (ms)", _fmt(sc["p50_added_ms"]))
    row("c=32 req/s on ÷ off", _fmt(sc["throughput_c32_on_over_off"], 2))
    row("CPU µs/request added", _fmt(sc["cpu_us_per_req_added"], 1))
    section("issue 7 targets")
    for t in result["targets"]:
        digits = 2 if "÷" in t["name"] else 3
        value = t["value"] if isinstance(t["value"], int) else _fmt(t["value"], digits)
        limit = t["limit"] if not isinstance(t["limit"], float) else _fmt(t["limit"], 3)
        target = t["target"] + (f" (= {limit})" if "nginx hop's" in t["target"] else "")
        row(t["name"], str(value), target, t["met"])
    width = max(len(r[0]) for r in rows if r[1] is not None) + 2
    vwidth = max(len(r[1]) for r in rows if r[1] is not None) + 2
    header = (f"ai-router bench · {result['date']} · {m['cpu']}, {m['cores']} cores, "
              f"{m['memory_gib']} GiB · kernel {m['kernel']} · commit {m['commit']}"
              f"{' · QUICK' if result['options']['quick'] else ''}")
    lines = [header, "=" * min(len(header), 110)]
    for name, value, target, mark in rows:
        if value is None:
            lines.append(f"\n{name}")
            continue
        lines.append(f"  {name:<{width}}{value:<{vwidth}}{target or ''} {mark or ''}".rstrip())
    met = sum(1 for t in result["targets"] if t["met"])
    lines.append(f"\n{met} of {len(result['targets'])} targets met")
    return "\n".join(lines)
