"""The HTML report of a trips folder: one self-contained page (plotly.js embedded, no network).

Sections: what was made (persons, trips, chains, the model's part from the manifest); every target
table, target beside synthetic; trip lengths and departure hours (beside a reference, when given);
flows between districts by period on a map of the zones' centroids; and for every scenario the run
wrote (``scenarios/NAME``), its event, the arrivals it added against what it asked, each table
beside the baseline's, and where trips arriving for an activity changed, by period, on the map — or, for
a change of modes, the tours it moved and the trips by the two modes by hour, baseline and scenario; for
tours not made, the trips by hour and the flows that fell, on the map.
"""

from __future__ import annotations

import html
from itertools import product

import numpy as np
import pandas as pd

from ...evaluation.cells import cell_counts
from ...outputs.html import REFERENCE, SYNTHETIC, TARGET, Figures, fmt, html_table, page
from .districts import described
from .evaluation import coded_trips, with_trip_counts
from .inputs import TRIPS, TripInputs, cells_in_words
from .prior import PERIODS
from .scenario import arrivals
from .spec import TripsSpec

TOP_FLOWS = 120  # district pairs drawn per period (the largest)
BAR_CELLS = 60  # a table of at most this many cells is drawn as bars, a larger one as a scatter of its cells
WIDTHS = (1, 2.5, 5, 9)  # line widths of the flow quartiles


def periods(inputs: TripInputs) -> list[tuple[int, int, str]]:
    """The departure periods of the first trips table binning ``depart`` coarser than hours, else those the model is asked in."""
    for table in inputs.tables:
        for axis in table.axes:
            if axis.variable == "depart" and axis.is_numeric and 1 < axis.size < 12:
                edges = axis.edges.astype(int)
                return [(int(a), int(b) + (1 if i == axis.size - 1 else 0), label)
                        for i, (a, b, label) in enumerate(zip(edges[:-1], edges[1:], axis.labels))]
    return list(PERIODS)


def _in(depart: pd.Series, period: tuple[int, int, str]) -> np.ndarray:
    hours = pd.to_numeric(depart).to_numpy()
    return (hours >= period[0]) & (hours < period[1])


def _places(inputs: TripInputs) -> tuple[pd.DataFrame, str]:
    """Where flows are drawn between: districts (their zones' mean centroid) when the zone table has them, else zones."""
    zones = inputs.zones
    frame = pd.DataFrame({"zone": zones.ids.astype(str), "lon": zones.lon, "lat": zones.lat})
    if zones.district is None:
        return frame.set_index("zone"), "zone"
    frame["district"] = zones.district.astype(str)
    return frame.groupby("district")[["lon", "lat"]].mean(), "district"


def _map_layout(fig, title: str, zones) -> None:
    fig.update_layout(title={"text": title, "y": 0.98, "yanchor": "top"}, height=680, showlegend=False, margin={"l": 20, "r": 20, "t": 100, "b": 20},
                      xaxis={"visible": False},
                      yaxis={"visible": False, "scaleanchor": "x", "scaleratio": 1 / np.cos(np.radians(np.mean(zones.lat)))})


def _period_buttons(fig, groups: list[list[int]], labels: list[str], always: list[int]) -> None:
    """Buttons showing one period's traces (plus ``always``), the first period shown."""
    n = len(fig.data)
    buttons = []
    for label, shown in zip(labels, groups):
        visible = [i in shown or i in always for i in range(n)]
        buttons.append({"label": label, "method": "update", "args": [{"visible": visible}]})
    for i, trace in enumerate(fig.data):
        trace.visible = i in groups[0] or i in always
    fig.update_layout(updatemenus=[{"type": "buttons", "direction": "right", "x": 0, "y": 1.0, "xanchor": "left", "yanchor": "bottom",
                                    "buttons": buttons}])


