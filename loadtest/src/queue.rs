//! Queue files: an on-sale's arrivals, one buyer per line (JSON Lines), written by
//! `generate` and played by `replay`.
//!
//! Line 1 is a [`Header`]: `{"hakken_queue": 1, ...}`, the format version first, so a
//! reader can refuse a file it does not understand before reading further. Every
//! following line is one [`Buyer`], in order of arrival time. The format is documented
//! for people in `loadtest/README.md` ("Queue files"); a change that an older reader
//! would misread bumps [`FORMAT_VERSION`].
//!
//! Example:
//! ```text
//! {"hakken_queue":1,"event":"demo-2027","shape":"spike","seed":7,"buyers":2,...}
//! {"at_us":0,"phase":0,"intent":"best","section":"S101","quantity":2,"category":"CAT1","poll":true,"then":"confirm","think_ms":5200}
//! {"at_us":1250,"phase":0,"intent":"seats","seats":["S102-C-12","S102-C-13"],"then":"abandon","think_ms":800}
//! ```

use std::io::{BufRead, Write};

use anyhow::{bail, ensure, Context};
use serde::{Deserialize, Serialize};

/// The version this build writes for a waiting-room file (buyers may carry `join_us`),
/// and the newest it reads. A file without a waiting room is still written as version
/// 1, byte for byte as before, so older readers keep reading it.
pub const FORMAT_VERSION: u32 = 2;
/// The version of a file without a waiting room.
pub const FORMAT_VERSION_PLAIN: u32 = 1;
/// Earliest a buyer may join a waiting room: a week before the opening (the server's
/// own `opens_before_sale_s` is at most 7 days).
pub const JOIN_EARLY_US_MAX: u64 = 7 * 24 * 3600 * 1_000_000;
/// Seats one buyer asks for at most (the server's own limit is usually lower).
pub const QUANTITY_MAX: u32 = 64;
/// Latest arrival a file may have: a week after the opening, far beyond any rehearsal,
/// so that scaled times stay far from overflowing.
pub const AT_US_MAX: u64 = 7 * 24 * 3600 * 1_000_000;
/// Longest think time: a day.
pub const THINK_MS_MAX: u64 = 24 * 3600 * 1000;
/// A line longer than this is refused rather than read into memory.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// The first line of a queue file: what it is and how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The format version, [`FORMAT_VERSION`]; always the first key.
    pub hakken_queue: u32,
    /// The event every buyer of the file buys for.
    pub event: String,
    /// `spike`, `steady` or `ramp`; informational.
    pub shape: String,
    pub seed: u64,
    /// Buyer lines that follow.
    pub buyers: u64,
    /// Free-form: the generator's version and every parameter it used, so a file says
    /// how to make it again.
    #[serde(default)]
    pub generated_by: String,
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Names of the phases that buyers' `phase` numbers index (e.g. ramp steps), so the
    /// report can show each phase apart.
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Set in a waiting-room file (version 2): some buyers join the room before the
    /// opening (`join_us`). The same file plays without a room too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoomPlan>,
}

/// How a waiting-room file's early joiners were drawn (informational: each buyer's
/// `join_us` is what plays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoomPlan {
    /// Share of buyers who join before the opening.
    pub early_share: f64,
    /// They join uniformly in `[-early_seconds, 0)` before it.
    pub early_seconds: f64,
}

/// A stretch of the on-sale reported apart, e.g. the spike and its tail, or one rate
/// step of a ramp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    /// Arrivals a second the generator aimed for in this phase, if it had one rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
}

/// One buyer: when they arrive and what they try to do. Unknown keys are ignored (serde
/// cannot refuse them beside a flattened enum), so a later version may add optional ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    /// Arrival time after the start of the on-sale, in microseconds; never decreasing
    /// from line to line.
    pub at_us: u64,
    /// In a waiting-room file: when this buyer joins the room, in microseconds *before*
    /// the opening (negative, at least `-JOIN_EARLY_US_MAX`). Absent: they join at
    /// `at_us`. Without a waiting room it is unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_us: Option<i64>,
    /// Index into the header's `phases`.
    #[serde(default)]
    pub phase: u32,
    #[serde(flatten)]
    pub intent: Intent,
    /// Reads `GET /v1/events/{event}/availability` first, and gives up without holding
    /// if what they want is no longer available.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub poll: bool,
    /// What they do once they hold seats.
    pub then: Then,
    /// Time between the hold's reply and the confirm or release ("paying"), in
    /// milliseconds. Unused by `expire`.
    #[serde(default)]
    pub think_ms: u64,
}

