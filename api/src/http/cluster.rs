//! `GET /v1/admin/cluster`: cluster mode as this node sees it (which events it owns,
//! where the others' owners are, how far its store is behind each log) and as
//! JetStream has it (each event's holder, epoch and log end; the log's replicas).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::app::Shared;
use crate::http::auth::require_admin;
use crate::http::error::{ApiError, ApiResult, ErrorBody};

#[derive(Serialize, ToSchema)]
pub struct ClusterResponse {
    pub cluster: ClusterView,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterView {
    /// This node's id.
    pub node: String,
    /// The base URL other nodes redirect to.
    pub address: String,
    /// By event id.
    pub events: Vec<ClusterEventView>,
    /// What `hakken cluster status` prints: each event's lease holder, epoch, lease
    /// revision and last log sequence; the log stream's leader and replicas.
    #[schema(value_type = Object)]
    pub jetstream: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterEventView {
    pub event: String,
    /// Whether this node serves the event now.
    pub owned_here: bool,
    /// The owner's base URL when another node serves it (`null`: nobody now, or here).
    pub owner_address: Option<String>,
    /// The last message of the event's log this node's store holds.
    pub position: u64,
    /// The log's last message for the event.
    pub log_end: u64,
}

/// Cluster mode as this node and JetStream see it.
#[utoipa::path(get, path = "/v1/admin/cluster", tag = "admin",
    security(("admin_token" = [])),
    responses((status = 200, body = ClusterResponse), (status = 401, body = ErrorBody),
        (status = 409, description = "Cluster mode is off", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn cluster_status(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<ClusterResponse>> {
    require_admin(&shared, &headers)?;
    let app = shared.app()?.clone();
    let Some(node) = shared.cluster.get().cloned() else {
        return Err(ApiError::conflict("cluster_off", "this node runs alone: [cluster] enabled is false"));
    };
    let unavailable = |error: hakken_cluster::jetstream::ClusterError| {
        ApiError::unavailable("cluster_unavailable", error.to_string(), 1)
    };
    let status = hakken_cluster::status::read(&node.jetstream).await.map_err(unavailable)?;
    let mut events = Vec::new();
    for (event, ownership) in node.owners.events() {
        let position = app.store.cluster_position(event).map_err(|error| {
            tracing::error!(%error, "reading a cluster position failed");
            ApiError::unavailable("storage_unavailable", "the store could not be read", 1)
        })?;
        let log_end = status.events.iter().find(|known| known.event == *event).map_or(0, |known| known.last_sequence);
        let (owned_here, owner_address) = ownership.view();
        events.push(ClusterEventView { event: event.clone(), owned_here, owner_address, position, log_end });
    }
    events.sort_by(|a, b| a.event.cmp(&b.event));
    let jetstream = serde_json::to_value(&status).expect("the status serializes");
    Ok(axum::Json(ClusterResponse {
        cluster: ClusterView { node: node.id.clone(), address: node.address.clone(), events, jetstream },
    }))
}
