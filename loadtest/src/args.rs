//! The command line's flags: every subcommand's arguments, their defaults and help
//! text, and the parsers of flag values (durations, quantities, sections). Part of the
//! `hakken-loadtest` binary ([`main`](crate)), not of the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use hakken_loadtest::driver::{SectionPick, Sections};
use hakken_loadtest::replay::{PaymentMode, PaymentSettings, StormSettings};
use hakken_loadtest::sinks::{Outage, SinkConfig};

#[derive(Parser)]
#[command(
    name = "hakken-loadtest",
    version,
    about = "Rehearse a hakken on-sale: generate an arrival queue, replay it open-loop, check the outcome",
    after_help = "Exit codes: 0 success, 1 the verdict found a violation (FAIL), 2 the tool could not run."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Write an on-sale arrival queue (JSON Lines) for `replay`, from the event's layout.
    ///
    /// Reads the event's sections and seat maps from a running server (--target), then
    /// draws `--buyers` arrivals in the chosen `--shape`, each with an intent (best
    /// available, specific seats, general admission), a quantity, whether they poll
    /// availability first, what they do with the hold and how long they think. The same
    /// seed and layout always give the same file.
    Generate(Box<GenerateArgs>),
    /// Play a queue file against a server, open-loop, and report; then check the
    /// server's final state (the verdict) and exit 1 if it is inconsistent.
    ///
    /// Each buyer starts at its scheduled time whether or not earlier ones finished;
    /// latencies run from when each step was due, so a stalled server cannot hide
    /// behind a slowed load. 503/429 replies are retried after Retry-After, as a real
    /// client would, and counted apart.
    Replay(Box<ReplayArgs>),
    /// Fetch the signed code of every ticket in a ledger (`replay --ledger`), one per
    /// line, for `run --scan-codes` (gate throughput benchmarks).
    Codes(CodesArgs),
    /// Check a server against a ledger written by `replay --ledger` (e.g. after
    /// restarting it): every acknowledged order still there, counts and seat maps
    /// consistent. Exit 1 on FAIL.
    Verify(VerifyArgs),
    /// Drive a server at a fixed arrival rate and report counts, throughput and latency.
    ///
    /// Each arrival is one buyer: POST /v1/events/{event}/holds (best available,
    /// adjacent seats), then, if a hold came back, POST /v1/holds/{hold}/confirm.
    /// Arrival i is due at start + i/rate and starts then whether or not earlier ones
    /// finished (open loop); every latency is measured from the arrival's scheduled
    /// time, so queueing in the driver or the server is counted (no coordinated
    /// omission). The confirm step alone is timed from the hold's reply.
    Run(Box<RunArgs>),
    /// Serve 200 `{}` to every request: a target for measuring the driver's own cost.
    ///
    /// Prints `listening on ADDR` on stdout once bound. Example, one core each:
    /// `taskset -c 0 hakken-loadtest serve-trivial --listen 127.0.0.1:8099` and
    /// `taskset -c 1 hakken-loadtest run --target http://127.0.0.1:8099 --plain-get /x --rate 60000`.
    ServeTrivial(ServeArgs),
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Base URL of the server (http only, no path).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) target: String,
    /// Event to buy tickets for.
    #[arg(long, default_value = "demo-2027")]
    pub(crate) event: String,
    /// Arrivals per second (each arrival is one order, or one GET with --plain-get).
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) rate: f64,
    /// Length of the measured window, after the warmup (e.g. 20s, 500ms, 2m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Load before the measured window, at the same rate; arrivals due then are not
    /// counted in the report.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) warmup: Duration,
    /// Sections to hold seats in: `auto` (every reserved section of the event, from GET
    /// /v1/events/{event}) or a comma-separated list of section ids (S101,S102).
    #[arg(long, default_value = "auto")]
    pub(crate) sections: String,
    /// How each arrival picks its section from the list.
    #[arg(long, value_enum, default_value = "round-robin")]
    pub(crate) section_pick: SectionPick,
    /// Seats per hold.
    #[arg(long, default_value_t = 2)]
    pub(crate) quantity: u32,
    /// HTTP/1.1 keep-alive connections at most; requests beyond wait (FIFO) for a free
    /// one, and that wait counts in their latency. All are opened before the start.
    #[arg(long, default_value_t = 64)]
    pub(crate) connections: usize,
    /// Arrivals in flight at most; an arrival due when this many are running is dropped
    /// and reported as "dropped by driver" (the server or driver cannot keep up).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) in_flight_max: u64,
    /// Distinct customers: arrival i buys as customer c<run>-<i mod N>. Default: every
    /// arrival is a new customer (the server limits seats per customer, so a small N
    /// makes returning buyers run into that limit).
    #[arg(long)]
    pub(crate) customers: Option<u64>,
    /// Send an `Idempotency-Key` header (<run>-<arrival>-<step>) with every POST.
    #[arg(long)]
    pub(crate) idempotency: bool,
    /// Pay at the PSP as a browser does: after the hold, `POST /v1/holds/{hold}/checkout`,
    /// confirm the payment at the PSP hakken names (`GET /v1/payments/config`) with
    /// `pm_card_visa`, and poll `GET /v1/holds/{hold}/payment` until the order shows.
    #[arg(long)]
    pub(crate) pay: bool,
    /// With --pay: check the hold out in the hold request itself (`checkout` in its
    /// body: one round trip fewer) instead of a checkout request of its own.
    #[arg(long, requires = "pay")]
    pub(crate) hold_checkout: bool,
    /// `Authorization: Bearer` token of trusted confirms (hakken's `sales_token`).
    #[arg(long, value_name = "TOKEN", conflicts_with = "pay")]
    pub(crate) sales_token: Option<String>,
    /// With --pay: how long an arrival polls its payment for the order.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) payment_poll_timeout: Duration,
    /// The server's process id: report its CPU time over the run per completed arrival
    /// (read from /proc/PID/stat).
    #[arg(long, value_name = "PID")]
    pub(crate) server_pid: Option<u32>,
    /// Instead of orders, GET this path once per arrival (for measuring the driver
    /// against serve-trivial; --event and --sections are then unused).
    #[arg(long, value_name = "PATH")]
    pub(crate) plain_get: Option<String>,
    /// Instead of orders, scan tickets: POST /v1/scan once per arrival with the next
    /// code of this file (one per line, as written by `codes`), round robin.
    #[arg(long, value_name = "FILE", conflicts_with = "plain_get")]
    pub(crate) scan_codes: Option<PathBuf>,
    /// Gate token for --scan-codes.
    #[arg(long, default_value = "")]
    pub(crate) gate_token: String,
    /// Gates the scans are spread over (gate names bench-0..N).
    #[arg(long, default_value_t = 16)]
    pub(crate) gates: u32,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Runtime threads. 1 runs everything on the calling thread (pin the process with
    /// `taskset -c N`); more uses a multi-threaded runtime. Either way a small clock
    /// thread wakes the pacer on time.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// A request without a reply this long after its step started (waiting for a
    /// connection included) counts as a timeout, and its connection is closed. Each
    /// request tells the server so in `X-Request-Timeout-Ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Time allowed to open each connection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// After the last arrival, wait at most this long for those in flight; any still
    /// running then are reported as unfinished.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) drain_timeout: Duration,
    /// Prefix of customer ids, payment references and idempotency keys (default:
    /// random), so consecutive runs against one server do not collide.
    #[arg(long)]
    pub(crate) run_id: Option<String>,
    /// Do not print the once-a-second progress line to stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) sinks: SinkArgs,
}