def _lines(fig, places: pd.DataFrame, flows: pd.Series, colour: str, what: str) -> list[int]:
    """Desire lines of ``flows`` ((from, to) -> trips; the largest :data:`TOP_FLOWS`, none within a place) added
    to ``fig``, line width by quartile; the indices of the traces added."""
    import plotly.graph_objects as go

    flows = flows[[o != d for o, d in flows.index]]
    flows = flows.iloc[np.argsort(-np.abs(flows.to_numpy()), kind="stable")].head(TOP_FLOWS)
    added = []
    if not len(flows):
        return added
    size = np.abs(flows.to_numpy())
    quartile = np.searchsorted(np.quantile(size, [0.25, 0.5, 0.75]), size, side="right")
    for q, width in enumerate(WIDTHS):
        chosen = flows[quartile == q]
        if not len(chosen):
            continue
        xs, ys, text = [], [], []
        for (o, d), n in chosen.items():
            xs += [places.at[o, "lon"], places.at[d, "lon"], None]
            ys += [places.at[o, "lat"], places.at[d, "lat"], None]
            text += [f"{o} → {d}: {n:+,} {what}" if what == "change" else f"{o} → {d}: {n:,} {what}"] * 3
        added.append(len(fig.data))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"width": width, "color": colour}, opacity=0.55,
                                 text=text, hoverinfo="text"))
    return added


def _od(trips: pd.DataFrame, level: str) -> pd.Series:
    key = [f"origin_{level}", f"destination_{level}"] if level == "district" else ["origin", "destination"]
    return trips.assign(**{k: trips[k].astype(str) for k in key}).groupby(key).size()


