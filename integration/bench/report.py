#!/usr/bin/env python3
"""Statistics, markdown table and SVG chart for integration/bench.sh (make bench).

    report.py SAMPLES.tsv META.txt OUT.md OUT.svg

SAMPLES.tsv: one sample a line, `metric<TAB>shim<TAB>iteration<TAB>value`, shim being
`robust`, `reference` or `floor` (bare runc, no shim); times in microseconds, memory in
KiB, counts and rates as they are. META.txt: the header lines (markdown) bench.sh wrote.
Prints the markdown table to stdout and writes OUT.md (header, table, targets, notes) and
OUT.svg (a bar chart of the ratios ours / reference). Python standard library only.
"""

import html
import math
import sys
from collections import defaultdict

# key: (label, kind, better); kind: "ms" (from us), "mib" (from KiB), "count", "rate"
METRICS = [
    ("rss_1", "RSS, one shim with one container (MiB)", "mib", "lower"),
    ("pss_1", "PSS, one shim with one container (MiB)", "mib", "lower"),
    ("threads_1", "threads, one shim with one container", "count", "lower"),
    ("ws_1", "working set, one shim with one container: `Referenced` after clear_refs, an exec, a Stats, a State (MiB)", "mib", "lower"),
    ("rss_pod", "RSS, one pod daemon with 5 containers (MiB)", "mib", "lower"),
    ("pss_pod", "PSS, one pod daemon with 5 containers (MiB)", "mib", "lower"),
    ("threads_pod", "threads, one pod daemon with 5 containers", "count", "lower"),
    ("rss_many", "RSS summed over {many} running containers (MiB)", "mib", "lower"),
    ("pss_many", "PSS summed over {many} running containers (MiB)", "mib", "lower"),
    ("threads_many", "threads summed over {many} running containers", "count", "lower"),
    ("run_rm", "`ctr run --rm IMAGE id true` (ms)", "ms", "lower"),
    ("rm_delete", "... of which `/tasks/exit` -> `/tasks/delete`: Delete (runc delete, unmount) (ms)", "ms", "lower"),
    ("rm_teardown", "... of which `/tasks/delete` -> `/containers/delete`: shim exit, bundle and snapshot removal (ms)", "ms", "lower"),
    ("runc_run", "floor: bare `runc run` of the same bundle (ms)", "ms", "lower"),
    ("runc_seq", "floor: `runc create` + `start` + wait + `delete`, the runc calls of a shim (ms)", "ms", "lower"),
    ("cri_pod", "CRI RunPodSandbox, host network (ms)", "ms", "lower"),
    ("cri_running", "CRI RunPodSandbox + CreateContainer + StartContainer to RUNNING (ms)", "ms", "lower"),
    ("run_d", "`ctr run -d` create + start: shim `start` included (ms)", "ms", "lower"),
    ("task_create", "... of which task create: shim `start` + Create (runc create) (ms)", "ms", "lower"),
    ("task_start", "... of which task start: Start (runc start) (ms)", "ms", "lower"),
    ("shim_start", "shim `start` action alone, exec to exit (ms)", "ms", "lower"),
    ("kill_exit", "SIGKILL to the init -> `/tasks/exit` seen by a subscriber (ms)", "ms", "lower"),
    ("task_delete", "`ctr task delete` of a stopped task (ms)", "ms", "lower"),
    ("shim_delete", "shim `delete` action after the shim was SIGKILLed (ms)", "ms", "lower"),
    ("throughput", "start throughput, {par} `ctr run -d` in parallel (containers/s)", "rate", "higher"),
    ("stdio_cpu", "stdio: the shim's CPU time (utime+stime) per GiB a container writes to stdout, `ctr run` reading (ms/GiB)", "count", "lower"),
    ("stdio_mbps", "stdio: that write's throughput over the whole `ctr run` (MB/s)", "count", "higher"),
    ("stdio_hwm", "stdio: the shim's peak RSS (VmHWM) after it (MiB)", "mib", "lower"),
    ("stdio_slow_hwm", "stdio, slow reader (about 8 MB/s): the shim's peak RSS (VmHWM) after {slow} MiB (MiB)", "mib", "lower"),
]
NOT_MEASURED_WHY = {}
FLOORS = {"runc_run", "runc_seq"}  # no shim: one set of samples, shown in both columns  # metric -> reason, from "#skip metric reason" lines in SAMPLES


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(1, math.ceil(p / 100.0 * len(s)))
    return s[k - 1]


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def conv(kind, v):
    if kind == "ms":
        return v / 1000.0
    if kind == "mib":
        return v / 1024.0
    return v


def fmt(kind, v):
    if v is None:
        return "n/a"
    if kind == "ms":
        return f"{v:.1f}"
    if kind == "mib":
        return f"{v:.2f}"
    if kind == "rate":
        return f"{v:.1f}"
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.1f}"


