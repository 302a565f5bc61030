//! Charts drawn on the server as inline SVG: no JavaScript, no build step.
//!
//! Four shapes, each for one kind of question:
//! - [`panels`]: several flows over the same periods, each in a panel with its own axis, so a
//!   small flow (tenant revenue) is never a 0 px bar beside a large one (emission);
//! - [`bar_chart`]: a few comparable series over periods or items, on one axis;
//! - [`line_chart`]: counts over epochs (growth);
//! - [`hbar_chart`]: named figures side by side, each bar labelled with its value.
//!
//! Every bar carries its value (`data-value`) and a tooltip with its unit. A bar of a value
//! above zero is at least 1 px tall, so "small" never reads as "nothing"; the browser test
//! checks both.

use crate::units;
use std::fmt::Write as _;

/// Escapes text for HTML and SVG.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One series of a bar or line chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

/// One panel of [`panels`]: a series with its own axis and unit.
pub struct Panel<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

/// One bar of [`hbar_chart`].
pub struct HBar {
    pub label: String,
    pub value: f64,
    /// The value as the reader should see it, unit included ("1.5 GiB").
    pub text: String,
    pub color: String,
}

const WIDTH: f64 = 600.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 14.0;
const FONT: &str = "font-family=\"sans-serif\"";

/// An axis from 0 to a round top, in steps of 1, 2, 2.5 or 5 × 10ⁿ.
struct Axis {
    top: f64,
    step: f64,
}

impl Axis {
    fn new(max: f64, ticks: u32, integer: bool) -> Self {
        if !(max.is_finite() && max > 0.0) {
            return Self {
                top: 1.0,
                step: 1.0 / f64::from(ticks.max(1)),
            };
        }
        let raw = max / f64::from(ticks.max(1));
        let magnitude = 10f64.powf(raw.log10().floor());
        let norm = raw / magnitude;
        let nice = [1.0, 2.0, 2.5, 5.0, 10.0]
            .into_iter()
            .find(|n| norm <= *n + 1e-9)
            .unwrap_or(10.0);
        let mut step = nice * magnitude;
        if integer {
            step = step.max(1.0).ceil();
        }
        let top = (max / step - 1e-9).ceil().max(1.0) * step;
        Self { top, step }
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (self.top / self.step).round() as u32;
        (0..=n).map(move |i| f64::from(i) * self.step)
    }

    /// A tick label with as many decimals as the step needs, thousands separated.
    fn label(&self, v: f64) -> String {
        if v == 0.0 {
            return "0".to_string();
        }
        if self.top >= 1e9 {
            return format!("{} G", units::decimal(v / 1e9));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let decimals = (-self.step.log10() - 1e-9).ceil().max(0.0) as usize;
        let text = format!("{v:.decimals$}");
        let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
        let whole = units::group_digits(whole);
        if frac.is_empty() {
            whole
        } else {
            format!("{whole}.{frac}")
        }
    }

    /// Height in px of `v` on a plot `plot_h` tall: at least 1 px above zero.
    fn height(&self, v: f64, plot_h: f64) -> f64 {
        if !(v.is_finite() && v > 0.0) {
            return 0.0;
        }
        (v / self.top * plot_h).clamp(1.0, plot_h)
    }
}

fn open(s: &mut String, title: &str, height: f64) {
    let _ = write!(
        s,
        r##"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{t}"><title>{t}</title><rect class="bg" width="100%" height="100%" fill="#fff"/><text x="12" y="20" font-size="14" {FONT} font-weight="bold">{t}</text>"##,
        t = esc(title)
    );
}

fn max_of<'a>(values: impl Iterator<Item = &'a f64>) -> f64 {
    values
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
}

