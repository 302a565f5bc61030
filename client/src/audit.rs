//! Audits a stored blob's encoding: finds a leaf where its shards stop being one codeword
//! and posts the inconsistency proof that marks the deal invalid (design §10, "Inconsistent
//! encoding"). Needs no data key: the code runs over the stored bytes, encrypted or not, and
//! needs no layout either (see `cairn_proofs::inconsistency`), so any provider, repairer or
//! reader can audit any blob.
//!
//! [`timed_audit`] is the other audit: it times each holder's answer to a long chained
//! challenge (`cairn_proofs::timed`), which a provider that regenerates its shard from peers
//! instead of keeping it cannot answer in time.

use crate::node::NodeClient;
use crate::shards::{ChainChallenge, ShardClient};
use crate::store::{StoreError, send_and_wait, shard_endpoints};
use cairn_proofs::inconsistency::{build, data_leaves, disagreement, is_header, opens};
use cairn_proofs::timed::{AuditFailure, AuditRule, Timeliness};
use cairn_types::proof::LeafOpening;
use cairn_types::tx::{BlobMeta, ReportInconsistency};
use cairn_types::{DealId, Hash, Keypair, TxBody};
use serde::Serialize;
use serde_json::Value;
use std::io::Read;
use std::ops::Range;
use std::time::{Duration, Instant};

/// Bytes of every shard fetched and checked at a time (a whole number of leaves).
pub const SCAN_CHUNK_BYTES: u64 = 1 << 20;
/// Largest piece size tried when looking for the trailer header (the coding crate's bound).
const MAX_PIECE_BYTES: u32 = 16 * 1024 * 1024;

/// What an audit found.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Audit {
    /// Every leaf scanned is one codeword across the shards that answered.
    Consistent {
        deal: DealId,
        scanned_bytes: u64,
        shards_read: usize,
    },
    /// Inconsistent at `leaf_index`; the proof was posted in `tx`.
    Reported {
        deal: DealId,
        leaf_index: u64,
        tx: Hash,
    },
}

/// What one holder's timed audit found, from the least to the most serious (the order
/// `Ord` follows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimedOutcome {
    /// Right and within the deadline.
    OnTime,
    /// Right, after the deadline, within the fault line: a strike, not a fault. Depends on
    /// how busy the machines and the network were.
    Late,
    /// No right answer by the fault line: faults the shard. Also depends on load.
    TooLate,
    /// Refused, unreachable, or answered with bytes that do not open to the shard root:
    /// whatever the load, the holder did not produce its shard.
    Wrong,
}

impl TimedOutcome {
    /// Whether the outcome comes from the clock (and so from how busy things were) rather
    /// than from what the holder answered.
    pub fn is_timing(self) -> bool {
        matches!(self, Self::Late | Self::TooLate)
    }
}

/// One holder's result in a timed audit (`cairn_proofs::timed`).
#[derive(Clone, Debug, Serialize)]
pub struct TimedVerdict {
    pub shard_index: u16,
    pub endpoint: String,
    pub steps: u32,
    /// The round trip to the provider measured just before (the fastest of two small
    /// requests), at most half the rule's allowance: credited to the provider.
    pub rtt_ms: u64,
    /// The exchange as this client's monotonic clock measured it, less `rtt_ms`.
    pub elapsed_ms: u64,
    pub deadline_ms: u64,
    /// Past this an answer faults the shard (`AuditRule::fault_after_ms`).
    pub fault_after_ms: u64,
    pub outcome: TimedOutcome,
    /// What went wrong, or how late it was; `None` when the answer was right and on time.
    pub failure: Option<String>,
}

