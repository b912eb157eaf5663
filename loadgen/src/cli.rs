//! Command-line arguments (every database URL can also come from the environment).

use std::time::Duration;

use clap::{Args as ClapArgs, Parser, ValueEnum};

/// Drives checkouts through the gateway, reports latencies and audits that
/// every accepted order was paid and emailed exactly once.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// Base URL of the gateway.
    #[arg(long, env = "LOADGEN_URL", default_value = "http://127.0.0.1:9000")]
    pub url: String,

    /// Open loop: this many checkouts per second, each timed from its intended
    /// send time (so a slow answer cannot hide the queueing behind it).
    #[arg(long, conflicts_with = "connections")]
    pub rate: Option<f64>,

    /// Closed loop: this many connections, each sending its next checkout as
    /// soon as the previous one was answered.
    #[arg(long)]
    pub connections: Option<usize>,

    /// How long to send for (`60`, `60s`, `500ms`, `2m`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// How many checkouts to send in all (with or instead of --duration).
    #[arg(long)]
    pub requests: Option<u64>,

    /// Open loop: at most this many checkouts in flight; later ones wait (and
    /// their waiting counts in their latency).
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,

    /// Share of orders (0 to 1) sent with a `+decline` email: their payment is
    /// declined and they end `failed` with a failure email.
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    pub decline_ratio: f64,

    /// Product ordered (quantity 1, no client price).
    #[arg(long, default_value_t = 1)]
    pub product_id: u64,

    /// Timeout of one checkout request.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub audit: AuditArgs,
}

/// Where and how long to audit the run.
#[derive(Debug, Clone, ClapArgs)]
pub struct AuditArgs {
    /// Skip the audit (and the end-to-end latencies).
    #[arg(long)]
    pub no_audit: bool,

    #[arg(
        long,
        env = "LOADGEN_ORDER_DB_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/order_db"
    )]
    pub order_db_url: String,

    #[arg(
        long,
        env = "LOADGEN_PAYMENT_DB_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/payment_db"
    )]
    pub payment_db_url: String,

    #[arg(
        long,
        env = "LOADGEN_EMAIL_DB_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/email_db"
    )]
    pub email_db_url: String,

    /// Base URL of the SMTP catcher's API (MailHog `http://127.0.0.1:8025`,
    /// MailDev `http://127.0.0.1:1080`); when given, every accepted order must
    /// have exactly one message there too.
    #[arg(long, env = "LOADGEN_MAIL_API")]
    pub mail_api: Option<String>,

    /// Run an SMTP server here (`127.0.0.1:1025`) for the services to deliver
    /// to, and audit what it received: no catcher, and no catcher's CPU,
    /// inside the measurement. Excludes --mail-api.
    #[arg(long, env = "LOADGEN_SMTP_SINK", conflicts_with = "mail_api")]
    pub smtp_sink: Option<std::net::SocketAddr>,

    /// Which catcher --mail-api is (auto tries MailHog's API, then MailDev's).
    #[arg(long, value_enum, default_value_t = MailApiKind::Auto)]
    pub mail_api_kind: MailApiKind,

    /// How long to wait for the pipeline to settle and email every order.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// How long to keep looking for late duplicates once everything arrived.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub settle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MailApiKind {
    Auto,
    Mailhog,
    Maildev,
}

/// How checkouts are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Open { rate: f64 },
    Closed { connections: usize },
}

/// When sending stops: whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
}

impl Args {
    /// The pacing and the limits, or why the combination makes no sense.
    pub fn plan(&self) -> Result<(Mode, Limits), String> {
        let mode = match (self.rate, self.connections) {
            (Some(rate), None) if rate.is_finite() && rate > 0.0 => Mode::Open { rate },
            (Some(_), None) => return Err("--rate must be a positive number".into()),
            (None, Some(0)) => return Err("--connections must be at least 1".into()),
            (None, Some(connections)) => Mode::Closed { connections },
            (None, None) => return Err("give --rate (open loop) or --connections".into()),
            (Some(_), Some(_)) => return Err("--rate and --connections exclude each other".into()),
        };
        if self.duration.is_none() && self.requests.is_none() {
            return Err("give --duration or --requests (or both)".into());
        }
        Ok((
            mode,
            Limits {
                duration: self.duration,
                requests: self.requests,
            },
        ))
    }
}

/// `60`, `60s`, `1.5s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 60s or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown unit `{other}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a ratio between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::parse_from(std::iter::once("loadgen").chain(extra.iter().copied()))
    }

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn a_plan_needs_one_pacing_and_a_limit() {
        let (mode, limits) = args(&["--rate", "500", "--duration", "60s"])
            .plan()
            .unwrap();
        assert_eq!(mode, Mode::Open { rate: 500.0 });
        assert_eq!(limits.duration, Some(Duration::from_secs(60)));
        let (mode, _) = args(&["--connections", "64", "--requests", "10"])
            .plan()
            .unwrap();
        assert_eq!(mode, Mode::Closed { connections: 64 });
        assert!(args(&["--connections", "4"]).plan().is_err());
        assert!(args(&["--requests", "4"]).plan().is_err());
        assert!(args(&["--rate", "0", "--requests", "4"]).plan().is_err());
        assert!(Args::try_parse_from(["loadgen", "--rate", "1", "--connections", "1"]).is_err());
    }

    #[test]
    fn the_decline_ratio_is_a_share() {
        assert!(Args::try_parse_from(["loadgen", "--decline-ratio", "1.5"]).is_err());
        assert_eq!(args(&["--decline-ratio", "0.25"]).decline_ratio, 0.25);
    }
}
