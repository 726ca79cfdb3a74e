//! Hand-written SVG line charts: axes with "nice" ticks, labels, a legend,
//! several series, and the degenerate cases (one point, a constant series,
//! NaN or missing values) drawn sensibly instead of failing.

use super::esc;
use std::fmt::Write;

/// Colours for series, in order (Tableau 10: distinguishable and print-safe).
pub const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

/// One named line: `(x, y)` points in x order; a non-finite y is a gap.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// A chart to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Width in pixels.
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
}

/// A linear map from a data interval onto a pixel interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Data start.
    pub d0: f64,
    /// Data end.
    pub d1: f64,
    /// Pixel position of `d0`.
    pub r0: f64,
    /// Pixel position of `d1`.
    pub r1: f64,
}

impl Scale {
    /// A scale over `[lo, hi]`, widened when empty so a constant series
    /// sits in the middle of the plot instead of dividing by zero.
    pub fn new(lo: f64, hi: f64, r0: f64, r1: f64) -> Self {
        let (lo, hi) = if !lo.is_finite() || !hi.is_finite() {
            (0.0, 1.0)
        } else if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo - pad, hi + pad)
        } else {
            (lo, hi)
        };
        Scale { d0: lo, d1: hi, r0, r1 }
    }

    /// Pixel position of data value `v`.
    pub fn map(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }
}

/// Tick values covering `[lo, hi]` at a 1-2-5 step, about `n` of them
/// (Heckbert's "nice numbers", Graphics Gems 1990).
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return vec![];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    // Round to the step's decimals so 3 × 0.2 is 0.6, not 0.6000000000000001.
    let pow = 10f64.powi((-step.log10().floor()).max(0.0) as i32);
    let mut k = (lo / step).ceil();
    let mut out = Vec::new();
    while k * step <= hi + step * 1e-9 && out.len() < 100 {
        let v = (k * step * pow).round() / pow;
        out.push(if v == 0.0 { 0.0 } else { v });
        k += 1.0;
    }
    out
}

/// The y scale widened to whole tick steps, so the lowest and highest
/// gridlines frame the data and are labelled.
fn nice_y(s: Scale) -> Scale {
    let t = ticks(s.d0, s.d1, 5);
    let step = match t.as_slice() {
        [a, b, ..] => b - a,
        _ => return s,
    };
    let pow = 10f64.powi((-step.log10().floor()).max(0.0) as i32);
    let round = |v: f64| (v * pow).round() / pow;
    let (lo, hi) = (round((s.d0 / step).floor() * step), round((s.d1 / step).ceil() * step));
    Scale { d0: lo, d1: hi, ..s }
}

/// A short label for a number: integers plain, small and large values in
/// exponent form, others with up to 4 significant digits.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    if a >= 1000.0 || v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn finite_range(vals: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vals.filter(|v| v.is_finite()).fold(None, |acc, v| {
        Some(acc.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v))))
    })
}

/// At most about `max` points: each bucket keeps its lowest and highest
/// point, so spikes (a loss blow-up) survive the thinning.
pub fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 4 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max / 2);
    let mut out = Vec::with_capacity(max + 2);
    for chunk in points.chunks(per) {
        let finite = chunk.iter().filter(|p| p.1.is_finite());
        let lo = finite.clone().min_by(|a, b| a.1.total_cmp(&b.1));
        let hi = finite.max_by(|a, b| a.1.total_cmp(&b.1));
        match (lo, hi) {
            (Some(a), Some(b)) if a.0 <= b.0 => out.extend([*a, *b]),
            (Some(a), Some(b)) => out.extend([*b, *a]),
            // A bucket with no finite value stays a gap.
            _ => out.push((chunk[0].0, f64::NAN)),
        }
    }
    out.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    out
}

