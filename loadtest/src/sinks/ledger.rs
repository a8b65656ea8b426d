//! The bookkeeping behind notification lag: which acknowledged orders were told of (by
//! email, by webhook), when and how often, and what arrived that matches no acknowledged
//! order.
//!
//! Plain data, no clock: every time is microseconds since the run's start, given by the
//! caller, so the same bookkeeping runs in the sinks and in unit tests.
//!
//! Matching. An order's email is known by its `Message-ID`, which hakken derives from the
//! order id (`hakken_notify::message_id`): `<hakken.order_confirmed.{32 hex}@{domain}>`,
//! the domain being the sender's. The tool learns the domain from the first confirmation
//! it receives; acknowledgements before that wait in a list and are matched once it is
//! known. Entries are keyed by the 128-bit hex part (16 bytes, not a 60-byte string: a
//! 10-minute run at 10,000/s tracks six million orders). An order's webhook is known by
//! its payload's `data.order`; a repeat of the same `webhook-id` is a duplicate.
//!
//! Either may come before the tool has read the confirm's reply (the relay is quick and
//! the reply has yet to be parsed): such a notice waits as unmatched, and an
//! acknowledgement that finds it counts it with a lag of zero. What is still unmatched at
//! the end is unexpected: a notice of a sale the tool was never told of (a confirm that
//! timed out yet sold, or one the server invented).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use hakken_notify::{message_id, EmailKind};
use hdrhistogram::Histogram;

use crate::stats::{latency_histogram, Latency};

/// Acknowledged orders tracked per channel at most (over ten minutes at 10,000 orders/s);
/// beyond, acknowledgements are counted as untracked and their notices are not judged.
pub const TRACKED_ORDERS_MAX: usize = 8_000_000;
/// Notices matching no acknowledged order kept at most, waiting for their order's
/// acknowledgement; beyond, they are counted as unexpected without being kept.
pub const UNMATCHED_MAX: usize = 1_000_000;

/// The kind part of a confirmation's Message-ID.
const CONFIRMED_KIND: &str = "order_confirmed";

/// One acknowledged order on one channel.
#[derive(Clone, Copy, Debug)]
struct Delivery {
    acked_us: u64,
    /// When its first notice came.
    first_us: Option<u64>,
}

/// Acknowledged orders and the notices of one channel, by key.
#[derive(Debug)]
pub struct Channel<K> {
    expected: HashMap<K, Delivery>,
    /// Notices of no acknowledged order (yet): when the first came.
    unmatched: HashMap<K, u64>,
    /// Acknowledged orders with a notice.
    told: u64,
    /// Notices of a key already seen (acknowledged or not).
    repeats: u64,
    untracked_acks: u64,
    unmatched_overflow: u64,
}

impl<K: Hash + Eq> Default for Channel<K> {
    fn default() -> Channel<K> {
        Channel {
            expected: HashMap::new(),
            unmatched: HashMap::new(),
            told: 0,
            repeats: 0,
            untracked_acks: 0,
            unmatched_overflow: 0,
        }
    }
}

/// What a notice was, to its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// The first of an acknowledged order.
    First,
    /// Of a key seen before.
    Repeat,
    /// Of no acknowledged order (yet).
    Unmatched,
}

impl<K: Hash + Eq> Channel<K> {
    /// The tool was told of the order `key` at `at_us`. A second acknowledgement of the
    /// same order keeps the first.
    pub fn acknowledge(&mut self, key: K, at_us: u64) {
        if self.expected.len() >= TRACKED_ORDERS_MAX {
            self.untracked_acks += 1;
            return;
        }
        if let Entry::Vacant(vacant) = self.expected.entry(key) {
            let first_us = self.unmatched.remove(vacant.key());
            if first_us.is_some() {
                self.told += 1;
            }
            vacant.insert(Delivery { acked_us: at_us, first_us });
        }
    }

