//! `hakken payments reconcile`: asks a running server for its reconciliation
//! (`GET /v1/admin/payments/reconcile`) and prints it. A small blocking HTTP/1.1 GET:
//! the server is the one this configuration runs (plain HTTP, usually loopback).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A reconciliation's answer is at most this big (its mismatches are listed in full).
const ANSWER_BYTES_MAX: u64 = 64 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(120);

/// Prints the server's reconciliation; `Ok(false)` when it lists mismatches.
pub fn run(address: &str, admin_token: &str) -> Result<bool> {
    if admin_token.is_empty() {
        bail!("reconciliation needs the admin token (HAKKEN_ADMIN_TOKEN or --admin-token)");
    }
    let address = address.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET /v1/admin/payments/reconcile HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {admin_token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.take(ANSWER_BYTES_MAX).read_to_end(&mut answer).context("reading the answer")?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").context("the server's answer has no body")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).context("no status line")?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_string()
    };
    let report: serde_json::Value = serde_json::from_str(&body).with_context(|| format!("HTTP {status}: {body}"))?;
    if status != 200 {
        bail!("HTTP {status}: {}", report["error"]["message"].as_str().unwrap_or(&body));
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(report["ok"].as_bool() == Some(true))
}

fn dechunk(body: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").context("a chunk without its size")?;
        let size = usize::from_str_radix(size.trim(), 16).context("a chunk size that is not hex")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(after.get(..size).context("a chunk shorter than its size")?);
        rest = after.get(size + 2..).context("a chunk without its end")?;
    }
}
