//! The organization's audit log, for its admins and owners: the events, and a walk of the
//! hash chain that names the first event that was altered, inserted or removed.

use actix_web::{HttpResponse, get, web};
use app::audit::ReadAuditLogError;
use chrono::{DateTime, Datelike, Utc};
use domain::{AuditAction, AuditEvent, UserId};
use ports::{AuditFilter, ChainVerdict};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::invalid;
use super::list::page_response;
use crate::ApiError;
use crate::auth::Caller;
use crate::error::Problem;

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(list_events).service(verify_chain);
}

/// Which events, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// Events at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Events before this instant (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Events of this user.
    actor_id: Option<Uuid>,
    /// Events of this action (`token.created`, `authentication.failed`, ...).
    action: Option<String>,
    /// Items to skip, at most 100000.
    skip: Option<u64>,
    /// Items to return, 1 to 100 (50 by default).
    limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventView {
    id: Uuid,
    /// Position in the organization's chain, from 1.
    seq: u64,
    occurred_at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    action: &'static str,
    target_type: Option<String>,
    target_id: Option<String>,
    /// success, failure or denied.
    outcome: &'static str,
    reason: Option<String>,
    client_ip: Option<String>,
    request_id: Option<String>,
    /// How many occurrences the event stands for: refusals of one kind from one address
    /// are counted over a minute and recorded once; 1 for everything else.
    occurrences: u32,
    /// Hex link of this event to the previous one: an HMAC-SHA256 under the server's audit
    /// chain key (plain SHA-256 for events written before the chain was keyed).
    hash: String,
    prev_hash: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: *e.id.as_uuid(),
            seq: e.seq,
            occurred_at: e.occurred_at,
            actor_id: e.actor.map(|a| *a.as_uuid()),
            action: e.action.as_str(),
            target_type: e.target_type,
            target_id: e.target_id,
            outcome: e.outcome.as_str(),
            reason: e.reason,
            client_ip: e.client_ip.map(|ip| ip.to_string()),
            request_id: e.request_id,
            occurrences: e.occurrences,
            hash: hex(&e.hash),
            prev_hash: hex(&e.prev_hash),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChainReport {
    /// `true` when every event links to the one before and hashes to its stored hash.
    intact: bool,
    /// Events checked.
    events: u64,
    /// Of those, the events written before the chain was keyed (unkeyed SHA-256 links); they
    /// can only open the chain. `null` when the chain is broken.
    unkeyed_events: Option<u64>,
    /// The first event (by position) where the chain breaks.
    first_broken_seq: Option<u64>,
}

/// The organization's security events, newest first (admins and owners).
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(EventQuery),
    responses(
        (status = 200, body = Vec<AuditEventView>),
        (status = 400, body = Problem),
        (status = 403, body = Problem)
    )
)]
#[get("/api/v1/audit-events")]
pub(crate) async fn list_events(
    caller: Caller,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let action = q
        .action
        .as_deref()
        .map(str::parse::<AuditAction>)
        .transpose()
        .map_err(|_| invalid("action"))?;
    let (skip, limit) = super::list::skip_and_limit(q.skip, q.limit)?;
    // Instants PostgreSQL can hold and a person means: years 1 to 9999.
    let instant = |field: &'static str, at: Option<DateTime<Utc>>| match at {
        Some(at) if !(1..=9999).contains(&at.year()) => Err(invalid(field)),
        at => Ok(at),
    };
    let filter = AuditFilter {
        since: instant("since", q.since)?,
        until: instant("until", q.until)?,
        actor: q.actor_id.map(UserId::from_uuid),
        action,
    };
    let events = caller
        .use_cases()
        .list_audit_events(caller.app(), filter, skip, limit)
        .await?;
    Ok(page_response(events, AuditEventView::from))
}

/// Walks the organization's hash chain (admins and owners).
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    responses((status = 200, body = ChainReport), (status = 403, body = Problem))
)]
#[get("/api/v1/audit-events/verify")]
pub(crate) async fn verify_chain(caller: Caller) -> Result<web::Json<ChainReport>, ApiError> {
    let verdict = caller.use_cases().verify_audit_chain(caller.app()).await?;
    let report = match verdict {
        ChainVerdict::Intact { events, unkeyed } => ChainReport {
            intact: true,
            events,
            unkeyed_events: Some(unkeyed),
            first_broken_seq: None,
        },
        ChainVerdict::Broken { seq } => ChainReport {
            intact: false,
            events: seq.saturating_sub(1),
            unkeyed_events: None,
            first_broken_seq: Some(seq),
        },
    };
    Ok(web::Json(report))
}

answers!(ReadAuditLogError);