/// What a buyer asks to hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub enum Intent {
    /// Best available seats in a reserved section, optionally in one price category.
    Best {
        section: String,
        quantity: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
    },
    /// These seats, picked from the seat map (all in one section).
    Seats { seats: Vec<String> },
    /// A quantity of places in a general-admission section.
    Ga { section: String, quantity: u32 },
}

impl Intent {
    /// Seats asked for.
    pub fn quantity(&self) -> u32 {
        match self {
            Intent::Best { quantity, .. } | Intent::Ga { quantity, .. } => *quantity,
            Intent::Seats { seats } => seats.len() as u32,
        }
    }

    /// The section, when the intent names one (specific seats carry theirs in the ids).
    pub fn section(&self) -> Option<&str> {
        match self {
            Intent::Best { section, .. } | Intent::Ga { section, .. } => Some(section),
            Intent::Seats { .. } => None,
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        let quantity = self.quantity();
        ensure!((1..=QUANTITY_MAX).contains(&quantity), "quantity {quantity} is not in 1..={QUANTITY_MAX}");
        match self {
            Intent::Best { section, category, .. } => {
                ensure!(!section.is_empty(), "empty section");
                ensure!(category.as_ref().is_none_or(|category| !category.is_empty()), "empty category");
            }
            Intent::Ga { section, .. } => ensure!(!section.is_empty(), "empty section"),
            Intent::Seats { seats } => ensure!(seats.iter().all(|seat| !seat.is_empty()), "empty seat id"),
        }
        Ok(())
    }
}

/// What a buyer does with a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    /// Pays after `think_ms`: `POST /v1/holds/{hold}/confirm`.
    Confirm,
    /// Changes their mind after `think_ms`: `DELETE /v1/holds/{hold}`.
    Abandon,
    /// Walks away; the hold expires on the server.
    Expire,
}

/// A whole queue file in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Queue {
    pub header: Header,
    pub buyers: Vec<Buyer>,
}

impl Queue {
    /// Writes the header and every buyer, one JSON object a line.
    pub fn write(&self, out: impl Write) -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer(&mut out, &self.header)?;
        out.write_all(b"\n")?;
        for buyer in &self.buyers {
            serde_json::to_writer(&mut out, buyer)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }

