//! Sends a Clerk webhook payload to the local relay, signed with the dev
//! secret exactly as Svix signs it (`svix-id`, `svix-timestamp`,
//! `svix-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`).
//!
//! ```text
//! npm run send -- user.created                      # tests/fixtures/docs_user_created.json
//! npm run send -- user.updated                      # dashboard_user_updated.json (same user)
//! npm run send -- user.deleted                      # dashboard_user_deleted.json (same user)
//! npm run send -- tests/fixtures/captured_user_created.json
//! npm run send -- user.created --id msg_again       # the same id twice: a Svix retry
//! ```
//! Options: `--id <svix-id>` (default: a new one), `--url <webhook URL>`
//! (default the local relay), `--secret <whsec_…>` (default: the dev secret
//! of `.dev.vars.example`, or `$CLERK_WEBHOOK_SECRET`).
//!
//! The signature comes from the test kit's signer (`clerk-sync-testkit`),
//! written independently of the relay's verifier; the secret is checked
//! with the relay's own parser first, so a secret the relay would refuse is
//! named here rather than answered 401 there.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clerk_sync::verify::SigningSecret;
use clerk_sync_testkit::svix;

const DEFAULT_URL: &str = "http://127.0.0.1:8788/webhook?secret=test-webhook-secret";
const DEV_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const USAGE: &str = "usage: npm run send -- <user.created|user.updated|user.deleted|payload.json> [--id <svix-id>] [--url <url>] [--secret <whsec_...>]";

fn payload_path(what: &str) -> PathBuf {
    let fixture = match what {
        "user.created" => "docs_user_created.json",
        "user.updated" => "dashboard_user_updated.json",
        "user.deleted" => "dashboard_user_deleted.json",
        path => return PathBuf::from(path),
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("send: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, String> {
    let mut args = std::env::args().skip(1);
    let (mut what, mut id, mut url, mut secret) = (None, None, DEFAULT_URL.to_owned(), None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--id" => id = Some(value()?),
            "--url" => url = value()?,
            "--secret" => secret = Some(value()?),
            "-h" | "--help" => return Err("".into()),
            _ if what.is_none() => what = Some(arg),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    let what = what.ok_or("which payload?")?;
    let path = payload_path(&what);
    let body = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;

    let secret_text = secret
        .or_else(|| std::env::var("CLERK_WEBHOOK_SECRET").ok())
        .unwrap_or_else(|| DEV_SECRET.to_owned());
    SigningSecret::parse(&secret_text).map_err(|e| format!("secret {e}"))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let id = id.unwrap_or_else(|| format!("msg_local_{}", now.as_millis()));
    let timestamp = now.as_secs();
    let signature = svix::sign(&secret_text, &id, timestamp, &body);

    println!(
        "POST {} ({} bytes from {})",
        url_without_query(&url),
        body.len(),
        path.display()
    );
    println!("svix-id: {id}\nsvix-timestamp: {timestamp}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let response = agent
        .post(&url)
        .set("content-type", "application/json")
        .set("svix-id", &id)
        .set("svix-timestamp", &timestamp.to_string())
        .set("svix-signature", &signature)
        .send_bytes(&body);
    let response = match response {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        // Not `e` itself: it quotes the URL, query secret included.
        Err(e) => {
            return Err(format!(
                "could not reach the relay at {} ({}); is `npm run dev` running?",
                url_without_query(&url),
                e.kind()
            ))
        }
    };
    let status = response.status();
    println!("{status} {}", response.into_string().unwrap_or_default());
    Ok((200..300).contains(&status))
}

/// The query holds the relay's query secret: not printed.
fn url_without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