/// The y axis of one plot area: ticks, grid lines and the unit above them.
fn y_axis(s: &mut String, axis: &Axis, top: f64, plot_h: f64, unit: &str) {
    let right = WIDTH - RIGHT;
    if !unit.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\" {FONT}>{}</text>",
            LEFT - 4.0,
            top - 10.0,
            esc(unit)
        );
    }
    for value in axis.ticks() {
        let y = top + plot_h - value / axis.top * plot_h;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" {FONT}>{}</text>",
            LEFT - 4.0,
            y + 3.0,
            axis.label(value)
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{b:.1}\" x2=\"{right}\" y2=\"{b:.1}\" stroke=\"#333\"/><line x1=\"{LEFT}\" y1=\"{top}\" x2=\"{LEFT}\" y2=\"{b:.1}\" stroke=\"#333\"/>",
        b = top + plot_h
    );
}

/// Category labels under a plot, thinned so that they never overlap.
fn x_labels(s: &mut String, labels: &[String], y: f64, caption: &str) {
    let plot_w = WIDTH - LEFT - RIGHT;
    #[allow(clippy::cast_precision_loss)]
    let group_w = plot_w / labels.len().max(1) as f64;
    let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let label_w = widest as f64 * 6.0 + 8.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let every = ((label_w / group_w).ceil() as usize).max(1);
    for (g, label) in labels.iter().enumerate() {
        if g % every == 0 {
            #[allow(clippy::cast_precision_loss)]
            let x = LEFT + group_w * (g as f64 + 0.5);
            let _ = write!(
                s,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" {FONT}>{}</text>",
                y + 12.0,
                esc(label)
            );
        }
    }
    if !caption.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\" {FONT}>{}</text>",
            WIDTH - RIGHT,
            y + 26.0,
            esc(caption)
        );
    }
}

fn legend(s: &mut String, names: &[(&str, &str)], y: f64) {
    let mut x = LEFT;
    for (name, color) in names {
        let _ = write!(
            s,
            "<rect class=\"key\" x=\"{x:.1}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"11\" {FONT}>{}</text>",
            y - 9.0,
            esc(color),
            x + 14.0,
            y,
            esc(name)
        );
        #[allow(clippy::cast_precision_loss)]
        let step = 30.0 + 6.5 * name.chars().count() as f64;
        x += step;
    }
}

fn empty_note(s: &mut String, x: f64, y: f64, note: &str) {
    let _ = write!(
        s,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"12\" fill=\"#999\" text-anchor=\"middle\" {FONT}>{}</text>",
        esc(note)
    );
}

#[allow(clippy::too_many_arguments)]
fn bar(
    s: &mut String,
    x: f64,
    baseline: f64,
    width: f64,
    h: f64,
    color: &str,
    series: &str,
    value: f64,
    tooltip: &str,
) {
    let _ = write!(
        s,
        "<rect class=\"bar\" data-series=\"{}\" data-value=\"{value}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}</title></rect>",
        esc(series),
        baseline - h,
        width.max(1.0),
        esc(color),
        esc(tooltip)
    );
}

/// Several series over the same periods, one panel each, each on its own axis.
pub fn panels(title: &str, caption: &str, labels: &[String], panels: &[Panel<'_>]) -> String {
    const PANEL_H: f64 = 80.0;
    const GAP: f64 = 34.0;
    let top0 = 52.0;
    #[allow(clippy::cast_precision_loss)]
    let height = top0 + panels.len() as f64 * (PANEL_H + GAP) + 10.0;
    let mut s = String::new();
    open(&mut s, title, height);
    let plot_w = WIDTH - LEFT - RIGHT;
    #[allow(clippy::cast_precision_loss)]
    let group_w = plot_w / labels.len().max(1) as f64;
    for (k, p) in panels.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let top = top0 + k as f64 * (PANEL_H + GAP);
        let max = max_of(p.values.iter());
        let axis = Axis::new(max, 2, false);
        let _ = write!(
            s,
            "<text class=\"panel\" x=\"{}\" y=\"{}\" font-size=\"12\" {FONT} fill=\"{}\" font-weight=\"bold\">{} <tspan font-weight=\"normal\" fill=\"#666\">({})</tspan></text>",
            LEFT,
            top - 10.0,
            esc(p.color),
            esc(p.name),
            esc(p.unit)
        );
        y_axis(&mut s, &axis, top, PANEL_H, "");
        let baseline = top + PANEL_H;
        for (g, label) in labels.iter().enumerate() {
            let v = p.values.get(g).copied().unwrap_or(0.0);
            #[allow(clippy::cast_precision_loss)]
            let x = LEFT + group_w * g as f64 + group_w * 0.15;
            let tooltip = format!("{label} · {}: {} {}", p.name, units::decimal(v), p.unit);
            bar(
                &mut s,
                x,
                baseline,
                group_w * 0.7,
                axis.height(v, PANEL_H),
                p.color,
                p.name,
                v,
                &tooltip,
            );
        }
        if max <= 0.0 {
            empty_note(
                &mut s,
                LEFT + plot_w / 2.0,
                top + PANEL_H / 2.0,
                if labels.is_empty() {
                    "no finished epoch yet"
                } else {
                    "none in these periods"
                },
            );
        }
        x_labels(
            &mut s,
            labels,
            baseline,
            if k + 1 == panels.len() { caption } else { "" },
        );
    }
    s.push_str("</svg>");
    s
}

