//! Availability polls served from rendered bytes: during an on-sale every waiting
//! buyer polls `GET /v1/events/{event}/availability`, and each poll would otherwise
//! read every section's counters and serialize the same JSON again.
//!
//! One entry per event: the rendered body, the instant its counts were read (the
//! body's `at`, so clients see how fresh it is) and the catalogue it was rendered
//! from. An entry is served while younger than `http.availability_cache_ms` and only
//! to requests reading the same catalogue: an admin change publishes a new catalogue,
//! and entries of the old one are never served again.
//!
//! When an entry goes stale, the first request to see it claims the refresh and
//! renders; requests meanwhile keep getting the stale entry (for at most one more
//! window) instead of all rendering at once. The lock is held only to look an entry
//! up or put one in, never while rendering.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use axum::body::Bytes;
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderMap;
use hakken_engine::clock::Millis;
use metrics::Counter;

/// Label `result`: `hit` (served rendered bytes) or `miss` (rendered; also every
/// poll when the cache is off).
pub const AVAILABILITY_CACHE_TOTAL: &str = "hakken_http_availability_cache_total";

/// Whether the client asked for counts read now (`Cache-Control: no-cache`), as a check
/// after a run does; such reads are admitted like other work, not served from the cache.
pub fn wants_fresh(headers: &HeaderMap) -> bool {
    headers.get(CACHE_CONTROL).and_then(|value| value.to_str().ok()).is_some_and(|value| value.contains("no-cache"))
}

/// `Source` is what bodies are rendered from (the server's catalogue): an entry is
/// served only to requests reading the same one. Generic so that this stays a leaf
/// module the state ([`super::app`]) can hold.
pub struct AvailabilityCache<Source> {
    /// 0: off, every poll renders.
    fresh_for_ms: u64,
    /// By event id; only events of a catalogue get in (unknown ids are 404 first).
    entries: Mutex<HashMap<String, Arc<Rendered<Source>>>>,
    hits: Counter,
    misses: Counter,
}

/// One event's availability as rendered at `at`.
struct Rendered<Source> {
    /// The catalogue it was rendered from. Weak, so an old catalogue's sections are
    /// freed; a weak reference keeps the allocation, so the address is never reused
    /// by a newer catalogue and comparing addresses is sound.
    source: Weak<Source>,
    at: Millis,
    body: Bytes,
    /// Claimed by the one request re-rendering this entry once it is stale.
    refreshing: AtomicBool,
}

impl<Source> Rendered<Source> {
    fn age_ms(&self, now: Millis) -> Option<u64> {
        // A clock that went back makes the entry's age unknown: treat it as stale.
        now.0.checked_sub(self.at.0)
    }

    fn is_of(&self, source: &Arc<Source>) -> bool {
        std::ptr::eq(self.source.as_ptr(), Arc::as_ptr(source))
    }
}

impl<Source> AvailabilityCache<Source> {
    pub fn new(fresh_for_ms: u64) -> AvailabilityCache<Source> {
        AvailabilityCache {
            fresh_for_ms,
            entries: Mutex::default(),
            hits: metrics::counter!(AVAILABILITY_CACHE_TOTAL, "result" => "hit"),
            misses: metrics::counter!(AVAILABILITY_CACHE_TOTAL, "result" => "miss"),
        }
    }

    /// Renders a fresh body for a client that asked for one (`Cache-Control: no-cache`),
    /// leaving the cached entry as it is; counted as a miss.
    pub fn render_fresh(&self, now: Millis, render: impl FnOnce(Millis) -> Bytes) -> Bytes {
        self.misses.increment(1);
        render(now)
    }

    /// The body of `event`'s availability at `now`: a cached one rendered from
    /// `source` if fresh enough, else `render(now)`'s (then cached).
    pub fn serve(&self, source: &Arc<Source>, event: &str, now: Millis, render: impl FnOnce(Millis) -> Bytes) -> Bytes {
        if self.fresh_for_ms == 0 {
            self.misses.increment(1);
            return render(now);
        }
        let cached = self.entries.lock().expect("availability cache lock").get(event).cloned();
        if let Some(body) = cached.and_then(|entry| self.servable(&entry, source, now)) {
            self.hits.increment(1);
            return body;
        }
        self.misses.increment(1);
        let body = render(now);
        let rendered = Rendered {
            source: Arc::downgrade(source),
            at: now,
            body: body.clone(),
            refreshing: AtomicBool::new(false),
        };
        self.insert(event, rendered);
        body
    }

