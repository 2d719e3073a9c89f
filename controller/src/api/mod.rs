//! The management API: HTTP and JSON over a [`Management`] backend (the controller's engine, or
//! a test's), served with axum. `fcsan volume` is its client; [`views`] holds the types both
//! sides share.
//!
//! | Method and path | Success | Body | Errors |
//! |-----------------|---------|------|--------|
//! | `GET /v1/volumes` | 200 | `[VolumeView]`, every live volume of the common mapping (figure 4) | |
//! | `GET /v1/volumes/{name}` | 200 | `VolumeView` | 400 bad name, 404 |
//! | `POST /v1/volumes` | 201, `Location` | `VolumeView` of the volume built (figure 7) | 400, 409, 503, 504, 507 |
//! | `DELETE /v1/volumes/{name}[?keep=OTHER]` | 204 | none; with `keep`, the data is first copied to `OTHER` (PATENT.md \[0086\]) | 400, 404, 503, 504 |
//! | `POST /v1/volumes/{name}/replicas` | 202, `Location` | `ReplicaState`, syncing: a replica is being made from the body `{"type"?, "site"?}` ([`ReplicaSpec`], PATENT.md \[0098\]-\[0100\]) | 400, 404, 409 (not the owner; a replica already syncing), 503, 504, 507 |
//! | `GET /v1/volumes/{name}/replicas` | 200 | `ReplicaState`: `none`, `syncing` (bytes copied of the total, rate), `in-sync` or `failed` (and why) | 400 bad name, 404 |
//! | `GET /v1/volumes/{name}/io` | 200 | `VolumeIoView`: `{"lun", "counters", "replica"}` at the answering controller | 400 bad name, 404 |
//! | `PUT /v1/volumes/{name}/masking` | 200 | `VolumeView`, its `masking` set from the body `{"hosts": [WWPN, ...]}` ([`MaskingSpec`]; `[]`: every host) | 400, 404, 409 (not the owner), 503 |
//! | `GET /v1/real-volumes` | 200 | `RealVolumesView` of the answering controller's SAN (figure 3) | |
//! | `GET /v1/peers` | 200 | `[PeerView]`, itself first | |
//! | `GET /v1/counters` | 200 | `CountersView` | |
//! | `GET /`, `/index.html`, `/app.js`, `/style.css` | 200 | the operator's page ([`web`]): HTML, JavaScript, CSS | |
//!
//! Every error is a status with a JSON body `{"error": "..."}` ([`views::ErrorBody`]), which
//! for a 400 also names the `field`, for a 409 the `holder` of the name (or, with `field`
//! `name`, the controller that owns the volume: only it changes the volume) and for a 507 what
//! was `found` where. Nothing a client sends makes the server panic: a body that is not JSON, not
//! an object, has a field of the wrong type or one it does not know, a bad name in the path or
//! the query — each is a 400 that says which field; an unknown path is a 404 and a method a
//! path does not take a 405 (with `Allow`), both in JSON too. A build's body is read as JSON
//! whatever its `Content-Type` says (so `curl -d` works), up to axum's default limit of 2 MiB
//! (413 past it).

pub mod views;
pub mod web;

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::model::VolumeName;
use views::{
    format_bytes, CountersView, ErrorBody, FieldError, FoundView, PeerView, RealVolumesView,
    ReplicaState, VolumeIoView, VolumeView,
};

pub use views::{BuildSpec, MaskingSpec, ReplicaSpec};

/// What the API asks of the controller. The engine implements it; the HTTP layer only reads
/// requests, calls it and writes its answers.
#[async_trait::async_trait]
pub trait Management: Send + Sync + 'static {
    /// Every live volume of the common mapping, in name order.
    async fn volumes(&self) -> Vec<VolumeView>;
    /// The volume `name` means (the winner, when two owners hold the name), if any.
    async fn volume(&self, name: &VolumeName) -> Option<VolumeView>;
    /// Builds a volume (figure 7): claims the name, reserves space in SAN priority order, all
    /// or nothing, commits and propagates the mapping; answers the volume built.
    async fn build(&self, req: BuildSpec) -> Result<VolumeView, ApiError>;
    /// Deletes a volume; with `keep_in`, first copies its data into that volume
    /// (PATENT.md \[0086\]).
    async fn delete(&self, name: &VolumeName, keep_in: Option<VolumeName>) -> Result<(), ApiError>;
    /// Adds a replica to a volume this controller owns (PATENT.md \[0098\]-\[0100\]): space
    /// reserved, the copy started in the background; answers the replica's state (syncing).
    async fn add_replica(
        &self,
        name: &VolumeName,
        spec: ReplicaSpec,
    ) -> Result<ReplicaState, ApiError>;
    /// The volume's replica: being made (with its progress), in sync, failed, or none.
    async fn replica(&self, name: &VolumeName) -> Result<ReplicaState, ApiError>;
    /// The volume's I/O at this controller: its LUN, counters and replica.
    async fn volume_io(&self, name: &VolumeName) -> Result<VolumeIoView, ApiError>;
    /// Sets the hosts that may see a volume this controller owns (empty: every host);
    /// answers the volume.
    async fn set_masking(
        &self,
        name: &VolumeName,
        spec: MaskingSpec,
    ) -> Result<VolumeView, ApiError>;
    /// The controller's own SAN (figure 3).
    async fn real_volumes(&self) -> RealVolumesView;
    /// Itself and the peers it knows.
    async fn peers(&self) -> Vec<PeerView>;
    /// Its counters.
    async fn counters(&self) -> CountersView;
}