/// The notification sinks of `run`: the tool receives hakken's emails and webhooks and
/// reports their lag.
#[derive(Args)]
#[command(next_help_heading = "Notification sinks")]
pub(crate) struct SinkArgs {
    /// Listen as an SMTP server on ADDR (e.g. 127.0.0.1:2525) and match each email's
    /// Message-ID to an acknowledged order; point hakken at it with
    /// HAKKEN_NOTIFICATIONS_EMAIL_SMTP_HOST, _SMTP_PORT and _TLS=none.
    #[arg(long, value_name = "ADDR")]
    pub(crate) smtp_sink: Option<SocketAddr>,
    /// Take the SMTP sink down from START to END after the start of the measured window
    /// (e.g. 10s..70s): the listener closed and open connections dropped, so hakken is
    /// refused; then it listens again on the same port.
    #[arg(long, value_name = "START..END", requires = "smtp_sink", value_parser = parse_outage)]
    pub(crate) smtp_sink_outage: Option<Outage>,
    /// Listen for hakken's webhooks on ADDR (configure `[[notifications.webhooks]]` with
    /// url = "http://ADDR/..."); `order.confirmed` events are matched to acknowledged orders.
    #[arg(long, value_name = "ADDR")]
    pub(crate) webhook_sink: Option<SocketAddr>,
    /// The webhook endpoint's secret (`whsec_...`): check every signature (a bad one is
    /// answered 401 and fails the verdict).
    #[arg(long, value_name = "SECRET", requires = "webhook_sink", value_parser = parse_webhook_secret)]
    pub(crate) webhook_secret: Option<String>,
    /// After the load (and the outage) ends, wait at most this long for every acknowledged
    /// order's notices; an order without one by then fails the verdict (exit 1).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) notify_drain_timeout: Duration,
}