/// Times one chained audit of each holder of `deal` (only `shard` when given) under `rule`,
/// with a fresh random seed per holder, one holder after another so they do not share the
/// client's link. Each verdict says whether the holder answered wrongly (load cannot
/// explain it) or only late or too late (load can); the verdicts are this client's own
/// measurement and change nothing on chain.
pub fn timed_audit(
    node: &NodeClient,
    deal: DealId,
    shard: Option<u16>,
    rule: AuditRule,
) -> Result<Vec<TimedVerdict>, StoreError> {
    rule.check()
        .map_err(|e| StoreError::BadAnswer(format!("audit rule: {e}")))?;
    let (meta, deal_json) = deal_view(node, deal)?;
    let endpoints = shard_endpoints(node, &deal_json)?;
    if let Some(shard) = shard
        && usize::from(shard) >= endpoints.len()
    {
        return Err(StoreError::BadAnswer(format!(
            "deal {deal} has shards 0..{}, not {shard}",
            endpoints.len()
        )));
    }
    // The largest honest answer: every opening a whole leaf with the deepest path.
    let per_leaf = u64::from(meta.leaf_size_bytes)
        .saturating_add(8)
        .saturating_add(32 * u64::try_from(cairn_types::proof::MAX_PATH_DEPTH).unwrap_or(64));
    let max_bytes = per_leaf
        .saturating_mul(u64::from(rule.steps))
        .saturating_add(16);
    // The transport waits until the fault line: an answer between the deadline and it is
    // late (a strike), not missing.
    let fault_line = Duration::from_millis(rule.fault_after_ms());
    // The same rule with no clock, to check the bytes alone.
    let relaxed = AuditRule {
        allowance_ms: u32::MAX,
        ..rule
    };
    let mut verdicts = Vec::new();
    for (index, endpoint) in (0u16..).zip(endpoints) {
        if shard.is_some_and(|s| s != index) {
            continue;
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| StoreError::BadAnswer(format!("drawing an audit seed: {e}")))?;
        let seed = Hash(seed);
        let Some(endpoint) = endpoint else {
            verdicts.push(TimedVerdict {
                shard_index: index,
                endpoint: String::new(),
                steps: rule.steps,
                rtt_ms: 0,
                elapsed_ms: 0,
                deadline_ms: rule.deadline_ms(),
                fault_after_ms: rule.fault_after_ms(),
                outcome: TimedOutcome::Wrong,
                failure: Some("no provider endpoint on chain for this shard".into()),
            });
            continue;
        };
        let client = ShardClient::new(&endpoint);
        let rtt_ms = round_trip_ms(&client, &rule);
        let start = Instant::now();
        let challenge = ChainChallenge {
            deal,
            seed,
            steps: rule.steps,
        };
        let answer = client.chain(
            &meta.id,
            index,
            &challenge,
            fault_line.saturating_add(Duration::from_millis(rtt_ms)),
            max_bytes,
        );
        // The provider's side: the exchange less the network's round trip as measured just
        // before, so an auditor far away does not make a provider late.
        let elapsed_ms = u64::try_from(start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(rtt_ms);
        let too_late = || {
            let failure = AuditFailure::Late {
                elapsed_ms,
                deadline_ms: rule.fault_after_ms(),
            };
            (TimedOutcome::TooLate, Some(failure.to_string()))
        };
        let (outcome, failure) = match answer {
            // The bytes are checked with no clock (a wrong answer is wrong however fast),
            // then the time is read against the deadline and the fault line.
            Ok(leaves) => match relaxed.judge(&meta, &seed, deal, index, &leaves, 0) {
                Err(e) => (TimedOutcome::Wrong, Some(e.to_string())),
                Ok(()) => match rule.timeliness(elapsed_ms) {
                    Timeliness::OnTime => (TimedOutcome::OnTime, None),
                    Timeliness::Late => (
                        TimedOutcome::Late,
                        Some(format!(
                            "late: right answer in {elapsed_ms} ms, after the {} ms deadline and before the {} ms fault line",
                            rule.deadline_ms(),
                            rule.fault_after_ms()
                        )),
                    ),
                    Timeliness::TooLate => too_late(),
                },
            },
            // Given up at the fault line: too late, whatever the transport calls it.
            Err(_) if elapsed_ms >= rule.fault_after_ms() => too_late(),
            Err(e) => (TimedOutcome::Wrong, Some(e.to_string())),
        };
        verdicts.push(TimedVerdict {
            shard_index: index,
            endpoint,
            steps: rule.steps,
            rtt_ms,
            elapsed_ms,
            deadline_ms: rule.deadline_ms(),
            fault_after_ms: rule.fault_after_ms(),
            outcome,
            failure,
        });
    }
    Ok(verdicts)
}

/// The fastest of two `GET /v1/provider` round trips to the holder, capped at half the
/// rule's allowance (a provider that slows its answers to buy time gains at most that,
/// against a regenerator's tens of seconds); 0 when it does not answer.
fn round_trip_ms(client: &ShardClient, rule: &AuditRule) -> u64 {
    let cap = u64::from(rule.allowance_ms / 2);
    (0..2)
        .filter_map(|_| {
            let start = Instant::now();
            client
                .provider_address(Duration::from_millis(cap.max(1)))
                .ok()
                .map(|_| u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX))
        })
        .min()
        .unwrap_or(0)
        .min(cap)
}

