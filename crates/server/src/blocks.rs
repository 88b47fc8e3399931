//! `rhesis-server blocks`: the operator's view of the graduated response. Lists every client
//! with strikes or blocks, blocks a client for some minutes or for good, lifts a block. Each
//! change is an audit event in the system chain; running servers see it at their next refresh
//! (`BLOCK_REFRESH_MS`). Connects as the application role, like `serve`.

use std::fmt::Write as _;

use chrono::{Duration, SecondsFormat};
use domain::BlockState;
use ports::{BlockContext, BlockList, Clock, SystemClock};

use crate::StartupError;
use crate::config::{BlocksAction, BlocksArgs};

/// Runs the action; what to print.
pub async fn blocks(args: &BlocksArgs) -> Result<String, StartupError> {
    let (store, _) = crate::connect(&args.serve).await?;
    let operator = BlockContext::default();
    match &args.action {
        BlocksAction::List => {
            let entries = store.entries().await.map_err(StartupError::Store)?;
            let now = SystemClock.now();
            let mut out = format!("{} clients with strikes or blocks", entries.len());
            for e in entries {
                let state = e
                    .record
                    .block_at(now)
                    .map_or_else(|| "not blocked".to_owned(), ports::describe_block);
                let _ = write!(
                    out,
                    "\n{}\t{state}\tstrikes {}\tblocks {}\tchanged {}\t{}",
                    e.key,
                    e.record.strikes,
                    e.record.block_count,
                    e.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    e.reason.unwrap_or_default(),
                );
            }
            Ok(out)
        }
        BlocksAction::Add {
            key,
            minutes,
            permanent,
            reason,
        } => {
            let state = match (permanent, minutes) {
                (false, Some(minutes)) => {
                    BlockState::Until(SystemClock.now() + Duration::minutes(i64::from(*minutes)))
                }
                _ => BlockState::Permanent,
            };
            store
                .block(key, state, reason, &operator)
                .await
                .map_err(StartupError::Store)?;
            tracing::warn!(security_event = "client_blocked", key = %key, "blocked by the operator");
            Ok(format!("{key}: {}", ports::describe_block(state)))
        }
        BlocksAction::Lift { key, reason } => {
            let lifted = store
                .lift(key, reason, &operator)
                .await
                .map_err(StartupError::Store)?;
            if lifted {
                tracing::warn!(security_event = "client_block_lifted", key = %key,
                    "block lifted by the operator");
                Ok(format!("{key}: lifted"))
            } else {
                Ok(format!("{key}: no strikes or blocks to lift"))
            }
        }
    }
}