    /// A notice of `key` arrived at `at_us`.
    pub fn receive(&mut self, key: K, at_us: u64) -> Receipt {
        if let Some(delivery) = self.expected.get_mut(&key) {
            if delivery.first_us.is_some() {
                self.repeats += 1;
                return Receipt::Repeat;
            }
            delivery.first_us = Some(at_us);
            self.told += 1;
            return Receipt::First;
        }
        if self.unmatched.contains_key(&key) {
            self.repeats += 1;
            return Receipt::Repeat;
        }
        if self.unmatched.len() < UNMATCHED_MAX {
            self.unmatched.insert(key, at_us);
        } else {
            self.unmatched_overflow += 1;
        }
        Receipt::Unmatched
    }

    /// Acknowledged orders not told of yet.
    pub fn outstanding(&self) -> u64 {
        self.expected.len() as u64 - self.told
    }

    /// The orders acknowledged before `at_us` that had no notice by then, and when the
    /// last of them got one (`None` while one still has none).
    pub fn backlog_at(&self, at_us: u64) -> (u64, Option<u64>) {
        let mut backlog = 0;
        let mut drained_us = Some(at_us);
        for delivery in self.expected.values().filter(|delivery| delivery.acked_us < at_us) {
            match delivery.first_us {
                Some(first) if first <= at_us => {}
                Some(first) => {
                    backlog += 1;
                    drained_us = drained_us.map(|drained| drained.max(first));
                }
                None => {
                    backlog += 1;
                    drained_us = None;
                }
            }
        }
        (backlog, drained_us)
    }

    /// What the channel adds up to.
    pub fn summary(&self) -> ChannelSummary {
        let mut lag: Histogram<u64> = latency_histogram();
        for delivery in self.expected.values() {
            if let Some(first) = delivery.first_us {
                // A notice before the acknowledgement was read has no lag to speak of.
                lag.saturating_record(first.saturating_sub(delivery.acked_us).max(1));
            }
        }
        ChannelSummary {
            acknowledged: self.expected.len() as u64,
            told: self.told,
            never_told: self.outstanding(),
            duplicates: self.repeats,
            unexpected: self.unmatched.len() as u64 + self.unmatched_overflow,
            untracked_acknowledged: self.untracked_acks,
            lag_us: Latency::of(&lag),
        }
    }
}

/// A channel's totals, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelSummary {
    /// Acknowledged orders tracked.
    pub acknowledged: u64,
    /// Of those, told of at least once.
    pub told: u64,
    pub never_told: u64,
    /// Notices of a key already seen.
    pub duplicates: u64,
    /// Distinct keys of notices matching no acknowledged order.
    pub unexpected: u64,
    /// Acknowledgements beyond [`TRACKED_ORDERS_MAX`].
    pub untracked_acknowledged: u64,
    /// Acknowledged → first notice, of the orders told of.
    pub lag_us: Latency,
}

/// A Message-ID of hakken's form, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HakkenMessageId<'a> {
    /// `order_confirmed`, `order_refunded`, ...
    pub kind: &'a str,
    /// The 32 hex digits: a hash of the order id, kind and occurrence.
    pub digest: u128,
    pub domain: &'a str,
}

/// Parses `<hakken.{kind}.{32 hex}@{domain}>` (surrounding blanks allowed); `None` for
/// any other form.
pub fn parse_message_id(text: &str) -> Option<HakkenMessageId<'_>> {
    let inner = text.trim().strip_prefix('<')?.strip_suffix('>')?;
    let (local, domain) = inner.rsplit_once('@')?;
    let (kind, hex) = local.strip_prefix("hakken.")?.rsplit_once('.')?;
    if hex.len() != 32 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) || kind.is_empty() || domain.is_empty() {
        return None;
    }
    Some(HakkenMessageId { kind, digest: u128::from_str_radix(hex, 16).ok()?, domain })
}

/// The digest of the Message-ID hakken gives `order_id`'s confirmation from `domain`.
pub fn confirmation_digest(order_id: &str, domain: &str) -> u128 {
    let id = message_id(order_id, EmailKind::OrderConfirmed, None, domain);
    parse_message_id(&id).expect("hakken_notify::message_id has the form parse_message_id reads").digest
}