/// A grouped bar chart on one axis: one group per label, one bar per series.
pub fn bar_chart(
    title: &str,
    unit: &str,
    caption: &str,
    labels: &[String],
    series: &[Series<'_>],
) -> String {
    const TOP: f64 = 52.0;
    const PLOT_H: f64 = 170.0;
    let height = TOP + PLOT_H + 58.0;
    let mut s = String::new();
    open(&mut s, title, height);
    let max = max_of(series.iter().flat_map(|s| s.values.iter()));
    let axis = Axis::new(max, 4, unit_is_count(unit));
    y_axis(&mut s, &axis, TOP, PLOT_H, unit);
    let plot_w = WIDTH - LEFT - RIGHT;
    #[allow(clippy::cast_precision_loss)]
    let group_w = plot_w / labels.len().max(1) as f64;
    #[allow(clippy::cast_precision_loss)]
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    let baseline = TOP + PLOT_H;
    for (g, label) in labels.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x0 = LEFT + group_w * g as f64 + group_w * 0.1;
        for (k, ser) in series.iter().enumerate() {
            let v = ser.values.get(g).copied().unwrap_or(0.0);
            #[allow(clippy::cast_precision_loss)]
            let x = x0 + bar_w * k as f64;
            let tooltip = format!("{label} · {}: {} {unit}", ser.name, units::decimal(v));
            bar(
                &mut s,
                x,
                baseline,
                bar_w - 1.0,
                axis.height(v, PLOT_H),
                ser.color,
                ser.name,
                v,
                &tooltip,
            );
        }
    }
    if labels.is_empty() || max <= 0.0 {
        empty_note(
            &mut s,
            LEFT + plot_w / 2.0,
            TOP + PLOT_H / 2.0,
            "no data yet",
        );
    }
    x_labels(&mut s, labels, baseline, caption);
    let names: Vec<(&str, &str)> = series.iter().map(|s| (s.name, s.color)).collect();
    if names.len() > 1 {
        legend(&mut s, &names, height - 8.0);
    }
    s.push_str("</svg>");
    s
}

/// Units that count whole things: their axis ticks are whole numbers.
fn unit_is_count(unit: &str) -> bool {
    ["providers", "proofs", "deals", "leases", "count"]
        .iter()
        .any(|u| unit.contains(u))
}