def _base_map(inputs: TripInputs, places: pd.DataFrame | None = None):
    """Zone centroids as grey dots (and ``places`` labelled), the traces every period shows."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=inputs.zones.lon, y=inputs.zones.lat, mode="markers", hoverinfo="skip",
                                marker={"size": 3, "color": "#ccc"})])
    if places is not None:
        fig.add_trace(go.Scatter(x=places["lon"], y=places["lat"], mode="markers+text", text=list(places.index),
                                 textposition="top center", marker={"size": 6, "color": "#444"}, textfont={"size": 9}, hoverinfo="text"))
    return fig


def flows_figure(inputs: TripInputs, trips: pd.DataFrame):
    """Desire lines of the largest flows between districts (or zones), one set per period, line width by quartile."""
    places, level = _places(inputs)
    fig = _base_map(inputs, places)
    groups, labels = [], []
    for period in periods(inputs):
        shown = trips[_in(trips["depart"], period)]
        groups.append(_lines(fig, places, _od(shown, level), SYNTHETIC, "trips"))
        labels.append(f"{period[2]} ({len(shown):,})")
    _period_buttons(fig, groups, labels, always=[0, 1])
    _map_layout(fig, f"flows between {level}s", inputs.zones)
    return fig


def change_figure(inputs: TripInputs, baseline: pd.DataFrame, scenario: pd.DataFrame, home: str, title: str):
    """Per period, the flows between districts that changed (red: more trips, blue: fewer) and the zones where
    trips arriving for an activity changed (marker area by the change)."""
    import plotly.graph_objects as go

    zones = inputs.zones
    places, level = _places(inputs)
    fig = _base_map(inputs, places)
    groups, labels = [], []
    rows = zones.index
    for period in periods(inputs):
        before, after = (t[_in(t["depart"], period)] for t in (baseline, scenario))
        od = _od(after, level).sub(_od(before, level), fill_value=0).astype(int)
        od = od[od != 0]
        group = _lines(fig, places, od[od > 0], "#d62728", "change") + _lines(fig, places, od[od < 0], "#1f77b4", "change")
        arrivals = [t[t["purpose"] != home]["destination"].astype(str).value_counts() for t in (before, after)]
        change = arrivals[1].sub(arrivals[0], fill_value=0)
        change = change[change != 0]
        if len(change):
            at = rows.get_indexer(change.index)
            size = 8 + 30 * np.sqrt(np.abs(change.to_numpy()) / np.abs(change.to_numpy()).max())
            group.append(len(fig.data))
            fig.add_trace(go.Scatter(x=zones.lon[at], y=zones.lat[at], mode="markers",
                                     marker={"size": size, "color": np.where(change.to_numpy() > 0, "#d62728", "#1f77b4"), "opacity": 0.7},
                                     text=[f"zone {z}: {c:+,.0f} arrivals for an activity" for z, c in change.items()], hoverinfo="text"))
        groups.append(group)
        labels.append(f"{period[2]} ({int(od.abs().sum()):,} trips moved)")
    _period_buttons(fig, groups, labels, always=[0, 1])
    _map_layout(fig, title, zones)
    return fig


def _target_section(inputs: TripInputs, persons: pd.DataFrame, coded: pd.DataFrame, result: dict, figure: Figures) -> str:
    import plotly.graph_objects as go

    parts = ["<h2>Target tables</h2>",
             html_table(["target table", "counts", "cells", "TVD", "JS distance", "outside its cells", "worst district"],
                        [[name, f["counts"], cells_in_words(t), f["tvd"], f["jsd"], f["outside_the_cells"], described(f["by_district"])]
                         for (name, f), t in zip(result["targets"].items(), inputs.tables)])]
    for table in inputs.tables:
        frame = coded if table.level == TRIPS.name else persons
        counts = cell_counts(frame, table)[0].ravel()
        target = table.region.ravel()
        f = result["targets"][table.name]
        if table.listed is None and table.cells <= BAR_CELLS:
            labels = [" · ".join(cell) for cell in product(*(a.labels for a in table.axes))]
            fig = go.Figure([go.Bar(name="target", x=labels, y=target / max(target.sum(), 1e-300), marker_color=TARGET),
                             go.Bar(name="synthetic", x=labels, y=counts / max(counts.sum(), 1), marker_color=SYNTHETIC)])
            fig.update_layout(barmode="group", yaxis_title="share", height=380)
        else:
            fig = go.Figure([go.Scattergl(x=target, y=counts, mode="markers", marker={"size": 4, "color": SYNTHETIC, "opacity": 0.5},
                                          name="cells"),
                             go.Scatter(x=[0, target.max()], y=[0, target.max()], mode="lines", line={"color": TARGET}, name="equal")])
            fig.update_layout(xaxis_title="target count", yaxis_title="synthetic count", height=420)
        fig.update_layout(title=f"{table.name} — TVD {f['tvd']:.4f} over {cells_in_words(table)} cells")
        parts.append(figure(fig))
    return "".join(parts)


def _distributions(coded: pd.DataFrame, truth: pd.DataFrame | None, figure: Figures) -> str:
    import plotly.graph_objects as go

    parts = []
    for column, bins, title in (("km", np.r_[np.arange(0, 51, 1.0), np.inf], "trip length (km)"),
                                ("depart", np.arange(0, 25), "departure hour")):
        fig = go.Figure()
        for name, frame, colour in (("synthetic", coded, SYNTHETIC), ("reference", truth, REFERENCE)):
            if frame is None or not len(frame):
                continue
            values = pd.to_numeric(frame[column]).to_numpy(float)
            counts = np.histogram(values[~np.isnan(values)], bins=bins)[0]
            fig.add_trace(go.Bar(name=name, x=bins[:-1], y=counts / max(counts.sum(), 1), marker_color=colour))
        fig.update_layout(title=title, barmode="group", yaxis_title="share of trips", height=340)
        parts.append(figure(fig))
    return "<h2>Trip lengths and departure hours</h2>" + "".join(parts)


def _by_hour(trips: pd.DataFrame, hours: np.ndarray) -> np.ndarray:
    """How many of ``trips`` depart in each of ``hours``."""
    return pd.to_numeric(trips["depart"]).value_counts().reindex(hours, fill_value=0).to_numpy()


def _leaving_hours(change: dict) -> str:
    """A change's hours (of leaving home; of the trips into a closed zone), as the report says them."""
    return "the whole day" if change["start"] is None else f"{change['start']}–{change['end']}"


