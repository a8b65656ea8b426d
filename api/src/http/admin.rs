//! Admin endpoints (`Authorization: Bearer <admin token>`): create an event on a
//! venue, change its name, on-sale window and prices, open or close its sale, back up
//! the store. Each change is stored (synced) before it is answered, the event's
//! definition and the change's audit entry in one batch; public endpoints never
//! change an event. Everything that touches the disk runs off the async workers.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hakken_engine::actor::SetTerms;
use hakken_engine::audit;
use hakken_engine::clock::Millis;
use hakken_engine::event::{format_instant, parse_instant, Event, OnSaleWindow, TicketType, LANGUAGE_DEFAULT};
use hakken_engine::registry::RegistryError;
use hakken_engine::wal::{AuditRecord, PrincipalRecord};

use crate::http::app::{call, locale, App, LocaleError, Shared};
use crate::http::auth::require_admin;
use crate::http::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::http::views::{
    event_detail, BackupRequest, BackupResponse, CreateEventRequest, EventResponse, OnSaleRequest, QueueRequest,
    UpdateEventRequest,
};

fn instant(field: &str, text: &str) -> ApiResult<Millis> {
    parse_instant(text).map_err(|problem| ApiError::invalid("invalid_time", format!("`{field}`: {problem}")))
}

fn window(on_sale: &OnSaleRequest) -> ApiResult<OnSaleWindow> {
    Ok(OnSaleWindow {
        opens_at: instant("on_sale.opens_at", &on_sale.opens_at)?,
        closes_at: instant("on_sale.closes_at", &on_sale.closes_at)?,
    })
}

/// An event the API could not print: its venue's time zone is not in the tz database,
/// or its language is not one of the templates'.
fn locale_error(error: LocaleError) -> ApiError {
    match error {
        LocaleError::TimeZone { .. } => ApiError::invalid("unknown_time_zone", error.to_string()),
        LocaleError::Language { .. } => ApiError::invalid("invalid_language", error.to_string()),
    }
}

/// Checks that the event can be served (see [`locale`]), then the engine's checks.
fn check_event(event: &Event, venue: &hakken_engine::venue::Venue) -> ApiResult<()> {
    locale(event, venue).map_err(locale_error)?;
    event.check(venue).map_err(|problem| ApiError::invalid("invalid_event", problem))
}

fn registry_error(error: RegistryError) -> ApiError {
    match error {
        RegistryError::UnknownVenue(_) => ApiError::not_found("venue_not_found", error.to_string()),
        RegistryError::UnknownEvent(_) => ApiError::not_found("event_not_found", error.to_string()),
        RegistryError::DuplicateEvent(_) => ApiError::conflict("event_exists", error.to_string()),
        RegistryError::DuplicateVenue(_) | RegistryError::VenueChange(_) => {
            ApiError::invalid("invalid_event", error.to_string())
        }
        RegistryError::Storage(_) => {
            tracing::error!(%error, "storing an event failed");
            ApiError::unavailable("storage_unavailable", "the event could not be stored; nothing changed", 5)
        }
    }
}

/// Runs a blocking registry change (it syncs the store) off the async workers.
async fn change<T: Send + 'static>(
    app: &Arc<App>,
    change: impl FnOnce(&mut hakken_engine::registry::Registry) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    if app.owners.is_some() {
        // Each node's catalogue would change alone: events and venues are not in the log.
        return Err(ApiError::conflict(
            "cluster_mode",
            "in cluster mode events come from the configuration every node loads; change the files and restart the nodes one by one",
        ));
    }
    let app = app.clone();
    tokio::task::spawn_blocking(move || app.change_registry(change))
        .await
        .map_err(|_| ApiError::unavailable("internal", "the change failed", 1))?
}

