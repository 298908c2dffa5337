"""Human-readable views of a benchmark result: text table, markdown, bar chart.

Everything here reads the merged result dict that :func:`privcap.bench.run_bench` writes to
``results/bench.json`` (or the file read back), so the book page and the command line show
the same numbers.
"""

from __future__ import annotations

import html
import math
from typing import Any


def format_seconds(seconds: float | None) -> str:
    """``0.0123`` -> ``'12.3 ms'``; ``None`` -> ``'-'``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_bytes(n_bytes: float | None) -> str:
    """``3.4e9`` -> ``'3.40 GB'`` (decimal units, as the reference numbers are quoted)."""
    if n_bytes is None or not math.isfinite(n_bytes):
        return "-"
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.2f} GB"
    return f"{n_bytes / 1e6:.0f} MB"


def format_ratio(value: float | None) -> str:
    """Ratios with three significant digits (whole numbers from 1000 on)."""
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3g}"


def measurement_value(measurement: dict[str, Any]) -> str:
    """The headline value of one measurement as text (time, memory or plain number)."""
    if "median_s" in measurement:
        return format_seconds(measurement["median_s"])
    if "peak_rss_bytes" in measurement:
        return format_bytes(measurement["peak_rss_bytes"])
    for key, value in measurement.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{key}={value:.4g}"
    return "-"


def _measurement_detail(measurement: dict[str, Any]) -> str:
    """Secondary information: repeats and best time, or the memory above the baseline."""
    parts: list[str] = []
    if "median_s" in measurement:
        parts.append(f"min {format_seconds(measurement.get('min_s'))}")
        parts.append(f"n={measurement.get('repeats', 1)}")
    if "peak_rss_bytes" in measurement and "task_rss_bytes" in measurement:
        parts.append(f"task {format_bytes(measurement['task_rss_bytes'])} above imports")
    if measurement.get("estimated"):
        parts.append("ESTIMATED")
    return ", ".join(parts)


def ratio_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows ``[ratio, value, target, met, meaning]`` of the headline ratios."""
    rows = []
    targets = result.get("targets", {})
    descriptions = result.get("ratio_descriptions", {})
    for key in result.get("ratio_keys", []):
        value = result.get(key)
        target = targets.get(key)
        if target is None:
            target_text, met_text = "", ""
        else:
            target_text = f"{target['op']} {target['value']:g}"
            met_text = "yes" if target.get("met") else "NO"
        rows.append([key, format_ratio(value), target_text, met_text, descriptions.get(key, "")])
    return rows


def measurement_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows ``[section, key, value, detail, what]`` of every measurement."""
    rows = []
    for section, content in result.get("sections", {}).items():
        for key, measurement in content.get("measurements", {}).items():
            rows.append(
                [
                    section,
                    key,
                    measurement_value(measurement),
                    _measurement_detail(measurement),
                    str(measurement.get("what", "")),
                ]
            )
    return rows


def reference_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows ``[quantity, value]`` of the quoted reference of the authors' released code."""
    reference = result.get("reference_authors_released_code") or {}
    rows = []
    for key, value in reference.items():
        if key.endswith("_s") and isinstance(value, int | float):
            rows.append([key, format_seconds(float(value))])
        elif key.endswith("_bytes") and isinstance(value, int | float):
            rows.append([key, format_bytes(float(value))])
    return rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain aligned columns, for the terminal."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def markdown_table(
    header: list[str], rows: list[list[str]], code_columns: tuple[int, ...] = ()
) -> str:
    """A GitHub/MyST markdown table (pipes in cells escaped); the cells of the columns in
    ``code_columns`` are set as inline code (identifiers with underscores)."""

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    def cell_text(i: int, cell: str) -> str:
        return f"`{cell}`" if i in code_columns and cell else esc(cell)

    lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        lines.append("| " + " | ".join(cell_text(i, c) for i, c in enumerate(row)) + " |")
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]], code_columns: tuple[int, ...] = ()) -> str:
    """The same table as :func:`markdown_table` in HTML (renders in any notebook viewer and
    in the book, whatever markdown dialect it uses for outputs)."""

    def cell(i: int, text: str) -> str:
        body = html.escape(text)
        return f"<td><code>{body}</code></td>" if i in code_columns and text else f"<td>{body}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(cell(i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_RATIO_HEADER = ["ratio", "value", "target", "met", "meaning"]
