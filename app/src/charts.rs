//! Bar charts drawn as SVG on the server (they need no JavaScript): each with a title and
//! a description for assistive technology, and its numbers as a table.

use leptos::prelude::*;

use crate::dto::ChartView;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
/// Room on the left for the scale, at the bottom for the first and last labels.
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 20.0;

/// Each bar's stacked segments: (series index, value, y, height) in SVG units.
fn segments(chart: &ChartView, top: i64) -> Vec<Vec<(usize, i64, f64, f64)>> {
    let plot = HEIGHT - BOTTOM;
    (0..chart.labels.len())
        .map(|i| {
            let mut y = plot;
            chart
                .series
                .iter()
                .enumerate()
                .filter_map(|(s, series)| {
                    let value = series.values.get(i).copied().unwrap_or(0);
                    if value <= 0 {
                        return None;
                    }
                    let h = value as f64 / top as f64 * (plot - 8.0);
                    y -= h;
                    Some((s, value, y, h))
                })
                .collect()
        })
        .collect()
}

/// A round number at or above `max` for the top of the scale (at least 1).
pub fn scale_top(max: i64) -> i64 {
    if max <= 1 {
        return 1;
    }
    let magnitude = 10i64.pow((max as f64).log10().floor() as u32);
    for step in [1, 2, 5, 10] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10 * magnitude
}

#[component]
pub fn BarChart(chart: ChartView) -> impl IntoView {
    let n = chart.labels.len().max(1);
    let totals: Vec<i64> = (0..n)
        .map(|i| chart.series.iter().map(|s| s.values.get(i).copied().unwrap_or(0)).sum())
        .collect();
    let top = scale_top(totals.iter().copied().max().unwrap_or(0));
    let slot = (WIDTH - LEFT) / n as f64;
    let bar = (slot * 0.8).max(1.0);
    let title_id = format!("{}-title", chart.id);
    let desc_id = format!("{}-desc", chart.id);
    let bars = segments(&chart, top)
        .into_iter()
        .enumerate()
        .flat_map(|(i, stack)| {
            let x = LEFT + i as f64 * slot + (slot - bar) / 2.0;
            let label = chart.labels[i].clone();
            let names: Vec<String> = chart.series.iter().map(|s| s.name.clone()).collect();
            let tones: Vec<String> = chart.series.iter().map(|s| s.tone.clone()).collect();
            stack.into_iter().map(move |(s, value, y, h)| {
                view! {
                    <rect class=format!("bar {}", tones[s]) x=format!("{x:.1}") y=format!("{y:.1}")
                        width=format!("{bar:.1}") height=format!("{h:.1}")>
                        <title>{format!("{label}: {} {value}", names[s])}</title>
                    </rect>
                }
            })
        })
        .collect_view();
    let first = chart.labels.first().cloned().unwrap_or_default();
    let last = chart.labels.last().cloned().unwrap_or_default();
    let baseline = HEIGHT - BOTTOM;
    let legend = chart
        .series
        .iter()
        .map(|s| view! { <li><span class=format!("swatch {}", s.tone) aria-hidden="true"></span>{s.name.clone()}</li> })
        .collect_view();
    let header = chart
        .series
        .iter()
        .map(|s| view! { <th scope="col">{s.name.clone()}</th> })
        .collect_view();
    let rows = chart
        .labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let cells = chart
                .series
                .iter()
                .map(|s| view! { <td>{s.values.get(i).copied().unwrap_or(0)}</td> })
                .collect_view();
            view! { <tr><th scope="row">{label.clone()}</th>{cells}</tr> }
        })
        .collect_view();
    view! {
        <figure class="chart" id=chart.id.clone()>
            <figcaption id=format!("{}-caption", chart.id)><strong>{chart.title.clone()}</strong><br /><span class="muted">{chart.description.clone()}</span></figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-labelledby=format!("{title_id} {desc_id}")
                preserveAspectRatio="none" focusable="false">
                <title id=title_id.clone()>{chart.title.clone()}</title>
                <desc id=desc_id.clone()>{chart.description.clone()}</desc>
                <line class="axis" x1=LEFT y1=baseline x2=WIDTH y2=baseline />
                <line class="grid" x1=LEFT y1="8" x2=WIDTH y2="8" />
                <text class="scale" x=LEFT - 4.0 y="12" text-anchor="end">{top}</text>
                <text class="scale" x=LEFT - 4.0 y=baseline text-anchor="end">"0"</text>
                {bars}
                <text class="scale" x=LEFT y=HEIGHT - 4.0>{first}</text>
                <text class="scale" x=WIDTH y=HEIGHT - 4.0 text-anchor="end">{last}</text>
            </svg>
            <ul class="legend">{legend}</ul>
            <table class="visually-hidden" data-chart=chart.id.clone()>
                <caption>{chart.title.clone()}</caption>
                <thead><tr><th scope="col">{chart.period.clone()}</th>{header}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_ends_on_a_round_number_at_or_above_the_largest_bar() {
        for (max, top) in [
            (0, 1),
            (1, 1),
            (3, 5),
            (7, 10),
            (10, 10),
            (11, 20),
            (240, 500),
            (1000, 1000),
            (100_001, 200_000),
        ] {
            assert_eq!(scale_top(max), top, "{max}");
        }
    }
}
