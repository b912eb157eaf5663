//! `RABBITMQ_URL` as a list of broker nodes.
//!
//! The variable holds one AMQP URL or several, separated by commas, as
//! Spring's `addresses` and pika's parameter lists do for a cluster. The
//! nodes share one user, password and vhost: a later URL may leave out its
//! user info, vhost or query and takes the first URL's. A URL that names
//! another user or vhost is refused, so a connection never depends on which
//! node it happened to reach. A comma inside a password is written `%2C`.
//!
//! Nothing here ever shows a password: errors and `Debug` use
//! [`runtime::config::redact_url`].

use std::str::FromStr;

use lapin::uri::AMQPUri;
use runtime::config::redact_url;

/// One broker node the connection may use.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// The full URL, credentials included.
    url: String,
    /// `host:port`, how logs, `/ready` and metrics name the node.
    node: String,
}

impl BrokerAddress {
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The URL without its password.
    pub fn shown(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// The URLs shown without their passwords, comma-separated as given.
pub fn redact_list(raw: &str) -> String {
    raw.split(',')
        .map(|url| redact_url(url.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads `raw` (`RABBITMQ_URL`'s value) into the nodes it lists, in order;
/// the error says what is wrong without the password.
pub fn parse(raw: &str) -> Result<Vec<BrokerAddress>, String> {
    let urls: Vec<&str> = raw.split(',').map(str::trim).collect();
    let count = urls.len();
    let mut addresses = Vec::with_capacity(count);
    let mut shared: Option<Parts> = None;
    for (index, url) in urls.into_iter().enumerate() {
        let which = if count == 1 {
            "the URL".to_owned()
        } else {
            format!("address {} of {count} ({})", index + 1, redact_url(url))
        };
        if url.is_empty() {
            return Err(format!("{which} is empty"));
        }
        let mut parts = Parts::split(url)
            .ok_or_else(|| format!("{which} must start with amqp:// or amqps://"))?;
        match &shared {
            None => shared = Some(parts.clone()),
            Some(first) => {
                parts.inherit(first);
                if parts.userinfo != first.userinfo || parts.vhost() != first.vhost() {
                    return Err(format!(
                        "{which} names another user, password or vhost than the first; \
                         the nodes of one cluster share them"
                    ));
                }
            }
        }
        let url = parts.join();
        let uri = AMQPUri::from_str(&url)
            .map_err(|error| format!("{which} is not a valid AMQP URL: {error}"))?;
        let node = format!("{}:{}", uri.authority.host, uri.authority.port);
        if addresses.iter().any(|a: &BrokerAddress| a.node == node) {
            return Err(format!("{which} lists {node} a second time"));
        }
        addresses.push(BrokerAddress { url, node });
    }
    Ok(addresses)
}

/// A URL cut where the nodes of a list may differ (scheme and host) and
/// where they must agree (user info, vhost, query).
#[derive(Clone)]
struct Parts {
    scheme: String,
    userinfo: Option<String>,
    host: String,
    /// The path with its leading `/`, if any.
    path: Option<String>,
    /// The query with its leading `?`, if any.
    query: Option<String>,
}

impl Parts {
    fn split(url: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme != "amqp" && scheme != "amqps" {
            return None;
        }
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(format!("?{query}"))),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(format!("/{path}"))),
            None => (rest, None),
        };
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo.to_owned()), host),
            None => (None, authority),
        };
        Some(Self {
            scheme: scheme.to_owned(),
            userinfo,
            host: host.to_owned(),
            path,
            query,
        })
    }

    /// Takes what this URL left out from the list's first URL.
    fn inherit(&mut self, first: &Parts) {
        if self.userinfo.is_none() {
            self.userinfo.clone_from(&first.userinfo);
        }
        if self.path.is_none() {
            self.path.clone_from(&first.path);
        }
        if self.query.is_none() {
            self.query.clone_from(&first.query);
        }
    }

    /// The vhost as AMQP reads it: an absent or bare `/` path is the default vhost.
    fn vhost(&self) -> &str {
        match self.path.as_deref() {
            None | Some("/") => "%2f",
            Some(path) => &path[1..],
        }
    }

    fn join(&self) -> String {
        let userinfo = self
            .userinfo
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        format!(
            "{}://{userinfo}{}{}{}",
            self.scheme,
            self.host,
            self.path.as_deref().unwrap_or(""),
            self.query.as_deref().unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(raw: &str) -> Vec<String> {
        parse(raw).unwrap().iter().map(|a| a.node.clone()).collect()
    }

    #[test]
    fn one_url_is_one_node() {
        let list = parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].url(), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(list[0].node(), "127.0.0.1:5672");
        assert_eq!(nodes("amqp://rabbitmq"), ["rabbitmq:5672"]);
        assert_eq!(
            nodes("amqps://u:p@mq.example.com/v"),
            ["mq.example.com:5671"]
        );
    }

    #[test]
    fn later_urls_take_the_first_urls_user_vhost_and_query() {
        let list =
            parse("amqp://pay:pw@rq1:5681/shop?heartbeat=5, amqp://rq2:5682,amqp://rq3:5683")
                .unwrap();
        let urls: Vec<&str> = list.iter().map(BrokerAddress::url).collect();
        assert_eq!(
            urls,
            [
                "amqp://pay:pw@rq1:5681/shop?heartbeat=5",
                "amqp://pay:pw@rq2:5682/shop?heartbeat=5",
                "amqp://pay:pw@rq3:5683/shop?heartbeat=5",
            ]
        );
        // Written out in full, they must agree.
        assert_eq!(
            nodes("amqp://pay:pw@rq1/shop,amqp://pay:pw@rq2/shop"),
            ["rq1:5672", "rq2:5672"]
        );
    }

    #[test]
    fn nodes_that_disagree_on_user_or_vhost_are_refused_without_the_password() {
        for raw in [
            "amqp://pay:s3cret@rq1/shop,amqp://other:s3cret@rq2/shop",
            "amqp://pay:s3cret@rq1/shop,amqp://pay:s3cret-2@rq2/shop",
            "amqp://pay:s3cret@rq1/shop,amqp://rq2/other",
        ] {
            let error = parse(raw).unwrap_err();
            assert!(error.contains("share"), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
        // The default vhost, written either way, is the same vhost.
        assert_eq!(nodes("amqp://rq1/%2f,amqp://rq2/").len(), 2);
    }

    #[test]
    fn malformed_lists_are_refused_without_the_password() {
        for (raw, says) in [
            ("amqp://u:s3cret@rq1,", "address 2 of 2"),
            ("amqp://u:s3cret@rq1,,amqp://rq3", "is empty"),
            ("amqp://u:s3cret@rq1,http://rq2", "must start with amqp://"),
            ("accept,amqp://u:s3cret@rq2", "must start with amqp://"),
            ("amqp://u:s3cret@rq1:99999", "not a valid AMQP URL"),
            ("amqp://u:s3cret@rq1,amqp://rq1:5672", "a second time"),
        ] {
            let error = parse(raw).unwrap_err();
            assert!(error.contains(says), "{raw}: {error}");
            assert!(!error.contains("s3cret"), "{raw}: {error}");
        }
    }

    #[test]
    fn debug_and_redacted_lists_hide_every_password() {
        let raw = "amqp://pay:s3cret@rq1:5681/%2f,amqp://pay:s3cret@rq2:5682/%2f";
        let shown = format!("{:?} {}", parse(raw).unwrap(), redact_list(raw));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("pay:***@rq2:5682"), "{shown}");
    }
}
