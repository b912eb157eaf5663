//! email-service configuration, from the environment (`docs/configuration.md`).

use std::{net::SocketAddr, str::FromStr, time::Duration};

use lettre::message::Mailbox;
use messaging::{AmqpSettings, db::DatabaseSettings};
use runtime::config::{self, ConfigError, Secret};

use crate::{email, templates::Branding};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `BIND_ADDR`, default `0.0.0.0:8003`: health, readiness, metrics and
    /// this service's part of an order's timeline (internal).
    pub bind_addr: SocketAddr,
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub smtp: SmtpSettings,
    /// `EMAIL_FROM`, default `noreply@ecommerce.com`: the sender, and the
    /// domain of every `Message-ID`.
    pub email_from: Mailbox,
    /// `EMAIL_REPLY_TO`, default none: the `Reply-To` of every email.
    pub reply_to: Option<Mailbox>,
    /// `SHOP_NAME` (default `E-commerce`), `ORDER_URL_TEMPLATE` (default
    /// `http://localhost:9000/api/orders/{id}`) and `SUPPORT_EMAIL` (default
    /// the sender's address): what every email's layout shows.
    pub branding: Branding,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `SMTP_HOST`, default `127.0.0.1`.
    pub host: String,
    /// `SMTP_PORT`, default `1025` (MailHog's SMTP port, whatever `SMTP_TLS` is).
    pub port: u16,
    /// `SMTP_TLS`, default `none`.
    pub tls: SmtpTls,
    /// `SMTP_USERNAME` and `SMTP_PASSWORD`: both or neither.
    pub credentials: Option<(String, Secret)>,
    /// `SMTP_TIMEOUT_MS`, default 10000: the TCP connect timeout, and a third
    /// of the limit on a whole send (see `smtp::Mailer`). lettre's default is
    /// 60 s, long enough for a server that accepts TCP and never answers to
    /// hold a delivery (and its claim on the email_log row) for minutes.
    pub timeout: Duration,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: a local catcher such as MailHog or MailDev.
    None,
    /// Plain connection upgraded with `STARTTLS` (required, not opportunistic).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

impl FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            _ => Err("expected one of none, starttls, tls".into()),
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        // Email retries span minutes, so an SMTP outage of a few minutes never
        // parks mail; after the last tier (about 6 minutes in all) it is parked.
        // No database connection is held while SMTP answers (handler.rs), so
        // the concurrency is bounded by what the SMTP server takes; 200 keeps
        // up with the end-to-end benchmark where 50 fell behind
        // (docs/performance.md). A provider that caps concurrent connections
        // needs CONSUMER_PREFETCH at or below its cap: one SMTP connection per
        // mail in flight.
        let amqp = AmqpSettings::from_env(200, &[10_000, 60_000, 300_000])?;
        let database = DatabaseSettings::from_env("email_db")?;
        let email_from = email_from()?;
        Ok(Self {
            bind_addr: config::parse_or("BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8003)))?,
            database,
            amqp,
            smtp: SmtpSettings::from_env()?,
            reply_to: mailbox("EMAIL_REPLY_TO")?,
            branding: branding(&email_from)?,
            email_from,
        })
    }
}

fn branding(from: &Mailbox) -> Result<Branding, ConfigError> {
    let defaults = Branding::defaults(from.email.as_ref());
    let order_url_template = order_url_template(config::var_or(
        "ORDER_URL_TEMPLATE",
        &defaults.order_url_template,
    )?)?;
    let support = match mailbox("SUPPORT_EMAIL")? {
        Some(mailbox) => mailbox.email.to_string(),
        None => defaults.support.clone(),
    };
    Ok(Branding {
        shop_name: config::var_or("SHOP_NAME", &defaults.shop_name)?,
        order_url_template,
        support,
        ..defaults
    })
}

/// `ORDER_URL_TEMPLATE` if it is an `http(s)` URL with `{id}` in it.
fn order_url_template(raw: String) -> Result<String, ConfigError> {
    let http = raw.starts_with("http://") || raw.starts_with("https://");
    if !http || !raw.contains("{id}") {
        return Err(ConfigError::new(
            "ORDER_URL_TEMPLATE",
            format!("{raw:?} is not an http(s) URL with {{id}} in it"),
        ));
    }
    Ok(raw)
}

/// An optional address variable as a mailbox, control characters stripped
/// from its display name.
fn mailbox(name: &str) -> Result<Option<Mailbox>, ConfigError> {
    let Some(raw) = config::var(name)? else {
        return Ok(None);
    };
    let mailbox: Mailbox = raw
        .trim()
        .parse()
        .map_err(|e| ConfigError::new(name, format!("{raw:?}: {e}")))?;
    Ok(Some(email::safe_mailbox(
        mailbox.name.as_deref(),
        mailbox.email,
    )))
}

impl SmtpSettings {
    fn from_env() -> Result<Self, ConfigError> {
        let credentials = match (config::var("SMTP_USERNAME")?, config::var("SMTP_PASSWORD")?) {
            (Some(user), Some(password)) => Some((user, Secret::new(password))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "SMTP_PASSWORD",
                    "must be set when SMTP_USERNAME is",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "SMTP_USERNAME",
                    "must be set when SMTP_PASSWORD is",
                ));
            }
        };
        let timeout = config::millis_or("SMTP_TIMEOUT_MS", 10_000)?;
        if timeout.is_zero() {
            return Err(ConfigError::new("SMTP_TIMEOUT_MS", "must be positive"));
        }
        Ok(Self {
            host: config::var_or("SMTP_HOST", "127.0.0.1")?,
            port: config::parse_or("SMTP_PORT", 1025)?,
            tls: config::parse_or("SMTP_TLS", SmtpTls::None)?,
            credentials,
            timeout,
        })
    }
}

/// `EMAIL_FROM` as a mailbox (`noreply@shop.example` or `Shop <noreply@shop.example>`).
/// lettre panics when a display name holds CR, LF or NUL (fault S6 in
/// `docs/guarantees.md`): [`mailbox`] strips every control character.
fn email_from() -> Result<Mailbox, ConfigError> {
    Ok(mailbox("EMAIL_FROM")?.unwrap_or_else(|| {
        Mailbox::new(
            None,
            "noreply@ecommerce.com".parse().expect("a valid default"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_tls_modes_parse_and_a_bad_one_is_explained() {
        assert_eq!("none".parse::<SmtpTls>().unwrap(), SmtpTls::None);
        assert_eq!("STARTTLS".parse::<SmtpTls>().unwrap(), SmtpTls::StartTls);
        assert_eq!("tls".parse::<SmtpTls>().unwrap(), SmtpTls::Tls);
        assert!(
            "ssl"
                .parse::<SmtpTls>()
                .unwrap_err()
                .contains("none, starttls, tls")
        );
    }

    #[test]
    fn an_order_url_without_its_id_or_not_http_is_refused() {
        let good = "https://shop.example/orders/{id}";
        assert_eq!(order_url_template(good.into()).unwrap(), good);
        for bad in ["https://shop.example/orders", "javascript:alert({id})"] {
            let error = order_url_template(bad.into()).unwrap_err().to_string();
            assert!(error.contains("ORDER_URL_TEMPLATE"), "{error}");
        }
    }
}
