//! The reports' SVG charts: one frame (the scales, and the value and time labels) shared by
//! the price charts and the track record's curves.

use std::fmt::Write;

use super::report::utc;

/// Every chart's width, in pixels.
pub(super) const WIDTH: f64 = 960.0;
/// Room around the plot for the labels.
const PAD: f64 = 48.0;

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
