"""Training page (학습): retrain with progress, compare a new version with the current one, promote or roll back, follow metrics over versions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from pages.common import MISSING_TEXT, created_text, get_settings, md_escape, model_data_notice, show_error, source_text, tr
from routing_core.config import Settings
from routing_core.evaluate import HEADLINE_METRICS, METRIC_DIRECTIONS
from routing_core.registry import current_version, list_versions, read_metrics, set_current
from routing_core.train import train_and_save, training_holder

CHALLENGER_KEY = "train.challenger"
FLASH_KEY = "train.flash"
LAST_RUN_KEY = "train.last_run"
CHALLENGER_SELECT_KEY = "train.challenger_select"
ROLLBACK_SELECT_KEY = "train.rollback_select"
# A difference smaller than this is shown as no change.
SAME_VALUE_TOLERANCE = 1e-9
BETTER_STYLE = "background-color: #d8f3dc; color: #1b4332"
WORSE_STYLE = "background-color: #ffd6d6; color: #7f1d1d"
# Metrics in the comparison table, in order.
TABLE_METRICS = tuple(METRIC_DIRECTIONS)
TABLE_ROW_PIXELS = 35  # height of one st.dataframe row
# Shares of items and the lead-time error, shown as percentages. Their differences are in percentage points.
PERCENT_METRICS = frozenset({
    "top1_accuracy", "top3_hit_rate", "top5_hit_rate", "lead_time_within_15pct", "lead_time_mape", "index_recall_at_10",
})
# Latency differences are coloured only when they reach both limits. Two versions trained
# on the same sample data, with equal accuracy, differed by 0.1 ms (p50) and 0.7 ms (p95)
# on a shared 2-core machine: timing noise, not a change of the model.
LATENCY_METRICS = frozenset({"inference_ms_p50", "inference_ms_p95"})
LATENCY_MIN_CHANGE_MS = 1.0
LATENCY_MIN_CHANGE_SHARE = 0.10


def _metric_text(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING_TEXT
    if key in PERCENT_METRICS:
        return f"{value * 100:.1f}%"
    if key in LATENCY_METRICS:
        return f"{value:.1f}"
    if key == "run_time_mae_min":
        return f"{value:.2f}"
    return f"{value:.3f}"


def _diff_text(key: str, diff: float | None) -> str:
    if diff is None:
        return MISSING_TEXT
    if not _is_change(key, diff):
        return "±0"
    sign = "+" if diff > 0 else "−"
    if key in PERCENT_METRICS:
        return f"{sign}{abs(diff) * 100:.1f}{tr('train.percent_points')}"
    return sign + _metric_text(key, abs(diff))


def _is_change(key: str, diff: float) -> bool:
    """Return whether ``diff`` is large enough to show as a change at the precision shown."""
    if key in PERCENT_METRICS:
        return round(abs(diff) * 100, 1) > 0
    return abs(diff) >= SAME_VALUE_TOLERANCE


def _is_meaningful(key: str, diff: float, old: float) -> bool:
    """Return whether a difference is coloured: any shown change, but for latency only a large one."""
    if not _is_change(key, diff):
        return False
    if key in LATENCY_METRICS:
        return abs(diff) >= LATENCY_MIN_CHANGE_MS and abs(diff) >= LATENCY_MIN_CHANGE_SHARE * abs(old)
    return True


def _is_better(key: str, diff: float) -> bool:
    return diff > 0 if METRIC_DIRECTIONS[key] == "higher" else diff < 0


def _version_label(version: str, current: str | None, metrics: dict[str, Any] | None, manifest: dict[str, Any] | None) -> str:
    parts = [version, created_text(manifest or {})]
    if metrics and metrics.get("top1_accuracy") is not None:
        parts.append(f"top-1 {_metric_text('top1_accuracy', metrics['top1_accuracy'])}")
    if version == current:
        parts.append(tr("train.current_marker"))
    return " · ".join(parts)


# --- training ----------------------------------------------------------------------------


def _timings_table(timings: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({
        tr("train.col.stage"): [tr(f"stage.{s}") if s != "total" else tr("train.total") for s in timings],
        tr("train.col.seconds"): [round(v, 2) for v in timings.values()],
    })


def _training_section(settings: Settings, current: str | None) -> None:
    st.subheader(tr("train.run_header"))
    holder = training_holder(settings.model_dir)
    if holder:
        st.info(tr("train.running_elsewhere", started_at=holder.get("started_at", "?")))
    promote = st.checkbox(
        tr("train.promote_now"), value=current is None, disabled=current is None, key="train.promote_now",
        help=tr("train.promote_now_help"),
    )
    if st.button(tr("train.start"), type="primary", key="train.start"):
        _run_training(settings, promote=promote or current is None)
        return
    last = st.session_state.get(LAST_RUN_KEY)
    if last:
        with st.expander(tr("train.status_done", version=last["version"], seconds=last["timings"].get("total", 0.0))):
            st.dataframe(_timings_table(last["timings"]), hide_index=True)


def _run_training(settings: Settings, promote: bool) -> None:
    """Train with a progress bar; the new version becomes the challenger shown below."""
    with st.status(tr("train.status_running"), expanded=True) as status:
        bar = st.progress(0.0, text=tr("stage.load"))

        def progress(stage: str, fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=f"{tr(f'stage.{stage}')} ({fraction:.0%})")

        try:
            result = train_and_save(settings, promote=promote, progress=progress)
        except Exception as exc:  # shown on the page: the app must not crash
            status.update(label=tr("train.status_failed"), state="error", expanded=True)
            show_error(exc)
            return
        st.dataframe(_timings_table(result.timings), hide_index=True)
        status.update(
            label=tr("train.status_done", version=result.version, seconds=result.timings.get("total", 0.0)),
            state="complete", expanded=True,
        )
    st.session_state[CHALLENGER_KEY] = result.version
    st.session_state[CHALLENGER_SELECT_KEY] = result.version  # drawn below in this run: show the new version
    st.session_state[LAST_RUN_KEY] = {"version": result.version, "timings": dict(result.timings)}
    if result.promoted:
        # Rerun so that the sidebar and every section show the new active version.
        st.session_state[FLASH_KEY] = tr("train.promoted", version=result.version)
        st.rerun()


# --- champion and challenger ------------------------------------------------------------------


def _difference_frame(
    columns: dict[str, dict[str, Any]], old: str, new: str, diff_column: str, diff_after: str, colour: bool = True
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Return one row per metric with a column per metrics dict and the difference ``new`` - ``old``.

    ``columns`` maps a display column to its metrics. The difference column comes
    right after ``diff_after``. Also returns the CSS style of each difference cell
    (none when ``colour`` is off) and the metrics left out because no column has a value.
    """
    rows, styles, hidden = [], [], []
    for key in TABLE_METRICS:
        values = {column: metrics.get(key) for column, metrics in columns.items()}
        if all(value is None for value in values.values()):
            hidden.append(key)
            continue
        diff = None if values[old] is None or values[new] is None else values[new] - values[old]
        style = ""
        if colour and diff is not None and _is_meaningful(key, diff, values[old]):
            style = BETTER_STYLE if _is_better(key, diff) else WORSE_STYLE
        row = {
            tr("train.col.metric"): tr(f"train.metric.{key}"),
            tr("train.col.direction"): tr(f"train.direction.{METRIC_DIRECTIONS[key]}"),
        }
        for column, value in values.items():
            row[column] = _metric_text(key, value)
            if column == diff_after:
                row[diff_column] = _diff_text(key, diff)
        rows.append(row)
        styles.append(style)
    return pd.DataFrame(rows), styles, hidden