impl SinkArgs {
    pub(crate) fn config(&self) -> SinkConfig {
        SinkConfig {
            smtp: self.smtp_sink,
            smtp_outage: self.smtp_sink_outage,
            webhook: self.webhook_sink,
            webhook_secret: self.webhook_secret.clone(),
            drain_timeout: self.notify_drain_timeout,
        }
    }
}

/// A Standard Webhooks secret, checked here so a bad one is a usage error (exit 2).
fn parse_webhook_secret(text: &str) -> Result<String, String> {
    hakken_notify::WebhookSecret::parse(text).map(|_| text.to_string()).map_err(|error| error.to_string())
}

/// `START..END`, two durations, END after START.
fn parse_outage(text: &str) -> Result<Outage, String> {
    let (start, end) = text.split_once("..").ok_or_else(|| format!("{text:?}: give START..END, e.g. 10s..70s"))?;
    let (start, end) = (parse_duration(start)?, parse_duration(end)?);
    if end <= start {
        return Err(format!("{text:?}: END must be after START"));
    }
    Ok(Outage { start, end })
}

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// Seed of the generator: the same seed and event layout give the same file.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Buyers (lines) in the queue.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) buyers: u64,
    /// Arrival pattern: `spike` (a flash sale: most arrive right after the on-sale
    /// opens, then a decaying tail), `steady` (Poisson arrivals at --rate) or `ramp`
    /// (rate steps of --ramp-step every --ramp-every, to find the knee).
    #[arg(long, value_enum, default_value = "spike")]
    pub(crate) shape: ShapeName,
    /// Queue file to write.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Server to read the event's sections and seat maps from.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) target: String,
    /// Event the buyers buy for.
    #[arg(long, default_value = "demo-2027")]
    pub(crate) event: String,
    /// spike: the window after the opening in which --spike-share of buyers arrive,
    /// front-loaded (most in its first seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) spike_window: Duration,
    /// spike: share of buyers arriving within --spike-window; the rest arrive in the tail.
    #[arg(long, default_value_t = 0.8)]
    pub(crate) spike_share: f64,
    /// spike: length of the decaying tail after the opening.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub(crate) spike_tail: Duration,
    /// steady: arrivals per second.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) rate: f64,
    /// ramp: arrivals per second of the first step.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) ramp_from: f64,
    /// ramp: rate added at each step.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) ramp_step: f64,
    /// ramp: length of each step.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) ramp_every: Duration,
    /// Relative weight of best-available buyers (a quantity in a reserved section,
    /// sometimes in one price category).
    #[arg(long, default_value_t = 70)]
    pub(crate) best: u32,
    /// Relative weight of buyers picking specific adjacent seats from the seat map.
    #[arg(long, default_value_t = 20)]
    pub(crate) seats: u32,
    /// Relative weight of general-admission buyers.
    #[arg(long, default_value_t = 10)]
    pub(crate) ga: u32,
    /// Seats per buyer as QUANTITY:WEIGHT pairs.
    #[arg(long, default_value = "1:15,2:50,3:10,4:25", value_parser = parse_quantities)]
    pub(crate) quantities: Quantities,
    /// Share of best-available buyers who ask for one price category.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) category_share: f64,
    /// Share of buyers who poll availability before holding (and give up if too few
    /// seats are left).
    #[arg(long, default_value_t = 0.3)]
    pub(crate) poll_share: f64,
    /// Share of holders who change their mind and release the hold after thinking.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) abandon_share: f64,
    /// Share of holders who walk away and let the hold expire.
    #[arg(long, default_value_t = 0.02)]
    pub(crate) expire_share: f64,
    /// Median payment think time between the hold and the confirm (lognormal per buyer).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) think: Duration,
    /// Write a waiting-room file (format version 2): the same buyers, and a share of
    /// them (--queue-early-share) also join the event's waiting room before the opening
    /// (uniform in the last --queue-early before it). The file plays without a room too.
    #[arg(long)]
    pub(crate) queue: bool,
    /// With --queue: share of buyers who join the waiting room before the opening.
    #[arg(long, default_value = "0.4", value_parser = parse_share, requires = "queue")]
    pub(crate) queue_early_share: f64,
    /// With --queue: how long before the opening the earliest joiners come (at most 7 days).
    #[arg(long, default_value = "5m", value_parser = parse_early, requires = "queue")]
    pub(crate) queue_early: Duration,
    /// Per request, while reading the layout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ShapeName {
    Spike,
    Steady,
    Ramp,
}

