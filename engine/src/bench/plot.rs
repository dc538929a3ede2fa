//! A percentile-distribution plot as SVG: latency (log scale) against percentile (the
//! usual HdrHistogram x axis, 1/(1-p) on a log scale), one line per series.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// One line of the plot.
pub struct Series<'a> {
    /// Legend text.
    pub name: String,
    /// Values in ns.
    pub hist: &'a Histogram<u64>,
    /// Drawn dashed (secondary series such as single hops).
    pub dashed: bool,
}

const W: f64 = 960.0;
const H: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 250.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// Highest percentile shown: 99.999 (1/(1-p) = 1e5).
const X_DECADES: f64 = 5.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders `series` under `title`. Empty histograms are left out.
pub fn svg(title: &str, series: &[Series<'_>]) -> String {
    let series: Vec<&Series<'_>> = series.iter().filter(|s| !s.hist.is_empty()).collect();
    // y range in decades of microseconds, from the smallest to the largest value shown.
    let lo = series
        .iter()
        .map(|s| s.hist.min().max(1) as f64 / 1e3)
        .fold(f64::INFINITY, f64::min);
    let hi = series
        .iter()
        .map(|s| s.hist.max().max(1) as f64 / 1e3)
        .fold(0.0, f64::max);
    let (y0, y1) = if series.is_empty() {
        (0.0, 1.0)
    } else {
        (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        )
    };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |inv: f64| LEFT + inv.max(1.0).log10().min(X_DECADES) / X_DECADES * pw;
    let y = |us: f64| TOP + ph - (us.max(1e-3).log10() - y0) / (y1 - y0) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>
"#,
        LEFT + pw / 2.0,
        escape(title)
    );
    // Grid and axes.
    for d in 0..=X_DECADES as i32 {
        let px = x(10f64.powi(d));
        let label = match d {
            0 => "0%".to_string(),
            d => {
                let nines = 100.0 - 100.0 / 10f64.powi(d);
                format!("{nines}%")
            }
        };
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 18.0
        );
    }
    for d in y0 as i32..=y1 as i32 {
        let us = 10f64.powi(d);
        let py = y(us);
        let label = if us >= 1e3 {
            format!("{} ms", us / 1e3)
        } else {
            format!("{us} us")
        };
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>
<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">latency</text>"#,
        LEFT + pw / 2.0,
        H - 14.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points = String::new();
        for v in ser.hist.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let inv = if q >= 1.0 {
                10f64.powf(X_DECADES)
            } else {
                1.0 / (1.0 - q)
            };
            let us = ser.hist.highest_equivalent(v.value_iterated_to()) as f64 / 1e3;
            let _ = write!(points, "{:.1},{:.1} ", x(inv), y(us));
            if q >= 1.0 - 10f64.powf(-X_DECADES) {
                break;
            }
        }
        let dash = if ser.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
            points.trim_end()
        );
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let lx = LEFT + pw + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="{}" y="{:.1}">{}</text>"#,
            lx + 30.0,
            lx + 36.0,
            ly + 4.0,
            escape(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_has_one_line_per_non_empty_series_and_escapes_names() {
        let mut a = crate::bench::hops::histogram();
        for v in 1..10_000u64 {
            a.record(v * 1_000).unwrap();
        }
        let empty = crate::bench::hops::histogram();
        let out = svg(
            "e2e <test>",
            &[
                Series {
                    name: "a & b".into(),
                    hist: &a,
                    dashed: false,
                },
                Series {
                    name: "empty".into(),
                    hist: &empty,
                    dashed: true,
                },
            ],
        );
        assert!(out.starts_with("<svg") && out.ends_with("</svg>\n"));
        assert_eq!(out.matches("<polyline").count(), 1);
        assert!(out.contains("e2e &lt;test&gt;") && out.contains("a &amp; b"));
        assert!(!out.contains("NaN") && !out.contains("inf"));
    }
}
