//! An event's layout as the API shows it: sections, and every reserved seat with its
//! row, number and price category. `generate` picks buyers' sections, categories and
//! seats from it; it is read once, before anything is timed.

use std::time::Duration;

use anyhow::{bail, Context};
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Method, Uri};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::client::Pool;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub event: String,
    pub sections: Vec<SectionLayout>,
    /// Price categories on sale (those with a ticket type).
    pub categories: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    Reserved,
    GeneralAdmission,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionLayout {
    pub id: String,
    pub kind: SectionKind,
    pub capacity: u32,
    /// Reserved sections: every seat, in the order of the seat map (row by row, front
    /// row first, by number). Empty for general admission.
    pub seats: Vec<SeatLayout>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatLayout {
    pub id: String,
    pub row: String,
    pub number: u16,
    pub category: String,
}

impl Layout {
    /// Reads the event (`GET /v1/events/{event}`) and, with `seats`, the seat map of
    /// every reserved section.
    pub async fn fetch(pool: &Pool, event: &str, seats: bool, timeout: Duration) -> anyhow::Result<Layout> {
        let detail: EventReply = get_json(pool, &format!("/v1/events/{event}"), timeout).await?;
        let mut sections = Vec::with_capacity(detail.event.sections.len());
        for section in detail.event.sections {
            let kind = match section.kind.as_str() {
                "reserved" => SectionKind::Reserved,
                "general_admission" => SectionKind::GeneralAdmission,
                other => bail!("section {}: unknown kind {other:?}", section.id),
            };
            let seats = if seats && kind == SectionKind::Reserved {
                let map: SeatMapReply =
                    get_json(pool, &format!("/v1/events/{event}/sections/{}/seats", section.id), timeout).await?;
                map.seats
                    .into_iter()
                    .map(|seat| SeatLayout { id: seat.id, row: seat.row, number: seat.number, category: seat.category })
                    .collect()
            } else {
                Vec::new()
            };
            sections.push(SectionLayout { id: section.id, kind, capacity: section.capacity, seats });
        }
        let mut categories: Vec<String> =
            detail.event.ticket_types.into_iter().map(|ticket_type| ticket_type.category).collect();
        categories.sort();
        categories.dedup();
        Ok(Layout { event: event.to_string(), sections, categories })
    }

    pub fn capacity(&self) -> u64 {
        self.sections.iter().map(|section| u64::from(section.capacity)).sum()
    }
}

/// `GET path`, expecting 200 and a JSON body of type `T`.
pub async fn get_json<T: DeserializeOwned>(pool: &Pool, path: &str, timeout: Duration) -> anyhow::Result<T> {
    get_json_with(pool, path, timeout, false).await
}

/// [`get_json`], asking for an answer read now rather than a cached one
/// (`Cache-Control: no-cache`; hakken caches availability polls for a moment).
pub async fn get_json_fresh<T: DeserializeOwned>(pool: &Pool, path: &str, timeout: Duration) -> anyhow::Result<T> {
    get_json_with(pool, path, timeout, true).await
}

async fn get_json_with<T: DeserializeOwned>(
    pool: &Pool,
    path: &str,
    timeout: Duration,
    fresh: bool,
) -> anyhow::Result<T> {
    let uri: Uri = path.parse().with_context(|| format!("{path:?} is not a valid path"))?;
    let mut request = pool.request(Method::GET, uri, None);
    if fresh {
        request.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    let reply = pool
        .send_within(request, timeout)
        .await
        .with_context(|| format!("GET {path}: no reply in {timeout:?}"))?
        .with_context(|| format!("GET {path}"))?;
    if !reply.status.is_success() {
        bail!("GET {path}: {} {}", reply.status, String::from_utf8_lossy(&reply.body));
    }
    serde_json::from_slice(&reply.body).with_context(|| format!("GET {path}: unexpected reply"))
}

#[derive(Deserialize)]
struct EventReply {
    event: EventInfo,
}

#[derive(Deserialize)]
struct EventInfo {
    sections: Vec<SectionInfo>,
    #[serde(default)]
    ticket_types: Vec<TicketTypeInfo>,
}

#[derive(Deserialize)]
struct SectionInfo {
    id: String,
    kind: String,
    capacity: u32,
}

#[derive(Deserialize)]
struct TicketTypeInfo {
    category: String,
}

#[derive(Deserialize)]
struct SeatMapReply {
    seats: Vec<SeatInfo>,
}

#[derive(Deserialize)]
struct SeatInfo {
    id: String,
    row: String,
    number: u16,
    category: String,
}
