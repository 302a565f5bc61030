//! Audits a stored blob's encoding: finds a leaf where its shards stop being one codeword
//! and posts the inconsistency proof that marks the deal invalid (design §10, "Inconsistent
//! encoding"). Needs no data key: the code runs over the stored bytes, encrypted or not, and
//! needs no layout either (see `cairn_proofs::inconsistency`), so any provider, repairer or
//! reader can audit any blob.

use crate::node::NodeClient;
use crate::shards::ShardClient;
use crate::store::{StoreError, send_and_wait, shard_endpoints};
use cairn_proofs::inconsistency::{build, data_leaves, disagreement, is_header, opens};
use cairn_types::proof::LeafOpening;
use cairn_types::tx::{BlobMeta, ReportInconsistency};
use cairn_types::{DealId, Hash, Keypair, TxBody};
use serde::Serialize;
use serde_json::Value;
use std::io::Read;
use std::ops::Range;

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
    while offset < end {
        let stop = offset.saturating_add(chunk).min(end);
        let want = usize::try_from(stop - offset).unwrap_or(usize::MAX);
        let pieces: Vec<(u16, Vec<u8>)> = clients
            .iter()
            .filter_map(|(index, client)| {
                let mut bytes = Vec::with_capacity(want);
                let mut reader = client.get(&meta.id, *index, Some((offset, stop))).ok()?;
                reader.read_to_end(&mut bytes).ok()?;
                (bytes.len() == want).then_some((*index, bytes))
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