def _opening(manifest: dict, key: str) -> list[str]:
    """A scenario section's heading, and its text with how its change (under ``key``) was read, if it was read."""
    parts = [f"<h2>Scenario {html.escape(manifest['scenario'])}</h2>"]
    if manifest.get("text"):
        parts.append(f"<p><q>{html.escape(manifest['text'])}</q> — {html.escape(manifest[f'{key}_from'])}.</p>")
    return parts


def _fits(manifest: dict) -> str:
    """A scenario's tables: each one's TVD for the baseline and the scenario, against the same targets."""
    return html_table(["target table", "TVD baseline", "TVD scenario"],
                      [[name, f["baseline"], f["scenario"]] for name, f in manifest["fit_tvd"].items()])


def _shift_section(spec: TripsSpec, manifest: dict, baseline: pd.DataFrame, trips: pd.DataFrame, figure: Figures) -> str:
    """A change of modes beside the baseline: the shift, the tours it moved, the tables, trips by mode and hour."""
    import plotly.graph_objects as go

    shift, tours = manifest["shift"], manifest["tours"]
    parts = _opening(manifest, "shift")
    hours = _leaving_hours(shift)
    parts.append(html_table(["mode left", "mode taken", "share", "activity", "leaving home in hours", "tours in scope",
                             "of a length the new mode travels", "asked", "moved"],
                            [[shift["mode"], shift["to"], f"{100 * shift['share']:g}%", shift["purpose"] or "any", hours,
                              tours["in_scope"], tours["plausible"], tours["asked"], tours["moved"]]]))
    parts.append(f"<p class='note'>{manifest['trips_by_mode']['moved']:,} trips changed mode; every zone, hour and activity is the "
                 f"baseline's (checked: {'yes' if manifest['only_modes_changed'] else 'NO'}), and every other trip is the "
                 f"baseline's (checked: {'yes' if manifest['others_are_the_baseline'] else 'NO'}).</p>")
    parts.append(_fits(manifest))
    hour_axis = np.arange(spec.trips.first_hour, spec.trips.last_hour + 1)
    fig = go.Figure()
    for mode, dash in ((shift["mode"], "solid"), (shift["to"], "dot")):
        for name, frame, colour in (("baseline", baseline, TARGET), ("scenario", trips, SYNTHETIC)):
            fig.add_trace(go.Scatter(x=hour_axis, y=_by_hour(frame[frame["trip_mode"] == mode], hour_axis), mode="lines+markers", name=f"{mode}, {name}",
                                     line={"color": colour, "dash": dash}))
    fig.update_layout(title=f"trips by {shift['mode']} and by {shift['to']}, by departure hour", xaxis_title="hour",
                      yaxis_title="trips", height=340)
    parts.append(figure(fig))
    return "".join(parts)


