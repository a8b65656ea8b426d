//! Conformance: the real `hakken-fakepsp` binary driven by the official `stripe` Python
//! SDK (`stripe_sdk_conformance.py` beside this file), webhooks verified with
//! `stripe.Webhook.construct_event`. Needs `python3` with the pinned SDK:
//! `python3 -m pip install --quiet 'stripe==16.1.0'`; without it this test fails (it does
//! not skip), saying so.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STRIPE_SDK_VERSION: &str = "16.1.0";
const SECRET_KEY: &str = "sk_test_conformance_4242";
const PUBLISHABLE_KEY: &str = "pk_test_conformance_4242";
/// Two secrets: each delivery carries one `v1` per secret, as during a rotation.
const WEBHOOK_SECRETS: &str = "whsec_conformance_current,whsec_conformance_next";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Kills the fake PSP when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require_stripe_sdk() {
    let probe = Command::new("python3")
        .args(["-c", "import stripe, sys; sys.stdout.write(stripe.VERSION)"])
        .output()
        .unwrap_or_else(|error| panic!("python3 is needed for the Stripe SDK conformance test: {error}"));
    let version = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && version == STRIPE_SDK_VERSION,
        "the Stripe SDK conformance test needs the official stripe Python SDK {STRIPE_SDK_VERSION} \
         (found: {}): python3 -m pip install --quiet 'stripe=={STRIPE_SDK_VERSION}'\n{}",
        if probe.status.success() { version.to_string() } else { "none".to_string() },
        String::from_utf8_lossy(&probe.stderr),
    );
}

/// Starts the binary on a free loopback port; its address from `listening on <addr>`.
fn start_fake_psp() -> (KillOnDrop, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hakken-fakepsp"))
        .args(["--listen", "127.0.0.1:0", "--webhook-secret", WEBHOOK_SECRETS])
        .args(["--secret-key", SECRET_KEY, "--publishable-key", PUBLISHABLE_KEY, "--seed", "42"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hakken-fakepsp");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read the fake PSP's first line");
    let address = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, format!("http://{address}"))
}

#[test]
fn official_stripe_sdk_drives_the_fake_psp() {
    require_stripe_sdk();
    let (_fake_psp, api_base) = start_fake_psp();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stripe_sdk_conformance.py");
    let mut python = Command::new("python3")
        .args([script, &api_base, SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRETS])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the conformance script");
    let started = Instant::now();
    while python.try_wait().expect("poll the script").is_none() {
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = python.kill();
            panic!("the conformance script did not finish within {SCRIPT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = python.wait_with_output().expect("script output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the Stripe SDK conformance script failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("conformance ok"), "unexpected script output:\n{stdout}\n{stderr}");
    println!("{stdout}");
}