/// Where the shards' data ends, as a provider's opening of the trailer header proves it.
struct TrailerHeader {
    piece_size_bytes: u32,
    /// The shard it was opened in, and the opening.
    opening: (u16, LeafOpening),
    data_leaves: u64,
}

/// The deal's metadata and its JSON view (for the providers' endpoints).
fn deal_view(node: &NodeClient, deal: DealId) -> Result<(BlobMeta, Value), StoreError> {
    let view = node.get(&format!("/v1/deals/{deal}"))?;
    let deal_json = view["deal"].clone();
    let meta: BlobMeta = serde_json::from_value(deal_json["blob"].clone())
        .map_err(|e| StoreError::BadAnswer(format!("deal {deal}'s blob metadata: {e}")))?;
    Ok((meta, deal_json))
}

/// Scans `range` of the shards (all of them when `None`) for a leaf whose stripe is not a
/// codeword and, when one shows, proves it with openings the providers serve and posts the
/// proof signed by `reporter`. Bytes a provider serves wrongly (rot, lies) at worst hide a
/// leaf: openings are checked against the roots before the proof is built, and the proof is
/// checked as the chain will check it.
pub fn audit(
    node: &NodeClient,
    reporter: &Keypair,
    deal: DealId,
    range: Option<Range<u64>>,
) -> Result<Audit, StoreError> {
    let (meta, deal_json) = deal_view(node, deal)?;
    let k = usize::from(meta.data_shards);
    let leaf = u64::from(meta.leaf_size_bytes.max(1));
    let clients: Vec<(u16, ShardClient)> = shard_endpoints(node, &deal_json)?
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| Some((u16::try_from(i).ok()?, ShardClient::new(&e?))))
        .collect();
    let header = trailer_header(&meta, &clients)?;
    // Only the pieces are stripes of the code; the trailer is the same bytes everywhere.
    let data_end = header.data_leaves.saturating_mul(leaf);
    let range = range.unwrap_or(0..data_end);
    let start = range.start - range.start % leaf;
    let end = range.end.min(data_end);
    let chunk = SCAN_CHUNK_BYTES.max(leaf) - SCAN_CHUNK_BYTES.max(leaf) % leaf;
    let mut most_read = 0;
    let mut offset = start;
    // One ranged GET per shard for the whole scan, read a chunk at a time: a request per
    // chunk would spend the providers' per-shard read budgets (`cairn_storage::throttle`)
    // on a large blob. A stream that fails is dropped for the rest of the scan.
    let mut streams: Vec<(u16, Option<Box<dyn Read + Send>>)> = clients
        .iter()
        .map(|(index, client)| {
            (
                *index,
                client.get(&meta.id, *index, Some((start, end))).ok(),
            )
        })
        .collect();
    while offset < end {
        let stop = offset.saturating_add(chunk).min(end);
        let want = usize::try_from(stop - offset).unwrap_or(usize::MAX);
        let pieces: Vec<(u16, Vec<u8>)> = streams
            .iter_mut()
            .filter_map(|(index, stream)| {
                let mut bytes = vec![0u8; want];
                if stream.as_mut()?.read_exact(&mut bytes).is_err() {
                    *stream = None;
                    return None;
                }
                Some((*index, bytes))
            })
            .collect();
        most_read = most_read.max(pieces.len());
        if pieces.len() <= k {
            return Err(StoreError::Unreadable {
                blob: meta.id,
                detail: format!(
                    "only {} of {} shards served bytes {offset}..{stop}; checking a stripe needs {}",
                    pieces.len(),
                    meta.shard_roots.len(),
                    k + 1
                ),
            });
        }
        let mut at = 0usize;
        while at < want {
            let to = at
                .saturating_add(usize::try_from(leaf).unwrap_or(usize::MAX))
                .min(want);
            let stripe: Vec<(u16, &[u8])> = pieces
                .iter()
                .map(|(index, bytes)| (*index, &bytes[at..to]))
                .collect();
            let found =
                disagreement(meta.data_shards, meta.parity_shards, &stripe).map_err(|e| {
                    StoreError::Unreadable {
                        blob: meta.id,
                        detail: e.to_string(),
                    }
                })?;
            if found.is_some() {
                let leaf_index = (offset + at as u64) / leaf;
                let order: Vec<u16> = pieces.iter().map(|(i, _)| *i).collect();
                if let Some(tx) = prove_and_post(
                    node, reporter, deal, &meta, &clients, &order, leaf_index, &header,
                )? {
                    return Ok(Audit::Reported {
                        deal,
                        leaf_index,
                        tx,
                    });
                }
            }
            at = to;
        }
        offset = stop;
    }
    Ok(Audit::Consistent {
        deal,
        scanned_bytes: end.saturating_sub(start),
        shards_read: most_read,
    })
}