/// Lines over the labels (epochs), one per series, with a dot per value.
pub fn line_chart(
    title: &str,
    unit: &str,
    caption: &str,
    labels: &[String],
    series: &[Series<'_>],
) -> String {
    const TOP: f64 = 52.0;
    const PLOT_H: f64 = 170.0;
    let height = TOP + PLOT_H + 58.0;
    let mut s = String::new();
    open(&mut s, title, height);
    let max = max_of(series.iter().flat_map(|s| s.values.iter()));
    let axis = Axis::new(max, 4, unit_is_count(unit));
    y_axis(&mut s, &axis, TOP, PLOT_H, unit);
    let plot_w = WIDTH - LEFT - RIGHT;
    #[allow(clippy::cast_precision_loss)]
    let group_w = plot_w / labels.len().max(1) as f64;
    let baseline = TOP + PLOT_H;
    // Lines that coincide are drawn apart by a pixel or two, so each stays visible.
    for (k, ser) in series.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let offset = (k as f64 - (series.len() as f64 - 1.0) / 2.0) * 2.0;
        let points: Vec<(f64, f64, f64)> = labels
            .iter()
            .enumerate()
            .map(|(g, _)| {
                let v = ser.values.get(g).copied().unwrap_or(0.0);
                #[allow(clippy::cast_precision_loss)]
                let x = LEFT + group_w * (g as f64 + 0.5);
                let y = baseline - (v.max(0.0) / axis.top * PLOT_H).min(PLOT_H) + offset;
                (x, y, v)
            })
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"line\" data-series=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            esc(ser.name),
            path.join(" "),
            esc(ser.color)
        );
        for ((x, y, v), label) in points.iter().zip(labels) {
            let _ = write!(
                s,
                "<circle class=\"point\" data-series=\"{}\" data-value=\"{v}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{}\"><title>{} · {}: {} {unit}</title></circle>",
                esc(ser.name),
                esc(ser.color),
                esc(label),
                esc(ser.name),
                units::decimal(*v)
            );
        }
    }
    if labels.is_empty() {
        empty_note(
            &mut s,
            LEFT + plot_w / 2.0,
            TOP + PLOT_H / 2.0,
            "no finished epoch yet",
        );
    }
    x_labels(&mut s, labels, baseline, caption);
    let names: Vec<(&str, &str)> = series.iter().map(|s| (s.name, s.color)).collect();
    legend(&mut s, &names, height - 8.0);
    s.push_str("</svg>");
    s
}