/// The chart as an `<svg>` element.
pub fn line_chart(c: &Chart) -> String {
    let (w, h) = (c.width, c.height);
    let legend_rows = legend_layout(&c.series, w - 60.0);
    let top = 28.0 + 16.0 * legend_rows.iter().map(|r| r.1).max().map_or(0.0, |m| m as f64 + 1.0);
    let (left, right, bottom) = (56.0, 12.0, 40.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" data-series="{}"><title>{}</title>"#,
        c.series.len(),
        esc(&c.title)
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="16" class="ct" text-anchor="middle">{}</text>"#,
        w / 2.0,
        esc(&c.title)
    );
    let xs = finite_range(
        c.series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| p.1.is_finite()).map(|p| p.0)),
    );
    let ys = finite_range(c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let (Some((x0, x1)), Some((y0, y1))) = (xs, ys) else {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle" class="muted">no data</text></svg>"#,
            w / 2.0,
            h / 2.0
        );
        return s;
    };
    let sx = Scale::new(x0, x1, left, w - right);
    let sy = nice_y(Scale::new(y0, y1, h - bottom, top));
    // Grid and tick labels.
    for t in ticks(sy.d0, sy.d1, 5) {
        let y = sy.map(t);
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
            w - right,
            left - 4.0,
            y + 3.5,
            fmt_num(t)
        );
    }
    for t in ticks(sx.d0, sx.d1, ((w - left - right) / 80.0).max(2.0) as usize) {
        let x = sx.map(t);
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" class="axis"/><text x="{x:.1}" y="{}" text-anchor="middle" class="tick">{}</text>"#,
            h - bottom,
            h - bottom + 4.0,
            h - bottom + 15.0,
            fmt_num(t)
        );
    }
    let _ = write!(
        s,
        r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{}" class="axis"/><line x1="{left}" x2="{}" y1="{}" y2="{}" class="axis"/>"#,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" class="tick">{}</text>"#,
        (left + w - right) / 2.0,
        h - 6.0,
        esc(&c.x_label)
    );
    for (i, ser) in c.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts = thin(&ser.points, 1200);
        let (path, lonely) = path_of(&pts, &sx, &sy);
        if !path.is_empty() {
            let _ = write!(
                s,
                r#"<path d="{path}" fill="none" stroke="{color}" stroke-width="1.6" class="line"/>"#
            );
        }
        // A point with no finite neighbour draws no line: mark it.
        for (x, y) in lonely {
            let _ = write!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#);
        }
    }
    for (i, (ser, (dx, row))) in c.series.iter().zip(&legend_rows).enumerate() {
        let (x, y) = (left + dx, 26.0 + 16.0 * *row as f64);
        let color = PALETTE[i % PALETTE.len()];
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}" class="tick">{}</text>"#,
            y - 1.0,
            x + 14.0,
            y + 8.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Each series' legend entry as (x offset, row), wrapping at `width`
/// (text width estimated at 6.5 px a character: no font metrics offline).
fn legend_layout(series: &[Series], width: f64) -> Vec<(f64, usize)> {
    let (mut x, mut row) = (0.0, 0);
    series
        .iter()
        .map(|s| {
            let wdt = 22.0 + 6.5 * s.name.chars().count() as f64;
            if x > 0.0 && x + wdt > width {
                x = 0.0;
                row += 1;
            }
            let at = (x, row);
            x += wdt;
            at
        })
        .collect()
}

