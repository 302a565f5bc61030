//! Charts drawn on the server as inline SVG: no JavaScript, no build step.

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

/// One series of a bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 30.0;

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        // Enough digits that neighbouring ticks (e.g. 1.5 and 2.25) never print alike.
        let text = format!("{v:.3}");
        text.trim_end_matches('0').to_string()
    }
}

/// A grouped bar chart: one group per label, one bar per series.
pub fn bar_chart(title: &str, unit: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{t}"><title>{t}</title><rect width="100%" height="100%" fill="#fff"/>"##,
        t = esc(title)
    );
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="18" font-size="14" font-family="sans-serif" font-weight="bold">{} <tspan font-weight="normal" fill="#666">({})</tspan></text>"##,
        esc(title),
        esc(unit)
    );
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let plot_w = WIDTH - LEFT - 10.0;
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#333\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{y}\" stroke=\"#333\"/>",
        y = TOP + plot_h,
        x2 = LEFT + plot_w
    );
    for tick in 0..=4 {
        let value = max * f64::from(tick) / 4.0;
        let y = TOP + plot_h - plot_h * f64::from(tick) / 4.0;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" font-family=\"sans-serif\">{}</text><line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#eee\"/>",
            LEFT - 4.0,
            y + 3.0,
            short(value),
            LEFT + plot_w
        );
    }
    if labels.is_empty() || max <= 0.0 {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"13\" fill=\"#888\" text-anchor=\"middle\" font-family=\"sans-serif\">no data yet</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    #[allow(clippy::cast_precision_loss)]
    let groups = labels.len().max(1) as f64;
    let group_w = plot_w / groups;
    #[allow(clippy::cast_precision_loss)]
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).max(1.0);
    let label_every = (labels.len() / 12).max(1);
    for (g, label) in labels.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x0 = LEFT + group_w * g as f64 + group_w * 0.1;
        for (k, ser) in series.iter().enumerate() {
            let v = ser.values.get(g).copied().unwrap_or(0.0);
            let h = if max > 0.0 && v.is_finite() {
                (v / max * plot_h).max(0.0)
            } else {
                0.0
            };
            #[allow(clippy::cast_precision_loss)]
            let x = x0 + bar_w * k as f64;
            let _ = write!(
                s,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect>",
                TOP + plot_h - h,
                (bar_w - 1.0).max(1.0),
                esc(ser.color),
                esc(label),
                esc(ser.name),
                short(v)
            );
        }
        if g % label_every == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" font-family=\"sans-serif\">{}</text>",
                x0 + group_w * 0.4,
                TOP + plot_h + 14.0,
                esc(label)
            );
        }
    }
    let mut lx = LEFT;
    for ser in series {
        let _ = write!(
            s,
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\" font-family=\"sans-serif\">{}</text>",
            HEIGHT - 16.0,
            esc(ser.color),
            lx + 14.0,
            HEIGHT - 7.0,
            esc(ser.name)
        );
        #[allow(clippy::cast_precision_loss)]
        let step = 30.0 + 7.0 * ser.name.len() as f64;
        lx += step;
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_one_bar_per_value_and_escapes_labels() {
        let svg = bar_chart(
            "Revenue <x>",
            "CRN",
            &["a&b".to_string(), "c".to_string()],
            &[
                Series {
                    name: "s",
                    color: "#123",
                    values: vec![1.0, 2.0],
                },
                Series {
                    name: "t",
                    color: "#456",
                    values: vec![3.0, 0.0],
                },
            ],
        );
        assert_eq!(svg.matches("class=\"bar\"").count(), 4);
        assert!(svg.contains("a&amp;b") && svg.contains("Revenue &lt;x&gt;"));
        assert!(!svg.contains("no data yet"));
        assert!(bar_chart("e", "u", &[], &[]).contains("no data yet"));
    }

    #[test]
    fn tick_labels_of_small_counts_are_distinct() {
        let ticks: Vec<String> = [0.0, 0.75, 1.5, 2.25, 3.0].map(short).to_vec();
        assert_eq!(ticks, ["0", "0.75", "1.5", "2.25", "3"]);
        assert_eq!(short(12.5), "12.5");
        assert_eq!(short(1_500.0), "1.5k");
        assert_eq!(short(0.001), "0.001");
    }
}
