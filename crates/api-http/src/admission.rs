//! Admission, in front of authentication and every handler: a blocked client address is
//! refused from the in-memory block list; then the request counts against its address's
//! budgets. A request over a budget is a strike of the graduated response: a 429 with a
//! warning header while strikes are few, then a 403 `blocked` for a time that doubles with
//! each block, then for good. Every admitted response carries the tightest budget left
//! (`x-ratelimit-limit`, `x-ratelimit-remaining`), the credential's own included once
//! authentication has counted it. The health probes are exempt.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use chrono::{DateTime, Utc};
use domain::{BlockKey, BlockState, StrikeVerdict};

use crate::limits::{Budget, OverBudget};
use crate::{ApiError, AppState, ErrorCode};

/// The header of a strike that did not block yet.
pub(crate) const WARNING_HEADER: &str = "x-ratelimit-warning";
pub(crate) const LIMIT_HEADER: &str = "x-ratelimit-limit";
pub(crate) const REMAINING_HEADER: &str = "x-ratelimit-remaining";

/// The budget authentication counted for the request's credential.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CredentialBudget(pub(crate) Budget);

/// The refusal of a blocked client.
pub(crate) fn blocked(state: BlockState, now: DateTime<Utc>) -> ApiError {
    tracing::info!(
        security_event = "blocked_request",
        "a blocked client was refused"
    );
    crate::metrics::blocked_request();
    let error = ApiError::new(ErrorCode::Blocked);
    match state {
        BlockState::Until(until) => {
            // Whole seconds, rounded up: coming back earlier is refused.
            let millis = u64::try_from((until - now).num_milliseconds()).unwrap_or(0);
            error.with_retry_after(millis.div_ceil(1000).max(1))
        }
        BlockState::Permanent => error,
    }
}

/// The answer to a request that struck: `otherwise` with the warning, or the block.
pub(crate) fn after_strike(
    verdict: Option<StrikeVerdict>,
    otherwise: ApiError,
    now: DateTime<Utc>,
) -> ApiError {
    match verdict {
        Some(StrikeVerdict::Warning {
            strike,
            strikes_to_block,
        }) => otherwise.with_header(
            HeaderName::from_static(WARNING_HEADER),
            &format!("strike {strike} of {strikes_to_block}; further violations block this client"),
        ),
        Some(StrikeVerdict::NewBlock(state) | StrikeVerdict::Blocked(state)) => blocked(state, now),
        None => otherwise,
    }
}

/// The 429 of a request over a budget.
pub(crate) fn over_budget(over: OverBudget) -> ApiError {
    tracing::info!(
        security_event = "rate_limited",
        budget = over.budget,
        "a client is over its budget"
    );
    crate::metrics::rate_limited(over.budget);
    ApiError::new(ErrorCode::RateLimited).with_retry_after(over.retry_after_secs)
}

pub(crate) async fn admission(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let client_ip = crate::transport::of(&req).client_ip;
    let (Some(state), Some(ip)) = (state, client_ip) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if req.path().starts_with("/health/") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // The address's two ledgers: credentials it guessed, and traffic over its budgets.
    let (guesses, traffic) = (BlockKey::address(ip), BlockKey::traffic(ip));
    let now = state.clock.now();
    let block = [&guesses, &traffic]
        .into_iter()
        .filter_map(|key| state.blocker.blocked(key, now))
        .max_by_key(|block| match block {
            BlockState::Permanent => DateTime::<Utc>::MAX_UTC,
            BlockState::Until(until) => *until,
        });
    if let Some(block) = block {
        return Ok(req.error_response(blocked(block, now)));
    }
    let BlockKey::Traffic(address) = traffic else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let anonymous = !req.headers().contains_key(AUTHORIZATION);
    let auth_route = req.path().starts_with("/auth/");
    let budget = match state.limiters.check_address(address, anonymous, auth_route) {
        Ok(budget) => budget,
        Err(over) => {
            let context = ports::BlockContext {
                actor: None,
                client_ip: Some(ip),
                request_id: crate::request_context::current_request_id(),
            };
            // A foreign page can make a victim's browser send these: never a ban.
            let verdict = state.blocker.strike(&traffic, context).await;
            return Ok(req.error_response(after_strike(verdict, over_budget(over), now)));
        }
    };
    let mut response = next.call(req).await?;
    let credential = response
        .request()
        .extensions()
        .get::<CredentialBudget>()
        .map(|b| b.0);
    let tightest = match (credential, budget) {
        (Some(credential), budget) => Some(credential.min(budget)),
        (None, budget) => budget,
    };
    if let Some(budget) = tightest {
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static(LIMIT_HEADER),
            HeaderValue::from(budget.limit),
        );
        headers.insert(
            HeaderName::from_static(REMAINING_HEADER),
            HeaderValue::from(budget.remaining),
        );
    }
    Ok(response.map_into_boxed_body())
}