/// `--quantities`, parsed.
#[derive(Clone, Debug)]
pub(crate) struct Quantities(pub(crate) Vec<(u32, u32)>);

pub(crate) fn parse_quantities(text: &str) -> Result<Quantities, String> {
    let pair = |item: &str| -> Option<(u32, u32)> {
        let (quantity, weight) = item.trim().split_once(':')?;
        Some((quantity.trim().parse().ok()?, weight.trim().parse().ok()?))
    };
    let pairs: Option<Vec<(u32, u32)>> = text.split(',').map(pair).collect();
    match pairs {
        Some(pairs) if !pairs.is_empty() => Ok(Quantities(pairs)),
        _ => Err(format!("{text:?}: give QUANTITY:WEIGHT pairs, e.g. 1:15,2:50,4:25")),
    }
}

#[derive(Args)]
pub(crate) struct ReplayArgs {
    /// Queue file written by `generate` (JSON Lines; see loadtest/README.md).
    pub(crate) queue: PathBuf,
    /// Base URL of the server (http only, no path).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) target: String,
    /// Buy for this event instead of the one named in the file.
    #[arg(long)]
    pub(crate) event: Option<String>,
    /// Multiply every time in the file (arrivals and think times) by this: 0.5 replays
    /// the on-sale in half the time (twice the rate), 2 at half the rate.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) time_scale: f64,
    /// Replay only the first N buyers of the file.
    #[arg(long)]
    pub(crate) limit: Option<u64>,
    /// Replay only the buyers due within this long (after --time-scale), e.g. 30s.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// HTTP/1.1 keep-alive connections, all opened before the start; requests beyond
    /// wait (FIFO) for a free one, and that wait counts in their latency. Real buyers
    /// each have their own: use more than the server's in-flight limit, so that the
    /// server, not this pool, decides who waits (needs `ulimit -n` above this).
    #[arg(long, default_value_t = 4096)]
    pub(crate) connections: usize,
    /// Connections for the waiting room's long polls, besides --connections, opened as
    /// needed: a buyer the server says is near its turn (`long_poll`) waits on one for
    /// up to 25 s and learns at once that it was let in or sold out. When all are busy
    /// it polls as told. 0 (the default): no long polls (in the demo rehearsal of
    /// 2026-12-07, 2,048 of them made the opening slower, not faster).
    #[arg(long, default_value_t = 0)]
    pub(crate) queue_long_polls: usize,
    /// Buyers in flight at most (thinking and waiting out Retry-After included); a
    /// buyer due when this many are running is dropped and reported, never queued.
    /// Default: as many as the file has.
    #[arg(long)]
    pub(crate) in_flight_max: Option<u64>,
    /// A request without a reply this long after it was sent (waiting for a connection
    /// included) counts as a timeout. Each request tells the server so in
    /// `X-Request-Timeout-Ms`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Time allowed to open each connection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// After the last arrival, wait at most this long for buyers still running
    /// (default: the longest scaled think time plus 30 s); the rest are stopped.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) drain_timeout: Option<Duration>,
    /// Times a request answered 503 or 429 is retried after its Retry-After.
    #[arg(long, default_value_t = 3)]
    pub(crate) retries: u32,
    /// Longest Retry-After honoured; longer ones are cut to this.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) retry_after_max: Duration,
    /// Prefix of customer ids, payment references and idempotency keys (default:
    /// random), so replays against one server do not collide.
    #[arg(long)]
    pub(crate) run_id: Option<String>,
    /// Also write the report (with the timeline and the verdict) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Draw latency percentiles and throughput over time into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<PathBuf>,
    /// Write the ledger (the event's counts before the run and every order acknowledged)
    /// to this file, for `verify` to check the server again later.
    #[arg(long, value_name = "FILE")]
    pub(crate) ledger: Option<PathBuf>,
    /// Do not read the final state back nor judge it.
    #[arg(long)]
    pub(crate) no_verdict: bool,
    /// The server's metrics endpoint (e.g. http://127.0.0.1:9190): scraped before,
    /// during and after the run, and the sale as the server counted it (holds, orders,
    /// expiries, conversion, revenue, shed, oversold, peaks) printed in the report.
    #[arg(long, value_name = "URL")]
    pub(crate) server_metrics: Option<String>,
    /// Runtime threads. 1 runs everything on the calling thread (pin the process with
    /// `taskset -c N`); more uses a multi-threaded runtime.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// No progress bar on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// `auto`: buyers go through the event's waiting room when `GET /v1/events/{event}`
    /// shows one enabled; `on`: insist (exit 2 without one); `off`: hold directly. In a
    /// room each buyer joins (early joiners before the opening), polls as the server
    /// says, and once admitted holds with its access.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) waiting_room: WaitingRoomArg,
    #[command(flatten)]
    pub(crate) payments: PaymentArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum WaitingRoomArg {
    Auto,
    On,
    Off,
}

/// How `replay`'s buyers pay, and what its verdict reads of the money.
#[derive(Args)]
#[command(next_help_heading = "Payments")]
pub(crate) struct PaymentArgs {
    /// `browser`: check out, pay at the PSP with a test card as Stripe.js does, poll for
    /// the order; `trusted`: confirm on trust (`POST /v1/holds/{hold}/confirm`); `auto`:
    /// `browser` unless the server's `GET /v1/payments/config` says provider `external`.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) payments: PaymentMode,
    /// `Authorization: Bearer` token of trusted confirms (hakken's `sales_token`).
    #[arg(long, value_name = "TOKEN")]
    pub(crate) sales_token: Option<String>,
    /// Share of paying buyers whose card is declined (`pm_card_chargeDeclined`).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) decline_share: f64,
    /// Share of the declined who pay again with `pm_card_visa`; the rest walk away and
    /// let their hold expire.
    #[arg(long, default_value_t = 0.5)]
    pub(crate) decline_retry_share: f64,
    /// Share of paying buyers who pay at the PSP only after their hold expired.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) late_share: f64,
    /// A late payer waits at most this long for the hold to expire (holds expiring
    /// later are paid on time and counted apart).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) late_wait_max: Duration,
    /// How long a buyer polls `GET /v1/holds/{hold}/payment` for the order after paying.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) payment_poll_timeout: Duration,
    /// Connections to the PSP (at most --connections).
    #[arg(long, default_value_t = 256)]
    pub(crate) psp_connections: usize,
    /// The PSP's secret key (`sk_test_...`): the verdict lists the PSP's PaymentIntents
    /// with it and checks each against hakken's orders.
    #[arg(long, value_name = "KEY")]
    pub(crate) psp_secret_key: Option<String>,
    /// hakken's admin token: the verdict reads `GET /v1/admin/payments/reconcile`.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) admin_token: Option<String>,
    /// After the run, how long payments may take to settle (webhooks delivered,
    /// captures and voids done) before the verdict judges them.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) payment_settle: Duration,
    /// The payment-webhook storm: while buyers arrive, make the fake PSP
    /// (`hakken-fakepsp`) duplicate, reorder, delay, drop and hold back webhooks, fail
    /// and hang API calls, and authorize payments late, through its `/_fake/` API.
    #[arg(long)]
    pub(crate) storm: bool,
    /// The fake PSP's base URL for --storm (default: the PSP hakken names in
    /// `GET /v1/payments/config`).
    #[arg(long, value_name = "URL", requires = "storm")]
    pub(crate) storm_control: Option<String>,
    /// How long each squall of the storm blows before the next.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) storm_every: Duration,
    /// The squalls to play, in turn (comma-separated): duplicates, reorder, delay, drop,
    /// capture_500, create_500, capture_timeout, pay_late, paused. Default: all.
    #[arg(long, value_delimiter = ',', requires = "storm")]
    pub(crate) storm_squalls: Vec<String>,
}

impl PaymentArgs {
    pub(crate) fn settings(&self) -> PaymentSettings {
        PaymentSettings {
            mode: self.payments,
            sales_token: self.sales_token.clone(),
            decline_share: self.decline_share,
            decline_retry_share: self.decline_retry_share,
            late_share: self.late_share,
            late_wait_max: self.late_wait_max,
            poll_timeout: self.payment_poll_timeout,
            psp_connections: self.psp_connections,
            psp_secret_key: self.psp_secret_key.clone(),
            admin_token: self.admin_token.clone(),
            settle_timeout: self.payment_settle,
            storm: self.storm.then(|| StormSettings {
                control: self.storm_control.clone(),
                every: self.storm_every,
                squalls: self.storm_squalls.clone(),
            }),
        }
    }
}

#[derive(Args)]
pub(crate) struct CodesArgs {
    /// Base URL of the server (http only, no path).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) target: String,
    /// Ledger written by `replay --ledger`.
    #[arg(long)]
    pub(crate) ledger: PathBuf,
    /// File to write, one code per line.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Per request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// Base URL of the server (http only, no path).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) target: String,
    /// Ledger written by `replay --ledger`.
    #[arg(long)]
    pub(crate) ledger: PathBuf,
    /// For a ledger of a paying run: the PSP's secret key, to check every PSP payment
    /// of the run against hakken's orders (the PSP is the one the server names).
    #[arg(long, value_name = "KEY")]
    pub(crate) psp_secret_key: Option<String>,
    /// hakken's admin token: also check its reconcile report.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) admin_token: Option<String>,
    /// Per request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
    /// Runtime threads (1: the calling thread only; pin with `taskset -c N`).
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
}

pub(crate) fn parse_sections(text: &str) -> anyhow::Result<Sections> {
    if text == "auto" {
        return Ok(Sections::Auto);
    }
    let sections: Vec<String> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if sections.is_empty() {
        bail!("--sections: give `auto` or a comma-separated list of section ids");
    }
    Ok(Sections::List(sections))
}

/// A share: a number from 0 to 1.
fn parse_share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{text:?} is not a share (a number from 0 to 1)")),
    }
}

