//! Reading a `/metrics` page (Prometheus text format) in tests.

/// One sample: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name
            && labels
                .iter()
                .all(|(key, value)| self.label(key) == Some(*value))
    }
}

/// The samples of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text format; comment lines and unparsable lines are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    /// The sum of the samples called `name` that carry every label in
    /// `labels` (other labels may differ); 0 when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether a sample called `name` with these labels exists.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    /// The samples called `name` that carry every label in `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.matches(name, labels))
    }
}

/// What one replica reports for a work queue's consumer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueueCounts {
    pub consumed: f64,
    pub acked: f64,
    pub retried: f64,
    /// Dead-lettered.
    pub parked: f64,
    pub in_flight: f64,
}

impl Metrics {
    /// The consumer counters of `queue` (its full name, with any prefix).
    pub fn queue(&self, queue: &str) -> QueueCounts {
        let outcome = |o: &str| {
            self.sum(
                "messages_processed_total",
                &[("queue", queue), ("outcome", o)],
            )
        };
        QueueCounts {
            consumed: self.sum("messages_consumed_total", &[("queue", queue)]),
            acked: outcome("acked"),
            retried: outcome("retried"),
            parked: outcome("parked"),
            in_flight: self.sum("messages_in_flight", &[("queue", queue)]),
        }
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, rest) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, rest)
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, Vec::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

/// `a="x",b="y"} rest` → the labels and `rest`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, after) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        s = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_with_their_labels() {
        let text = "# HELP x help\n# TYPE x counter\n\
            messages_processed_total{replica=\"h-1\",queue=\"q\",outcome=\"acked\"} 3\n\
            messages_processed_total{replica=\"h-1\",queue=\"q\",outcome=\"parked\"} 1\n\
            amqp_connection_up 1\n\
            odd{v=\"a \\\"quoted\\\", b\"} 2.5\n\
            h_bucket{le=\"+Inf\"} 7\n";
        let m = Metrics::parse(text);
        assert_eq!(m.sum("messages_processed_total", &[("queue", "q")]), 4.0);
        assert_eq!(
            m.sum(
                "messages_processed_total",
                &[("queue", "q"), ("outcome", "parked")]
            ),
            1.0
        );
        assert_eq!(m.sum("amqp_connection_up", &[]), 1.0);
        assert_eq!(m.sum("odd", &[("v", "a \"quoted\", b")]), 2.5);
        assert!(m.has("h_bucket", &[("le", "+Inf")]));
        assert!(!m.has("messages_processed_total", &[("queue", "other")]));
    }
}