/// Named figures as horizontal bars, each with its value written beside it.
pub fn hbar_chart(title: &str, unit: &str, bars: &[HBar]) -> String {
    const TOP: f64 = 40.0;
    const ROW: f64 = 24.0;
    const LABEL_W: f64 = 170.0;
    const TEXT_W: f64 = 130.0;
    #[allow(clippy::cast_precision_loss)]
    let height = TOP + ROW * bars.len().max(1) as f64 + 26.0;
    let mut s = String::new();
    open(&mut s, title, height);
    let plot_w = WIDTH - LABEL_W - TEXT_W - RIGHT;
    let max = max_of(bars.iter().map(|b| &b.value));
    let axis = Axis::new(max, 4, false);
    for (i, b) in bars.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let y = TOP + ROW * i as f64;
        let w = axis.height(b.value, plot_w);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" {FONT}>{}</text>",
            LABEL_W - 6.0,
            y + 15.0,
            esc(&b.label)
        );
        let _ = write!(
            s,
            "<rect class=\"bar\" data-series=\"{}\" data-value=\"{}\" x=\"{LABEL_W}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {}</title></rect>",
            esc(&b.label),
            b.value,
            y + 4.0,
            ROW - 8.0,
            esc(&b.color),
            esc(&b.label),
            esc(&b.text)
        );
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" {FONT}>{}</text>",
            LABEL_W + w + 6.0,
            y + 15.0,
            esc(&b.text)
        );
    }
    if bars.is_empty() {
        empty_note(&mut s, WIDTH / 2.0, TOP + ROW / 2.0, "no data yet");
    }
    let _ = write!(
        s,
        "<line x1=\"{LABEL_W}\" y1=\"{}\" x2=\"{LABEL_W}\" y2=\"{:.1}\" stroke=\"#333\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\" {FONT}>{}</text>",
        TOP,
        height - 22.0,
        WIDTH - RIGHT,
        height - 8.0,
        esc(unit)
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series<'a>(name: &'a str, values: Vec<f64>) -> Series<'a> {
        Series {
            name,
            color: "#123",
            values,
        }
    }

    #[test]
    fn chart_has_one_bar_per_value_and_escapes_labels() {
        let svg = bar_chart(
            "Revenue <x>",
            "CRN",
            "epoch",
            &["a&b".to_string(), "c".to_string()],
            &[series("s", vec![1.0, 2.0]), series("t", vec![3.0, 0.0])],
        );
        assert_eq!(svg.matches("class=\"bar\"").count(), 4);
        assert!(svg.contains("a&amp;b") && svg.contains("Revenue &lt;x&gt;"));
        assert!(!svg.contains("no data yet"));
        assert!(bar_chart("e", "u", "", &[], &[]).contains("no data yet"));
    }

    fn heights(svg: &str) -> Vec<(f64, f64)> {
        svg.split("<rect class=\"bar\"")
            .skip(1)
            .map(|r| {
                let attr = |name: &str| -> f64 {
                    let start = r.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
                    let end = start + r[start..].find('"').expect("quote");
                    r[start..end].parse().expect("number")
                };
                (attr("data-value"), attr("height"))
            })
            .collect()
    }

    #[test]
    fn a_small_flow_in_its_own_panel_is_as_tall_as_a_large_one() {
        let labels: Vec<String> = (0..3).map(|e| e.to_string()).collect();
        let svg = panels(
            "Revenue and emission",
            "epoch",
            &labels,
            &[
                Panel {
                    name: "compute revenue",
                    unit: "CRN",
                    color: "#e0892b",
                    values: vec![0.08, 0.08, 0.0],
                },
                Panel {
                    name: "emission",
                    unit: "CRN",
                    color: "#777",
                    values: vec![12_000.0, 12_000.0, 11_000.0],
                },
            ],
        );
        let h = heights(&svg);
        assert_eq!(h.len(), 6);
        let tallest = |range: std::ops::Range<usize>| {
            h[range].iter().map(|(_, h)| *h).fold(0.0_f64, f64::max)
        };
        assert!(tallest(0..3) >= 0.9 * tallest(3..6), "{h:?}");
        assert_eq!(h[2], (0.0, 0.0), "nothing is no bar");
        // On one axis the revenue would be a sliver, but never 0 px.
        let one = bar_chart(
            "x",
            "CRN",
            "",
            &labels,
            &[
                series("r", vec![0.08, 0.0, 0.0]),
                series("e", vec![12_000.0, 0.0, 0.0]),
            ],
        );
        assert_eq!(heights(&one)[0].1, 1.0);
    }

    #[test]
    fn axis_ticks_are_round_and_distinct() {
        let axis = Axis::new(3.0, 4, true);
        let ticks: Vec<String> = axis.ticks().map(|v| axis.label(v)).collect();
        assert_eq!(ticks, ["0", "1", "2", "3"]);
        let axis = Axis::new(0.08, 2, false);
        let ticks: Vec<String> = axis.ticks().map(|v| axis.label(v)).collect();
        assert_eq!(ticks, ["0", "0.05", "0.10"]);
        let axis = Axis::new(1_234_567.0, 4, false);
        let ticks: Vec<String> = axis.ticks().map(|v| axis.label(v)).collect();
        assert_eq!(ticks[1], "500,000");
        assert!(axis.top >= 1_234_567.0);
        let axis = Axis::new(0.000_012, 2, false);
        let ticks: Vec<String> = axis.ticks().map(|v| axis.label(v)).collect();
        assert_eq!(ticks, ["0", "0.00001", "0.00002"]);
    }

    #[test]
    fn lines_and_horizontal_bars_draw_every_value() {
        let labels: Vec<String> = (0..4).map(|e| e.to_string()).collect();
        let svg = line_chart(
            "Providers",
            "providers",
            "epoch",
            &labels,
            &[series("registered", vec![1.0, 2.0, 3.0, 3.0])],
        );
        assert_eq!(svg.matches("class=\"point\"").count(), 4);
        assert!(svg.contains("<polyline"));
        let svg = hbar_chart(
            "TVL",
            "CRN",
            &[HBar {
                label: "validator stake".into(),
                value: 100_000.0,
                text: "100,000 CRN".into(),
                color: "#123".into(),
            }],
        );
        assert!(svg.contains("100,000 CRN") && svg.contains("validator stake"));
    }
}