/// Leaf `leaf_index` of shard `index` as its provider opens it, if the opening checks out.
fn opening(
    meta: &BlobMeta,
    client: &ShardClient,
    index: u16,
    leaf_index: u64,
) -> Option<LeafOpening> {
    let answer = client.proof(&meta.id, index, &[leaf_index]).ok()?;
    let opening: LeafOpening =
        serde_json::from_value(answer["leaves"][0]["opening"].clone()).ok()?;
    opens(meta, index, leaf_index, &opening).then_some(opening)
}

/// The shards' trailer header: every power-of-two piece size that lays the shards out is
/// tried, and the first whose header leaf some provider opens to the root wins.
fn trailer_header(
    meta: &BlobMeta,
    clients: &[(u16, ShardClient)],
) -> Result<TrailerHeader, StoreError> {
    let mut piece = meta.leaf_size_bytes.max(1);
    while piece <= MAX_PIECE_BYTES {
        if let Some(leaves) = data_leaves(meta, piece) {
            for (index, client) in clients {
                if let Some(found) = opening(meta, client, *index, leaves)
                    && is_header(&found.data.0, piece)
                {
                    return Ok(TrailerHeader {
                        piece_size_bytes: piece,
                        opening: (*index, found),
                        data_leaves: leaves,
                    });
                }
            }
        }
        piece = piece.saturating_mul(2);
    }
    Err(StoreError::Unreadable {
        blob: meta.id,
        detail: "no provider opened a trailer header that lays out the shards".to_string(),
    })
}

/// Collects checked openings of `leaf_index` (in `order`, the scan's decode set first) and
/// posts the proof; `None` when the checked openings agree after all.
#[allow(clippy::too_many_arguments)]
fn prove_and_post(
    node: &NodeClient,
    reporter: &Keypair,
    deal: DealId,
    meta: &BlobMeta,
    clients: &[(u16, ShardClient)],
    order: &[u16],
    leaf_index: u64,
    header: &TrailerHeader,
) -> Result<Option<Hash>, StoreError> {
    let openings: Vec<(u16, LeafOpening)> = order
        .iter()
        .filter_map(|index| {
            let (_, client) = clients.iter().find(|(i, _)| i == index)?;
            Some((*index, opening(meta, client, *index, leaf_index)?))
        })
        .collect();
    let Some(proof) = build(
        meta,
        deal,
        leaf_index,
        header.piece_size_bytes,
        &header.opening,
        &openings,
    ) else {
        return Ok(None);
    };
    let (hash, _) = send_and_wait(
        node,
        reporter,
        TxBody::ReportInconsistency(ReportInconsistency { proof }),
    )?;
    Ok(Some(hash))
}