    /// The entry's body if this request may have it: fresh, or stale by less than
    /// one more window while another request renders its successor.
    fn servable(&self, entry: &Rendered<Source>, source: &Arc<Source>, now: Millis) -> Option<Bytes> {
        if !entry.is_of(source) {
            return None;
        }
        let age_ms = entry.age_ms(now)?;
        if age_ms < self.fresh_for_ms {
            return Some(entry.body.clone());
        }
        // The first request to see it stale claims the refresh and renders (`None`).
        let refreshing_elsewhere = entry.refreshing.swap(true, Ordering::AcqRel);
        let stale_but_bounded = age_ms < self.fresh_for_ms.saturating_mul(2);
        (refreshing_elsewhere && stale_but_bounded).then(|| entry.body.clone())
    }

    fn insert(&self, event: &str, rendered: Rendered<Source>) {
        let mut entries = self.entries.lock().expect("availability cache lock");
        let replaced = entries.insert(event.to_owned(), Arc::new(rendered));
        // A new catalogue: drop the entries of catalogues no request reads any more
        // (events no longer served must not stay in memory).
        if replaced.is_some_and(|old| old.source.strong_count() == 0) {
            entries.retain(|_, entry| entry.source.strong_count() > 0);
        }
    }

    /// Events with an entry (for tests of the memory bound).
    pub fn len(&self) -> usize {
        self.entries.lock().expect("availability cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Stands for a catalogue: only its identity matters.
    #[derive(Default)]
    struct Catalogue;

    /// A cache, the catalogue it serves, and how many times it rendered.
    struct Check {
        cache: AvailabilityCache<Catalogue>,
        catalogue: Arc<Catalogue>,
        renders: Cell<u32>,
    }

    impl Check {
        fn new(fresh_for_ms: u64) -> Check {
            Check { cache: AvailabilityCache::new(fresh_for_ms), catalogue: Arc::default(), renders: Cell::new(0) }
        }

        /// The body served at `now` (a render's body is the instant it read).
        fn poll(&self, event: &str, now: u64) -> String {
            let body = self.cache.serve(&self.catalogue, event, Millis(now), |at| {
                self.renders.set(self.renders.get() + 1);
                Bytes::from(format!("{event}@{}", at.0))
            });
            String::from_utf8(body.to_vec()).unwrap()
        }
    }

    #[test]
    fn a_poll_within_the_window_is_served_the_bytes_of_the_first() {
        let check = Check::new(250);
        assert_eq!(check.poll("e", 1_000), "e@1000");
        assert_eq!(check.poll("e", 1_249), "e@1000");
        assert_eq!(check.poll("e", 1_250), "e@1250", "at the window's end: rendered again");
        assert_eq!(check.poll("other", 1_251), "other@1251", "one entry per event");
        assert_eq!(check.poll("e", 1_251), "e@1250");
        assert_eq!((check.renders.get(), check.cache.len()), (3, 2));
    }

    #[test]
    fn off_renders_every_poll() {
        let check = Check::new(0);
        assert_eq!(check.poll("e", 1_000), "e@1000");
        assert_eq!(check.poll("e", 1_000), "e@1000");
        assert_eq!((check.renders.get(), check.cache.len()), (2, 0));
    }

    #[test]
    fn a_clock_that_went_back_renders_again() {
        let check = Check::new(250);
        check.poll("e", 1_000);
        assert_eq!(check.poll("e", 999), "e@999");
    }

    #[test]
    fn an_entry_of_an_older_catalogue_is_never_served() {
        let mut check = Check::new(60_000);
        check.poll("e", 1_000);
        check.poll("gone", 1_000);
        let old = std::mem::take(&mut check.catalogue);
        assert_eq!(check.poll("e", 1_001), "e@1001", "a new catalogue: rendered again");
        assert_eq!(check.cache.len(), 2, "a request may still read the old catalogue: its entries stay");
        drop(old);
        check.catalogue = Arc::default();
        assert_eq!(check.poll("e", 1_002), "e@1002");
        assert_eq!(check.cache.len(), 1, "no one reads the old catalogues: their entries are dropped");
    }

    #[test]
    fn while_one_request_refreshes_a_stale_entry_the_others_get_it_for_one_more_window() {
        let check = Check::new(250);
        check.poll("e", 1_000);
        let entry = check.cache.entries.lock().unwrap().get("e").cloned().unwrap();
        entry.refreshing.store(true, Ordering::Release); // another request is rendering
        assert_eq!(check.poll("e", 1_300), "e@1000", "stale, being refreshed: served");
        assert_eq!(check.renders.get(), 1);
        assert_eq!(check.poll("e", 1_500), "e@1500", "two windows old: rendered whatever the claim");
    }
}