/// Create an event on a configured venue; it is stored before it goes on sale.
#[utoipa::path(post, path = "/v1/events", tag = "admin",
    request_body = CreateEventRequest,
    security(("admin_token" = [])),
    responses((status = 201, body = EventResponse), (status = 401, body = ErrorBody), (status = 404, description = "Unknown venue", body = ErrorBody),
        (status = 409, description = "Event id taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_event(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<CreateEventRequest>,
) -> ApiResult<(StatusCode, axum::Json<EventResponse>)> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?;
    let venue_id = request.venue.clone();
    let venue = change(app, move |registry| {
        registry.venue(&venue_id).cloned().ok_or_else(|| registry_error(RegistryError::UnknownVenue(venue_id)))
    })
    .await?;
    let ticket_types = request
        .ticket_types
        .iter()
        .map(|ticket_type| {
            let category = venue.category_index(&ticket_type.category).ok_or_else(|| {
                ApiError::invalid("unknown_category", format!("venue has no category {:?}", ticket_type.category))
            })?;
            Ok(TicketType {
                id: ticket_type.id.clone(),
                name: ticket_type.name.clone(),
                category,
                price_minor: ticket_type.price_minor,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let event = Event {
        id: request.id,
        name: request.name,
        venue_id: request.venue,
        starts_at: instant("starts_at", &request.starts_at)?,
        on_sale: window(&request.on_sale)?,
        currency: request.currency,
        ticket_types,
        language: request.language.unwrap_or_else(|| LANGUAGE_DEFAULT.to_string()),
        queue: request.queue.as_ref().map(QueueRequest::settings),
    };
    check_event(&event, &venue)?;
    let id = event.id.clone();
    let detail =
        format!("venue {}, starts {}, language {}", event.venue_id, format_instant(event.starts_at), event.language);
    let entry = admin_entry(app, &id, "event_create", detail);
    change(app, move |registry| registry.add_event_audited(event, vec![entry]).map(|_| ()).map_err(registry_error))
        .await?;
    tracing::info!(event = %id, "event created");
    let catalogue = app.catalogue();
    let served = catalogue.event(&id)?;
    Ok((StatusCode::CREATED, axum::Json(EventResponse { event: event_detail(served, app.now().0) })))
}

/// Change an event's name, on-sale window, prices or language.
#[utoipa::path(patch, path = "/v1/events/{event}", tag = "admin",
    params(("event" = String, Path, description = "Event id")),
    request_body = UpdateEventRequest,
    security(("admin_token" = [])),
    responses((status = 200, body = EventResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_event(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(request): Json<UpdateEventRequest>,
) -> ApiResult<axum::Json<EventResponse>> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?;
    let on_sale = request.on_sale.as_ref().map(window).transpose()?;
    apply(&shared, app, &id, "event_update", move |event| {
        if let Some(name) = request.name {
            event.name = name;
        }
        if let Some(on_sale) = on_sale {
            event.on_sale = on_sale;
        }
        if let Some(language) = request.language {
            event.language = language;
        }
        if let Some(queue) = &request.queue {
            event.queue = Some(queue.over(&event.queue.unwrap_or_default()));
        }
        for (ticket_type, price) in request.prices.unwrap_or_default() {
            let found = event.ticket_types.iter_mut().find(|known| known.id == ticket_type);
            let found = found.ok_or_else(|| {
                ApiError::invalid("unknown_ticket_type", format!("the event has no ticket type {ticket_type:?}"))
            })?;
            found.price_minor = price;
        }
        Ok(())
    })
    .await
}

/// Open the on-sale now (until its closing time, or a year from now if that has passed).
#[utoipa::path(post, path = "/v1/events/{event}/open", tag = "admin",
    params(("event" = String, Path, description = "Event id")),
    security(("admin_token" = [])),
    responses((status = 200, body = EventResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn open_sale(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EventResponse>> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?;
    let now = app.now();
    apply(&shared, app, &id, "sale_open", move |event| {
        event.on_sale.opens_at = now;
        if event.on_sale.closes_at <= now {
            event.on_sale.closes_at = now.saturating_add(365 * 24 * 3600 * 1000);
        }
        Ok(())
    })
    .await
}

/// Close the on-sale now: new holds are refused; live holds may still be confirmed.
#[utoipa::path(post, path = "/v1/events/{event}/close", tag = "admin",
    params(("event" = String, Path, description = "Event id")),
    security(("admin_token" = [])),
    responses((status = 200, body = EventResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn close_sale(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EventResponse>> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?;
    let now = app.now();
    apply(&shared, app, &id, "sale_close", move |event| {
        event.on_sale.closes_at = now;
        if event.on_sale.opens_at >= now {
            event.on_sale.opens_at = Millis(now.0.saturating_sub(1));
        }
        Ok(())
    })
    .await
}

/// The audit entry of an admin change.
fn admin_entry(app: &App, event: &str, action: &str, detail: String) -> AuditRecord {
    audit::event_entry(event, app.now().0, &PrincipalRecord::Admin, action, "ok", detail)
}

/// What the audit log says of an event's terms after a change.
fn terms_detail(event: &Event) -> String {
    format!(
        "name {:?}, on sale {} to {}, prices {:?}, language {}, {}",
        event.name,
        format_instant(event.on_sale.opens_at),
        format_instant(event.on_sale.closes_at),
        event.ticket_types.iter().map(|ticket_type| (&ticket_type.id, ticket_type.price_minor)).collect::<Vec<_>>(),
        event.language,
        event.queue.as_ref().map_or_else(
            || "no waiting room".to_string(),
            |queue| format!(
                "waiting room from {} s before, {}-{} admissions/s, access {} s, {} places",
                queue.opens_before_sale_s,
                queue.admit_per_s_min,
                queue.admit_per_s_max,
                queue.access_window_s,
                queue.places_max
            )
        )
    )
}

/// Edits the event, checks it, stores it with its audit entry (`action` names the
/// change), then tells its sections.
async fn apply(
    shared: &Shared,
    app: &Arc<App>,
    id: &str,
    action: &'static str,
    edit: impl FnOnce(&mut Event) -> ApiResult<()> + Send + 'static,
) -> ApiResult<axum::Json<EventResponse>> {
    let id = id.to_string();
    let at_ms = app.now().0;
    let (event, sections) = change(app, move |registry| {
        let entry =
            registry.event(&id).ok_or_else(|| ApiError::not_found("event_not_found", format!("no event {id:?}")))?;
        let mut event = Event::clone(&entry.event);
        edit(&mut event)?;
        check_event(&event, &entry.venue)?;
        let audit = audit::event_entry(&event.id, at_ms, &PrincipalRecord::Admin, action, "ok", terms_detail(&event));
        registry.update_event_audited(event, vec![audit]).map_err(registry_error)
    })
    .await?;
    for section in &sections {
        call(section, SetTerms { event: event.clone() }, &shared.overload).await?;
    }
    tracing::info!(event = %event.id, "event changed");
    let catalogue = app.catalogue();
    let served = catalogue.event(&event.id)?;
    Ok(axum::Json(EventResponse { event: event_detail(served, app.now().0) }))
}

/// A consistent copy of the whole store, taken while sales go on (`hakken restore`
/// puts it back).
#[utoipa::path(post, path = "/v1/admin/backup", tag = "admin",
    request_body = BackupRequest,
    security(("admin_token" = [])),
    responses((status = 201, body = BackupResponse), (status = 401, body = ErrorBody), (status = 409, description = "Path exists", body = ErrorBody)))]
pub async fn backup(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<BackupRequest>,
) -> ApiResult<(StatusCode, axum::Json<BackupResponse>)> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?;
    let path = PathBuf::from(&request.path);
    if request.path.is_empty() {
        return Err(ApiError::invalid("invalid_path", "`path` is empty"));
    }
    let store = app.store.clone();
    let target = path.clone();
    // Every step touches the disk (even `exists`): all of it on a blocking thread.
    let bytes = tokio::task::spawn_blocking(move || {
        if target.exists() {
            let message = format!("{} exists; back up into a new directory", target.display());
            return Err(ApiError::conflict("path_exists", message));
        }
        store.backup(&target).map_err(|error| ApiError::invalid("backup_failed", error.to_string()))?;
        Ok(hakken_engine::store::directory_bytes(&target))
    })
    .await
    .map_err(|_| ApiError::unavailable("internal", "the backup failed", 1))??;
    let entry = admin_entry(app, "", "backup", format!("{} bytes into {}", bytes, path.display()));
    app.store.wal().audit_durable(vec![entry]).await.map_err(|error| {
        tracing::error!(%error, "the backup's audit entry was not written");
        ApiError::unavailable("storage_unavailable", "the audit log could not be written", 5)
    })?;
    tracing::info!(path = %path.display(), bytes, "backup taken");
    Ok((StatusCode::CREATED, axum::Json(BackupResponse { path: request.path, bytes })))
}
