//! `--report FILE.html`: a self-contained page (inline SVG, no scripts from elsewhere) with the
//! run's charts over time: publish rate against the offered rate, failures, publish latency
//! percentiles, and for `consume` the receive rate and end-to-end latency. The data is also
//! embedded as JSON (`<script type="application/json" id="loadtest-data">`).

use std::fmt::Write as _;

use crate::stats::Second;
use crate::summary::Summary;

const W: f64 = 860.0;
const H: f64 = 220.0;
const PAD: f64 = 48.0;

/// One line of a chart.
struct Line<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<f64>,
}

fn chart(title: &str, unit: &str, lines: &[Line<'_>]) -> String {
    let n = lines.iter().map(|l| l.values.len()).max().unwrap_or(0).max(2);
    let max = lines.iter().flat_map(|l| l.values.iter().copied()).fold(0.0_f64, f64::max).max(1e-9);
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (n - 1) as f64;
    let y = |v: f64| H - PAD / 2.0 - (H - PAD) * v / max;
    let mut svg = format!(
        "<h2>{title}</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\
         <line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\
         <line x1=\"{PAD}\" y1=\"{t}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#999\"/>\
         <text x=\"4\" y=\"{t}\" font-size=\"11\">{max:.1} {unit}</text>\
         <text x=\"4\" y=\"{b}\" font-size=\"11\">0</text>\
         <text x=\"{r}\" y=\"{H}\" font-size=\"11\" text-anchor=\"end\">{n} s</text>",
        b = H - PAD / 2.0,
        t = PAD / 2.0,
        r = W - PAD,
    );
    for (k, l) in lines.iter().enumerate() {
        let points: Vec<String> =
            l.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\" points=\"{p}\"/>\
             <text x=\"{lx}\" y=\"14\" font-size=\"12\" fill=\"{c}\">{name}</text>",
            c = l.color,
            p = points.join(" "),
            lx = PAD + 150.0 * k as f64,
            name = l.name,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The HTML page of a run.
pub fn render(summary: &Summary, series: &[Second]) -> String {
    let col = |f: fn(&Second) -> f64| series.iter().map(f).collect::<Vec<f64>>();
    let mut body = String::new();
    body.push_str(&chart(
        "Publish rate",
        "msg/s",
        &[
            Line { name: "confirmed/s", color: "#1f77b4", values: col(|s| s.published as f64) },
            Line { name: "offered/s", color: "#aaa", values: col(|s| s.offered) },
        ],
    ));
    body.push_str(&chart(
        "Failures",
        "msg/s",
        &[Line { name: "failed/s", color: "#d62728", values: col(|s| s.failed as f64) }],
    ));
    body.push_str(&chart(
        "Publish latency",
        "ms",
        &[
            Line { name: "p50", color: "#2ca02c", values: col(|s| s.p50_ms) },
            Line { name: "p99", color: "#ff7f0e", values: col(|s| s.p99_ms) },
        ],
    ));
    if summary.received.is_some() {
        body.push_str(&chart(
            "Receive rate",
            "msg/s",
            &[Line { name: "received/s", color: "#9467bd", values: col(|s| s.received as f64) }],
        ));
        body.push_str(&chart(
            "End-to-end latency",
            "ms",
            &[
                Line { name: "p50", color: "#2ca02c", values: col(|s| s.e2e_p50_ms) },
                Line { name: "p99", color: "#ff7f0e", values: col(|s| s.e2e_p99_ms) },
            ],
        ));
    }
    let data = serde_json::json!({ "summary": summary, "series": series }).to_string().replace("</", "<\\/");
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>loadtest {mode} {target}</title>\
         <style>body{{font-family:sans-serif;margin:24px}}pre{{background:#f6f6f6;padding:8px}}</style></head><body>\n\
         <h1>loadtest {mode} &rarr; {target}</h1>\n<pre>{text}</pre>\n{body}\
         <script type=\"application/json\" id=\"loadtest-data\">{data}</script>\n</body></html>\n",
        mode = escape(&summary.mode),
        target = escape(&summary.target),
        text = escape(&summary.render()),
    )
}

/// The JSON embedded in a page made by [`render`].
pub fn embedded_data(html: &str) -> Option<serde_json::Value> {
    let start = html.find("id=\"loadtest-data\">")? + "id=\"loadtest-data\">".len();
    let end = start + html[start..].find("</script>")?;
    serde_json::from_str(&html[start..end].replace("<\\/", "</")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_embeds_the_series_and_draws_them() {
        let s =
            Summary { mode: "publish".into(), target: "null".into(), published: 30, ..Summary::default() };
        let series: Vec<Second> = (1..=3)
            .map(|t| Second {
                t,
                offered: 10.0,
                published: 10,
                failed: 0,
                p50_ms: 1.0,
                p99_ms: 2.0,
                received: 0,
                e2e_p50_ms: 0.0,
                e2e_p99_ms: 0.0,
            })
            .collect();
        let html = render(&s, &series);
        let data = embedded_data(&html).expect("embedded JSON");
        assert_eq!(data["series"].as_array().map(Vec::len), Some(3));
        assert_eq!(data["summary"]["published"], 30);
        assert_eq!(html.matches("<polyline").count(), 5, "rate+offered, failures, p50+p99");
    }
}
