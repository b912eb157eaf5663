//! Every kind of email as a person sees it: rendered by headless Chromium
//! (Debian's `chromium`, which scripts/test.sh installs; `CHROMIUM` names
//! another) at 360 px and 800 px wide. Each email is measured inside a frame
//! of that width (a headless window is never narrower than 500 px): no
//! horizontal scroll, nothing loaded from outside (the frame's Resource
//! Timing entries), and the order id, the total and every item visible.
//! The confirmation is also saved as screenshots under target/emails/
//! (docs/images/ holds copies, shown in the README).

use std::{path::PathBuf, process::Command, str::FromStr};

use contract::events::CancelReason;
use email_service::templates::{self, Branding, Line, Outcome, View};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

const WIDTHS: [u32; 2] = [360, 800];

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("chromium"), PathBuf::from)
}

/// Runs headless Chromium with the flags every run here uses and `args`.
fn run_chromium(args: &[String]) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("running chromium ({e}): scripts/test.sh installs it, or set CHROMIUM")
        });
    assert!(
        output.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn money(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// An order of three lines, one with a long name, in every kind of email.
fn emails() -> Vec<(&'static str, View)> {
    let lines = vec![
        Line {
            name: "Gaming Laptop".into(),
            quantity: 1,
            unit_price: money("1299.99"),
            line_total: money("1299.99"),
        },
        Line {
            name: "Wireless Mouse".into(),
            quantity: 2,
            unit_price: money("29.99"),
            line_total: money("59.98"),
        },
        Line {
            name: "Ultra-wide curved 49-inch professional monitor with USB-C docking".into(),
            quantity: 10,
            unit_price: money("1099.00"),
            line_total: money("10990.00"),
        },
    ];
    let view = |outcome| View {
        order_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        lines: lines.clone(),
        total: money("12349.97"),
        currency: "USD".into(),
        outcome,
    };
    vec![
        (
            "confirmation",
            view(Outcome::Paid {
                transaction_id: "TXN-0123456789AB".into(),
            }),
        ),
        (
            "payment-failed",
            view(Outcome::PaymentFailed {
                reason: "card_declined".into(),
            }),
        ),
        (
            "cancelled",
            view(Outcome::Cancelled {
                reason: CancelReason::PaymentTimeout,
            }),
        ),
        (
            "refund",
            view(Outcome::Refunded {
                transaction_id: "TXN-0123456789AB".into(),
                refund_transaction_id: "RFD-BA9876543210".into(),
            }),
        ),
    ]
}

fn escape_attribute(html: &str) -> String {
    html.replace('&', "&amp;").replace('"', "&quot;")
}

/// A page with one frame per email and width; once they have loaded, a
/// script writes what each frame shows into `<pre id="measure">` as JSON.
fn harness(frames: &[(String, u32, String)]) -> String {
    let mut page = String::from("<!DOCTYPE html><html><body>\n");
    for (name, width, html) in frames {
        page.push_str(&format!(
            "<iframe data-name=\"{name}\" width=\"{width}\" height=\"1600\" style=\"border:0\" srcdoc=\"{}\"></iframe>\n",
            escape_attribute(html)
        ));
    }
    page.push_str(
        r#"<pre id="measure"></pre>
<script>
window.addEventListener('load', () => {
  const out = [...document.querySelectorAll('iframe')].map(frame => {
    const doc = frame.contentDocument;
    return {
      name: frame.dataset.name,
      width: frame.clientWidth,
      scrollWidth: doc.documentElement.scrollWidth,
      clientWidth: doc.documentElement.clientWidth,
      resources: frame.contentWindow.performance.getEntriesByType('resource').map(r => r.name),
      card: (({ backgroundColor, color }) => ({ backgroundColor, color }))(
        frame.contentWindow.getComputedStyle(doc.querySelector('.card'))),
      text: doc.body.innerText,
    };
  });
  document.getElementById('measure').textContent = JSON.stringify(out);
});
</script>
</body></html>
"#,
    );
    page
}

fn decode_text(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every kind at both widths, measured by Chromium run with `flags`.
fn measure_every_kind(flags: &[&str]) -> Vec<Value> {
    let branding = Branding::defaults("noreply@ecommerce.com");
    let mut frames = Vec::new();
    for (name, view) in emails() {
        let html = templates::html(&view, &branding).unwrap();
        for width in WIDTHS {
            frames.push((format!("{name}@{width}"), width, html.clone()));
        }
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/emails");
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join(format!("harness{}.html", flags.join("")));
    std::fs::write(&page, harness(&frames)).unwrap();

    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    args.extend(["--dump-dom".into(), format!("file://{}", page.display())]);
    let dom = run_chromium(&args);
    let start = dom.find("<pre id=\"measure\">").expect("the measure") + 18;
    let end = start + dom[start..].find("</pre>").unwrap();
    let measured: Vec<Value> = serde_json::from_str(&decode_text(&dom[start..end]))
        .unwrap_or_else(|e| panic!("{e}: {}", &dom[start..end]));
    assert_eq!(measured.len(), frames.len());
    measured
}

#[test]
fn every_email_kind_reads_at_360_and_800_px_without_scroll_or_outside_resources() {
    let measured = measure_every_kind(&[]);

    let (_, view) = &emails()[0];
    for frame in &measured {
        let name = frame["name"].as_str().unwrap();
        assert!(
            frame["scrollWidth"].as_u64() <= frame["clientWidth"].as_u64(),
            "{name} scrolls sideways: {frame}"
        );
        assert_eq!(
            frame["resources"],
            Value::Array(vec![]),
            "{name} loads from outside"
        );
        let text = frame["text"].as_str().unwrap();
        for expected in [view.order_id.to_string(), "12349.97 USD".into()]
            .into_iter()
            .chain(view.lines.iter().map(|l| l.name.clone()))
        {
            assert!(
                text.contains(&expected),
                "{name} does not show {expected:?}:\n{text}"
            );
        }
    }
}

/// A reader whose mail client is dark gets a dark card with light text,
/// not a white page (the light colours are the inline ones).
#[test]
fn in_dark_mode_every_email_is_light_text_on_a_dark_card() {
    for (scheme, flags, background, color) in [
        ("light", vec![], "rgb(255, 255, 255)", "rgb(17, 24, 39)"),
        (
            "dark",
            vec!["--force-dark-mode"],
            "rgb(31, 41, 55)",
            "rgb(229, 231, 235)",
        ),
    ] {
        for frame in measure_every_kind(&flags) {
            let card = &frame["card"];
            assert_eq!(card["backgroundColor"], background, "{scheme}: {frame}");
            assert_eq!(card["color"], color, "{scheme}: {frame}");
        }
    }
}

/// The confirmation as it looks, for the README (copied to docs/images/).
#[test]
fn the_confirmation_is_screenshotted_at_both_widths() {
    let branding = Branding::defaults("noreply@ecommerce.com");
    let (_, view) = emails().remove(0);
    let html = templates::html(&view, &branding).unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/emails");
    std::fs::create_dir_all(&dir).unwrap();
    for width in WIDTHS {
        // A frame of the width in a window wide enough for headless Chromium.
        let page = dir.join(format!("confirmation-{width}.html"));
        std::fs::write(
            &page,
            harness(&[("confirmation".into(), width, html.clone())]),
        )
        .unwrap();
        let shot = dir.join(format!("confirmation-{width}.png"));
        run_chromium(&[
            format!("--screenshot={}", shot.display()),
            format!(
                "--window-size={},{}",
                width.max(500) + 16,
                if width < 500 { 830 } else { 700 }
            ),
            "--hide-scrollbars".into(),
            format!("file://{}", page.display()),
        ]);
        let png = std::fs::read(&shot).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{} is a PNG", shot.display());
    }
}
