"""The benchmark's table (markdown) and chart (PNG) from its result dictionary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STAGE_ORDER = ("decode", "preprocess", "inference", "postprocess", "track", "rules", "motion")


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _met(target: dict[str, Any] | None) -> str:
    if target is None or target["met"] is None:
        return "n/a"
    return "yes" if target["met"] else "**no**"


def _events(q: dict[str, Any]) -> str:
    ref = q["reference_events"]
    if not ref and not q["extra_events"]:
        return "no events in the reference"
    parts = []
    for kind in sorted(set(ref) | set(q["extra_events"])):
        parts.append(
            f"{kind.replace('zone_', '')} missed {q['missed_events'].get(kind, 0)}/{ref.get(kind, 0)}, "
            f"extra {q['extra_events'].get(kind, 0)}"
        )
    return "; ".join(parts)


def render_table(r: dict[str, Any]) -> str:
    targets = {t["target"]: t for t in r["targets"]}
    lim, off, peer, q = r["limit"], r["offline"], r["peer"], r["quality"]
    auto = r["auto"]
    m = r["machine"]
    head = (
        f"khupho bench ({r['profile']}): {Path(r['model']).name}, imgsz {r['imgsz']}, "
        f"{m['cpus']} CPUs, onnxruntime {m['onnxruntime']}, automatic runtime {auto['runtime']} "
        f"{auto['precision']} ({auto['reason']}), load average {m['load_before'][0]:.1f} before / "
        f"{m['load_after'][0]:.1f} after, {r['seconds']:.0f} s"
    )
    # The load average counts the benchmark itself, so the spread between rounds is the tell.
    spreads = [lim["spread"], off["spread"], *(p.get("spread", 0.0) for p in r["peers"].values())]
    if max(spreads) > 0.25:
        head += (
            f"\n\n**Warning: rounds differ by up to +-{100 * max(spreads):.0f} %: the machine was busy; "
            "these figures are not for quoting.**"
        )
    rows = [
        "| # | row | measured | ratio (same run) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    h, w = lim["input_shape"]
    rows.append(
        f"| 1 | limit: {lim['runtime']} (auto) alone on ready tensors, input {w}x{h}, best batch "
        f"{lim['best_batch']} "
        f"| {lim['images_per_s']:.1f} img/s (+-{100 * lim['spread']:.0f} %) | | | |"
    )
    t_parity = targets["default precision parity F1"]
    ort_ips = r["runtimes"]["onnxruntime fp32"]["images_per_s"]
    for key, rt in r["runtimes"].items():
        if "images_per_s" not in rt:
            rows.append(f"| 1 | runtime {key} | not measured: {rt['error']} | | | |")
            continue
        kept = " (measured, not offered: below parity 0.97)" if key.endswith("int8") else ""
        mark = " (auto)" if rt["auto"] else ""
        goal, met = (">= 0.98 parity", _met(t_parity)) if rt["auto"] else ("", "")
        rows.append(
            f"| 1 | runtime {key}{mark}{kept}: alone, batch {rt['batch']}, input {w}x{h} "
            f"| {rt['images_per_s']:.1f} img/s; parity F1 {rt['parity_f1']:.3f} "
            f"| {rt['images_per_s'] / ort_ips:.2f} x onnxruntime fp32 "
            f"| {goal} | {met} |"
        )
    variants = "; ".join(f"{k} x{v['vs_default']:.2f}" for k, v in r["session_variants"].items())
    load = r["model_load"]
    rows.append(
        f"| 1 | onnxruntime session options against analyze's (2 intra-op threads, spinning, all graph "
        f"optimizations), batch {off['batch']} | {variants}; session open {load['plain']:.2f} s, "
        f"{load['from_cache']:.2f} s from the cached optimized graph | | | |"
    )
    setups = {
        "ultralytics onnx": "`YOLO(onnx).track(stream=True)`",
        "ultralytics openvino": "`YOLO(<OpenVINO export>).track(stream=True)`",
    }
    for name, p in r["peers"].items():
        best = " (the peer's best: ratios below)" if name == peer.get("name") else ""
        if p.get("frames_per_s"):
            rows.append(
                f"| 2 | peer: Ultralytics {setups.get(name, name)}{best}, {off['frames']} frames "
                f"| {p['frames_per_s']:.1f} frames/s (+-{100 * p['spread']:.0f} %); capacity "
                f"{p['capacity']:.1f} cameras at 5 fps | | | |"
            )
        else:
            rows.append(
                f"| 2 | peer: Ultralytics {setups.get(name, name)} | not measured: {p['error']} | | | |"
            )
    t_lim, t_peer = targets["offline / limit"], targets["offline / peer"]
    rows.append(
        f"| 3 | khupho offline: `khupho analyze` (decode, preprocess, infer, postprocess, track, rules), "
        f"{lim['runtime']}, batch {off['batch']} | {off['frames_per_s']:.1f} frames/s "
        f"(+-{100 * off['spread']:.0f} %) | {_num(t_lim['value'])} x limit; {_num(t_peer['value'])} x peer "
        f"| >= 0.9 x limit; >= 1.5 x peer | {_met(t_lim)}; {_met(t_peer)} |"
    )
    ms = off["ms_per_frame"]
    stages = ", ".join(f"{k} {ms[k]:.1f}" for k in STAGE_ORDER if k in ms)
    rows.append(
        f"| 3 | per frame (ms; decode in line on 2 cores, in a thread with more) | {stages}; "
        f"wall {ms['total']:.1f} | | | |"
    )
    for key, lv in r["live"].items():
        t_cap = targets[f"live capacity / peer capacity ({key})"]
        t_n = targets[f"live cameras ({key})"]
        share = lv["inferred_share"]
        rows.append(
            f"| 4 | khupho live capacity, {key}: mixed set ({', '.join(_mixed_names())}), real-rate "
            f"sources, 5 analysed fps each | {lv['cameras']} cameras; p95 latency "
            f"{_num(lv['p95_latency_s'])} s; CPU {_num(lv['cpu_percent'], '.0f')} %; inference on "
            f"{_num(None if share is None else 100 * share, '.0f')} % of frames "
            f"| {_num(t_cap['value'])} x peer capacity | >= 16 cameras; >= 1.75 x "
            f"| {_met(t_n)}; {_met(t_cap)} |"
        )
    t_mem = targets["RSS per additional 720p camera (MB)"]
    mem = r["memory"]
    rows.append(
        f"| 4 | memory: RSS per additional 720p camera ({mem['cameras']} vs 1) "
        f"| {_num(mem['per_additional_720p_camera_mb'], '.1f')} MB (fresh service process: "
        f"{mem['rss_one_720p_mb']:.0f} MB with one) | | <= 40 MB | {_met(t_mem)} |"
    )
    for key, s in q["settings"].items():
        extra = f"; parity F1 {s['parity_f1']:.3f}" if "parity_f1" in s else ""
        goal = met = ""
        if key in r["live"]:
            t_dev = targets[f"line-count deviation ({key})"]
            t_miss = targets[f"missed intrusion events ({key})"]
            goal, met = "counts <= 3 % off; no missed intrusion", f"{_met(t_dev)}; {_met(t_miss)}"
        label = "reference" if key == "fp32" else "quality"
        clips = ""
        if s["gate"] is not None:
            per_clip = (f"{c} {v['inferred']}/{v['frames']}" for c, v in s["per_camera"].items())
            clips = f" ({', '.join(per_clip)})"
        rows.append(
            f"| 5 | {label}: {key} | detect {s['detect_images_per_s']:.1f} img/s{extra}; inference on "
            f"{s['inferred']}/{s['frames']} frames ({100 * s['inferred_share']:.0f} %){clips}; line counts "
            f"{100 * s['count_deviation']:.1f} % off ({s['reference_count']} crossings); {_events(s)} "
            f"| | {goal} | {met} |"
        )
    cuda = r["cuda"]
    if cuda["available"]:
        rows.append(
            f"| 6 | CUDA execution provider | {cuda['images_per_s']:.1f} img/s at batch "
            f"{cuda['best_batch']}; {cuda['cameras']} cameras | | | |"
        )
    else:
        rows.append(f"| 6 | CUDA execution provider | not available ({cuda['reason']}) | | | |")
    return "\n".join([head, "", *rows])


def _mixed_names() -> list[str]:
    from benchmarks.scenes import MIXED_SET

    return [c.kind for c in MIXED_SET]


def write_chart(r: dict[str, Any], path: Path) -> None:
    """Two panels: throughput (images or frames per second) and live capacity (cameras)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"limit\n({r['limit']['runtime']})", "khupho\noffline"]
    values = [r["limit"]["images_per_s"], r["offline"]["frames_per_s"]]
    colours = ["#888888", "#1f77b4"]
    for name, p in r["peers"].items():
        labels.append(name.replace("ultralytics ", "peer\n"))
        values.append(p.get("frames_per_s") or 0.0)
        colours.append("#ff7f0e")
    ax1.bar(labels, values, color=colours)
    for i, v in enumerate(values):
        ax1.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    ax1.set_ylabel("images or frames per second")
    ax1.set_title(f"throughput, imgsz {r['imgsz']}")
    names = [k.replace("+", "\n+") for k in r["live"]] + ["peer\n(fps / 5)"]
    caps = [lv["cameras"] for lv in r["live"].values()] + [(r["peer"].get("frames_per_s") or 0.0) / 5.0]
    ax2.bar(names, caps, color=[*["#1f77b4", "#2ca02c", "#9467bd"][: len(caps) - 1], "#ff7f0e"])
    for i, v in enumerate(caps):
        ax2.text(i, v, f"{v:.1f}", ha="center", va="bottom")
    ax2.set_ylabel("cameras at 5 analysed frames/s")
    ax2.set_title("live capacity, mixed set")
    fig.suptitle(f"khupho bench ({r['profile']}), {r['machine']['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
