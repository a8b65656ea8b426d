//! A real SMTP server for tests, and the emails it received taken apart: aiosmtpd
//! (`python3 -m aiosmtpd`) on 127.0.0.1, storing each email it accepts in a Maildir. A test
//! can kill it (SIGKILL: its open sessions break, as when a mail server dies) and start it
//! again on the same port and Maildir.
//!
//! One copy for two crates: hakken-notify's SMTP test and hakken-api's end-to-end
//! notification tests include this file with `#[path = ...] mod smtp;` (the crates share no
//! test crate, and a dev-only crate for ~200 lines would cost more than it saves).
//!
//! `None` from [`SmtpServer::start`] means python3 is missing: the caller skips with a
//! message. With python3 present and aiosmtpd missing it panics, naming the install line.

// Each test binary uses part of it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[path = "qr_scan.rs"]
mod qr_scan;
pub(crate) use qr_scan::decode_qr_png;

/// How long aiosmtpd gets to listen once started (python's start-up on a busy machine).
const LISTEN_WITHIN: Duration = Duration::from_secs(15);

/// Ports tried when another process takes the one probed before aiosmtpd binds it.
const PORT_TRIES_MAX: usize = 5;

/// The aiosmtpd process, killed and reaped when dropped.
pub(crate) struct SmtpServer {
    /// `None` while killed.
    child: Option<Child>,
    pub(crate) port: u16,
    /// `new/` holds the accepted emails: aiosmtpd writes each to `tmp/` and renames it, so
    /// a kill never leaves half an email there.
    pub(crate) maildir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl SmtpServer {
    /// aiosmtpd on a free loopback port, accepting connections; `None` when python3 is not
    /// installed.
    pub(crate) fn start() -> Option<SmtpServer> {
        match Command::new("python3").args(["-c", "import aiosmtpd"]).status() {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => panic!("python3 did not start: {error}"),
            Ok(status) if !status.success() => {
                panic!(
                    "aiosmtpd is missing: apt-get install python3-aiosmtpd, or python3 -m pip install aiosmtpd==1.4.6"
                )
            }
            Ok(_) => {}
        }
        let maildir = tempfile::tempdir().expect("maildir");
        // aiosmtpd's Mailbox handler needs the Maildir's folders to exist.
        for folder in ["tmp", "new", "cur"] {
            std::fs::create_dir(maildir.path().join(folder)).expect("maildir folder");
        }
        let deadline = Instant::now() + LISTEN_WITHIN;
        for _ in 0..PORT_TRIES_MAX {
            let port = free_port();
            if let Some(child) = spawn_listening(port, maildir.path(), deadline) {
                return Some(SmtpServer { child: Some(child), port, maildir });
            }
        }
        panic!("aiosmtpd exited at start on {PORT_TRIES_MAX} free ports in a row (see its stderr above)");
    }

    /// SIGKILL and reap: the server's connections die mid-session, nothing is flushed.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (killing it first if it runs) on the same port and Maildir, once it
    /// accepts connections. The port may be busy for a moment (a client's connection to the
    /// dead server closing): aiosmtpd sets SO_REUSEADDR, and a start that exits is tried
    /// again until [`LISTEN_WITHIN`].
    pub(crate) fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + LISTEN_WITHIN;
        loop {
            if let Some(child) = spawn_listening(self.port, self.maildir.path(), deadline) {
                self.child = Some(child);
                return;
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not start again on 127.0.0.1:{} within 15 s", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The stored emails' files in `new/`, by name (aiosmtpd's names start with the time).
    pub(crate) fn email_paths(&self) -> Vec<PathBuf> {
        let entries = std::fs::read_dir(self.maildir.path().join("new")).expect("the Maildir's new/");
        let mut paths: Vec<PathBuf> = entries.map(|entry| entry.expect("a Maildir entry").path()).collect();
        paths.sort();
        paths
    }

    /// Every stored email, oldest name first.
    pub(crate) fn emails(&self) -> Vec<Vec<u8>> {
        self.email_paths().iter().map(|path| std::fs::read(path).expect("a stored email")).collect()
    }
}

/// aiosmtpd on `port` once it accepts a connection; `None` if it exited first (the port
/// was taken). Panics at `deadline`.
fn spawn_listening(port: u16, maildir: &Path, deadline: Instant) -> Option<Child> {
    let mut child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start aiosmtpd");
    loop {
        if child.try_wait().expect("aiosmtpd's status").is_some() {
            return None;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("aiosmtpd did not listen on 127.0.0.1:{port} within {LISTEN_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free loopback port below the kernel's ephemeral range, so that it is still free when
/// the server is started again on it: the kernel never gives such a port to an outgoing
/// connection, not even to a client retrying the dead server (which, given the server's own
/// ephemeral port, could connect to itself: a TCP self-connect holding the port).
fn free_port() -> u16 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    const LOW: u32 = 10_000;
    if ephemeral_low <= LOW + 1_000 {
        return TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    }
    // Start elsewhere per process and call, so tests running at once rarely probe the same ports.
    let span = ephemeral_low - LOW;
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let start = std::process::id().wrapping_mul(7_919).wrapping_add(call.wrapping_mul(104_729)) % span;
    (0..span)
        .map(|offset| (LOW + (start + offset) % span) as u16)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// The decoded QR codes of every inline PNG of an email, in the order of its parts.
pub(crate) fn qr_codes(part: &mailparse::ParsedMail<'_>) -> Vec<String> {
    let mut found = Vec::new();
    if part.ctype.mimetype == "image/png" {
        found.extend(decode_qr_png(&part.get_body_raw().expect("png body")));
    }
    for subpart in &part.subparts {
        found.extend(qr_codes(subpart));
    }
    found
}

/// The first `text/plain` part, decoded.
pub(crate) fn text_part(part: &mailparse::ParsedMail<'_>) -> Option<String> {
    if part.ctype.mimetype == "text/plain" {
        return part.get_body().ok();
    }
    part.subparts.iter().find_map(text_part)
}

/// The email's `Message-ID` header.
pub(crate) fn message_id(mail: &mailparse::ParsedMail<'_>) -> String {
    use mailparse::MailHeaderMap;
    mail.headers.get_first_value("Message-ID").expect("a Message-ID header")
}