def _cancel_section(spec: TripsSpec, inputs: TripInputs, manifest: dict, baseline: pd.DataFrame, trips: pd.DataFrame,
                    figure: Figures) -> str:
    """Tours not made beside the baseline: the change, the tours and trips it took, the tables, trips by hour, and
    where the flows fell, period by period, on the map."""
    import plotly.graph_objects as go

    cancel, tours, counts = manifest["cancel"], manifest["tours"], manifest["trips"]
    parts = _opening(manifest, "cancel")
    hours = _leaving_hours(cancel)
    parts.append(html_table(["share not made", "activity", "mode", "leaving home in hours", "tours in scope", "not made", "trips removed"],
                            [[f"{100 * cancel['share']:g}%", cancel["purpose"] or "any", cancel["mode"] or "any", hours,
                              tours["in_scope"], tours["not_made"], counts["removed"]]]))
    parts.append(f"<p class='note'>{counts['baseline']:,} trips in the baseline, {counts['scenario']:,} with the scenario; every "
                 f"trip left is the baseline's (checked: {'yes' if manifest['others_are_the_baseline'] else 'NO'}).</p>")
    parts.append(_fits(manifest))
    hour_axis = np.arange(spec.trips.first_hour, spec.trips.last_hour + 1)
    fig = go.Figure()
    for name, frame, colour in (("baseline", baseline, TARGET), ("scenario", trips, SYNTHETIC)):
        fig.add_trace(go.Bar(name=name, x=hour_axis, y=_by_hour(frame, hour_axis), marker_color=colour))
    fig.update_layout(title="trips by departure hour", barmode="group", xaxis_title="hour", yaxis_title="trips", height=340)
    parts.append(figure(fig))
    parts.append(figure(change_figure(inputs, baseline, trips, spec.trips.home,
                                      "what the scenario changed: flows and arrivals for an activity (red: more, blue: fewer)")))
    return "".join(parts)


def _scenario_section(spec: TripsSpec, inputs: TripInputs, baseline: pd.DataFrame, manifest: dict, trips: pd.DataFrame,
                      figure: Figures) -> str:
    if "shift" in manifest:
        return _shift_section(spec, manifest, baseline, trips, figure)
    if "cancel" in manifest:
        return _cancel_section(spec, inputs, manifest, baseline, trips, figure)
    if "close" in manifest:
        return _close_section(spec, inputs, manifest, baseline, trips, figure)
    event = manifest["event"]
    rise = manifest["arrivals_in_zone_in_hours"]
    parts = _opening(manifest, "event")
    parts.append(html_table(["zone", "activity", "there (hour)", "back (hour)", "visitors asked", "placed", "main mode", "share", "modes"],
                            [[event["zone"], event["purpose"], event["start"], event["end"], event["visitors"],
                              manifest["visitors"]["placed"], event["mode"], event["share"],
                              ", ".join(f"{m} {n}" for m, n in manifest["visitors"]["modes"].items())]]))
    parts.append(f"<p class='note'>Trips arriving in zone {html.escape(str(event['zone']))} for an activity, departing in hours "
                 f"{event['start']}–{event['end']}: {rise['baseline']:,} in the baseline, {rise['scenario']:,} with the scenario "
                 f"(+{rise['rise']:,}, {rise['rise_over_asked']:.1%} of the visitors asked). Every other trip is the baseline's "
                 f"(checked: {'yes' if manifest['background_is_the_baseline'] else 'NO'}).</p>")
    parts.append(_fits(manifest))
    parts.append(_arrivals_figures(spec, inputs, baseline, trips, str(event["zone"]), figure))
    return "".join(parts)


def _arrivals_figures(spec: TripsSpec, inputs: TripInputs, baseline: pd.DataFrame, trips: pd.DataFrame, zone: str,
                      figure: Figures) -> str:
    """Trips arriving in ``zone`` for an activity by hour, baseline beside scenario, and the map of what changed."""
    import plotly.graph_objects as go

    hours = np.arange(spec.trips.first_hour, spec.trips.last_hour + 1)
    fig = go.Figure()
    for name, frame, colour in (("baseline", baseline, TARGET), ("scenario", trips, SYNTHETIC)):
        into = frame[arrivals(frame, zone, spec.trips.home)]
        fig.add_trace(go.Bar(name=name, x=hours, y=_by_hour(into, hours), marker_color=colour))
    fig.update_layout(title=f"trips arriving in zone {zone} for an activity, by departure hour", barmode="group",
                      xaxis_title="hour", yaxis_title="trips", height=340)
    return figure(fig) + figure(change_figure(inputs, baseline, trips, spec.trips.home,
                                              "what the scenario changed: flows and arrivals for an activity (red: more, blue: fewer)"))


