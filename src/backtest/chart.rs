//! What the reports draw with: one SVG frame (the scales, and the value and time labels)
//! shared by the price charts and the track record's curves, points thinned for drawing, and
//! text made safe for HTML.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// Every chart's width, in pixels.
pub(super) const WIDTH: f64 = 960.0;
/// Room around the plot for the labels.
const PAD: f64 = 48.0;
/// Chart points per line at most (min and max of each bucket are kept, so spikes show).
const MAX_POINTS: usize = 2400;

/// `text` safe inside HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Unix milliseconds as an RFC 3339 UTC time, to the second.
pub(super) fn utc(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Min and max of each bucket, in time order.
pub(super) fn downsample(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let per = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for chunk in points.chunks(per) {
        let lo = chunk
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("chunk");
        let hi = chunk
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("chunk");
        let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
        out.push(*a);
        if a != b {
            out.push(*b);
        }
    }
    out
}

/// Where a point lands in a chart `height` pixels high: time across, value up.
pub(super) struct Frame {
    height: f64,
    pub t0: i64,
    pub t1: i64,
    lo: f64,
    hi: f64,
}

impl Frame {
    /// The frame around `points` (and around zero too, with `zero`); none without points.
    pub fn around(points: &[(i64, f64)], height: f64, zero: bool) -> Option<Frame> {
        let &(t0, _) = points.first()?;
        let t1 = points.last().map_or(t0 + 1, |p| p.0.max(t0 + 1));
        let mut lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let mut hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if zero {
            hi = hi.max(0.0);
            lo = lo.min(0.0);
        }
        Some(Frame {
            height,
            t0,
            t1,
            lo,
            hi,
        })
    }

    pub fn x(&self, t: i64) -> f64 {
        PAD + (t - self.t0) as f64 / (self.t1 - self.t0) as f64 * (WIDTH - 2.0 * PAD)
    }

    pub fn y(&self, v: f64) -> f64 {
        let span = if self.hi > self.lo {
            self.hi - self.lo
        } else {
            1.0
        };
        self.height - PAD - (v - self.lo) / span * (self.height - 2.0 * PAD)
    }

    /// The opening `<svg>` (`label`, already escaped, for screen readers) and its labels: the
    /// highest and lowest value as `value` writes them, the first and last time below, and a
    /// `caption` at the top when given.
    pub fn open(
        &self,
        label: &str,
        value: impl Fn(f64) -> String,
        caption: Option<&str>,
    ) -> String {
        let (width, height) = (WIDTH, self.height);
        let mut h = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{label}\">\n"
        );
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{:.1}\">{}</text><text x=\"4\" y=\"{:.1}\">{}</text>",
            self.y(self.hi) - 4.0,
            value(self.hi),
            self.y(self.lo) + 14.0,
            value(self.lo)
        );
        if let Some(caption) = caption {
            let _ = write!(h, "<text x=\"{PAD}\" y=\"14\">{caption}</text>");
        }
        let _ = writeln!(
            h,
            "<text x=\"{PAD}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            height - 12.0,
            utc(self.t0),
            width - PAD,
            height - 12.0,
            utc(self.t1)
        );
        h
    }
}