def comparison_frame(
    champion: dict[str, Any] | None, challenger: dict[str, Any] | None, colour: bool = True
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Return the active-against-other table (display text), the CSS style of each difference cell and the hidden metrics."""
    current, other = tr("train.col.current"), tr("train.col.challenger")
    columns = {
        current: champion or {},
        other: challenger or {},
        tr("train.col.baseline_current"): (champion or {}).get("baseline") or {},
        tr("train.col.baseline_challenger"): (challenger or {}).get("baseline") or {},
    }
    return _difference_frame(columns, current, other, tr("train.col.diff"), diff_after=other, colour=colour)


def baseline_frame(metrics: dict[str, Any] | None) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Return the model-against-baseline table (display text), the CSS style of each difference cell and the hidden metrics."""
    model, baseline = tr("train.col.current"), tr("train.col.baseline")
    columns = {model: metrics or {}, baseline: (metrics or {}).get("baseline") or {}}
    return _difference_frame(columns, baseline, model, tr("train.col.diff_baseline"), diff_after=baseline)


def _show_metric_table(table: pd.DataFrame, styles: list[str], diff_column: str, hidden: list[str]) -> None:
    styled = table.style.apply(lambda column: styles if column.name == diff_column else [""] * len(column), axis=0)
    st.dataframe(styled, hide_index=True, width="stretch", height=_table_height(len(table)), key="train.comparison")
    others = [key for key in hidden if key != "index_recall_at_10"]
    if others:
        st.caption(tr("train.hidden_metrics", metrics=", ".join(tr(f"train.metric.{key}") for key in others)))
    if "index_recall_at_10" in hidden:
        st.caption(tr("train.index_recall_note"))


def _comparison_section(
    settings: Settings, manifests: dict[str, dict[str, Any]], current: str | None, metrics: dict[str, dict | None]
) -> None:
    st.subheader(tr("train.compare_header"))
    versions = list(manifests)
    if current is None or not versions:
        st.info(tr("app.no_model"))
        return
    others = [v for v in versions if v != current]
    if not others:
        st.info(tr("train.only_one_version"))
        _baseline_section(current, metrics.get(current))
        return

    wanted = st.session_state.get(CHALLENGER_KEY)
    default = wanted if wanted in others else others[-1]
    if st.session_state.get(CHALLENGER_SELECT_KEY) not in others:
        # No choice yet, or the chosen version was promoted: start from the default.
        st.session_state[CHALLENGER_SELECT_KEY] = default
    challenger = st.selectbox(
        tr("train.challenger"), options=list(reversed(others)),
        format_func=lambda v: _version_label(v, current, metrics.get(v), manifests.get(v)), key=CHALLENGER_SELECT_KEY,
    )
    st.session_state[CHALLENGER_KEY] = challenger

    current_manifest, other_manifest = manifests.get(current) or {}, manifests.get(challenger) or {}
    newer = (other_manifest.get("created_at") or "", challenger) > (current_manifest.get("created_at") or "", current)
    st.caption(tr(
        "train.compare_caption", current=current, current_created=created_text(current_manifest),
        challenger=challenger, challenger_created=created_text(other_manifest),
        relation=tr("train.relation.newer" if newer else "train.relation.older"),
    ))
    same_data = current_manifest.get("data_fingerprint") == other_manifest.get("data_fingerprint")
    if not same_data:
        st.warning(tr(
            "train.other_data",
            current_source=md_escape(source_text(current_manifest.get("source"))),
            current_fingerprint=str(current_manifest.get("data_fingerprint") or MISSING_TEXT)[:12],
            challenger_source=md_escape(source_text(other_manifest.get("source"))),
            challenger_fingerprint=str(other_manifest.get("data_fingerprint") or MISSING_TEXT)[:12],
        ))
    champion_metrics, challenger_metrics = metrics.get(current), metrics.get(challenger)
    if challenger_metrics is None or champion_metrics is None:
        st.warning(tr("train.no_metrics", version=challenger if challenger_metrics is None else current))
    _headline_cards(champion_metrics, challenger_metrics, colour=same_data)

    table, styles, hidden = comparison_frame(champion_metrics, challenger_metrics, colour=same_data)
    _show_metric_table(table, styles, tr("train.col.diff"), hidden)
    st.caption(tr("train.compare_legend" if same_data else "train.compare_legend_other_data"))

    left, right = st.columns(2)
    if left.button(tr("train.promote", version=challenger), type="primary" if newer else "secondary", key="train.promote"):
        _activate(settings, challenger, tr("train.promoted", version=challenger))
    if right.button(tr("train.keep"), key="train.keep"):
        st.session_state.pop(CHALLENGER_KEY, None)
        st.session_state[FLASH_KEY] = tr("train.kept", version=current)
        st.rerun()


def _baseline_section(version: str, metrics: dict[str, Any] | None) -> None:
    """Show the only version's metrics against its baseline, since there is no other version."""
    st.caption(tr("train.baseline_caption", current=version))
    if metrics is None:
        st.warning(tr("train.no_metrics", version=version))
        return
    _headline_cards(metrics.get("baseline"), metrics)
    table, styles, hidden = baseline_frame(metrics)
    _show_metric_table(table, styles, tr("train.col.diff_baseline"), hidden)
    st.caption(tr("train.baseline_legend"))


def _table_height(n_rows: int) -> int:
    """Return a dataframe height in pixels that shows ``n_rows`` rows without a scroll bar."""
    return TABLE_ROW_PIXELS * (n_rows + 1) + 3


def _headline_cards(champion: dict[str, Any] | None, challenger: dict[str, Any] | None, colour: bool = True) -> None:
    if not challenger:
        return
    columns = st.columns(len(HEADLINE_METRICS) + 1)
    for column, key in zip(columns, HEADLINE_METRICS):
        new, old = challenger.get(key), (champion or {}).get(key)
        # Streamlit reads the direction from a leading ASCII "-".
        delta = None if new is None or old is None or not _is_change(key, new - old) else _diff_text(key, new - old).replace("−", "-")
        if not colour:
            delta_color = "off"
        else:
            delta_color = "normal" if METRIC_DIRECTIONS[key] == "higher" else "inverse"
        column.metric(
            tr(f"train.metric.{key}"), _metric_text(key, new), delta=delta, delta_color=delta_color,
            help=tr("train.baseline_value", value=_metric_text(key, (challenger.get("baseline") or {}).get(key))),
        )
    ceiling = challenger.get("noise_ceiling_top1")
    columns[-1].metric(tr("train.noise_ceiling"), _metric_text("top1_accuracy", ceiling), help=tr("train.noise_ceiling_help"))


def _activate(settings: Settings, version: str, message: str) -> None:
    """Point models/current at ``version``; every session loads it at its next rerun."""
    try:
        set_current(settings.model_dir, version)
    except Exception as exc:  # shown on the page
        show_error(exc)
        return
    st.session_state[FLASH_KEY] = message
    st.rerun()


def _rollback_section(
    settings: Settings, manifests: dict[str, dict[str, Any]], current: str | None, metrics: dict[str, dict | None]
) -> None:
    st.subheader(tr("train.rollback_header"))
    versions = list(manifests)
    if len(versions) < 2:
        st.caption(tr("train.only_one_version"))
        return
    newest_first = list(reversed(versions))
    # A rollback usually goes back one step: the newest version saved before the active one.
    older = newest_first[newest_first.index(current) + 1:] if current in newest_first else []
    default = next(iter(older), next((v for v in newest_first if v != current), newest_first[0]))
    if st.session_state.get(ROLLBACK_SELECT_KEY) in (None, current) or st.session_state.get(ROLLBACK_SELECT_KEY) not in newest_first:
        st.session_state[ROLLBACK_SELECT_KEY] = default
    choice = st.selectbox(
        tr("train.rollback_pick"), options=newest_first,
        format_func=lambda v: _version_label(v, current, metrics.get(v), manifests.get(v)), key=ROLLBACK_SELECT_KEY,
    )
    if choice == current:
        st.caption(tr("train.rollback_is_current"))
        return
    confirmed = st.checkbox(tr("train.rollback_confirm", version=choice), key=f"train.rollback_confirm.{choice}")
    if st.button(tr("train.rollback"), disabled=not confirmed, key="train.rollback"):
        _activate(settings, choice, tr("train.rolled_back", version=choice))


# --- trend ---------------------------------------------------------------------------------


def trend_figure(manifests: list[dict[str, Any]], metrics: dict[str, dict | None]) -> go.Figure:
    """Return one small chart per headline metric across versions (oldest first): model solid, baseline dashed."""
    versions = [m["version"] for m in manifests]
    # Short tick labels (the random suffix of the version name); the hover shows the full name and time.
    labels = [m["version"].rsplit("-", 1)[-1] for m in manifests]
    hover = [f"{m['version']}<br>{m.get('created_at', '').replace('T', ' ')[:19]}" for m in manifests]
    figure = make_subplots(rows=2, cols=3, subplot_titles=[tr(f"train.metric.{k}") for k in HEADLINE_METRICS], vertical_spacing=0.18)
    for i, key in enumerate(HEADLINE_METRICS):
        row, col = i // 3 + 1, i % 3 + 1
        model = [(metrics.get(v) or {}).get(key) for v in versions]
        baseline = [((metrics.get(v) or {}).get("baseline") or {}).get(key) for v in versions]
        first = i == 0
        figure.add_trace(go.Scatter(
            x=labels, y=model, mode="lines+markers", name=tr("train.series.model"), line=dict(color="#1f77b4"),
            legendgroup="model", showlegend=first, hovertext=hover,
        ), row=row, col=col)
        figure.add_trace(go.Scatter(
            x=labels, y=baseline, mode="lines+markers", name=tr("train.series.baseline"),
            line=dict(color="#7f7f7f", dash="dash"), legendgroup="baseline", showlegend=first, hovertext=hover,
        ), row=row, col=col)
        if key == "top1_accuracy":
            ceiling = [(metrics.get(v) or {}).get("noise_ceiling_top1") for v in versions]
            if any(c is not None for c in ceiling):
                figure.add_trace(go.Scatter(
                    x=labels, y=ceiling, mode="lines+markers", name=tr("train.series.noise_ceiling"),
                    line=dict(color="#d62728", dash="dot"), legendgroup="ceiling", hovertext=hover,
                ), row=row, col=col)
        figure.update_yaxes(range=[0, 1.02], tickformat=".0%" if key in PERCENT_METRICS else None, row=row, col=col)
        figure.update_xaxes(type="category", tickangle=-45, row=row, col=col)
    figure.update_layout(
        height=640, margin=dict(l=10, r=10, t=70, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.06, xanchor="left", x=0),
    )
    return figure


def versions_frame(manifests: list[dict[str, Any]], metrics: dict[str, dict | None], current: str | None) -> pd.DataFrame:
    """Return the table of versions, newest first, with the active one marked."""
    rows = []
    for manifest in reversed(manifests):
        version = manifest["version"]
        values = metrics.get(version) or {}
        rows.append({
            tr("train.col.active"): f"● {tr('train.current_marker')}" if version == current else "",
            tr("train.col.version"): version,
            tr("train.col.created_at"): manifest.get("created_at", "").replace("T", " ")[:19],
            tr("train.col.n_items"): manifest.get("n_items"),
            tr("train.col.n_indexed_items"): manifest.get("n_indexed_items"),
            tr("train.col.n_eval_items"): values.get("n_eval_items"),
            tr("train.metric.top1_accuracy"): _metric_text("top1_accuracy", values.get("top1_accuracy")),
            tr("train.col.baseline_top1"): _metric_text("top1_accuracy", (values.get("baseline") or {}).get("top1_accuracy")),
            tr("train.col.source"): source_text(manifest.get("source")),
            tr("train.col.fingerprint"): str(manifest.get("data_fingerprint", ""))[:12],
        })
    return pd.DataFrame(rows)


def _trend_section(manifests: list[dict[str, Any]], metrics: dict[str, dict | None], current: str | None) -> None:
    st.subheader(tr("train.trend_header"))
    if not manifests:
        st.info(tr("app.no_model"))
        return
    if any(metrics.get(m["version"]) for m in manifests):
        st.plotly_chart(trend_figure(manifests, metrics), width="stretch", key="train.trend")
        st.caption(tr("train.trend_caption"))
    else:
        st.info(tr("train.no_metrics_any"))
    st.dataframe(
        versions_frame(manifests, metrics, current), hide_index=True, width="stretch", key="train.versions", placeholder=MISSING_TEXT,
    )


def _read_all_metrics(model_dir: Path, versions: list[str]) -> dict[str, dict | None]:
    result: dict[str, dict | None] = {}
    for version in versions:
        try:
            result[version] = read_metrics(model_dir, version)
        except (OSError, ValueError):
            result[version] = None  # an unreadable file counts as missing metrics
    return result


def main() -> None:
    settings = get_settings()
    st.title(tr("train.title"))
    st.caption(tr("train.caption"))
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash)
    # Filled last: comparing the model's data with the session's may read the data first.
    notice = st.container()

    current = current_version(settings.model_dir)
    _training_section(settings, current)

    manifests = list_versions(settings.model_dir)
    by_version = {m["version"]: m for m in manifests}
    metrics = _read_all_metrics(settings.model_dir, list(by_version))
    _comparison_section(settings, by_version, current, metrics)
    _rollback_section(settings, by_version, current, metrics)
    _trend_section(manifests, metrics, current)
    if current in by_version:
        with notice:
            model_data_notice(by_version[current], settings, hint="model.other_data_train")


try:
    main()
except Exception as exc:  # the page must show a message, never a traceback
    show_error(exc)
