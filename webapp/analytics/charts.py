"""The Analytics charts: each one's data, its table of numbers and its pygal SVG, from one spec."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from math import ceil
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import pygal
from pygal.graph.graph import Graph
from pygal.style import Style

from . import service
from .service import DateRange, DayTotals, RunPoint, Scope

# Mid-tone series colours: at least 3:1 against both the light (#fff) and dark (#1b2029) cards.
BLUE, AMBER, TEAL, RED, GREY = "#3b6fe0", "#c77700", "#0e9384", "#e0453a", "#8a93a6"

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
SERIES = (BLUE, AMBER, TEAL, RED, GREY)
STYLE_OPTIONS: dict[str, Any] = {
    "background": "transparent",
    "plot_background": "transparent",
    "foreground": "#1c2230",
    "foreground_strong": "#1c2230",
    "foreground_subtle": "#5b6477",
    "guide_stroke_color": "#c9ced8",
    "major_guide_stroke_color": "#aab1bf",
    "font_family": FONT,
    "label_font_size": 13,
    "major_label_font_size": 13,
    "legend_font_size": 14,
    "value_font_size": 13,
    "no_data_font_size": 20,
    "opacity": "1",
    "opacity_hover": "1",
}

# The SVG is shown through <img>, so it cannot see the page's CSS: it follows the reader's
# colour scheme itself. With no_prefix the selectors match pygal's own, and coming last they win.
# pygal's root rule loses its selector under no_prefix, so the font is set on `svg` here.
EXTRA_CSS = (
    f"inline:svg {{ font-family: {FONT}; }}"
    + """