/// Why a request failed, as the backend or the HTTP layer says it; each maps to a status and
/// an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: a request field is wrong.
    #[error("{field}: {reason}")]
    BadRequest {
        /// The field (`name`, `type`, `capacity`, `keep`, `site`, `hosts`, `body`, `path`,
        /// `query`).
        field: &'static str,
        /// Why, for a person.
        reason: String,
    },
    /// 404: no volume of that name.
    #[error("no volume named {0}")]
    NotFound(VolumeName),
    /// 409: the name is held, by a volume or by another builder's claim.
    #[error("the name {name} is held by controller {holder}")]
    NameTaken {
        /// The name asked for.
        name: VolumeName,
        /// The controller that holds it.
        holder: String,
    },
    /// 409: the volume is owned by another controller, and only its owner changes it.
    #[error("volume {name} is owned by controller {owner}; ask that controller")]
    NotOwner {
        /// The volume.
        name: VolumeName,
        /// The controller that owns it.
        owner: String,
    },
    /// 409: the volume is in the middle of another change that must end first (a replica
    /// being synchronized).
    #[error("volume {name} is busy: {reason}")]
    Busy {
        /// The volume.
        name: VolumeName,
        /// With what.
        reason: String,
    },
    /// 507: the SANs asked (figure 7, S703-S711) did not have enough free space of the type.
    #[error("{}", insufficient(found))]
    Insufficient {
        /// What was found where.
        found: Vec<FoundView>,
    },
    /// 503: the controller cannot take changes yet (it is catching up with its peers after
    /// losing its database, or has not found them yet).
    #[error("the controller is not ready to take changes yet; try again shortly")]
    NotReady,
    /// 504: a controller the request needed did not answer in time.
    #[error("controller {peer} did not answer")]
    Unreachable {
        /// The controller.
        peer: String,
    },
    /// 500: the controller failed (its database, say).
    #[error("internal error: {0}")]
    Internal(String),
}

fn insufficient(found: &[FoundView]) -> String {
    let total = found.iter().fold(0u64, |t, f| t.saturating_add(f.bytes));
    let mut s = format!(
        "not enough free space of the type asked for: found {} in all",
        format_bytes(total)
    );
    for (i, f) in found.iter().enumerate() {
        s.push_str(if i == 0 { " (" } else { ", " });
        s.push_str(&format!(
            "{} of {} at {} on site {}",
            format_bytes(f.bytes),
            f.media,
            f.controller,
            f.site
        ));
    }
    if !found.is_empty() {
        s.push(')');
    }
    s
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NameTaken { .. } | ApiError::NotOwner { .. } | ApiError::Busy { .. } => {
                StatusCode::CONFLICT
            }
            ApiError::Insufficient { .. } => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unreachable { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody {
            error: self.to_string(),
            ..ErrorBody::default()
        };
        match self {
            ApiError::BadRequest { field, .. } => body.field = Some((*field).to_owned()),
            ApiError::NameTaken { holder, .. } => body.holder = Some(holder.clone()),
            ApiError::NotOwner { owner, .. } => {
                body.field = Some("name".to_owned());
                body.holder = Some(owner.clone());
            }
            ApiError::Busy { .. } => body.field = Some("name".to_owned()),
            ApiError::Insufficient { found } => body.found = found.clone(),
            _ => {}
        }
        body
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        ApiError::BadRequest {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::warn!(error = %self, "management request failed");
        }
        (self.status(), Json(self.body())).into_response()
    }
}

/// A request the HTTP layer refused before the backend saw it: what an extractor rejected
/// (keeping the status it chose, such as 413 for a body over the limit), or an [`ApiError`].
enum Refusal {
    Api(ApiError),
    Rejected {
        status: StatusCode,
        field: &'static str,
        reason: String,
    },
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Refusal {
        Refusal::Api(e)
    }
}

impl From<FieldError> for Refusal {
    fn from(e: FieldError) -> Refusal {
        Refusal::Api(e.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Api(e) => e.into_response(),
            Refusal::Rejected {
                status,
                field,
                reason,
            } => (
                status,
                Json(ErrorBody {
                    error: format!("{field}: {reason}"),
                    field: Some(field.to_owned()),
                    ..ErrorBody::default()
                }),
            )
                .into_response(),
        }
    }
}

type Backend = Arc<dyn Management>;