def _close_section(spec: TripsSpec, inputs: TripInputs, manifest: dict, baseline: pd.DataFrame, trips: pd.DataFrame,
                   figure: Figures) -> str:
    """A closure beside the baseline: the zone closed, the visits it moved and where, the tables, arrivals in the zone by
    hour, and where flows and arrivals changed on the map."""
    close, visits, rise = manifest["close"], manifest["visits"], manifest["arrivals_in_zone_in_scope"]
    parts = _opening(manifest, "close")
    hours = _leaving_hours(close)
    went = ", ".join(f"{z} {n}" for z, n in list(visits["to_zones"].items())[:5])
    parts.append(html_table(["zone closed", "activity", "trips there departing in hours", "visits moved", "beyond reach",
                             "went to (zone visits, the most first)"],
                            [[close["zone"], close["purpose"] or "any", hours, visits["in_scope"], visits["beyond_reach"], went]]))
    parts.append(f"<p class='note'>Trips arriving in zone {html.escape(str(close['zone']))} in the closure's scope: {rise['baseline']:,} "
                 f"in the baseline, {rise['scenario']:,} with the scenario. Only the zones of the visits moved and of the trips "
                 f"leaving them changed (checked: {'yes' if manifest['only_zones_changed'] else 'NO'}); every other trip is the "
                 f"baseline's (checked: {'yes' if manifest['others_are_the_baseline'] else 'NO'}).</p>")
    parts.append(_fits(manifest))
    parts.append(_arrivals_figures(spec, inputs, baseline, trips, str(close["zone"]), figure))
    return "".join(parts)


def build_trips_report(spec: TripsSpec, inputs: TripInputs, result: dict, persons: pd.DataFrame, trips: pd.DataFrame,
                       manifest: dict | None, scenarios: list[tuple[dict, pd.DataFrame]],
                       reference: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> str:
    """The whole page (see the module's text); ``result`` is :func:`~.evaluation.evaluate_trips`'s."""
    figure = Figures()
    coded = coded_trips(inputs, trips)
    joined = with_trip_counts(persons, trips)
    chains = result["chains"]
    summary = [["persons", f"{result['persons']:,}"], ["trips", f"{result['trips']:,}"], ["zones", f"{len(inputs.zones):,}"],
               ["days that are valid chains", f"{chains['valid']:,} of {chains['persons_with_trips']:,}"]]
    if manifest is not None:
        prior = manifest.get("prior", {})
        check = prior.get("check") or {}
        model = manifest.get("model") or {}
        summary += [["model", model.get("name") or model.get("backend") or "–"],
                    ["option scorings (LLM seconds)", f"{manifest['llm']['option_scorings']} ({manifest['llm']['seconds']:.1f} s)"],
                    ["prior strength", fmt(check.get("strength"))], ["wall seconds", fmt(manifest["seconds"].get("wall"))]]
    if reference is not None:
        r = result["reference"]
        summary += [["held-out JS distance (mean)", fmt(r["held_out_jsd_mean"])], ["trip length JSD", fmt(r["trip_length_jsd"])],
                    ["departure hour JSD", fmt(r["departure_hour_jsd"])], ["zone OD CPC", fmt(r["zone_od_cpc"])]]
    sections = [f"<h1>llmsynthor trips report: {html.escape(spec.name)}</h1>", html_table(["", ""], summary),
                _target_section(inputs, joined, coded, result, figure),
                _distributions(coded, coded_trips(inputs, reference[1]) if reference is not None else None, figure),
                "<h2>Flows by period</h2><p class='note'>The largest flows between districts (zones without districts) "
                "departing in each period; line width by quartile. Grey dots: zone centroids.</p>",
                figure(flows_figure(inputs, trips))]
    for scenario_manifest, scenario_trips in scenarios:
        sections.append(_scenario_section(spec, inputs, trips, scenario_manifest, scenario_trips, figure))
    return page(f"llmsynthor trips report: {spec.name}", sections, figure)
