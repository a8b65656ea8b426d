//! The server's side of the verdict, read over HTTP: the event's [`Availability`]
//! (before the run, as the ledger's baseline, and after it), and after the run
//! everything [`check`](super::check) compares with the ledger ([`Observed`]): each
//! ledger order and the seat maps of the sections that sold.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Context;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::payments::PaymentsObserved;
use super::{Ledger, LedgerOrder, Ticket};
use crate::client::{query_escape, send_retrying, Pool};
use crate::layout::{get_json, get_json_fresh};
use crate::wire::PaymentView;

/// Order read-backs in flight at once.
const READ_BACKS_IN_FLIGHT_MAX: usize = 32;

/// Counts of a section, or of the whole event, as `GET /v1/events/{event}/availability`
/// gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatCounts {
    pub capacity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
}

/// The event's availability at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub total: SeatCounts,
    /// By section id.
    pub sections: BTreeMap<String, SectionCounts>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionCounts {
    /// `reserved` or `general_admission`.
    pub kind: String,
    #[serde(flatten)]
    pub counts: SeatCounts,
    /// By price category.
    #[serde(default)]
    pub categories: BTreeMap<String, SeatCounts>,
}

impl Availability {
    /// `GET /v1/events/{event}/availability`, read now (not the server's cached poll
    /// answer: a verdict compares it with seat maps read at the same time).
    pub async fn fetch(pool: &Pool, event: &str, timeout: Duration) -> anyhow::Result<Availability> {
        let reply: AvailabilityReply =
            get_json_fresh(pool, &format!("/v1/events/{event}/availability"), timeout).await?;
        Ok(reply.into())
    }

    /// Parses an availability reply body.
    pub fn parse(body: &[u8]) -> anyhow::Result<Availability> {
        let reply: AvailabilityReply = serde_json::from_slice(body).context("not an availability reply")?;
        Ok(reply.into())
    }
}

#[derive(Deserialize)]
struct AvailabilityReply {
    total: SeatCounts,
    sections: Vec<SectionReply>,
}

#[derive(Deserialize)]
struct SectionReply {
    id: String,
    kind: String,
    #[serde(flatten)]
    counts: SeatCounts,
    #[serde(default)]
    categories: Vec<CategoryReply>,
}

#[derive(Deserialize)]
struct CategoryReply {
    category: String,
    #[serde(flatten)]
    counts: SeatCounts,
}

impl From<AvailabilityReply> for Availability {
    fn from(reply: AvailabilityReply) -> Availability {
        let sections = reply
            .sections
            .into_iter()
            .map(|section| {
                let categories =
                    section.categories.into_iter().map(|category| (category.category, category.counts)).collect();
                (section.id, SectionCounts { kind: section.kind, counts: section.counts, categories })
            })
            .collect();
        Availability { total: reply.total, sections }
    }
}

/// An order as the server shows it now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ServerOrder {
    pub id: String,
    pub section: String,
    /// `confirmed` or `cancelled`.
    pub state: String,
    pub tickets: Vec<Ticket>,
    #[serde(default)]
    pub hold: String,
    #[serde(default)]
    pub total_minor: u64,
    /// `online` (paid at the PSP), `box_office` or `external` (confirmed on trust);
    /// `None` from a server before payments.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub payment: Option<PaymentView>,
}

#[derive(Deserialize)]
struct OrderReply {
    order: ServerOrder,
}

/// The state of a seat on the seat map.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SeatState {
    pub id: String,
    /// `free`, `held` or `sold`.
    pub state: String,
}

#[derive(Deserialize)]
struct SeatMapReply {
    seats: Vec<SeatState>,
}

/// What the server shows after the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub availability: Availability,
    /// Each ledger order by id: `None` when the server does not know it (404).
    pub orders: HashMap<String, Option<ServerOrder>>,
    /// Seat maps of the reserved sections whose counts changed or that the ledger sold in.
    pub seat_maps: BTreeMap<String, Vec<SeatState>>,
    /// Where the money is, for a run that paid at a PSP.
    pub payments: Option<PaymentsObserved>,
}

impl Observed {
    /// Reads everything [`check`] needs from the server.
    pub async fn fetch(pool: &Pool, ledger: &Ledger, timeout: Duration) -> anyhow::Result<Observed> {
        let availability = Availability::fetch(pool, &ledger.event, timeout).await?;
        let read_backs: Vec<_> = stream::iter(ledger.orders.iter().map(|order| read_order(pool, order, timeout)))
            .buffered(READ_BACKS_IN_FLIGHT_MAX)
            .collect()
            .await;
        let mut orders = HashMap::with_capacity(ledger.orders.len());
        for (order, read) in ledger.orders.iter().zip(read_backs) {
            orders.insert(order.id.clone(), read?);
        }
        let mut sold_in: BTreeSet<&str> = ledger.orders.iter().map(|order| order.section.as_str()).collect();
        for (id, section) in &availability.sections {
            if ledger.baseline.sections.get(id).is_none_or(|before| before.counts != section.counts) {
                sold_in.insert(id);
            }
        }
        let mut seat_maps = BTreeMap::new();
        for section in sold_in {
            if availability.sections.get(section).is_some_and(|counts| counts.kind == "reserved") {
                let path = format!("/v1/events/{}/sections/{section}/seats", ledger.event);
                let map: SeatMapReply = get_json(pool, &path, timeout).await?;
                seat_maps.insert(section.to_string(), map.seats);
            }
        }
        Ok(Observed { availability, orders, seat_maps, payments: None })
    }
}

/// `GET /v1/orders/{id}?customer=...`: `None` on 404.
async fn read_order(pool: &Pool, order: &LedgerOrder, timeout: Duration) -> anyhow::Result<Option<ServerOrder>> {
    read_order_of(pool, &order.id, &order.customer, timeout).await
}

/// `GET /v1/orders/{id}?customer=...` of `customer`'s order `id`: `None` on 404.
pub(super) async fn read_order_of(
    pool: &Pool,
    id: &str,
    customer: &str,
    timeout: Duration,
) -> anyhow::Result<Option<ServerOrder>> {
    let path = format!("/v1/orders/{id}?customer={}", query_escape(customer));
    let uri: hyper::Uri = path.parse().with_context(|| format!("order id {id:?} does not fit in a path"))?;
    let reply = send_retrying(pool, || pool.request(hyper::Method::GET, uri.clone(), None), timeout)
        .await
        .with_context(|| format!("GET {path}"))?;
    match reply.status.as_u16() {
        404 => Ok(None),
        200 => {
            let reply: OrderReply =
                serde_json::from_slice(&reply.body).with_context(|| format!("GET {path}: not an order"))?;
            Ok(Some(reply.order))
        }
        status => anyhow::bail!("GET {path}: {status} {}", String::from_utf8_lossy(&reply.body)),
    }
}