def load(path):
    data = defaultdict(lambda: defaultdict(list))
    errors = []
    params = {}
    notes = defaultdict(int)
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("#skip\t"):
                _, metric, why = line.split("\t", 2)
                NOT_MEASURED_WHY[metric] = why
                continue
            if line.startswith("#error\t"):
                errors.append(line.split("\t", 1)[1])
                continue
            if line.startswith("#note\t"):
                notes[line.split("\t", 1)[1]] += 1
                continue
            if line.startswith("#param\t"):
                _, k, v = line.split("\t", 2)
                params[k] = v
                continue
            if line.startswith("#"):
                continue
            metric, shim, _it, value = line.split("\t")
            data[metric][shim].append(float(value))
    return data, errors, params, notes


def build_rows(data, params):
    rows = []  # (key, label, kind, better, rob_med, rob_p95, ref_med, ref_p95, ratio, n_r, n_f)
    for key, label, kind, better in METRICS:
        label = label.format(many=params.get("many", "50"), par=params.get("parallel", "8"),
                             slow=params.get("slow", "32"))
        per = data.get(key, {})
        if key in FLOORS:
            fl = [conv(kind, v) for v in per.get("floor", [])]
            if fl:
                m, p = median(fl), percentile(fl, 95)
                rows.append((key, label, kind, better, m, p, m, p, None, len(fl), len(fl)))
            else:
                rows.append((key, label, kind, better, None, None, None, None, None, 0, 0))
            continue
        rob = [conv(kind, v) for v in per.get("robust", [])]
        ref = [conv(kind, v) for v in per.get("reference", [])]
        rm = median(rob) if rob else None
        rp = percentile(rob, 95) if rob else None
        fm = median(ref) if ref else None
        fp = percentile(ref, 95) if ref else None
        ratio = rm / fm if rm is not None and fm else None
        rows.append((key, label, kind, better, rm, rp, fm, fp, ratio, len(rob), len(ref)))
    return rows


def margins(by):
    """Rows: how far `ctr run --rm` is above each floor (medians)."""
    out = []
    for fkey, what in (("runc_run", "bare `runc run`"), ("runc_seq", "the runc calls of a shim")):
        run, fl = by.get("run_rm"), by.get(fkey)
        if not run or not fl or fl[4] is None or (run[4] is None and run[6] is None):
            continue
        ro = run[4] - fl[4] if run[4] is not None else None
        fo = run[6] - fl[4] if run[6] is not None else None
        rr = f"{ro / fo:.2f}" if ro is not None and fo and fo > 0 else "n/a"
        out.append(f"| `ctr run --rm` above {what}, medians (ms) | {fmt('ms', ro)} | - | {fmt('ms', fo)} | - | {rr} |")
    return out