_MEASUREMENT_HEADER = ["section", "measurement", "value", "detail", "what"]


def ratios_markdown(result: dict[str, Any]) -> str:
    """The headline ratios as a markdown table."""
    return markdown_table(_RATIO_HEADER, ratio_rows(result), code_columns=(0,))


def measurements_markdown(result: dict[str, Any]) -> str:
    """Every measurement as a markdown table."""
    return markdown_table(_MEASUREMENT_HEADER, measurement_rows(result), code_columns=(1,))


def ratios_html(result: dict[str, Any]) -> str:
    """The headline ratios as an HTML table."""
    return html_table(_RATIO_HEADER, ratio_rows(result), code_columns=(0,))


def measurements_html(result: dict[str, Any]) -> str:
    """Every measurement as an HTML table."""
    return html_table(_MEASUREMENT_HEADER, measurement_rows(result), code_columns=(1,))


def reference_html(result: dict[str, Any]) -> str:
    """The quoted numbers of the authors' released code, with their source, in HTML."""
    reference = result.get("reference_authors_released_code") or {}
    if not reference:
        return ""
    return f"<p>{html.escape(str(reference.get('source', '')))}</p>" + html_table(
        ["quantity", "value"], reference_rows(result), code_columns=(0,)
    )


def reference_markdown(result: dict[str, Any]) -> str:
    """The quoted numbers of the authors' released code, with their source."""
    reference = result.get("reference_authors_released_code") or {}
    if not reference:
        return ""
    return f"{reference.get('source', '')}\n\n" + markdown_table(
        ["quantity", "value"], reference_rows(result), code_columns=(0,)
    )


def notes_markdown(result: dict[str, Any]) -> str:
    """The notes of every section as a markdown list."""
    return "\n".join(f"- {note}" for note in result.get("notes", []))


def _run_kind(result: dict[str, Any]) -> str:
    """``full run``, ``quick run (...)`` or ``SMOKE run (...)``."""
    if result.get("smoke"):
        return "SMOKE run (tiny sizes for the test suite: the numbers mean nothing)"
    if result.get("quick"):
        return "quick run (fewer repeats, stand-ins for the slowest baselines)"
    return "full run"


def summary_markdown(result: dict[str, Any]) -> str:
    """One sentence per target: the measured ratio, the target and whether it is met."""
    lines = []
    descriptions = result.get("ratio_descriptions", {})
    for key, target in result.get("targets", {}).items():
        verdict = "met" if target["met"] else "**not met**"
        lines.append(
            f"- `{key}` = {format_ratio(result.get(key))} (target {target['op']} "
            f"{target['value']:g}: {verdict}) -- {descriptions.get(key, '')}"
        )
    run = _run_kind(result)
    machine = result.get("machine", {})
    head = (
        f"Measured in a {run} on {machine.get('cpu_count')} CPUs "
        f"({machine.get('torch_threads')} torch threads), {result.get('created_utc', '')}:"
    )
    warnings = [note for note in result.get("notes", []) if "WARNING" in note]
    tail = ["", *(f"**{note}**" for note in warnings)] if warnings else []
    return head + "\n\n" + "\n".join(lines + tail)


def to_text(result: dict[str, Any]) -> str:
    """The whole report for the terminal."""
    machine = result.get("machine", {})
    parts = [
        f"privcap benchmark ({_run_kind(result)}, "
        f"{machine.get('torch_threads')} torch threads, {machine.get('cpu_count')} CPUs: "
        f"{machine.get('cpu_model')})",
        "",
        text_table(_RATIO_HEADER, ratio_rows(result)),
        "",
        text_table(_MEASUREMENT_HEADER, measurement_rows(result)),
    ]
    notes = result.get("notes", [])
    if notes:
        parts += ["", "notes:"] + [f"- {note}" for note in notes]
    return "\n".join(parts)


