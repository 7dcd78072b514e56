"""Turns a saved pytest-benchmark JSON of this suite into bench/results/<name>.md + PNG plots, and
prints issue 4's targets (measured ratio, PASS/MISS).

    python bench/report.py bench/results/cpu_full.json.gz         # -> bench/results/cpu_full.md
    python bench/report.py run.json --out-dir /tmp/r --name try1
    python bench/report.py cpu_full.json cuda_full.json --name all   # merged; machine of the first
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report_data  # noqa: E402
import report_plots  # noqa: E402
import report_table  # noqa: E402
import targets  # noqa: E402


def machine_lines(run: report_data.Run) -> list:
    m = run.machine
    mu = m.get("mumoe", {})
    bi = mu.get("build_info", {})
    cpu = mu.get("cpu_model") or m.get("cpu", {}).get("brand_raw", "?")
    load = mu.get("loadavg_at_start"), mu.get("loadavg_at_save")
    fmt_load = lambda la: "?" if not la else " / ".join(f"{v:.1f}" for v in la)  # noqa: E731
    ext = mu.get("extension_file", {})
    return [
        f"- date (UTC): {run.datetime}",
        f"- command: `pytest {mu.get('pytest_args', '?')}` (in `{mu.get('cwd', '?')}`); "
        f"sweep `{mu.get('sweep', '?')}`, devices `{mu.get('devices', '?')}`, "
        f"{mu.get('budget_s', '?')} s of timed rounds per case",
        f"- CPU: {cpu}, {mu.get('logical_cpus', '?')} logical CPUs, flags "
        f"{', '.join(mu.get('cpu_flags', []))}",
        f"- torch {mu.get('torch', '?')}, {mu.get('torch_threads', '?')} threads; CUDA device: "
        f"{mu.get('cuda_device') or 'none'}",
        f"- mumoe_ext {bi.get('version', '?')}: CPU path `{bi.get('cpu_isa', '?')}` "
        f"(built+supported: {', '.join(bi.get('cpu_isas', []))}), CUDA kernels built: "
        f"{bi.get('cuda', '?')}; extension file modified {_utc(ext.get('mtime'))}",
        f"- commit {run.commit.get('id', '?')} (working tree state not recorded)",
        f"- load average (1/5/15 min) at start: {fmt_load(load[0])}, at end: {fmt_load(load[1])}",
    ] + _oversubscribed(load, mu.get("logical_cpus"))


def _cache(run: report_data.Run) -> str:
    notes = sorted({t.extra.get("cache", "warm caches") for g in run.groups for t in g.times.values()})
    return "caches " + "; ".join(notes)


def _utc(epoch) -> str:
    if epoch is None:
        return "?"
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _oversubscribed(load, cpus) -> list:
    worst = max((la[0] for la in load if la), default=0.0)
    if not cpus or worst <= cpus:
        return []
    return [f"- **note**: other jobs shared the machine (1-min load up to {worst:.1f} on {cpus} "
            "CPUs). Times include waits for preempted threads, most visible in calls of a few ms; "
            "ratios of the same group (measured back to back) are steadier than absolute times."]


def render(run: report_data.Run, name: str, plots: list, results, sources) -> str:
    merged = [f"- merged from: {', '.join(f'`{p.name}`' for p in sources)} (machine lines: the "
              "first)"] if len(sources) > 1 else []
    lines = [f"# mumoe benchmarks: {name}", "", *machine_lines(run), *merged, "",
             "Times are the minimum over each case's rounds (ms), each round one call with "
             f"{_cache(run)}; every ratio compares implementations measured back to back in the "
             "same run on the same inputs.",
             "", "## Targets (issue 4)", "", *targets.markdown(results)]
    lines += report_table.op_sections(run)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, nargs="+", help="file(s) written by pytest --benchmark-json=...")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--name", help="output base name (default: the JSON's file name)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)

    run = report_data.load(*args.json)
    if not run.groups:
        print(f"{' '.join(map(str, args.json))}: no mumoe benchmark cases found", file=sys.stderr)
        return 1
    name = args.name or report_data.run_name(args.json[0])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    plots = [] if args.no_plots else report_plots.write_plots(run, args.out_dir, name)
    results = targets.evaluate(run)
    md = args.out_dir / f"{name}.md"
    md.write_text(render(run, name, plots, results, args.json))
    print(f"wrote {md}" + "".join(f"\nwrote {p}" for p in plots))
    print("\nTargets (issue 4):")
    print(targets.text(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
