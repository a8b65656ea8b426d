//! The server's state: the engine registry, the read-mostly catalogue handlers route
//! by, and the API's own bounds.
//!
//! Handlers never lock the registry on the hot path: they clone the current
//! [`Catalogue`] (one `Arc`) and call section actors through its handles. The registry
//! is locked only by admin changes, which then publish a new catalogue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use hakken_engine::actor::{SectionActor, SectionCall, SectionHandle, ShedReason, Unavailable};
use hakken_engine::clock::{Clock, Millis};
use hakken_engine::event::Event;
use hakken_engine::ids::SectionKey;
use hakken_engine::registry::Registry;
use hakken_engine::store::{StorageError, Store, StoreError};
use hakken_engine::ticket_code::{EventKey, PublicKey};
use hakken_engine::venue::Venue;
use hakken_notify::{Language, LanguageError, TimeZoneError, VenueTimeZone};

use crate::cluster::{Owners, Ownership};
use crate::config::{GatesConfig, HttpConfig};
use crate::http::availability_cache::AvailabilityCache;
use crate::http::error::{ApiError, ApiResult};
use crate::http::idempotency::Idempotency;
use crate::http::limiter::CustomerLimiter;
use crate::http::overload::Overload;
use crate::http::route_metrics::RouteMetrics;
use crate::privacy::Privacy;
use crate::waiting_rooms::{Rooms, ServedRoom};

/// One event as the server serves it: its definition, venue, section handles and
/// signing key (the state handlers route to, not a JSON body: those are `*View`s).
pub struct ServedEvent {
    pub event: Arc<Event>,
    pub venue: Arc<Venue>,
    /// By section index in the venue.
    pub sections: Vec<SectionHandle>,
    /// Signs the event's ticket codes; its seed lives in the store, never served.
    pub signing: Arc<EventKey>,
    pub public_key: PublicKey,
    /// The venue's time zone, found in the tz database when the event was taken into
    /// service: what the ticket page and the emails print times in.
    pub time_zone: VenueTimeZone,
    /// The event's language: the ticket page's and the emails'.
    pub language: Language,
    /// The event's waiting room, when it has `[queue]`: every hold then needs an access.
    pub room: Option<Arc<ServedRoom>>,
    /// Cluster mode: whether this node owns the event now (`None`: single node).
    pub ownership: Option<Arc<Ownership>>,
}

/// Why an event cannot be served: the engine checks the shape of a venue's time zone and
/// the event's language, the API checks them against its tz database and its languages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocaleError {
    #[error("venue {venue}: {error}")]
    TimeZone { venue: String, error: TimeZoneError },
    #[error("event {event}: {error}")]
    Language { event: String, error: LanguageError },
}

/// The venue's time zone and the event's language, parsed once for everything that
/// prints the event (the ticket page, the emails).
pub fn locale(event: &Event, venue: &Venue) -> Result<(VenueTimeZone, Language), LocaleError> {
    let time_zone = VenueTimeZone::parse(&venue.time_zone)
        .map_err(|error| LocaleError::TimeZone { venue: venue.id.clone(), error })?;
    let language =
        event.language.parse::<Language>().map_err(|error| LocaleError::Language { event: event.id.clone(), error })?;
    Ok((time_zone, language))
}

