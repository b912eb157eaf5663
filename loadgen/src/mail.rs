//! What the SMTP catcher received: MailHog (`GET /api/v2/messages`),
//! MailDev (`GET /email`) or the load generator's own SMTP server
//! ([`crate::sink`]), reduced to the order id in each subject
//! (`Order Confirmation - Order #<id>`, `Payment Failed - Order #<id>`).

use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::Value;
use uuid::Uuid;

use crate::{cli::MailApiKind, sink::SmtpSink};

/// Where the delivered messages are read from.
#[derive(Debug, Clone)]
pub enum Mailbox {
    /// A catcher's HTTP API.
    Api {
        http: reqwest::Client,
        base: String,
        kind: MailApiKind,
    },
    /// The load generator's own SMTP server (`--smtp-sink`).
    Sink(Arc<SmtpSink>),
    /// Subjects collected some other way (an in-process SMTP server).
    Subjects(Vec<String>),
}

impl Mailbox {
    pub fn api(base: &str, kind: MailApiKind) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        Ok(Self::Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            kind,
        })
    }

    /// The subject of every message received so far.
    pub async fn subjects(&self) -> anyhow::Result<Vec<String>> {
        match self {
            Self::Subjects(subjects) => Ok(subjects.clone()),
            Self::Sink(sink) => sink.subjects(),
            Self::Api { http, base, kind } => match kind {
                MailApiKind::Mailhog => mailhog(http, base).await,
                MailApiKind::Maildev => maildev(http, base).await,
                MailApiKind::Auto => match mailhog(http, base).await {
                    Ok(subjects) => Ok(subjects),
                    Err(_) => maildev(http, base)
                        .await
                        .context("neither MailHog's nor MailDev's API answered"),
                },
            },
        }
    }

    /// The order id of every message received so far (one entry per message).
    pub async fn order_ids(&self) -> anyhow::Result<Vec<Uuid>> {
        Ok(self
            .subjects()
            .await?
            .iter()
            .filter_map(|s| order_id(s))
            .collect())
    }
}

/// The order id at the end of a subject, after its last `#`.
pub fn order_id(subject: &str) -> Option<Uuid> {
    let (_, id) = subject.rsplit_once('#')?;
    Uuid::parse_str(id.trim()).ok()
}

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let response = http.get(url).send().await?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    Ok(response.json().await?)
}

const MAILHOG_PAGE: usize = 1000;

async fn mailhog(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<String>> {
    let mut subjects = Vec::new();
    loop {
        let url = format!(
            "{base}/api/v2/messages?start={}&limit={MAILHOG_PAGE}",
            subjects.len()
        );
        let page = get_json(http, &url).await?;
        let (items, total) = mailhog_page(&page).with_context(|| format!("{url}: not MailHog"))?;
        let got = items.len();
        subjects.extend(items);
        if got == 0 || subjects.len() >= total {
            return Ok(subjects);
        }
    }
}

/// The subjects of one page of MailHog's v2 API, and its `total`.
pub fn mailhog_page(page: &Value) -> Option<(Vec<String>, usize)> {
    let total = page["total"].as_u64()? as usize;
    let subjects = page["items"]
        .as_array()?
        .iter()
        .map(|item| {
            item["Content"]["Headers"]["Subject"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    Some((subjects, total))
}

async fn maildev(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<String>> {
    let url = format!("{base}/email");
    let list = get_json(http, &url).await?;
    maildev_list(&list).with_context(|| format!("{url}: not MailDev"))
}

/// The subjects of MailDev's `/email` list.
pub fn maildev_list(list: &Value) -> Option<Vec<String>> {
    Some(
        list.as_array()?
            .iter()
            .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "7f0c2b8e-3d1a-4c5e-9b7a-0123456789ab";

    #[test]
    fn the_order_id_is_read_from_either_subject() {
        let id = Uuid::parse_str(ID).unwrap();
        assert_eq!(
            order_id(&format!("Order Confirmation - Order #{ID}")),
            Some(id)
        );
        assert_eq!(order_id(&format!("Payment Failed - Order #{ID}")), Some(id));
        assert_eq!(order_id("Welcome"), None);
        assert_eq!(order_id("Order #12"), None);
    }

    #[test]
    fn both_catcher_apis_are_understood() {
        let page = json!({"total": 2, "count": 1, "start": 0, "items": [
            {"Content": {"Headers": {"Subject": [format!("Order Confirmation - Order #{ID}")]}}}
        ]});
        let (subjects, total) = mailhog_page(&page).unwrap();
        assert_eq!((subjects.len(), total), (1, 2));
        assert!(subjects[0].ends_with(ID));
        let list = json!([{"subject": "a"}, {"subject": "b", "id": "x"}]);
        assert_eq!(maildev_list(&list).unwrap(), vec!["a", "b"]);
        assert!(mailhog_page(&list).is_none());
        assert!(maildev_list(&page).is_none());
    }
}
