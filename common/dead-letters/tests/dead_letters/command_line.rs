//! The `dlq` command line: its words, and the binary's exit codes.

use contract::names::PAYMENT_QUEUE;

use super::Fixture;

#[tokio::test]
async fn the_command_line_lists_shows_replays_and_purges() {
    let f = Fixture::new().await;
    assert_eq!(
        f.cli("list").await.unwrap(),
        format!("{}: no parked messages.\n", f.queue.dead_letter_queue)
    );
    f.park("m-1", "gave up after 3 retries: provider down")
        .await;
    f.park("m-2", "malformed message").await;
    f.park_natively("m-3").await;
    f.wait_for_dlq_depth(3).await;

    let table = f.cli("list").await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        format!("{}: 3 messages parked.", f.queue.dead_letter_queue)
    );
    assert!(lines[2].starts_with("MESSAGE ID"), "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("m-1") && l.contains("provider down")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("m-3") && l.contains("broker") && l.contains("rejected")),
        "{table}"
    );
    f.wait_for_dlq_depth(3).await;

    let limited = f.cli("list --limit 1").await.unwrap();
    assert!(limited.contains("showing the oldest 1"), "{limited}");

    let json: serde_json::Value =
        serde_json::from_str(&f.cli("list --json").await.unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert!(json[0]["message_id"].is_string());
    f.wait_for_dlq_depth(3).await;

    let shown = f.cli("show m-1").await.unwrap();
    assert!(shown.contains("message_id: m-1"), "{shown}");
    assert!(
        shown.contains("x-park-reason: gave up after 3 retries: provider down"),
        "{shown}"
    );
    assert!(shown.contains("\"event_id\": \"m-1\""), "{shown}");
    let unknown = f.cli("show nope").await.unwrap_err();
    assert!(
        format!("{unknown:#}").contains("no parked message"),
        "{unknown:#}"
    );

    let refused = f.cli("purge").await.unwrap_err();
    assert!(format!("{refused:#}").contains("--all"), "{refused:#}");
    f.wait_for_dlq_depth(3).await;

    assert_eq!(
        f.cli("replay m-2").await.unwrap(),
        format!(
            "Replayed 1 message from {} to {} (retry count reset to 0).\n",
            f.queue.dead_letter_queue, f.queue.name
        )
    );
    assert_eq!(
        f.cli("purge m-1").await.unwrap(),
        format!("Purged 1 message from {}.\n", f.queue.dead_letter_queue)
    );
    f.wait_for_dlq_depth(1).await;
    assert_eq!(
        f.cli("purge --all").await.unwrap(),
        format!("Purged 1 message from {}.\n", f.queue.dead_letter_queue)
    );
    assert_eq!(f.dlq_depth().await, 0);
    assert_eq!(f.work_depth().await, 1);
}

/// The binary itself: usage errors exit with 2 before connecting anywhere,
/// `--help` and `--version` answer and exit 0.
#[test]
fn the_binary_answers_help_and_version_and_refuses_bad_usage_with_2() {
    let dlq = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_dlq"))
            .args(args)
            // Unreachable: a usage error must not try the broker.
            .env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
            .output()
            .unwrap()
    };
    let help = dlq(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    for word in ["--queue", "list", "show", "replay", "purge", "RABBITMQ_URL"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    assert_eq!(dlq(&["--version"]).status.code(), Some(0));
    for bad in [
        &["--queue", PAYMENT_QUEUE, "lsit"][..],
        &["--queue", "no_such_queue", "list"],
        &["list"],
        &["--queue", PAYMENT_QUEUE, "purge"],
        &["--queue", PAYMENT_QUEUE, "purge", "m-1", "--all"],
        &["--queue", PAYMENT_QUEUE, "list", "--limit", "0"],
    ] {
        let out = dlq(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error:"),
            "{bad:?}: {out:?}"
        );
    }
    // A well-formed command that cannot reach the broker is a failure (1),
    // and says where it tried without the password.
    let out = dlq(&["--queue", PAYMENT_QUEUE, "list"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("guest:guest"), "{stderr}");
}