    /// Reads a queue file, refusing an unknown version, a malformed line (named by its
    /// number), arrival times that go backwards, or a buyer count that disagrees with
    /// the header. `limit` stops after that many buyers (the header's count is then not
    /// checked).
    pub fn read(input: impl BufRead, limit: Option<u64>) -> anyhow::Result<Queue> {
        let mut lines = Lines { input, number: 0, line: String::new() };
        let Some((_, first)) = lines.next()? else { bail!("empty file: expected a queue header on line 1") };
        let version: VersionProbe = serde_json::from_str(first)
            .context("line 1: not a hakken queue header (expected {\"hakken_queue\": <version>, ...})")?;
        if !(FORMAT_VERSION_PLAIN..=FORMAT_VERSION).contains(&version.hakken_queue) {
            bail!(
                "line 1: queue format version {} is not supported by this build (it reads versions {FORMAT_VERSION_PLAIN} to {FORMAT_VERSION})",
                version.hakken_queue
            );
        }
        let header: Header = serde_json::from_str(first).context("line 1: bad queue header")?;
        ensure!(!header.event.is_empty(), "line 1: empty event");
        ensure!(
            header.waiting_room.is_none() || header.hakken_queue >= FORMAT_VERSION,
            "line 1: a waiting_room needs format version {FORMAT_VERSION}"
        );
        let mut buyers = Vec::with_capacity(header.buyers.min(limit.unwrap_or(u64::MAX)).min(1 << 24) as usize);
        let mut previous_at = 0;
        while limit.is_none_or(|limit| (buyers.len() as u64) < limit) {
            let Some((number, line)) = lines.next()? else { break };
            if line.trim().is_empty() {
                continue;
            }
            let buyer: Buyer = serde_json::from_str(line).with_context(|| format!("line {number}: bad buyer"))?;
            buyer.intent.check().with_context(|| format!("line {number}"))?;
            ensure!(
                buyer.at_us <= AT_US_MAX,
                "line {number}: at_us {} is more than a week (max {AT_US_MAX})",
                buyer.at_us
            );
            ensure!(
                buyer.think_ms <= THINK_MS_MAX,
                "line {number}: think_ms {} is more than a day (max {THINK_MS_MAX})",
                buyer.think_ms
            );
            ensure!(
                buyer.at_us >= previous_at,
                "line {number}: at_us {} is before the previous buyer's {previous_at} (lines must be in arrival order)",
                buyer.at_us
            );
            ensure!(
                header.phases.is_empty() || (buyer.phase as usize) < header.phases.len(),
                "line {number}: phase {} is not one of the header's {} phases",
                buyer.phase,
                header.phases.len()
            );
            if let Some(join_us) = buyer.join_us {
                ensure!(
                    header.hakken_queue >= FORMAT_VERSION,
                    "line {number}: join_us needs format version {FORMAT_VERSION}"
                );
                ensure!(
                    join_us < 0 && join_us.unsigned_abs() <= JOIN_EARLY_US_MAX,
                    "line {number}: join_us {join_us} is not before the opening and at most a week before it"
                );
            }
            previous_at = buyer.at_us;
            buyers.push(buyer);
        }
        if limit.is_none() {
            ensure!(
                buyers.len() as u64 == header.buyers,
                "the header announces {} buyers but the file has {} (truncated?)",
                header.buyers,
                buyers.len()
            );
        }
        Ok(Queue { header, buyers })
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    hakken_queue: u32,
}

/// Lines of a file, bounded in length, numbered from 1.
struct Lines<R> {
    input: R,
    number: u64,
    line: String,
}

impl<R: BufRead> Lines<R> {
    /// The next line and its number, without its line ending.
    fn next(&mut self) -> anyhow::Result<Option<(u64, &str)>> {
        self.line.clear();
        self.number += 1;
        let read = std::io::Read::take(&mut self.input, LINE_BYTES_MAX as u64 + 1)
            .read_line(&mut self.line)
            .with_context(|| format!("line {}: cannot read", self.number))?;
        if read == 0 {
            return Ok(None);
        }
        ensure!(
            self.line.len() <= LINE_BYTES_MAX || self.line.ends_with('\n'),
            "line {}: longer than {LINE_BYTES_MAX} bytes",
            self.number
        );
        Ok(Some((self.number, self.line.trim_end_matches(['\n', '\r']))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(buyers: u64) -> Header {
        Header {
            hakken_queue: FORMAT_VERSION_PLAIN,
            event: "demo-2027".into(),
            shape: "steady".into(),
            seed: 7,
            buyers,
            generated_by: "test".into(),
            parameters: serde_json::Map::new(),
            phases: vec![Phase { name: "steady".into(), rate_per_second: Some(10.0) }],
            waiting_room: None,
        }
    }

    fn sample() -> Queue {
        let buyers = vec![
            Buyer {
                at_us: 0,
                join_us: None,
                phase: 0,
                intent: Intent::Best { section: "S101".into(), quantity: 2, category: Some("CAT1".into()) },
                poll: true,
                then: Then::Confirm,
                think_ms: 5200,
            },
            Buyer {
                at_us: 1250,
                join_us: None,
                phase: 0,
                intent: Intent::Seats { seats: vec!["S102-C-12".into(), "S102-C-13".into()] },
                poll: false,
                then: Then::Abandon,
                think_ms: 800,
            },
            Buyer {
                at_us: 1250,
                join_us: None,
                phase: 0,
                intent: Intent::Ga { section: "FLOOR-A".into(), quantity: 4 },
                poll: false,
                then: Then::Expire,
                think_ms: 0,
            },
        ];
        Queue { header: header(buyers.len() as u64), buyers }
    }

    fn text(queue: &Queue) -> String {
        let mut bytes = Vec::new();
        queue.write(&mut bytes).expect("writes");
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn round_trips_and_reads_as_documented() {
        let queue = sample();
        let written = text(&queue);
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with(r#"{"hakken_queue":1,"event":"demo-2027""#), "{}", lines[0]);
        assert_eq!(
            lines[1],
            r#"{"at_us":0,"phase":0,"intent":"best","section":"S101","quantity":2,"category":"CAT1","poll":true,"then":"confirm","think_ms":5200}"#
        );
        assert_eq!(
            lines[3],
            r#"{"at_us":1250,"phase":0,"intent":"ga","section":"FLOOR-A","quantity":4,"then":"expire","think_ms":0}"#
        );
        assert_eq!(Queue::read(written.as_bytes(), None).expect("reads"), queue);
        let first_two = Queue::read(written.as_bytes(), Some(2)).expect("reads");
        assert_eq!(first_two.buyers, queue.buyers[..2]);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let good = text(&sample());
        let check = |input: String, expected: &str| {
            let error = format!("{:#}", Queue::read(input.as_bytes(), None).expect_err(&input));
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
        };
        check(String::new(), "empty file");
        check("hello\n".into(), "line 1: not a hakken queue header");
        check(good.replacen(r#""hakken_queue":1"#, r#""hakken_queue":0"#, 1), "version 0 is not supported");
        check(
            good.replacen(r#""at_us":0,"#, r#""at_us":0,"join_us":-5,"#, 1),
            "line 2: join_us needs format version 2",
        );
        check(
            good.replacen(r#""phases""#, r#""waiting_room":{"early_share":0.4,"early_seconds":300.0},"phases""#, 1),
            "line 1: a waiting_room needs format version 2",
        );
        check(good.replacen(r#""hakken_queue":1"#, r#""hakken_queue":3"#, 1), "version 3 is not supported");
        check(good.replacen(r#""at_us":1250"#, r#""at_us":"soon""#, 1), "line 3: bad buyer");
        check(good.replacen(r#""at_us":0"#, r#""at_us":5000"#, 1), "line 3: at_us 1250 is before");
        check(good.replacen(r#""quantity":4"#, r#""quantity":0"#, 1), "line 4: quantity 0");
        check(
            good.replacen(r#""at_us":1250"#, r#""at_us":99999999999999999"#, 2),
            "line 3: at_us 99999999999999999 is more",
        );
        check(good.replacen(r#""think_ms":800"#, r#""think_ms":86400001"#, 1), "line 3: think_ms 86400001 is more");
        check(good.replacen(r#""then":"expire""#, r#""then":"dither""#, 1), "line 4: bad buyer");
        check(good.replacen(r#""phase":0,"intent":"ga""#, r#""phase":3,"intent":"ga""#, 1), "line 4: phase 3");
        check(good.replacen(r#""buyers":3"#, r#""buyers":4"#, 1), "announces 4 buyers but the file has 3");
        check(format!("{good}{{\"at_us\": {}\n", "9".repeat(LINE_BYTES_MAX)), "longer than");
    }

    /// A waiting-room file: version 2, the header's `waiting_room`, and `join_us` on
    /// early joiners only.
    fn waiting_room_sample() -> Queue {
        let mut queue = sample();
        queue.header.hakken_queue = FORMAT_VERSION;
        queue.header.waiting_room = Some(WaitingRoomPlan { early_share: 0.4, early_seconds: 300.0 });
        queue.buyers[1].join_us = Some(-2_500_000);
        queue
    }

    #[test]
    fn waiting_room_files_round_trip() {
        let queue = waiting_room_sample();
        let written = text(&queue);
        let lines: Vec<&str> = written.lines().collect();
        assert!(lines[0].starts_with(r#"{"hakken_queue":2,"#), "{}", lines[0]);
        assert!(lines[0].ends_with(r#""waiting_room":{"early_share":0.4,"early_seconds":300.0}}"#), "{}", lines[0]);
        assert!(lines[2].starts_with(r#"{"at_us":1250,"join_us":-2500000,"phase":0,"#), "{}", lines[2]);
        assert!(!lines[1].contains("join_us") && !lines[3].contains("join_us"));
        assert_eq!(Queue::read(written.as_bytes(), None).expect("reads"), queue);
    }

    #[test]
    fn bad_waiting_room_files_are_refused() {
        let good = text(&waiting_room_sample());
        let check = |input: String, expected: &str| {
            let error = format!("{:#}", Queue::read(input.as_bytes(), None).expect_err(&input));
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
        };
        check(good.replacen(r#""early_seconds":300.0"#, r#""early_seconds":300.0,"x":1"#, 1), "bad queue header");
        check(good.replacen(r#""hakken_queue":2"#, r#""hakken_queue":1"#, 1), "a waiting_room needs format version 2");
        check(good.replacen("-2500000", "0", 1), "line 3: join_us 0 is not before the opening");
        check(good.replacen("-2500000", "5", 1), "line 3: join_us 5");
        check(good.replacen("-2500000", "-604800000001", 1), "line 3: join_us -604800000001");
        check(good.replacen("-2500000", "\"soon\"", 1), "line 3: bad buyer");
    }
}