def to_markdown(result: dict[str, Any], title: str | None = "privcap benchmark") -> str:
    """The whole report as markdown (``results/bench.md`` and the book page)."""
    machine = result.get("machine", {})
    versions = machine.get("versions", {})
    parts: list[str] = []
    if title:
        parts += [f"# {title}", ""]
    parts += [
        f"Run: {_run_kind(result)}, {result.get('created_utc', '')}; "
        f"{machine.get('torch_threads')} torch threads on {machine.get('cpu_count')} CPUs "
        f"({machine.get('cpu_model')}); torch {versions.get('torch')}, "
        f"deepinv {versions.get('deepinv')}, prysm {versions.get('prysm')}.",
        "",
        "## Ratios",
        "",
        ratios_markdown(result),
        "",
        "## Measurements",
        "",
        measurements_markdown(result),
    ]
    reference = reference_rows(result)
    if reference:
        source = (result.get("reference_authors_released_code") or {}).get("source", "")
        parts += [
            "",
            "## Reference: quoted numbers of the authors' released code (used by no ratio)",
            "",
            source,
            "",
            markdown_table(["quantity", "value"], reference, code_columns=(0,)),
        ]
    notes = result.get("notes", [])
    if notes:
        parts += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(parts) + "\n"


def comparison_groups(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Bars for the chart: one group per compared task, with times of each contender.

    Each section may list ``comparisons``: ``{"task": str, "bars": {label: seconds},
    "targets": [{"label": str, "seconds": float}, ...]}``; the bar labelled ``"privcap"`` is
    the one the targets apply to.
    """
    groups = []
    for content in result.get("sections", {}).values():
        groups.extend(content.get("comparisons", []))
    return groups


def plot_comparison(result: dict[str, Any], columns: int = 3) -> Any:
    """Bar chart (log scale) of privcap's times beside the baselines' for each task.

    One panel per comparison, ``columns`` panels per row. privcap's bars are green, the
    authors' (labels naming them) orange, other baselines grey. The time each target
    demands of privcap (a baseline's time divided by the target speed-up, or multiplied by
    the allowed time ratio) is a dashed line across privcap's bar. Returns the figure.
    """
    import matplotlib.pyplot as plt

    groups = comparison_groups(result)
    if not groups:
        raise ValueError("result has no 'comparisons' to plot")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    ncols = min(columns, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.9 * nrows), squeeze=False)
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    for ax, group in zip(axes.flat, groups, strict=False):
        labels = list(group["bars"])
        seconds = [float(group["bars"][label]) for label in labels]
        targets = group.get("targets", [])
        colours = [
            "tab:green"
            if label.startswith("privcap")
            else "tab:orange"
            if "quoted" in label or "authors" in label
            else "tab:gray"
            for label in labels
        ]
        positions = list(range(len(labels)))
        ax.bar(positions, seconds, color=colours, width=0.6)
        ax.set_yscale("log")
        every = seconds + [float(t["seconds"]) for t in targets]
        ax.set_ylim(min(every) / 4, max(every) * 4)
        ax.set_xticks(positions)
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(group["task"], fontsize=9)
        ax.set_ylabel("seconds (median)")
        for pos, value in zip(positions, seconds, strict=True):
            ax.annotate(format_seconds(value), (pos, value), ha="center", va="bottom", fontsize=7)
        if "privcap" in labels:
            pos = labels.index("privcap")
            for target in targets:
                ax.hlines(target["seconds"], pos - 0.4, pos + 0.4, colors="k", linestyles="--")
                ax.annotate(
                    target["label"],
                    (pos + 0.42, target["seconds"]),
                    fontsize=7,
                    va="center",
                )
    fig.tight_layout()
    return fig
