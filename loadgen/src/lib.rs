//! Load generator for the checkout pipeline.
//!
//! Sends checkouts through the gateway, open loop (a fixed arrival rate, each
//! checkout timed from when it was due, so a stalled server cannot hide the
//! queue behind it) or closed loop (N connections); reports latency
//! percentiles from an HDR histogram, throughput and errors; then waits for
//! the pipeline to drain and audits that every accepted order has exactly one
//! payment, one sent email and, with a catcher API, one delivered message,
//! and reports end-to-end latencies from the services' timestamps.

pub mod audit;
pub mod classify;
pub mod cli;
pub mod drive;
pub mod mail;
pub mod orders;
pub mod report;
pub mod sink;
pub mod stats;
pub mod timing;

use std::{io::Write as _, sync::Arc};

use crate::{
    audit::{Audit, AuditPlan, Databases},
    cli::Args,
    drive::{Run, Target},
    mail::Mailbox,
    orders::OrderPlan,
    sink::SmtpSink,
};

/// What one invocation measured and found.
#[derive(Debug)]
pub struct Outcome {
    pub run: Run,
    pub audit: Option<Audit>,
}

impl Outcome {
    /// Clean when audited and nothing was lost or duplicated (and something
    /// was accepted at all); without an audit, when anything was accepted.
    pub fn success(&self) -> bool {
        let accepted = !self.run.recorded.accepted.is_empty();
        accepted && self.audit.as_ref().is_none_or(|a| a.verdict.is_clean())
    }
}

/// Runs the load as `args` say, prints the report on stdout, and audits.
pub async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let (mode, limits) = args.plan().map_err(anyhow::Error::msg)?;
    let plan = OrderPlan::new(args.decline_ratio, args.product_id);
    let email_pattern = plan.email_pattern();
    // Connect before sending, so a wrong URL fails before the load, not after.
    let dbs = match args.audit.no_audit {
        true => None,
        false => Some(Databases::connect(&args.audit).await?),
    };
    // Listening before the first checkout, so no mail finds the port closed.
    let sink = match args.audit.smtp_sink {
        Some(addr) => {
            let sink = Arc::new(SmtpSink::start(addr).await?);
            eprintln!("SMTP sink listening on {}", sink.addr());
            Some(sink)
        }
        None => None,
    };
    eprintln!("run {}: emails {}", plan.tag, plan.email(0));
    let target = Target::new(&args.url, args.timeout, plan)?;
    let run = drive::drive(target, mode, limits, args.max_in_flight).await;
    print(&report::checkout_report(&run));
    let audit = match dbs {
        None => None,
        Some(dbs) => {
            let mailbox = match (&args.audit.mail_api, &sink) {
                (Some(url), _) => Some(Mailbox::api(url, args.audit.mail_api_kind)?),
                (None, Some(sink)) => Some(Mailbox::Sink(sink.clone())),
                (None, None) => None,
            };
            let audit_plan = AuditPlan {
                email_pattern,
                mailbox,
                drain_timeout: args.audit.drain_timeout,
                settle: args.audit.settle,
            };
            let audit = audit::audit(&dbs, &run.recorded.accepted, &audit_plan).await?;
            print(&audit.report());
            Some(audit)
        }
    };
    Ok(Outcome { run, audit })
}

fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