/// The path's `d` attribute, broken at non-finite values, and the points
/// that stand alone between gaps (pixel coordinates).
fn path_of(pts: &[(f64, f64)], sx: &Scale, sy: &Scale) -> (String, Vec<(f64, f64)>) {
    let mut d = String::new();
    let mut lonely = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    let mut flush = |run: &mut Vec<(f64, f64)>, d: &mut String| {
        if run.len() == 1 {
            lonely.push(run[0]);
        } else {
            for (i, (x, y)) in run.iter().enumerate() {
                let _ = write!(d, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" });
            }
        }
        run.clear();
    };
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            run.push((sx.map(x), sy.map(y)));
        } else if !run.is_empty() {
            flush(&mut run, &mut d);
        }
    }
    if !run.is_empty() {
        flush(&mut run, &mut d);
    }
    (d, lonely)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> String {
        line_chart(&Chart {
            title: "t".into(),
            x_label: "step".into(),
            series,
            width: 400.0,
            height: 240.0,
        })
    }

    fn ser(name: &str, pts: &[(f64, f64)]) -> Series {
        Series {
            name: name.into(),
            points: pts.to_vec(),
        }
    }

    #[test]
    fn scale_maps_ends_and_inverts_for_y() {
        let s = Scale::new(0.0, 10.0, 50.0, 150.0);
        assert_eq!(s.map(0.0), 50.0);
        assert_eq!(s.map(10.0), 150.0);
        assert_eq!(s.map(5.0), 100.0);
        let y = Scale::new(2.0, 4.0, 200.0, 20.0);
        assert_eq!(y.map(2.0), 200.0);
        assert_eq!(y.map(4.0), 20.0);
        assert_eq!(y.map(3.0), 110.0);
    }

    #[test]
    fn constant_and_empty_ranges_are_widened() {
        let s = Scale::new(5.0, 5.0, 0.0, 100.0);
        assert!(s.d0 < 5.0 && s.d1 > 5.0);
        assert!((s.map(5.0) - 50.0).abs() < 1e-9, "a constant sits mid-plot");
        let z = Scale::new(0.0, 0.0, 0.0, 100.0);
        assert_eq!((z.d0, z.d1), (-1.0, 1.0));
        let n = Scale::new(f64::NAN, f64::NAN, 0.0, 100.0);
        assert!(n.map(0.5).is_finite());
    }

    #[test]
    fn ticks_are_nice_and_inside() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.13, 0.87, 4);
        assert_eq!(t, vec![0.2, 0.4, 0.6, 0.8]);
        assert!(ticks(1.0, 1.0, 5).is_empty());
        let t = ticks(-3.2, 7.9, 5);
        assert!(t.iter().all(|v| (-3.2..=7.9).contains(v)) && t.contains(&0.0));
    }

    #[test]
    fn y_axis_ends_on_labelled_ticks() {
        let s = nice_y(Scale::new(0.37, 0.69, 200.0, 20.0));
        assert_eq!((s.d0, s.d1), (0.3, 0.7));
        assert_eq!(s.map(s.d0), 200.0);
        let c = chart(vec![ser("a", &[(0.0, 0.37), (1.0, 0.69)])]);
        assert!(c.contains(">0.3</text>") && c.contains(">0.7</text>"), "{c}");
    }

    #[test]
    fn numbers_format_short() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(30.0), "30");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(fmt_num(0.125), "0.125");
        assert_eq!(fmt_num(12345.6), "12346");
        assert_eq!(fmt_num(0.0006), "6.00e-4");
        assert_eq!(fmt_num(f64::NAN), "–");
    }

    #[test]
    fn chart_draws_each_series_with_escaped_labels() {
        let s = chart(vec![
            ser("loss <train>", &[(1.0, 4.0), (2.0, 3.0), (3.0, 2.5)]),
            ser("val&loss", &[(2.0, 3.5)]),
        ]);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("loss &lt;train&gt;") && s.contains("val&amp;loss"));
        assert!(!s.contains("<train>"));
        assert_eq!(s.matches("class=\"line\"").count(), 1, "one line; the lone val point is a marker");
        assert_eq!(s.matches("<circle").count(), 1);
        assert!(s.contains(r#"data-series="2""#));
        // x from 1 to 3 maps onto the plot's left (56) and right (400-12) edges.
        assert!(s.contains("M56.0,") && s.contains("L388.0,"));
    }

    #[test]
    fn gaps_break_the_line_and_nan_only_series_says_no_data() {
        let s = chart(vec![ser("a", &[(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN), (3.0, 2.0), (4.0, 1.0)])]);
        let path = s.split("d=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
        assert_eq!(path.matches('M').count(), 2, "two runs: {path}");
        let empty = chart(vec![ser("a", &[(0.0, f64::NAN)]), ser("b", &[])]);
        assert!(empty.contains("no data") && !empty.contains("<path"));
    }

    #[test]
    fn single_point_and_constant_series_render() {
        let one = chart(vec![ser("a", &[(7.0, 3.0)])]);
        assert!(one.contains("<circle") && !one.contains("NaN") && !one.contains("inf"));
        let flat = chart(vec![ser("a", &[(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)])]);
        assert!(flat.contains("<path") && !flat.contains("NaN"));
    }

    #[test]
    fn thinning_keeps_extremes() {
        let mut pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 1.0)).collect();
        pts[4321].1 = 50.0;
        let t = thin(&pts, 500);
        assert!(t.len() <= 520, "{}", t.len());
        assert!(t.iter().any(|p| p.1 == 50.0), "the spike survives");
        assert!(t.windows(2).all(|w| w[0].0 <= w[1].0), "x stays ordered");
    }
}