def table(rows):
    out = [
        "| metric | robust median | robust p95 | reference median | reference p95 | ratio robust/reference |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    by = {r[0]: r for r in rows}
    for key, label, kind, better, rm, rp, fm, fp, ratio, nr, nf in rows:
        if key in NOT_MEASURED_WHY and rm is None and fm is None:
            out.append(f"| {label} | not measured | | | | |")
        elif key in FLOORS:
            cell = fmt(kind, rm)
            out.append(f"| {label} | {cell} (same floor) | {fmt(kind, rp)} | {cell} (same floor) | {fmt(kind, fp)} | - |")
        else:
            note = " (higher is better)" if better == "higher" and "higher" not in label else ""
            r = f"{ratio:.2f}" if ratio is not None else "n/a"
            out.append(f"| {label}{note} | {fmt(kind, rm)} | {fmt(kind, rp)} | {fmt(kind, fm)} | {fmt(kind, fp)} | {r} |")
        if key == "runc_seq":
            out.extend(margins(by))
    return out


def targets(rows):
    by = {r[0]: r for r in rows}
    out = ["## Targets (docs/benchmarks.md#targets)", ""]

    def verdict(ok):
        return "**met**" if ok else "**missed**"

    rss = by["rss_1"]
    if rss[4] is not None:
        out.append(
            f"- RSS of one shim with one container <= 2 MB (checked as 2 MiB = 2048 KiB): "
            f"{rss[4]:.2f} MiB median ({rss[4] * 1024:.0f} KiB), the reference "
            f"{fmt('mib', rss[6])} MiB: {verdict(rss[4] <= 2.0)}"
        )
    run = by["run_rm"]
    if run[4] is not None and run[6]:
        out.append(
            f"- `ctr run --rm` <= 0.85x the Go shim: {run[4]:.1f} ms vs {run[6]:.1f} ms median, "
            f"ratio {run[8]:.2f}: {verdict(run[8] <= 0.85)}"
        )
    floor = by["runc_run"][4]
    if run[4] is not None and floor is not None:
        d = run[4] - floor
        out.append(
            f"- `ctr run --rm` within 10 ms of bare `runc run`: {run[4]:.1f} ms vs {floor:.1f} ms "
            f"median, {d:+.1f} ms (the Go shim: {run[6] - floor:+.1f} ms): {verdict(d <= 10.0)}"
            if run[6] is not None
            else f"- `ctr run --rm` within 10 ms of bare `runc run`: {d:+.1f} ms: {verdict(d <= 10.0)}"
        )
    return out


def svg(rows, path, title):
    """Horizontal bars on a log2 axis centred on parity: a bar goes left of 1.0 when the
    ratio is below 1, right when above; green where robust is better."""
    items = [(r[1], r[8], r[3]) for r in rows if r[8] is not None and r[8] > 0]
    longest = max([len(r[0].replace("`", "")) for r in items] + [40])
    label_w, axis_w, row_h, top, pad = int(longest * 6.6) + 60, 420, 24, 78, 16
    width = label_w + axis_w + 70
    height = top + row_h * max(1, len(items)) + 46
    span = 3.0  # log2: 1/8 .. 8
    for _, r, _ in items:
        span = max(span, min(5.0, math.ceil(abs(math.log2(r)) + 0.25)))

    def x(v):
        v = min(max(v, 2 ** -span), 2 ** span)
        return label_w + (math.log2(v) + span) / (2 * span) * axis_w

    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{pad}" y="22" font-size="15" font-weight="bold">{e(title)}</text>',
        f'<text x="{pad}" y="40" fill="#555">ratio robust / reference of the medians, log scale; '
        f"green: robust better, red: robust worse, grey: within 2 %</text>",
        f'<text x="{pad}" y="56" fill="#555">(for throughput higher is better; for every other row lower is better)</text>',
    ]
    bottom = top + row_h * max(1, len(items))
    k = -int(span)
    while k <= int(span):
        v = 2.0 ** k
        parts.append(f'<line x1="{x(v):.1f}" y1="{top - 4}" x2="{x(v):.1f}" y2="{bottom + 2}" stroke="#ddd"/>')
        lab = f"{v:g}" if v >= 1 else f"1/{int(round(1 / v))}"
        parts.append(f'<text x="{x(v):.1f}" y="{bottom + 16}" text-anchor="middle" fill="#333">{lab}</text>')
        k += 1
    for i, (label, ratio, better) in enumerate(items):
        y = top + i * row_h
        if abs(ratio - 1.0) < 0.02:
            color = "#999999"
        elif (ratio < 1.0) == (better == "lower"):
            color = "#3a9d4a"
        else:
            color = "#c8423b"
        x0, x1 = sorted((x(1.0), x(ratio)))
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{e(label.replace("`", ""))}</text>')
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(1.5, x1 - x0):.1f}" height="{row_h - 8}" fill="{color}"/>'
        )
        if ratio >= 1.0:
            parts.append(f'<text x="{x1 + 4:.1f}" y="{y + 16}">{ratio:.2f}</text>')
        else:
            parts.append(f'<text x="{x0 - 4:.1f}" y="{y + 16}" text-anchor="end">{ratio:.2f}</text>')
    parts.append(f'<line x1="{x(1.0):.1f}" y1="{top - 4}" x2="{x(1.0):.1f}" y2="{bottom + 2}" stroke="#333"/>')
    parts.append(
        f'<line x1="{x(0.85):.1f}" y1="{top - 4}" x2="{x(0.85):.1f}" y2="{bottom + 2}" stroke="#333" stroke-dasharray="4,3"/>'
    )
    parts.append(f'<text x="{x(0.85) - 3:.1f}" y="{top - 8}" text-anchor="end" fill="#333">0.85</text>')
    parts.append(
        f'<text x="{label_w}" y="{bottom + 36}" fill="#555">solid: parity (1.0); dashed: 0.85, the target of ctr run --rm</text>'
    )
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    samples, meta, out_md, out_svg = sys.argv[1:]
    data, errors, params, notes = load(samples)
    rows = build_rows(data, params)
    tbl = table(rows)
    with open(meta) as f:
        header = f.read().rstrip("\n")
    lines = [header, "", "## Results", ""] + tbl + [""] + targets(rows) + [""]
    lines.append("## Notes")
    lines.append("")
    lines.append(
        "- median and p95 (nearest rank) over the samples of each shim; samples per row "
        "(robust, reference): "
        + ", ".join(f"{r[0]} {r[9]}/{r[10]}" for r in rows)
    )
    for metric, why in sorted(NOT_MEASURED_WHY.items()):
        lines.append(f"- {metric}: not measured: {why}")
    for note, n in sorted(notes.items()):
        lines.append(f"- {n}x {note}")
    if errors:
        lines.append(f"- {len(errors)} failed step(s) during the run (their samples are missing):")
        for e in errors[:40]:
            lines.append(f"  - {e}")
        if len(errors) > 40:
            lines.append(f"  - ... and {len(errors) - 40} more")
    else:
        lines.append("- no step failed")
    with open(out_md, "w") as f:
        f.write("\n".join(lines) + "\n")
    svg(rows, out_svg, params.get("title", "robust-shim vs containerd-shim-runc-v2"))
    print("\n".join(tbl))
    print()
    print("\n".join(targets(rows)))
    if errors:
        print(f"\n{len(errors)} failed step(s): see {out_md}")


if __name__ == "__main__":
    main()
