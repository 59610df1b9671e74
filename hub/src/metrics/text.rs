//! The two text formats `/metrics` answers in: OpenMetrics, which
//! `prometheus-client` writes and Prometheus asks for, and the classic
//! Prometheus format (0.0.4), made from it for everyone else.

use std::fmt::Write as _;

use prometheus_client::registry::Registry;

/// Renders the OpenMetrics text format (what `prometheus-client` writes).
pub fn render(r: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, r).expect("writing to a String");
    s
}

/// Renders the classic Prometheus text format (0.0.4), for clients that do
/// not ask for OpenMetrics: `curl`, `promtool check metrics`, older
/// scrapers. It differs from OpenMetrics in what matters to them: a
/// counter's `# HELP`/`# TYPE` lines carry the sample name with `_total`
/// (OpenMetrics names the family without it, which the classic parser reads
/// as a second, untyped metric without help), and there is no `# EOF`.
pub fn render_prometheus(r: &Registry) -> String {
    to_prometheus_text(&render(r))
}

fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    let _ = writeln!(out, "{prefix}{name}_total {tail}");
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_prometheus_text;

    #[test]
    fn classic_text_names_counters_with_total_and_has_no_eof() {
        let om = "# HELP vhub_frames Frames.\n# TYPE vhub_frames counter\n\
                  vhub_frames_total{direction=\"in\"} 3\n\
                  # HELP vhub_shards Shards.\n# TYPE vhub_shards gauge\nvhub_shards 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP vhub_frames_total Frames.\n# TYPE vhub_frames_total counter\n\
             vhub_frames_total{direction=\"in\"} 3\n\
             # HELP vhub_shards Shards.\n# TYPE vhub_shards gauge\nvhub_shards 2\n"
        );
    }
}
