//! `rhesis-server reencrypt`: every secret column under the primary key, while the server
//! runs. Connects as the application role: it crosses tenants only to list organization ids
//! (`app_organization_ids()`), then works inside each organization under its row-level
//! security, so it needs no role that bypasses RLS.

use std::io::IsTerminal;

use adapters_postgres::{ProgressEvent, ReencryptOptions, ReencryptReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::StartupError;
use crate::config::ReencryptArgs;

/// Runs the re-encryption and returns the summary to print.
pub async fn reencrypt(args: &ReencryptArgs) -> Result<String, StartupError> {
    let (store, _) = crate::connect(&args.serve).await?;
    // Progress as metrics too, while the command runs, when a listener is configured. Run
    // beside a server (`kubectl exec`), the address may be the server's own: the command
    // goes on without it.
    let _metrics = args.serve.metrics_bind.and_then(|addr| {
        crate::metrics::serve(addr, Some(store.database().clone()))
            .inspect_err(|err| {
                tracing::warn!(error = %err, "re-encryption runs without its metrics listener");
            })
            .ok()
    });
    let options = ReencryptOptions {
        batch_size: args.batch_size,
        dry_run: args.dry_run,
    };
    let terminal = std::io::stderr().is_terminal();
    let bar = ProgressBar::hidden();
    if terminal {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} organizations  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }
    let report = adapters_postgres::unscoped_reencrypt(
        store.database(),
        store.secrets(),
        options,
        |event: ProgressEvent<'_>| {
            crate::metrics::reencrypt_progress(
                event.organization_index + 1,
                event.organizations,
                event.report,
            );
            let message = format!(
                "{}.{}: scanned {}",
                event.column.table, event.column.column, event.report.scanned
            );
            if terminal {
                bar.set_length(event.organizations as u64);
                bar.set_position(event.organization_index as u64 + 1);
                bar.set_message(message);
            } else {
                eprintln!(
                    "organization {}/{} {message}",
                    event.organization_index + 1,
                    event.organizations
                );
            }
        },
    )
    .await
    .map_err(StartupError::Store)?;
    bar.finish_and_clear();
    Ok(summary(&report, args.dry_run))
}

fn summary(report: &ReencryptReport, dry_run: bool) -> String {
    let verb = if dry_run { "would be" } else { "were" };
    let mut text = format!(
        "{}rows scanned: {}\nalready current: {}\nunder an older key, re-encrypted: {} ({verb})\n\
         bare legacy tokens, rebound: {} ({verb})\nlegacy plaintext, encrypted: {} ({verb})\n\
         changed by the application meanwhile (left as written): {}\n",
        if dry_run {
            "dry run: nothing written\n"
        } else {
            ""
        },
        report.scanned,
        report.already_current,
        report.reencrypted,
        report.rebound,
        report.plaintext_encrypted,
        report.changed_concurrently,
    );
    for (key, count) in &report.per_key {
        text.push_str(&format!("values under key #{}: {count}\n", key + 1));
    }
    text.push_str(&format!("failures: {}\n", report.failures.len()));
    for failure in &report.failures {
        text.push_str(&format!(
            "  {}.{} row {}: {}\n",
            failure.table, failure.column, failure.row, failure.reason
        ));
    }
    text
}
