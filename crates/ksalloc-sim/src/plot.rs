//! `--plot FILE.svg`: pool occupancy over time on top, the three latency histograms
//! below (log-scaled time axis, log-scaled counts so the tails show).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::histogram::Histogram;
use crate::report::duration_ns;
use crate::scenario::{Outcome, Sample};

const WIDTH: u32 = 1500;
const HEIGHT: u32 = 900;
const TOP: u32 = 470;
/// Histogram bins per decade of nanoseconds.
const BINS_PER_DECADE: f64 = 10.0;
/// Window over which throughput is averaged, in samples.
const RATE_WINDOW: usize = 10;

const OUT: RGBColor = RGBColor(31, 119, 180);
const FREE: RGBColor = RGBColor(44, 160, 44);
const PENDING: RGBColor = RGBColor(214, 39, 40);
const RATE: RGBColor = RGBColor(127, 127, 127);
const BARS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

type PlotResult = Result<(), Box<dyn std::error::Error>>;
/// A line of the occupancy chart: label, colour, value.
type Series = (&'static str, RGBColor, fn(&Sample) -> u32);

/// Writes the picture of `outcome` to `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn write(path: &Path, outcome: &Outcome) -> PlotResult {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let s = &outcome.summary.setup;
    let title = format!(
        "ksalloc-sim: {} frames x {} B, {} producer(s), hold {} us, {:.2} s",
        s.frames, s.frame_size, s.producers, s.hold_us, outcome.summary.elapsed_s
    );
    let root = root.titled(&title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(TOP);
    occupancy(&top, &outcome.timeline, s.frames)?;
    let panels = bottom.split_evenly((1, 3));
    let histograms = [
        ("table AllocateFrame call", &outcome.latency.table_allocate),
        ("producer wait for a frame", &outcome.latency.frame_wait),
        (
            "ALLOC IRP pend -> completion",
            &outcome.latency.pend_to_completion,
        ),
    ];
    for ((panel, (name, histogram)), color) in panels.iter().zip(histograms).zip(BARS) {
        latency(panel, name, histogram, color)?;
    }
    root.present()?;
    Ok(())
}

/// Frames per second between samples, averaged over a short window.
#[allow(clippy::cast_precision_loss)] // Rates for people.
fn throughput(timeline: &[Sample]) -> Vec<(f64, f64)> {
    timeline
        .windows(RATE_WINDOW + 1)
        .filter_map(|w| {
            let (first, last) = (w.first()?, w.last()?);
            let dt = last.t - first.t;
            (dt > 0.0).then(|| {
                (
                    f64::midpoint(first.t, last.t),
                    (last.streamed - first.streamed) as f64 / dt,
                )
            })
        })
        .collect()
}

fn occupancy(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    timeline: &[Sample],
    frames: u32,
) -> PlotResult {
    let t_max = timeline.last().map_or(1.0, |s| s.t).max(1e-3);
    let rates = throughput(timeline);
    // Throughput runs at about two thirds of the height, clear of the frame lines.
    let rate_max = rates.iter().map(|&(_, r)| r).fold(1.0, f64::max) * 1.5;
    let y_max = f64::from(frames) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Pool occupancy over time (sampled from the engine)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?
        .set_secondary_coord(0.0..t_max, 0.0..rate_max);
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("frames")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("frames streamed per second")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .y_label_formatter(&|v| crate::report::rate(*v))
        .draw()?;
    chart
        .draw_secondary_series(LineSeries::new(rates, RATE.stroke_width(1)))?
        .label("throughput (right axis)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RATE.stroke_width(2)));
    let series: [Series; 3] = [
        ("frames out (clients hold them)", OUT, |s| s.out),
        ("frames free", FREE, |s| s.free),
        ("ALLOC IRPs pending", PENDING, |s| s.pending),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|s| (s.t, f64::from(value(s)))),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            [(0.0, f64::from(frames)), (t_max, f64::from(frames))],
            BLACK.mix(0.4).stroke_width(1),
        )))?
        .label(format!("total frames ({frames})"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// A round axis label: `1 us` rather than `1.00 us`.
fn axis_ns(ns: u64) -> String {
    let text = duration_ns(ns);
    match text.split_once(' ') {
        Some((number, unit)) if number.contains('.') => {
            format!(
                "{} {unit}",
                number.trim_end_matches('0').trim_end_matches('.')
            )
        }
        _ => text,
    }
}

/// Histogram buckets regrouped into log-spaced bins: (low ns, high ns, count).
#[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
fn log_bins(histogram: &Histogram) -> Vec<(f64, f64, u64)> {
    let mut bins: Vec<(i32, u64)> = Vec::new();
    for bar in histogram.bars() {
        let mid = ((bar.low + bar.high) as f64 / 2.0).max(1.0);
        let k = (mid.log10() * BINS_PER_DECADE).floor() as i32;
        match bins.last_mut() {
            Some(last) if last.0 == k => last.1 += bar.count,
            _ => bins.push((k, bar.count)),
        }
    }
    let edge = |k: i32| 10f64.powf(f64::from(k) / BINS_PER_DECADE);
    bins.into_iter()
        .map(|(k, n)| (edge(k), edge(k + 1), n))
        .collect()
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)] // Counts and ns for a picture.
fn latency(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    name: &str,
    histogram: &Histogram,
    color: RGBColor,
) -> PlotResult {
    let p = histogram.percentiles();
    let caption = format!("{name} ({} samples)", crate::report::count(p.samples));
    let bins = log_bins(histogram);
    if bins.is_empty() {
        let chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .plotting_area()
            .draw(&Text::new("no samples", (0.4, 0.5), ("sans-serif", 16)))?;
        return Ok(());
    }
    let x_low = bins.first().map_or(1.0, |b| b.0) / 1.5;
    let x_high = bins.last().map_or(10.0, |b| b.1) * 1.5;
    let y_high = bins.iter().map(|b| b.2).max().unwrap_or(1) as f64 * 3.0;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d((x_low..x_high).log_scale(), (0.8..y_high).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("latency (log scale)")
        .y_desc("samples (log scale)")
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| axis_ns(v.round().max(0.0) as u64))
        .y_label_formatter(&|v| crate::report::count(v.round().max(0.0) as u64))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart.draw_series(bins.iter().map(|&(low, high, n)| {
        Rectangle::new([(low, 0.8), (high, n as f64)], color.mix(0.75).filled())
    }))?;
    let marks = [("p50", p.p50_ns), ("p99", p.p99_ns), ("max", p.max_ns)];
    for (i, (label, ns)) in marks.into_iter().enumerate() {
        let x = (ns as f64).max(x_low);
        chart.draw_series(std::iter::once(PathElement::new(
            [(x, 0.8), (x, y_high)],
            BLACK.mix(0.6).stroke_width(1),
        )))?;
        // Labels step down so neighbours do not collide; in the right part of the
        // panel they sit left of their line so they stay inside.
        let y = y_high / 1.3 / 2.5f64.powi(i32::try_from(i).unwrap_or(0));
        let across = (x / x_low).log(x_high / x_low);
        let (x, anchor) = if across > 0.7 {
            (x / 1.05, HPos::Right)
        } else {
            (x * 1.05, HPos::Left)
        };
        let style =
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(anchor, VPos::Top));
        chart.draw_series(std::iter::once(Text::new(
            format!("{label} {}", duration_ns(ns)),
            (x, y),
            style,
        )))?;
    }
    Ok(())
}