@media (prefers-color-scheme: dark) {
  .graph, .legends .legend text, .axis text { fill: #e6e9ef; }
  .title, text.no_data, .axis text.major, .series text { fill: #ffffff; }
  .axis .line { stroke: #9aa3b5; }
  .axis .guide.line { stroke: #3a4252; }
  .axis .major.guide.line, .axis .major.line { stroke: #5b6477; }
}
"""
)


@dataclass(frozen=True)
class Row:
    """One table row: its header cell (a day, a run, a source) and its numbers."""

    label: str
    values: tuple[Any, ...]
    run_id: str | None = None


@dataclass(frozen=True)
class Table:
    caption: str
    columns: tuple[str, ...]
    rows: list[Row]
    totals: tuple[Any, ...] | None = None

    def digest(self) -> str:
        """A short fingerprint of the numbers, so chart URLs change exactly when they do."""
        return hashlib.blake2b(repr((self.columns, self.rows)).encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class ChartSpec:
    name: str
    title: str
    alt: str
    empty_text: str
    load: Callable[[Scope, DateRange], Any]
    table: Callable[[Any, DateRange, bool], Table]
    draw: Callable[[Any, DateRange], Graph]
    is_empty: Callable[[Any], bool] = field(default=lambda data: False)


# --- pygal ------------------------------------------------------------------------------------


def _style(*first: str) -> Style:
    """The house style; `first` puts a chart's own colours ahead of the series palette."""
    return Style(**STYLE_OPTIONS, colors=(*first, *SERIES))


def _new(kind: type[Graph], style: Style | None = None, **options: Any) -> Graph:
    chart = kind(
        style=style or _style(),
        css=("file://style.css", "file://graph.css", EXTRA_CSS),
        no_prefix=True,
        # No script: the app's CSP forbids it, and an <img> would not run it anyway.
        js=[],
        disable_xml_declaration=True,
        width=720,
        height=360,
        legend_at_bottom=True,
        legend_at_bottom_columns=2,  # pygal sizes the legend rows as series // columns
        truncate_label=-1,
        truncate_legend=-1,
        margin=12,
        **options,
    )
    chart.add_xml_filter(_without_scripts)
    return chart


def _without_scripts(root: Element) -> Element:
    # pygal always writes its config as an inline <script>, even with js=[].
    for parent in root.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


def render_svg(chart: Graph, title: str) -> str:
    """The chart as an SVG document whose <title> names it (read out by assistive tech)."""
    svg = chart.render(is_unicode=True)
    return svg.replace("<title>Pygal</title>", f"<title>{escape(title)}</title>", 1)


def _sparse(labels: list[str], most: int = 8) -> list[str]:
    """Every n-th label, blank between, so labels never overlap (runs can share a time)."""
    every = max(1, ceil(len(labels) / most))
    return [label if n % every == 0 else "" for n, label in enumerate(labels)]


def _count_ticks(values: list[int | None]) -> list[int]:
    """Whole-number ticks from 0 to at least the largest value: counts have no halves."""
    top = max((v for v in values if v is not None), default=0)
    step = 1
    while top / step > 6:
        for factor in (2, 5, 10):
            if top / (step * factor) <= 6 or factor == 10:
                step *= factor
                break
    return list(range(0, top + step, step)) if top else [0, 1]


def _day_axis(rng: DateRange) -> dict[str, Any]:
    return {"x_labels": _sparse([f"{d.day} {d:%b}" for d in rng.days()])}


def _run_axis(points: list[RunPoint]) -> dict[str, Any]:
    return {"x_labels": _sparse([f"{p.at:%d %b %H:%M}" for p in points], most=6)}


# --- the charts -------------------------------------------------------------------------------

RunsData = tuple[list[RunPoint], int]


def _run_label(point: RunPoint) -> str:
    return f"{point.at:%Y-%m-%d %H:%M}"


def _latest_caption(what: str, points: list[RunPoint], total: int) -> str:
    if total > len(points):
        return f"{what} — the latest {len(points)} of {total:,} runs"
    return what


def _completed_runs(scope: Scope, rng: DateRange) -> RunsData:
    statuses = ("completed",)
    return service.recent_runs(scope, rng, statuses), service.run_count(scope, rng, statuses)


def _records_per_run_table(data: RunsData, rng: DateRange, show_job: bool) -> Table:
    points, total = data
    columns = ("Run", *(("Job",) if show_job else ()), "Records", "New records")
    rows = [
        Row(
            _run_label(p),
            (*((p.job_name,) if show_job else ()), p.record_count, p.new_count),
            run_id=p.public_id,
        )
        for p in points
    ]
    return Table(
        _latest_caption("Records and new records per run (UTC)", points, total), columns, rows
    )


def _records_per_run_chart(data: RunsData, rng: DateRange) -> Graph:
    points, _ = data
    chart = _new(
        pygal.Line,
        dots_size=3,
        y_labels=_count_ticks([p.record_count for p in points]),
        **_run_axis(points),
    )
    chart.add("Records", [p.record_count for p in points])
    chart.add("New records", [p.new_count for p in points])
    return chart


def _records_per_day_table(days: list[DayTotals], rng: DateRange, show_job: bool) -> Table:
    return Table(
        "Records and new records per day (UTC)",
        ("Day", "Runs", "Records", "New records"),
        [Row(d.day.isoformat(), (d.runs, d.records, d.new)) for d in days],
        totals=(sum(d.runs for d in days), sum(d.records for d in days), sum(d.new for d in days)),
    )


def _records_per_day_chart(days: list[DayTotals], rng: DateRange) -> Graph:
    chart = _new(pygal.Bar, y_labels=_count_ticks([d.records for d in days]), **_day_axis(rng))
    chart.add("Records", [d.records for d in days])
    chart.add("New records", [d.new for d in days])
    return chart


def _sources_table(rows: list[tuple[str, int]], rng: DateRange, show_job: bool) -> Table:
    return Table(
        "Records by source",
        ("Source", "Records"),
        [Row(source, (n,)) for source, n in rows],
        totals=(sum(n for _, n in rows),),
    )


def _ranking_chart(rows: list[tuple[str, int]], serie: str, color: str) -> Graph:
    # Horizontal bars keep long names readable; the largest sits on top.
    ordered = rows[::-1]
    chart = _new(
        pygal.HorizontalBar,
        show_legend=False,
        x_labels=[name for name, _ in ordered],
        style=_style(color),
        print_values=True,
        y_labels=_count_ticks([n for _, n in rows]),
    )
    chart.add(serie, [n for _, n in ordered])
    return chart


def _sources_chart(rows: list[tuple[str, int]], rng: DateRange) -> Graph:
    return _ranking_chart(rows, "Records", TEAL)


def _authors_table(rows: list[tuple[date, int]], rng: DateRange, show_job: bool) -> Table:
    return Table(
        "Unique authors per day (UTC)",
        ("Day", "Unique authors"),
        [Row(day.isoformat(), (n,)) for day, n in rows],
    )


def _authors_chart(rows: list[tuple[date, int]], rng: DateRange) -> Graph:
    chart = _new(
        pygal.Bar,
        show_legend=False,
        style=_style(TEAL),
        y_labels=_count_ticks([n for _, n in rows]),
        **_day_axis(rng),
    )
    chart.add("Unique authors", [n for _, n in rows])
    return chart


def _domains_table(rows: list[tuple[str, int]], rng: DateRange, show_job: bool) -> Table:
    return Table(
        f"Top {service.TOP_DOMAINS} domains by records",
        ("Domain", "Records"),
        [Row(domain, (n,)) for domain, n in rows],
    )


def _domains_chart(rows: list[tuple[str, int]], rng: DateRange) -> Graph:
    return _ranking_chart(rows, "Records", BLUE)


def _finished_runs(scope: Scope, rng: DateRange) -> RunsData:
    statuses = ("completed", "failed")
    return service.recent_runs(scope, rng, statuses), service.run_count(scope, rng, statuses)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000, 2)


def _durations_table(data: RunsData, rng: DateRange, show_job: bool) -> Table:
    points, total = data
    columns = ("Run", *(("Job",) if show_job else ()), "Status", "Duration (s)")
    rows = [
        Row(
            _run_label(p),
            (*((p.job_name,) if show_job else ()), p.status, _seconds(p.duration_ms)),
            run_id=p.public_id,
        )
        for p in points
    ]
    return Table(_latest_caption("Run durations in seconds (UTC)", points, total), columns, rows)


def _durations_chart(data: RunsData, rng: DateRange) -> Graph:
    points, _ = data
    chart = _new(pygal.Bar, style=_style(BLUE, RED), y_title="seconds", **_run_axis(points))
    # Failed runs in their own series, so colour alone never has to tell them apart.
    chart.add(
        "Completed", [_seconds(p.duration_ms) if p.status == "completed" else None for p in points]
    )
    chart.add("Failed", [_seconds(p.duration_ms) if p.status == "failed" else None for p in points])
    return chart


def _failures_table(days: list[DayTotals], rng: DateRange, show_job: bool) -> Table:
    return Table(
        "Failed and skipped runs per day (UTC); days without any are left out",
        ("Day", "Failed", "Skipped"),
        [Row(d.day.isoformat(), (d.failed, d.skipped)) for d in days if d.failed or d.skipped],
        totals=(sum(d.failed for d in days), sum(d.skipped for d in days)),
    )


def _failures_chart(days: list[DayTotals], rng: DateRange) -> Graph:
    chart = _new(
        pygal.StackedBar,
        style=_style(RED, GREY),
        y_labels=_count_ticks([d.failed + d.skipped for d in days]),
        **_day_axis(rng),
    )
    chart.add("Failed", [d.failed for d in days])
    chart.add("Skipped", [d.skipped for d in days])
    return chart


SPECS: tuple[ChartSpec, ...] = (
    ChartSpec(
        "records-per-run",
        "Records per run",
        "Line chart of records and new records for each run.",
        "No completed runs in this range.",
        _completed_runs,
        _records_per_run_table,
        _records_per_run_chart,
        is_empty=lambda data: not data[0],
    ),
    ChartSpec(
        "records-per-day",
        "Records per day",
        "Bar chart of records and new records stored each day.",
        "No runs in this range.",
        service.daily_totals,
        _records_per_day_table,
        _records_per_day_chart,
        is_empty=lambda days: not any(d.runs for d in days),
    ),
    ChartSpec(
        "sources",
        "Records by source",
        "Horizontal bar chart of records per source.",
        "No records in this range.",
        service.records_by_source,
        _sources_table,
        _sources_chart,
        is_empty=lambda rows: not rows,
    ),
    ChartSpec(
        "authors",
        "Unique authors per day",
        "Bar chart of the number of distinct authors in each day's records.",
        "No records with an author in this range.",
        service.unique_authors_per_day,
        _authors_table,
        _authors_chart,
        is_empty=lambda rows: not any(n for _, n in rows),
    ),
    ChartSpec(
        "domains",
        "Top domains",
        f"Horizontal bar chart of the {service.TOP_DOMAINS} domains with most records.",
        "No records with a link in this range.",
        service.top_domains,
        _domains_table,
        _domains_chart,
        is_empty=lambda rows: not rows,
    ),
    ChartSpec(
        "durations",
        "Run durations",
        "Bar chart of how long each run took, in seconds, completed and failed apart.",
        "No finished runs in this range.",
        _finished_runs,
        _durations_table,
        _durations_chart,
        is_empty=lambda data: not data[0],
    ),
    ChartSpec(
        "failures",
        "Failures",
        "Stacked bar chart of failed and skipped runs per day.",
        "No failed or skipped runs in this range.",
        service.daily_totals,
        _failures_table,
        _failures_chart,
        is_empty=lambda days: not any(d.failed or d.skipped for d in days),
    ),
)
CHARTS: dict[str, ChartSpec] = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True)
class Figure:
    """One chart of a page: its spec, its table of numbers, and whether it has anything to draw."""

    spec: ChartSpec
    table: Table
    empty: bool


def build_figures(scope: Scope, rng: DateRange) -> tuple[service.Summary | None, list[Figure]]:
    """Everything a page shows; (None, []) when no run falls in the range."""
    days = service.daily_totals(scope, rng)
    if not any(d.runs for d in days):
        return None, []
    # Charts that share an aggregate (the per-day totals) query it once per page.
    loaded: dict[Callable[..., Any], Any] = {service.daily_totals: days}
    figures = []
    for spec in SPECS:
        if spec.load not in loaded:
            loaded[spec.load] = spec.load(scope, rng)
        data = loaded[spec.load]
        figures.append(
            Figure(spec, spec.table(data, rng, scope.job_id is None), spec.is_empty(data))
        )
    return service.summarize(days), figures
