//! The repairer: finds shards the chain marked for repair (their provider missed or failed a
//! proof), rebuilds each from k other shards, stores it with a provider that holds no shard
//! of the deal, and posts `RepairShard` with that provider's receipt.
//!
//! Rebuilding re-encodes decoded segments, so the repairer needs the blob's protection: any
//! repairer for public blobs, the owner (its data key in `records`) for encrypted ones.
//!
//! A rebuild of an inconsistent upload (shards that are not one codeword) cannot succeed
//! however often it is tried: after a failed rebuild the repairer audits the deal and posts
//! the inconsistency proof, which marks it invalid so nobody is paid to keep it.

use crate::chain;
use cairn_client::NodeClient;
use cairn_client::audit::{Audit, audit};
use cairn_client::store::{StoreError, live_storage_providers, place, protection_of, repair_shard};
use cairn_coding::{CodingError, DEFAULT_MAX_PIECE_SIZE_BYTES, Layout};
use cairn_types::{DealId, Keypair};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Most deals one pass looks at (deal ids are dense from 0).
const MAX_DEALS_PER_PASS: u64 = 10_000;

/// Audits a deal whose rebuild failed: if its shards are not one codeword, no rebuild can
/// ever succeed, and the proof ends the deal. A strict read names the segment where it met
/// the inconsistency, and only that segment is scanned; any other failure of the rebuild
/// (which can be an inconsistency met on a path that reports it otherwise, or just
/// unreachable shards) scans the whole shard, once per deal in this repairer's life unless
/// the audit itself could not finish. Failures after the rebuild (the new provider refusing
/// the shard, the node, the repair transaction) say nothing about the encoding.
fn audit_after_failure(
    node: &NodeClient,
    key: &Keypair,
    deal: &chain::DealView,
    protection: &cairn_coding::Protection,
    error: &StoreError,
    audited: &mut BTreeSet<DealId>,
    log: &mut dyn FnMut(String),
) {
    let id = deal.id.0;
    let range = match error {
        StoreError::Coding(CodingError::InconsistentEncoding { segment, .. }) => Layout::from_meta(
            &deal.blob,
            DEFAULT_MAX_PIECE_SIZE_BYTES,
            protection.is_encrypted(),
        )
        .map(|layout| layout.piece_range(*segment))
        .ok(),
        StoreError::Placement(_) | StoreError::Node(_) | StoreError::TxFailed { .. } => return,
        _ if audited.contains(&deal.id) => return,
        _ => None,
    };
    match audit(node, key, deal.id, range) {
        Ok(Audit::Reported { leaf_index, tx, .. }) => log(format!(
            "deal {id}: shards are not one codeword at leaf {leaf_index}; proof posted in {tx}"
        )),
        Ok(Audit::Consistent { scanned_bytes, .. }) => {
            audited.insert(deal.id);
            log(format!(
                "deal {id}: {scanned_bytes} bytes of every shard are one codeword; the rebuild failed for another reason"
            ));
        }
        Err(e) => log(format!("deal {id}: auditing after a failed rebuild: {e}")),
    }
}

/// One pass over the chain's deals; returns how many shards were repaired. `audited` holds
/// the deals already found consistent after a failed rebuild (kept across passes).
pub fn pass(
    node: &NodeClient,
    key: &Keypair,
    records: &Path,
    spool: &Path,
    audited: &mut BTreeSet<DealId>,
    log: &mut dyn FnMut(String),
) -> usize {
    let mut repaired = 0;
    let mut misses = 0;
    for id in 0..MAX_DEALS_PER_PASS {
        let deal = match chain::deal(node, DealId(id)) {
            Ok(Some(d)) => d,
            Ok(None) => {
                // Ids are dense; a few misses in a row mean the end.
                misses += 1;
                if misses > 3 {
                    break;
                }
                continue;
            }
            Err(e) => {
                log(format!("reading deal {id}: {e}"));
                break;
            }
        };
        misses = 0;
        if !deal.is_active() || deal.repair_needed.is_empty() {
            continue;
        }
        let protection = match protection_of(node, records, &deal.blob.id, Some(key)) {
            Ok(p) => p,
            Err(e) => {
                log(format!("deal {id}: cannot rebuild: {e}"));
                continue;
            }
        };
        let providers = match live_storage_providers(node) {
            Ok(p) => p,
            Err(e) => {
                log(format!("listing providers: {e}"));
                break;
            }
        };
        for &lost in &deal.repair_needed {
            let Ok(target) = place(&providers, 1, deal.blob.shard_size_bytes, &deal.providers)
            else {
                log(format!(
                    "deal {id} shard {lost}: no free provider to repair onto"
                ));
                continue;
            };
            let Some(target) = target.into_iter().next() else {
                continue;
            };
            match repair_shard(
                node,
                key,
                deal.id,
                &deal.blob,
                &protection,
                lost,
                &target,
                spool,
            ) {
                Ok(hash) => {
                    repaired += 1;
                    log(format!(
                        "deal {id} shard {lost} rebuilt onto {} (tx {hash})",
                        target.address
                    ));
                }
                Err(e) => {
                    log(format!("deal {id} shard {lost}: {e}"));
                    audit_after_failure(node, key, &deal, &protection, &e, audited, log);
                }
            }
            // One repair per deal per pass: the deal's providers changed.
            break;
        }
    }
    repaired
}

/// Runs passes every `poll` until `stop`.
pub fn run(
    node_url: &str,
    key: &Keypair,
    records: &Path,
    spool: &Path,
    poll: Duration,
    stop: &AtomicBool,
    mut log: impl FnMut(String),
) {
    let node = NodeClient::new(node_url);
    let mut audited = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        pass(&node, key, records, spool, &mut audited, &mut log);
        let until = Instant::now() + poll;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