/// The email channel: confirmations by Message-ID.
#[derive(Debug, Default)]
pub struct EmailBook {
    /// The sender's domain, from the first confirmation received.
    domain: Option<String>,
    /// Acknowledgements before the domain was known, by order id.
    pending: HashMap<Box<str>, u64>,
    orders: Channel<u128>,
    /// Every message taken, whatever it was, and their bytes.
    received: u64,
    bytes: u64,
    without_message_id: u64,
    /// A Message-ID not of hakken's form, or of another sender domain.
    foreign_message_id: u64,
    /// hakken's emails of another kind (refunds, reissues): none in an order workload.
    other_kinds: u64,
    /// When each message came, for delivery rates.
    receipts_us: Vec<u64>,
}

impl EmailBook {
    pub fn acknowledge(&mut self, order_id: &str, at_us: u64) {
        match &self.domain {
            Some(domain) => self.orders.acknowledge(confirmation_digest(order_id, domain), at_us),
            None if self.pending.len() < TRACKED_ORDERS_MAX => {
                self.pending.entry(order_id.into()).or_insert(at_us);
            }
            None => self.orders.untracked_acks += 1,
        }
    }

    /// A message of `bytes` with `message_id` (its header's value, if it had one) arrived
    /// at `at_us`.
    pub fn receive(&mut self, message_id: Option<&str>, bytes: usize, at_us: u64) -> Option<Receipt> {
        self.received += 1;
        self.bytes += bytes as u64;
        if self.receipts_us.len() < TRACKED_ORDERS_MAX + UNMATCHED_MAX {
            self.receipts_us.push(at_us);
        }
        let Some(text) = message_id else {
            self.without_message_id += 1;
            return None;
        };
        let Some(parsed) = parse_message_id(text) else {
            self.foreign_message_id += 1;
            return None;
        };
        if parsed.kind != CONFIRMED_KIND {
            self.other_kinds += 1;
            return None;
        }
        if self.domain.is_none() {
            self.learn_domain(parsed.domain);
        }
        if self.domain.as_deref() != Some(parsed.domain) {
            self.foreign_message_id += 1;
            return None;
        }
        Some(self.orders.receive(parsed.digest, at_us))
    }

    fn learn_domain(&mut self, domain: &str) {
        for (order_id, at_us) in std::mem::take(&mut self.pending) {
            self.orders.acknowledge(confirmation_digest(&order_id, domain), at_us);
        }
        self.domain = Some(domain.to_string());
    }

    pub fn outstanding(&self) -> u64 {
        self.orders.outstanding() + self.pending.len() as u64
    }

    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    pub fn summary(&self) -> EmailSummary {
        let mut orders = self.orders.summary();
        // Acknowledged while no confirmation had come yet, and none came after.
        orders.acknowledged += self.pending.len() as u64;
        orders.never_told += self.pending.len() as u64;
        EmailSummary {
            received: self.received,
            bytes: self.bytes,
            orders,
            without_message_id: self.without_message_id,
            foreign_message_id: self.foreign_message_id,
            other_kinds: self.other_kinds,
        }
    }

    /// See [`Channel::backlog_at`]; before any confirmation came, every acknowledgement
    /// is backlog.
    pub fn backlog_at(&self, at_us: u64) -> (u64, Option<u64>) {
        let (backlog, drained) = self.orders.backlog_at(at_us);
        let waiting = self.pending.values().filter(|acked_us| **acked_us < at_us).count() as u64;
        (backlog + waiting, drained.filter(|_| waiting == 0))
    }