/// A duration of more than 0 and at most 7 days.
fn parse_early(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() || duration > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("{text:?} must be more than 0 and at most 7 days"));
    }
    Ok(duration)
}

/// `20s`, `500ms`, `2m`, `1.5s`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let check = |text: &str, expected: Option<Duration>| assert_eq!(parse_duration(text).ok(), expected, "{text}");
        check("20s", Some(Duration::from_secs(20)));
        check("20", Some(Duration::from_secs(20)));
        check("500ms", Some(Duration::from_millis(500)));
        check("1.5s", Some(Duration::from_millis(1500)));
        check("2m", Some(Duration::from_secs(120)));
        check("2h", None);
        check("s", None);
        check("", None);
    }

    #[test]
    fn outages_parse() {
        let check = |text: &str, expected: Option<(u64, u64)>| {
            let expected = expected
                .map(|(start, end)| Outage { start: Duration::from_secs(start), end: Duration::from_secs(end) });
            assert_eq!(parse_outage(text).ok(), expected, "{text}");
        };
        check("10s..70s", Some((10, 70)));
        check("0..1m", Some((0, 60)));
        check("70s..10s", None);
        check("5s..5s", None);
        check("10s-70s", None);
        check("..70s", None);
    }

    #[test]
    fn sections_parse() {
        assert_eq!(parse_sections("auto").ok(), Some(Sections::Auto));
        assert_eq!(parse_sections("S101, S102").ok(), Some(Sections::List(vec!["S101".into(), "S102".into()])));
        assert!(parse_sections(",").is_err());
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantities("1:15, 2:50").ok().map(|q| q.0), Some(vec![(1, 15), (2, 50)]));
        assert!(parse_quantities("1").is_err());
        assert!(parse_quantities("").is_err());
        assert!(parse_quantities("a:1").is_err());
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
