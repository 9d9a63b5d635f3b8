//! The backtest report: one self-contained HTML file (no scripts, no external assets) with a
//! summary table, the track record (`track.rs`) and, per symbol, an SVG price chart carrying
//! buy and sell markers. Hand-written
//! SVG is smaller than a plotting dependency for one line chart with markers.

use std::fmt::Write;

use super::chart::{Frame, downsample, escape, utc};
use super::{Prices, Run, Summary};
use crate::strategy::Side;

const HEIGHT: f64 = 320.0;

/// The whole report.
pub fn html(run: &Run, summaries: &[Summary], sources: &[String]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sigcast backtest</title>\n<style>\
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f4f4f4}}\
td:first-child{{text-align:left}}svg{{background:#fcfcfc;border:1px solid #ddd;margin:1em 0}}\
.buy{{fill:#1a9641}}.sell{{fill:#d7191c}}.price{{fill:none;stroke:#2b83ba;stroke-width:1}}\
.equity{{fill:none;stroke:#1a9641;stroke-width:1.5}}.drawdown{{fill:#fdd;stroke:#d7191c;stroke-width:1}}\
text{{font:11px system-ui,sans-serif;fill:#555}}</style></head><body>\n\
<h1>sigcast backtest</h1>\n<p>{} market events from {}; {} signals.</p>\n",
        run.events,
        escape(&sources.join(", ")),
        run.signals.len()
    );
    h.push_str(&summary_table(summaries));
    h.push_str(&super::track::html(&run.track));
    for (symbol, prices) in &run.prices {
        if prices.points.len() < 2 {
            continue;
        }
        let _ = writeln!(h, "<h2>{}</h2>", escape(symbol));
        h.push_str(&chart(symbol, prices, run));
    }
    h.push_str(
        "<p>Markers: ▲ buy, ▼ sell; hover one for its strategy and reason.</p>\n</body></html>\n",
    );
    h
}

fn summary_table(summaries: &[Summary]) -> String {
    let mut h = String::from(
        "<table><tr><th>strategy</th><th>interval</th><th>signals</th><th>buy / sell</th>",
    );
    for n in super::HORIZONS {
        let _ = write!(h, "<th>hit rate after {n}</th><th>avg move after {n}</th>");
    }
    h.push_str("<th>naive P&amp;L</th><th>trades</th></tr>\n");
    for s in summaries {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td>",
            escape(&s.strategy),
            s.interval,
            s.signals,
            s.buys,
            s.sells
        );
        for hz in &s.horizons {
            let _ = write!(
                h,
                "<td>{:.1} % <small>(n={})</small></td><td>{:+.4} %</td>",
                hz.hit_rate * 100.0,
                hz.measured,
                hz.avg_move_pct
            );
        }
        let _ = writeln!(h, "<td>{:+.3} %</td><td>{}</td></tr>", s.pnl_pct, s.trades);
    }
    h.push_str("</table>\n<p>Moves are measured in the signalled direction, from the signal's price to the last trade the given number of candle intervals later. Naive P&amp;L: long after a buy, short after a sell, one unit per symbol, no fees.</p>\n");
    h
}

fn chart(symbol: &str, prices: &Prices, run: &Run) -> String {
    let points = downsample(&prices.points);
    let Some(frame) = Frame::around(&points, HEIGHT, false) else {
        return String::new();
    };
    let (x, y) = (|t| frame.x(t), |p| frame.y(p));
    let label = format!("{} price with signals", escape(symbol));
    let mut h = frame.open(&label, |v| v.to_string(), None);
    h.push_str("<polyline class=\"price\" points=\"");
    for (t, p) in &points {
        let _ = write!(h, "{:.1},{:.1} ", x(*t), y(*p));
    }
    h.push_str("\"/>\n");
    for s in run.signals.iter().filter(|s| s.symbol == symbol) {
        let (cx, cy) = (x(s.timestamp * 1000), y(s.price));
        let (class, path) = match s.side {
            Side::Buy => ("buy", format!("M{cx:.1},{:.1} l6,10 h-12 z", cy - 2.0)),
            Side::Sell => ("sell", format!("M{cx:.1},{:.1} l6,-10 h-12 z", cy + 2.0)),
        };
        let _ = writeln!(
            h,
            "<path class=\"{class}\" d=\"{path}\"><title>{} {} at {} · {} · {} · {}</title></path>",
            class,
            symbol,
            s.price,
            escape(&s.strategy),
            escape(&s.reason),
            utc(s.timestamp * 1000)
        );
    }
    h.push_str("</svg>\n");
    h
}