/// Why the catalogue could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("reading an event's signing key: {0}")]
    Store(#[from] StoreError),
    #[error("an event cannot be served: {0}")]
    Locale(#[from] LocaleError),
}

impl ServedEvent {
    /// Ok when this node serves the event; in cluster mode, the redirect to its owner
    /// otherwise. [`Catalogue::event`] asks it; handlers that find the event by a hold,
    /// order or ticket id ask it themselves.
    pub fn here(&self) -> ApiResult<()> {
        self.ownership.as_ref().map_or(Ok(()), |ownership| ownership.check(&self.event.id))
    }

    /// Whether this node owns the event (always in single-node mode): background work
    /// (the payment sweep) leaves the others to their owners.
    pub fn owned_here(&self) -> bool {
        self.ownership.as_ref().is_none_or(|ownership| ownership.is_here())
    }

    pub fn section(&self, section_id: &str) -> Option<(usize, &SectionHandle)> {
        let index = self.venue.section_index(section_id)?;
        Some((index, &self.sections[index]))
    }
}

/// Every event, by id and by section key (hold and order ids carry the key).
#[derive(Default)]
pub struct Catalogue {
    pub events: HashMap<String, Arc<ServedEvent>>,
    /// By section key: the event and the section's index in its venue.
    by_key: Vec<(Arc<ServedEvent>, usize)>,
}

impl Catalogue {
    /// Every event of the registry, with its signing key (made and stored the first
    /// time an event is seen), its venue's time zone and its language.
    fn of(
        registry: &Registry,
        store: &Store,
        rooms: &mut Rooms,
        owners: Option<&Owners>,
    ) -> Result<Catalogue, CatalogueError> {
        let mut catalogue = Catalogue::default();
        let mut keyed = Vec::new();
        for entry in registry.events() {
            let (time_zone, language) = locale(&entry.event, &entry.venue)?;
            let seed = store.event_key_seed(&entry.event.id, rand::random())?;
            let signing = Arc::new(EventKey::from_seed(seed));
            let room = match &entry.event.queue {
                Some(queue) => Some(rooms.room_of(&entry.event, queue, &signing, store, registry.config())?),
                None => None,
            };
            let served = Arc::new(ServedEvent {
                event: entry.event.clone(),
                venue: entry.venue.clone(),
                sections: entry.sections.clone(),
                public_key: signing.public(),
                signing,
                time_zone,
                language,
                room,
                ownership: owners.and_then(|owners| owners.get(&entry.event.id).cloned()),
            });
            for (index, section) in entry.sections.iter().enumerate() {
                keyed.push((section.key, served.clone(), index));
            }
            catalogue.events.insert(entry.event.id.clone(), served);
        }
        keyed.sort_by_key(|(key, _, _)| *key);
        debug_assert!(keyed.iter().enumerate().all(|(position, (key, _, _))| key.0 as usize == position));
        catalogue.by_key = keyed.into_iter().map(|(_, served, index)| (served, index)).collect();
        Ok(catalogue)
    }

    pub fn event(&self, id: &str) -> ApiResult<&Arc<ServedEvent>> {
        let served =
            self.events.get(id).ok_or_else(|| ApiError::not_found("event_not_found", format!("no event {id:?}")))?;
        served.here()?;
        Ok(served)
    }

    /// The event and section index of a section key, if the key exists.
    pub fn locate(&self, key: SectionKey) -> Option<(&Arc<ServedEvent>, usize)> {
        self.by_key.get(key.0 as usize).map(|(served, index)| (served, *index))
    }
}

/// Everything a ready server has.
pub struct App {
    /// `None` once shut down.
    registry: Mutex<Option<Registry>>,
    catalogue: RwLock<Arc<Catalogue>>,
    /// Every waiting room served so far (kept across catalogue rebuilds).
    rooms: Mutex<Rooms>,
    pub store: Arc<Store>,
    pub limiter: CustomerLimiter,
    pub idempotency: Arc<Idempotency>,
    /// Rendered availability bodies per event (`http.availability_cache_ms`).
    pub availability_cache: AvailabilityCache<Catalogue>,
    /// The registry's clock: the one "now" of the process (hold expiry, doors open).
    clock: Clock,
    /// Cluster mode: which events this node owns now.
    pub owners: Option<Arc<Owners>>,
}

impl App {
    /// Fails on a store error or on an event that cannot be served (a time zone this
    /// build's tz database does not know): a start-up error.
    pub fn new(registry: Registry, http: &HttpConfig, owners: Option<Arc<Owners>>) -> Result<App, CatalogueError> {
        let store = registry.store().expect("the server's registry is durable").clone();
        let mut rooms = Rooms::default();
        let catalogue = Arc::new(Catalogue::of(&registry, &store, &mut rooms, owners.as_deref())?);
        Ok(App {
            rooms: Mutex::new(rooms),
            clock: registry.clock().clone(),
            registry: Mutex::new(Some(registry)),
            catalogue: RwLock::new(catalogue),
            idempotency: Arc::new(Idempotency::new(store.clone(), http.idempotency_ttl_s)),
            availability_cache: AvailabilityCache::new(http.availability_cache_ms),
            store,
            limiter: CustomerLimiter::new(http.customer_requests_per_s, http.customer_requests_burst),
            owners,
        })
    }

    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue.read().expect("catalogue lock").clone()
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs `change` on the registry (admin changes: blocking, they wait for the
    /// store's writer, so callers run it off the async workers) and publishes the
    /// catalogue it leaves (storing new events' signing-key seeds through the writer).
    pub fn change_registry<T>(&self, change: impl FnOnce(&mut Registry) -> ApiResult<T>) -> ApiResult<T> {
        let mut guard = self.registry.lock().expect("registry lock");
        let registry = guard.as_mut().ok_or_else(shutting_down)?;
        let result = change(registry);
        let mut rooms = self.rooms.lock().expect("rooms lock");
        let catalogue =
            Catalogue::of(registry, &self.store, &mut rooms, self.owners.as_deref()).map_err(|error| match error {
                CatalogueError::Store(error) => {
                    tracing::error!(%error, "storing an event's signing key failed");
                    ApiError::unavailable("storage_unavailable", "the event's signing key could not be stored", 5)
                }
                // A bug: admin changes check the locale before they change the registry.
                CatalogueError::Locale(error) => {
                    tracing::error!(%error, "an event in the registry cannot be served");
                    ApiError::unavailable("internal", "the events could not be served after the change", 1)
                }
            })?;
        *self.catalogue.write().expect("catalogue lock") = Arc::new(catalogue);
        result
    }

    /// Stops the section actors and flushes the store (after the last request).
    pub fn shut_down(&self) {
        let registry = self.registry.lock().expect("registry lock").take();
        *self.catalogue.write().expect("catalogue lock") = Arc::new(Catalogue::default());
        if let Some(registry) = registry {
            registry.shutdown();
        }
    }
}

fn shutting_down() -> ApiError {
    ApiError::unavailable("shutting_down", "the server is shutting down", 1)
}

/// Calls a section actor, turning "could not" into 503s with the Retry-After of
/// `overload` (drawn only when there is a refusal to send).
pub async fn call<C>(section: &SectionHandle, call: C, overload: &Overload) -> ApiResult<C::Reply>
where
    C: SectionCall,
    SectionActor: actix::Handler<hakken_engine::actor::Call<C>>,
{
    section.call(call).await.map_err(|error| unavailable(error, overload))
}

/// Why a section call could not be made, as a 503 with Retry-After.
pub fn unavailable(unavailable: Unavailable, overload: &Overload) -> ApiError {
    let retry_after_s = overload.retry_after_s();
    match unavailable {
        Unavailable::Busy => {
            metrics::counter!(crate::http::route_metrics::REJECTIONS_TOTAL, "reason" => "section_busy").increment(1);
            ApiError::unavailable("section_busy", "this section is busy; retry after the given seconds", retry_after_s)
        }
        Unavailable::Stopped => shutting_down(),
        Unavailable::Shed(reason) => {
            metrics::counter!(crate::http::route_metrics::REJECTIONS_TOTAL, "reason" => reason.as_str()).increment(1);
            match reason {
                ShedReason::StandingQueue => ApiError::unavailable(
                    "section_busy",
                    "this section has more requests than it can serve in time; retry after the given seconds",
                    retry_after_s,
                ),
                ShedReason::DeadlinePassed | ShedReason::CallerGone => ApiError::unavailable(
                    "deadline_exceeded",
                    "the request could not be served before its deadline; nothing was changed",
                    retry_after_s,
                ),
            }
        }
        Unavailable::Storage(StorageError::NotReplicated(why)) => {
            tracing::warn!(%why, "a change was not taken by the event's cluster log");
            ApiError::unavailable(
                "not_replicated",
                "the change could not be made durable in the cluster (the event may be moving to another node); retry",
                1,
            )
        }
        Unavailable::Storage(error) => {
            tracing::error!(%error, "a change could not be made durable");
            ApiError::unavailable("storage_unavailable", "the change could not be stored; it was not made", 5)
        }
    }
}

/// The bearer tokens of the secured routes (empty: that role's routes are off).
pub struct Tokens {
    pub admin: String,
    pub gate: String,
    pub sales: String,
}

/// What every request can reach: the app once recovery has finished, and the bounds.
pub struct Shared {
    app: OnceLock<Arc<App>>,
    pub http: HttpConfig,
    pub gates: GatesConfig,
    pub admin_token: String,
    pub gate_token: String,
    pub sales_token: String,
    /// The PSP's gateway; `None` when `payments.provider = "external"`.
    pub payments: Option<Arc<crate::payments::gateway::Gateway>>,
    pub overload: Overload,
    pub shutting_down: AtomicBool,
    pub route_metrics: RouteMetrics,
    /// The master keys buyers' data and stored answers are sealed with.
    pub privacy: Arc<Privacy>,
    /// Buyers long-polling their payment; woken by the gateway's reports.
    pub payment_waiters: crate::http::payment_waiters::PaymentWaiters,
    /// The outbox relay, once it runs (`None` while notifications are off).
    pub notifications: OnceLock<crate::notifications::RelayHandle>,
    /// Cluster mode's node, once its event tasks run.
    pub cluster: OnceLock<Arc<crate::cluster::node::Node>>,
}

impl Shared {
    pub fn new(
        http: HttpConfig,
        gates: GatesConfig,
        tokens: Tokens,
        payments: Option<Arc<crate::payments::gateway::Gateway>>,
        privacy: Arc<Privacy>,
    ) -> Shared {
        let overload = Overload::new(
            http.in_flight_min,
            http.in_flight_max,
            std::time::Duration::from_millis(http.latency_target_ms),
            http.retry_after_s,
            http.retry_after_max_s,
        );
        Shared {
            app: OnceLock::new(),
            http,
            gates,
            admin_token: tokens.admin,
            gate_token: tokens.gate,
            sales_token: tokens.sales,
            payments,
            overload,
            shutting_down: AtomicBool::new(false),
            route_metrics: RouteMetrics::default(),
            privacy,
            payment_waiters: crate::http::payment_waiters::PaymentWaiters::default(),
            notifications: OnceLock::new(),
            cluster: OnceLock::new(),
        }
    }

    pub fn set_ready(&self, app: Arc<App>) {
        let _ = self.app.set(app);
    }

    /// The app, or 503 while recovery is still running.
    pub fn app(&self) -> ApiResult<&Arc<App>> {
        self.app.get().ok_or_else(|| ApiError::unavailable("starting", "the server is recovering its state", 1))
    }

    pub fn ready_app(&self) -> Option<&Arc<App>> {
        self.app.get()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}
