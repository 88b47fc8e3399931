//! `rhesis-server audit-verify`: walks the hash chain of every organization's audit log and
//! of the system chain, and fails naming each chain that is broken and its first bad event.
//! With `--head ORG:SEQ:HASH` (a head the serving server logged earlier), it also checks that
//! the named chain still holds event SEQ with that hash: a chain cut after the witness, or
//! rewritten up to it, fails naming the chain. Connects as the application role, like `serve`,
//! and needs the audit chain key.

use std::str::FromStr;

use adapters_postgres::unscoped_organization_ids;
use domain::OrganizationId;
use ports::{AuditLog, ChainVerdict};

use crate::StartupError;
use crate::config::AuditVerifyArgs;

/// A chain head witnessed earlier: `ORG:SEQ:HASH`, ORG an organization id or `system`, the
/// hash in hex, as the `audit_chain_head` log line's `witness` field prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadWitness {
    /// The organization; `None` for the system chain.
    pub organization: Option<OrganizationId>,
    pub seq: u64,
    pub hash: [u8; 32],
}

/// The name of a chain in witnesses and log lines: the organization id, or `system`.
pub(crate) fn chain_label(organization: Option<OrganizationId>) -> String {
    organization.map_or_else(|| "system".to_owned(), |o| o.as_uuid().to_string())
}

/// The name of a chain in messages.
fn chain_name(organization: Option<OrganizationId>) -> String {
    organization.map_or("the system chain".to_owned(), |o| {
        format!("organization {o}")
    })
}

impl std::fmt::Display for HeadWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            chain_label(self.organization),
            self.seq,
            crypto::audit_hash_hex(&self.hash)
        )
    }
}

impl FromStr for HeadWitness {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            "ORG:SEQ:HASH, ORG an organization id or `system`, SEQ from 1, HASH 64 hex digits"
                .to_owned()
        };
        let mut parts = text.trim().split(':');
        let (Some(org), Some(seq), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let organization = match org {
            "system" => None,
            id => Some(id.parse::<OrganizationId>().map_err(|_| bad())?),
        };
        let seq = seq.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(bad)?;
        let hash = crypto::parse_audit_hash(hash).ok_or_else(bad)?;
        Ok(Self {
            organization,
            seq,
            hash,
        })
    }
}

/// Verifies every chain and every witnessed head; the summary when all hold.
pub async fn audit_verify(args: &AuditVerifyArgs) -> Result<String, StartupError> {
    let (store, _) = crate::connect(&args.serve).await?;
    let organizations = unscoped_organization_ids(store.database())
        .await
        .map_err(StartupError::Store)?;
    let chains = std::iter::once(None).chain(
        organizations
            .into_iter()
            .map(|id| Some(OrganizationId::from_uuid(id))),
    );
    let (mut intact, mut events, mut unkeyed, mut broken) = (0_usize, 0_u64, 0_u64, Vec::new());
    for organization in chains {
        let chain = chain_name(organization);
        match store
            .unscoped_verify(organization)
            .await
            .map_err(StartupError::Store)?
        {
            ChainVerdict::Intact {
                events: n,
                unkeyed: u,
            } => {
                intact += 1;
                events += n;
                unkeyed += u;
                if u > 0 {
                    tracing::info!(%chain, unkeyed = u,
                        "events written before the chain was keyed open the chain");
                }
            }
            ChainVerdict::Broken { seq } => {
                tracing::error!(security_event = "audit_chain_broken", %chain, seq,
                    "the audit log was altered");
                broken.push(format!("{chain} at event {seq}"));
            }
        }
    }
    for witness in &args.heads {
        if let Some(problem) = check_head(&store, witness)
            .await
            .map_err(StartupError::Store)?
        {
            tracing::error!(security_event = "audit_head_mismatch", %witness, %problem,
                "a witnessed audit chain head does not hold");
            broken.push(problem);
        }
    }
    if broken.is_empty() {
        let witnessed = if args.heads.is_empty() {
            String::new()
        } else {
            format!("; {} witnessed heads hold", args.heads.len())
        };
        Ok(format!(
            "audit log intact: {intact} chains, {events} events ({unkeyed} unkeyed, written \
             before the chain was keyed){witnessed}"
        ))
    } else {
        Err(StartupError::AuditLogBroken(broken.join("; ")))
    }
}

/// What is wrong with `witness`, if anything: the chain cut before it, or its event changed.
async fn check_head(
    store: &adapters_postgres::PgStore,
    witness: &HeadWitness,
) -> Result<Option<String>, ports::StoreError> {
    let chain = chain_name(witness.organization);
    let seq = witness.seq;
    Ok(
        match store
            .unscoped_audit_event_hash(witness.organization, seq)
            .await?
        {
            None => {
                let ends = store
                    .unscoped_audit_head(witness.organization)
                    .await?
                    .map_or(0, |head| head.seq);
                Some(format!(
                    "{chain} was cut: it ends at event {ends}, before the witnessed event {seq}"
                ))
            }
            Some(hash) if hash != witness.hash => Some(format!(
                "{chain}: event {seq} differs from the witnessed head"
            )),
            Some(_) => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witnesses_read_as_the_head_log_line_prints_them() {
        let hash = [0xab; 32];
        let org: OrganizationId = "0192d4e0-7c1a-7000-8000-000000000007".parse().unwrap();
        for witness in [
            HeadWitness {
                organization: Some(org),
                seq: 12,
                hash,
            },
            HeadWitness {
                organization: None,
                seq: 1,
                hash,
            },
        ] {
            assert_eq!(witness.to_string().parse::<HeadWitness>(), Ok(witness));
        }
        let hex = "ab".repeat(32);
        for bad in [
            String::new(),
            format!("system:0:{hex}"),
            format!("system:-1:{hex}"),
            format!("nobody:1:{hex}"),
            format!("system:1:{}", &hex[1..]),
            format!("system:1:{hex}:extra"),
            "system:1".to_owned(),
        ] {
            assert!(bad.parse::<HeadWitness>().is_err(), "{bad:?}");
        }
    }
}