    /// Messages received in `from_us..=to_us`.
    pub fn received_between(&self, from_us: u64, to_us: u64) -> u64 {
        self.receipts_us.iter().filter(|at| (from_us..=to_us).contains(*at)).count() as u64
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmailSummary {
    pub received: u64,
    pub bytes: u64,
    pub orders: ChannelSummary,
    pub without_message_id: u64,
    pub foreign_message_id: u64,
    pub other_kinds: u64,
}

/// The webhook channel: `order.confirmed` events by order, repeats by `webhook-id`.
#[derive(Debug, Default)]
pub struct WebhookBook {
    orders: Channel<Box<str>>,
    /// Every `webhook-id` taken (bounded like the orders).
    ids: HashSet<Box<str>>,
    received: u64,
    /// The same `webhook-id` again.
    duplicates: u64,
    /// Events of other types (none in an order workload).
    other_types: u64,
    /// An `order.confirmed` under a new `webhook-id` for an order already told of.
    repeated_under_new_id: u64,
    /// Refused: a signature that did not verify, or a body that is not an event.
    bad_signature: u64,
    malformed: u64,
}

/// What a webhook POST carried, as far as the bookkeeping cares.
#[derive(Clone, Copy, Debug)]
pub enum WebhookNotice<'a> {
    /// `order.confirmed` of `order`.
    OrderConfirmed { order: &'a str },
    /// Any other event type.
    Other,
}

impl WebhookBook {
    pub fn acknowledge(&mut self, order_id: &str, at_us: u64) {
        self.orders.acknowledge(order_id.into(), at_us);
    }

    /// An event with `webhook_id` arrived at `at_us`.
    pub fn receive(&mut self, webhook_id: &str, notice: WebhookNotice<'_>, at_us: u64) -> Option<Receipt> {
        self.received += 1;
        if self.ids.contains(webhook_id) {
            self.duplicates += 1;
            return Some(Receipt::Repeat);
        }
        if self.ids.len() < TRACKED_ORDERS_MAX + UNMATCHED_MAX {
            self.ids.insert(webhook_id.into());
        }
        let WebhookNotice::OrderConfirmed { order } = notice else {
            self.other_types += 1;
            return None;
        };
        let receipt = self.orders.receive(order.into(), at_us);
        if receipt == Receipt::Repeat {
            // A new id, yet the order was told of: not what at-least-once with stable ids does.
            self.orders.repeats -= 1;
            self.repeated_under_new_id += 1;
        }
        Some(receipt)
    }

    pub fn refused_signature(&mut self) {
        self.bad_signature += 1;
    }

    pub fn refused_malformed(&mut self) {
        self.malformed += 1;
    }

    pub fn outstanding(&self) -> u64 {
        self.orders.outstanding()
    }

    pub fn summary(&self) -> WebhookSummary {
        let mut orders = self.orders.summary();
        orders.duplicates = self.duplicates;
        WebhookSummary {
            received: self.received,
            orders,
            other_types: self.other_types,
            repeated_under_new_id: self.repeated_under_new_id,
            bad_signature: self.bad_signature,
            malformed: self.malformed,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSummary {
    pub received: u64,
    /// `duplicates` here: the same `webhook-id` again.
    pub orders: ChannelSummary,
    pub other_types: u64,
    pub repeated_under_new_id: u64,
    pub bad_signature: u64,
    pub malformed: u64,
}

/// Both channels (either may be off) and what the tool could not be sure of.
#[derive(Debug, Default)]
pub struct Ledger {
    pub email: Option<EmailBook>,
    pub webhook: Option<WebhookBook>,
    /// Confirms without a definite answer (timeout, broken connection): the server may
    /// have sold, and told of it, without the tool knowing the order.
    pub confirms_in_doubt: u64,
}

impl Ledger {
    pub fn new(email: bool, webhook: bool) -> Ledger {
        Ledger {
            email: email.then(EmailBook::default),
            webhook: webhook.then(WebhookBook::default),
            confirms_in_doubt: 0,
        }
    }

    pub fn acknowledge(&mut self, order_id: &str, at_us: u64) {
        if let Some(email) = &mut self.email {
            email.acknowledge(order_id, at_us);
        }
        if let Some(webhook) = &mut self.webhook {
            webhook.acknowledge(order_id, at_us);
        }
    }

    /// Acknowledged orders some sink has not been told of yet.
    pub fn outstanding(&self) -> u64 {
        self.email.as_ref().map_or(0, EmailBook::outstanding)
            + self.webhook.as_ref().map_or(0, WebhookBook::outstanding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "tickets.example";

    fn id(order: &str) -> String {
        message_id(order, EmailKind::OrderConfirmed, None, DOMAIN)
    }

    #[test]
    fn message_ids_of_hakkens_form_parse() {
        let text = id("o3-17");
        let padded = format!("  {text}\t");
        let parsed = parse_message_id(&padded).expect("hakken's own form");
        assert_eq!((parsed.kind, parsed.domain), ("order_confirmed", DOMAIN));
        assert_eq!(parsed.digest, confirmation_digest("o3-17", DOMAIN));
        assert_ne!(parsed.digest, confirmation_digest("o3-18", DOMAIN));
        // The digest does not hash the domain; the domain is checked apart.
        assert_eq!(confirmation_digest("o3-17", "other.example"), parsed.digest);
        let refunded = message_id("o3-17", EmailKind::OrderRefunded, None, DOMAIN);
        assert_eq!(parse_message_id(&refunded).map(|parsed| parsed.kind), Some("order_refunded"));
        for foreign in [
            "<CAF=abc@mail.gmail.com>",
            "hakken.order_confirmed.0123456789abcdef0123456789abcdef@x",
            "<hakken.order_confirmed.0123@x>",
            "<hakken.order_confirmed.0123456789abcdef0123456789abcdeg@x>",
            "<hakken.order_confirmed.0123456789abcdef0123456789abcdef@>",
            "<other.order_confirmed.0123456789abcdef0123456789abcdef@x>",
            "",
        ] {
            assert_eq!(parse_message_id(foreign), None, "{foreign}");
        }
    }

    /// Lag, duplicates, the unexpected and the never-emailed, in one story.
    #[test]
    fn emails_are_matched_to_acknowledged_orders() {
        let mut book = EmailBook::default();
        // Acknowledged before any email: the domain is not known yet.
        book.acknowledge("o1", 1_000);
        book.acknowledge("o2", 2_000);
        book.acknowledge("o3", 3_000);
        assert_eq!(book.outstanding(), 3);
        assert_eq!(book.receive(Some(&id("o1")), 100, 11_000), Some(Receipt::First));
        assert_eq!(book.domain(), Some(DOMAIN));
        assert_eq!(book.receive(Some(&id("o2")), 100, 32_000), Some(Receipt::First));
        // At least once: o1 again, with the same Message-ID.
        assert_eq!(book.receive(Some(&id("o1")), 100, 40_000), Some(Receipt::Repeat));
        // An order the tool never saw acknowledged (its confirm timed out), twice.
        assert_eq!(book.receive(Some(&id("o9")), 100, 41_000), Some(Receipt::Unmatched));
        assert_eq!(book.receive(Some(&id("o9")), 100, 42_000), Some(Receipt::Repeat));
        // Emailed before the tool read its confirm's reply: lag 0 once acknowledged.
        assert_eq!(book.receive(Some(&id("o4")), 100, 50_000), Some(Receipt::Unmatched));
        book.acknowledge("o4", 50_100);
        // Other senders and other kinds are counted apart, never matched.
        assert_eq!(
            book.receive(Some(&message_id("o3", EmailKind::OrderConfirmed, None, "evil.example")), 100, 60_000),
            None
        );
        assert_eq!(book.receive(Some(&message_id("o3", EmailKind::OrderRefunded, None, DOMAIN)), 100, 60_000), None);
        assert_eq!(book.receive(Some("<x@y>"), 100, 60_000), None);
        assert_eq!(book.receive(None, 100, 60_000), None);

        assert_eq!(book.outstanding(), 1, "o3 never came");
        let summary = book.summary();
        assert_eq!(summary.received, 10);
        assert_eq!((summary.without_message_id, summary.foreign_message_id, summary.other_kinds), (1, 2, 1));
        let orders = &summary.orders;
        assert_eq!((orders.acknowledged, orders.told, orders.never_told), (4, 3, 1));
        assert_eq!((orders.duplicates, orders.unexpected), (2, 1));
        // Lags: 10 ms (o1), 30 ms (o2), 0 (o4).
        assert_eq!(orders.lag_us.count, 3);
        assert!((30_000..30_030).contains(&orders.lag_us.max), "{:?}", orders.lag_us);
        assert!(orders.lag_us.p50 >= 9_990 && orders.lag_us.p50 <= 10_010, "{:?}", orders.lag_us);
    }

    #[test]
    fn without_any_email_every_acknowledged_order_is_never_emailed() {
        let mut book = EmailBook::default();
        book.acknowledge("o1", 1);
        book.acknowledge("o2", 2);
        book.receive(Some("<not-hakken@x>"), 100, 3);
        let summary = book.summary();
        assert_eq!((summary.orders.acknowledged, summary.orders.told, summary.orders.never_told), (2, 0, 2));
        assert_eq!(book.backlog_at(10), (2, None));
    }

    #[test]
    fn the_backlog_of_an_outage_and_when_it_drained() {
        let mut book = EmailBook::default();
        book.acknowledge("o0", 0);
        book.receive(Some(&id("o0")), 100, 5);
        // The outage ends at 100: o1 and o2 were acknowledged during it.
        book.acknowledge("o1", 10);
        book.acknowledge("o2", 20);
        book.acknowledge("o3", 150);
        assert_eq!(book.backlog_at(100), (2, None));
        book.receive(Some(&id("o2")), 100, 120);
        book.receive(Some(&id("o3")), 100, 155);
        assert_eq!(book.backlog_at(100), (2, None), "o1 is still missing");
        book.receive(Some(&id("o1")), 100, 180);
        assert_eq!(book.backlog_at(100), (2, Some(180)));
        assert_eq!(book.backlog_at(200), (0, Some(200)), "nothing was missing at 200");
        assert_eq!(book.received_between(100, 180), 3);
    }

    #[test]
    fn webhooks_are_matched_by_order_and_deduplicated_by_id() {
        let mut book = WebhookBook::default();
        let confirmed = |order| WebhookNotice::OrderConfirmed { order };
        book.acknowledge("o1", 100);
        book.acknowledge("o2", 100);
        book.acknowledge("o3", 100);
        assert_eq!(book.receive("order-confirmed_o1", confirmed("o1"), 600), Some(Receipt::First));
        assert_eq!(book.receive("order-confirmed_o1", confirmed("o1"), 700), Some(Receipt::Repeat));
        assert_eq!(book.receive("another-id", confirmed("o1"), 700), Some(Receipt::Repeat));
        assert_eq!(book.receive("order-confirmed_o2", confirmed("o2"), 2_100), Some(Receipt::First));
        assert_eq!(book.receive("order-confirmed_o7", confirmed("o7"), 2_200), Some(Receipt::Unmatched));
        assert_eq!(book.receive("ticket-checked-in_t1", WebhookNotice::Other, 2_300), None);
        book.refused_signature();
        let summary = book.summary();
        assert_eq!(summary.received, 6);
        assert_eq!((summary.orders.told, summary.orders.never_told, summary.orders.unexpected), (2, 1, 1));
        assert_eq!((summary.orders.duplicates, summary.repeated_under_new_id), (1, 1));
        assert_eq!((summary.other_types, summary.bad_signature, summary.malformed), (1, 1, 0));
        assert_eq!(summary.orders.lag_us.max, 2_000);
    }

    #[test]
    fn an_order_acknowledged_twice_counts_once() {
        let mut ledger = Ledger::new(true, true);
        ledger.acknowledge("o1", 10);
        ledger.acknowledge("o1", 20);
        assert_eq!(ledger.outstanding(), 1 + 1, "one email (its domain not known yet), one webhook");
        ledger.email.as_mut().expect("on").receive(Some(&id("o1")), 100, 30);
        ledger.webhook.as_mut().expect("on").receive("w1", WebhookNotice::OrderConfirmed { order: "o1" }, 30);
        assert_eq!(ledger.outstanding(), 0);
        let email = ledger.email.as_ref().expect("on").summary();
        assert_eq!((email.orders.acknowledged, email.orders.lag_us.max), (1, 20), "the first acknowledgement counts");
        let webhook = ledger.webhook.as_ref().expect("on").summary();
        assert_eq!((webhook.orders.acknowledged, webhook.orders.lag_us.max), (1, 20));
    }
}