/// The API's routes over `backend`.
pub fn router(backend: Backend) -> Router {
    Router::new()
        .route("/v1/volumes", get(list_volumes).post(build_volume))
        .route("/v1/volumes/{name}", get(show_volume).delete(delete_volume))
        .route(
            "/v1/volumes/{name}/replicas",
            get(show_replica).post(add_replica),
        )
        .route("/v1/volumes/{name}/io", get(volume_io))
        .route("/v1/volumes/{name}/masking", put(set_masking))
        .route("/v1/real-volumes", get(real_volumes))
        .route("/v1/peers", get(peers))
        .route("/v1/counters", get(counters))
        .merge(web::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(backend)
}

/// Serves the API on `listener` until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, backend: Backend) -> io::Result<()> {
    axum::serve(listener, router(backend)).await
}

/// Serves the API on `listener` until `stop` resolves, then lets the requests under way finish.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    backend: Backend,
    stop: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(backend))
        .with_graceful_shutdown(stop)
        .await
}

async fn list_volumes(State(backend): State<Backend>) -> Json<Vec<VolumeView>> {
    Json(backend.volumes().await)
}

async fn show_volume(
    State(backend): State<Backend>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<VolumeView>, Refusal> {
    let name = path_name(name)?;
    match backend.volume(&name).await {
        Some(v) => Ok(Json(v)),
        None => Err(ApiError::NotFound(name).into()),
    }
}

async fn build_volume(
    State(backend): State<Backend>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let spec = BuildSpec::from_json(&body_bytes(body)?)?;
    let view = backend.build(spec).await?;
    let location = format!("/v1/volumes/{}", view.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// The query of a delete.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// The volume to copy the data into first.
    keep: Option<String>,
}

async fn delete_volume(
    State(backend): State<Backend>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<DeleteQuery>, QueryRejection>,
) -> Result<StatusCode, Refusal> {
    let name = path_name(name)?;
    let Query(query) = query.map_err(|r| Refusal::Rejected {
        status: StatusCode::BAD_REQUEST,
        field: "query",
        reason: r.body_text(),
    })?;
    let keep = match query.keep {
        None => None,
        Some(k) => Some(VolumeName::new(k).map_err(|e| ApiError::BadRequest {
            field: "keep",
            reason: e.to_string(),
        })?),
    };
    if keep.as_ref() == Some(&name) {
        return Err(ApiError::BadRequest {
            field: "keep",
            reason: format!("cannot keep the data of {name} in {name} itself"),
        }
        .into());
    }
    backend.delete(&name, keep).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A request body, or the refusal of the extractor (413 past the limit).
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    body.map_err(|r| Refusal::Rejected {
        status: r.status(),
        field: "body",
        reason: r.body_text(),
    })
}

async fn add_replica(
    State(backend): State<Backend>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let name = path_name(name)?;
    let spec = ReplicaSpec::from_json(&body_bytes(body)?)?;
    let state = backend.add_replica(&name, spec).await?;
    let location = format!("/v1/volumes/{name}/replicas");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(state),
    )
        .into_response())
}

async fn show_replica(
    State(backend): State<Backend>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<ReplicaState>, Refusal> {
    let name = path_name(name)?;
    Ok(Json(backend.replica(&name).await?))
}

async fn volume_io(
    State(backend): State<Backend>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<VolumeIoView>, Refusal> {
    let name = path_name(name)?;
    Ok(Json(backend.volume_io(&name).await?))
}

async fn set_masking(
    State(backend): State<Backend>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<VolumeView>, Refusal> {
    let name = path_name(name)?;
    let spec = MaskingSpec::from_json(&body_bytes(body)?)?;
    Ok(Json(backend.set_masking(&name, spec).await?))
}

async fn real_volumes(State(backend): State<Backend>) -> Json<RealVolumesView> {
    Json(backend.real_volumes().await)
}

async fn peers(State(backend): State<Backend>) -> Json<Vec<PeerView>> {
    Json(backend.peers().await)
}

async fn counters(State(backend): State<Backend>) -> Json<CountersView> {
    Json(backend.counters().await)
}

async fn no_route(method: Method, uri: Uri) -> Refusal {
    Refusal::Rejected {
        status: StatusCode::NOT_FOUND,
        field: "path",
        reason: format!(
            "no such resource: {method} {} (the API is under /v1/: volumes, volumes/NAME/replicas, volumes/NAME/io, volumes/NAME/masking, real-volumes, peers, counters; the operator's page is /)",
            uri.path()
        ),
    }
}

async fn wrong_method(method: Method, uri: Uri) -> Refusal {
    Refusal::Rejected {
        status: StatusCode::METHOD_NOT_ALLOWED,
        field: "method",
        reason: format!("{} does not take {method}", uri.path()),
    }
}

/// The volume name of a path, checked.
fn path_name(name: Result<Path<String>, PathRejection>) -> Result<VolumeName, Refusal> {
    let Path(name) = name.map_err(|r| Refusal::Rejected {
        status: StatusCode::BAD_REQUEST,
        field: "path",
        reason: r.body_text(),
    })?;
    VolumeName::new(name).map_err(|e| {
        ApiError::BadRequest {
            field: "name",
            reason: e.to_string(),
        }
        .into()
    })
}
