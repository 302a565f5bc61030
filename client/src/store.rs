//! The storage flows of design §6: put a file (encode, place, deal, upload, certify) and get
//! it back (fetch the fastest k shards in parallel, verify, decode, decrypt, stream out).
//!
//! Memory is bounded whatever the file size: the file is read twice (once for the shard
//! roots the deal must carry, once to stream the shards without hashing them again), and
//! each shard travels through a bounded queue to its provider's PUT. Reads keep a few
//! segments' pieces per shard in flight. Both directions code segments on every core
//! (`cairn_coding`'s lanes); download threads verify the pieces they receive.

use crate::durability::{DurabilityReport, NetworkLoss, Term};
use crate::node::{NodeClient, NodeError};
use crate::shards::{Receipt, ShardClient, ShardError};
use bytes::BytesMut;
use cairn_coding::durability::LossEstimate;
use cairn_coding::{
    CodingError, DEFAULT_MAX_PIECE_SIZE_BYTES, DataKey, Decoder, EncodedBlob, Encoder, Layout,
    Params, PieceChecker, Protection, SegmentPieces, VerifiedPiece, available_lanes,
    compute_meta_on_lanes, encode_again, open_key, seal_key,
};
use cairn_types::tx::{
    ActivateDeal, BlobMeta, CreateDeal, DealRef, ExtendDeal, RepairShard, ShardReceipt,
};
use cairn_types::{Address, Amount, BoundedBytes, BoundedVec, DealId, Hash, Keypair, TxBody};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A provider that failed an upload, and why.
type Failure = (Address, String);
/// What [`decode_segments`] hands each decoded segment to: layout, index, plaintext.
type SegmentSink<'a> = &'a mut dyn FnMut(&Layout, u64, &[u8]) -> Result<(), StoreError>;

/// Chunks queued per shard between the encoder and its upload.
const UPLOAD_QUEUE_CHUNKS: usize = 16;
/// Segments each download stream may run ahead of the decoder.
const DOWNLOAD_AHEAD_SEGMENTS: usize = 4;
/// Placement attempts before a put gives up (each excludes providers that failed).
const MAX_PLACEMENTS: usize = 3;
/// How long a transaction may take to finalize.
const FINALITY_TIMEOUT: Duration = Duration::from_secs(120);
/// A shard stream that has not delivered a piece for this long is hedged by another.
const HEDGE_AFTER: Duration = Duration::from_secs(5);
/// Most threads a put or get codes segments on (the machine's cores, up to this).
pub const MAX_CODING_LANES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The node's check of the unsigned transaction says it would fail: nothing was signed,
    /// sent or paid.
    #[error("{kind} refused before signing (nothing was sent or paid): {message}")]
    WouldFail { kind: &'static str, message: String },
    #[error(transparent)]
    Coding(#[from] CodingError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Placement(String),
    #[error("transaction {hash} ({kind}) failed on chain: {reason}")]
    TxFailed {
        hash: Hash,
        kind: &'static str,
        reason: String,
    },
    #[error("only {got} of {needed} shards were stored; failures: {failures}")]
    NotEnoughReceipts {
        got: usize,
        needed: usize,
        failures: String,
    },
    #[error("the chain has no blob {blob}")]
    UnknownBlob { blob: Hash },
    #[error("blob {blob} is encrypted and no data key for it is in {dir}")]
    NoDataKey { blob: Hash, dir: PathBuf },
    #[error(
        "blob {blob} is encrypted and its data key is sealed to {owners}: read it with that key (--from)"
    )]
    SealedToOthers { blob: Hash, owners: String },
    #[error("cannot read blob {blob}: {detail}")]
    Unreadable { blob: Hash, detail: String },
    #[error(
        "blob {blob} was proven inconsistent (deal {deal}, at height {height}): its shards are not one codeword, so it has no single content to return"
    )]
    InvalidBlob { blob: Hash, deal: u64, height: u64 },
    #[error("bad answer from the node: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Durability(#[from] crate::durability::DurabilityQueryError),
    #[error("cannot {verb} deal {deal}: {why}")]
    DealRefused {
        deal: u64,
        verb: &'static str,
        why: String,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// How to store a file.
#[derive(Clone, Debug)]
pub struct PutOptions {
    pub epochs: u64,
    pub permanent: bool,
    /// `k + m`; `None` adapts to the number of providers, or to `durability_nines`.
    pub redundancy: Option<(u16, u16)>,
    /// Without `redundancy`: the cheapest code whose loss over the deal's term (a year for
    /// a permanent deal) is at most 10^−nines at the planning loss rate.
    pub durability_nines: Option<f64>,
    /// The per-epoch shard loss rate to plan with [default: what the chain measured].
    pub loss_rate: Option<f64>,
    pub public: bool,
    pub price_per_gib_epoch: Amount,
}

/// What a put did.
#[derive(Clone, Debug, Serialize)]
pub struct PutOutcome {
    pub blob: Hash,
    pub deal: DealId,
    pub size_bytes: u64,
    pub data_shards: u16,
    pub parity_shards: u16,
    pub public: bool,
    pub providers: Vec<Address>,
    pub receipts: usize,
    pub placements: usize,
    pub elapsed_ms: u128,
    /// Where the time went, so a slow put names its slow phase.
    pub phases: PutPhases,
    /// What the stored code buys against the chain's measured shard loss (counting only
    /// the shards that got a receipt); `None` from a node that does not count shard loss.
    pub durability: Option<DurabilityReport>,
}

/// A put's wall time by phase (milliseconds; the last placement's, when it took several).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PutPhases {
    /// Pass 1: encrypting, encoding and committing every shard for the blob id.
    pub encode_ms: u128,
    /// Submitting the deal and waiting for it to finalize.
    pub deal_ms: u128,
    /// Pass 2: encoding again while streaming the shards; ends with the last receipt.
    pub upload_ms: u128,
    /// Submitting the receipts (the certificate) and waiting for them to finalize.
    pub certify_ms: u128,
}

/// What a get did.
#[derive(Clone, Debug, Serialize)]
pub struct GetOutcome {
    pub blob: Hash,
    pub size_bytes: u64,
    /// Shards dropped on the way (unreachable, corrupt): repair candidates.
    pub failures: Vec<String>,
    pub elapsed_ms: u128,
}

/// The client-side record of a blob, kept in the owner's keystore directory: the data key
/// (and the same key sealed to the owner's key, so any device with the owner key can open it
/// from this record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlobRecord {
    pub blob: Hash,
    pub owner: Address,
    pub public: bool,
    /// Hex data key (absent for public blobs).
    #[serde(default)]
    pub data_key: Option<String>,
    /// Hex data key sealed to the owner key with the blob id as context.
    #[serde(default)]
    pub sealed_key: Option<String>,
    pub size_bytes: u64,
}

fn record_path(dir: &Path, blob: &Hash) -> PathBuf {
    dir.join(format!("{blob}.json"))
}

pub fn save_record(dir: &Path, record: &BlobRecord) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let path = record_path(dir, &record.blob);
    let tmp = path.with_extension("json.tmp");
    let text =
        serde_json::to_vec_pretty(record).map_err(|e| StoreError::BadAnswer(e.to_string()))?;
    {
        let mut f = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        f.write_all(&text).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io("renaming", &path))?;
    Ok(())
}

pub fn load_record(dir: &Path, blob: &Hash) -> Result<Option<BlobRecord>, StoreError> {
    let path = record_path(dir, blob);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::BadAnswer(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", &path)(e)),
    }
}

/// The protection of a blob for a reader holding `owner` (if any) and the records in `dir`.
pub fn protection_for(
    dir: &Path,
    blob: &Hash,
    owner: Option<&Keypair>,
) -> Result<Protection, StoreError> {
    let Some(record) = load_record(dir, blob)? else {
        // No record: only a public blob is readable.
        return Ok(Protection::Public);
    };
    if record.public {
        return Ok(Protection::Public);
    }
    let parse32 = |hex_text: &str| -> Option<[u8; 32]> {
        hex::decode(hex_text).ok().and_then(|b| b.try_into().ok())
    };
    if let Some(key) = record.data_key.as_deref().and_then(parse32) {
        return Ok(Protection::Encrypted(DataKey::from_bytes(key)));
    }
    if let (Some(owner), Some(sealed)) = (owner, record.sealed_key.as_deref())
        && let Some(key) = open_sealed_hex(owner, blob, sealed)?
    {
        return Ok(Protection::Encrypted(key));
    }
    Err(StoreError::NoDataKey {
        blob: *blob,
        dir: dir.to_path_buf(),
    })
}

/// The node's view of a blob (its metadata and every deal), or `UnknownBlob`.
fn blob_view(node: &NodeClient, blob: &Hash) -> Result<Value, StoreError> {
    match node.get(&format!("/v1/blobs/{blob}")) {
        Ok(v) => Ok(v),
        Err(NodeError::Refused { status: 404, .. }) => Err(StoreError::UnknownBlob { blob: *blob }),
        Err(e) => Err(e.into()),
    }
}

/// The data key in `sealed_hex` (a hex [`cairn_coding::SealedKey`]) opened with `owner`'s key;
/// `None` when it is not a sealed key's hex, an error when it does not open.
fn open_sealed_hex(
    owner: &Keypair,
    blob: &Hash,
    sealed_hex: &str,
) -> Result<Option<DataKey>, StoreError> {
    let Some(bytes) = hex::decode(sealed_hex)
        .ok()
        .and_then(|b| <[u8; 48]>::try_from(b).ok())
    else {
        return Ok(None);
    };
    Ok(Some(open_key(
        &owner.secret_bytes(),
        blob.as_bytes(),
        &cairn_coding::SealedKey(bytes),
    )?))
}

/// The protection of a blob for a reader holding `owner`: the local record first, then the
/// data key its deals carry on chain, sealed to their owners. Without either the blob is
/// read as public; an encrypted blob whose key is sealed to someone else is an error
/// naming that owner, never an attempt to read ciphertext as plaintext.
pub fn protection_of(
    node: &NodeClient,
    dir: &Path,
    blob: &Hash,
    owner: Option<&Keypair>,
) -> Result<Protection, StoreError> {
    if load_record(dir, blob)?.is_some() {
        return protection_for(dir, blob, owner);
    }
    let v = blob_view(node, blob)?;
    let deals = v["deals"].as_array().cloned().unwrap_or_default();
    let mut sealed_to = Vec::new();
    for deal in &deals {
        let sealed = deal["sealed_key"].as_str().unwrap_or_default();
        if sealed.is_empty() {
            continue;
        }
        let deal_owner = deal["owner"].as_str().unwrap_or_default().to_string();
        if let Some(owner) = owner.filter(|o| o.address().to_string() == deal_owner) {
            let key = open_sealed_hex(owner, blob, sealed)?.ok_or_else(|| {
                StoreError::BadAnswer(format!("deal {}: sealed key {sealed:?}", deal["id"]))
            })?;
            return Ok(Protection::Encrypted(key));
        }
        sealed_to.push(deal_owner);
    }
    if sealed_to.is_empty() {
        return Ok(Protection::Public);
    }
    Err(StoreError::SealedToOthers {
        blob: *blob,
        owners: sealed_to.join(", "),
    })
}

/// An active storage provider as the registry lists it.
#[derive(Clone, Debug)]
pub struct ProviderEntry {
    pub address: Address,
    pub endpoint: String,
    pub region: String,
    pub stake: u128,
    pub free_bytes: u64,
    /// Timed-audit strikes on chain (late answers in consecutive audited epochs).
    pub late_audit_epochs: u32,
}

/// Active providers that declare storage.
pub fn storage_providers(node: &NodeClient) -> Result<Vec<ProviderEntry>, StoreError> {
    // Every page: placement that saw only the first page would never pick a provider past it.
    let list = node.list_all("/v1/providers?status=active", "providers")?;
    let amount = |v: &Value| -> u128 { v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0) };
    let mut out = Vec::new();
    for p in &list {
        let declared = p["declared"]["storage_bytes"].as_u64().unwrap_or(0);
        let (Some(address), Some(endpoint)) = (
            p["address"].as_str().and_then(|a| a.parse().ok()),
            p["endpoint"].as_str(),
        ) else {
            continue;
        };
        if declared == 0 || endpoint.is_empty() {
            continue;
        }
        out.push(ProviderEntry {
            address,
            endpoint: endpoint.to_string(),
            region: p["region"].as_str().unwrap_or_default().to_string(),
            stake: amount(&p["self_bond"]).saturating_add(amount(&p["delegated"])),
            free_bytes: declared,
            late_audit_epochs: p["late_audit_epochs"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        });
    }
    Ok(out)
}

/// How long placement waits for a provider's shard API to answer its probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The storage providers whose shard API answers now, as the provider it claims to be:
/// a stopped provider, or one whose endpoint serves something else (a compute provider
/// declaring disk for its leases), would only fail its upload.
pub fn live_storage_providers(node: &NodeClient) -> Result<Vec<ProviderEntry>, StoreError> {
    let all = storage_providers(node)?;
    let answers: Vec<bool> = std::thread::scope(|scope| {
        let probes: Vec<_> = all
            .iter()
            .map(|p| {
                scope.spawn(move || {
                    ShardClient::new(&p.endpoint)
                        .provider_address(PROBE_TIMEOUT)
                        .is_ok_and(|a| a == p.address)
                })
            })
            .collect();
        probes
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    });
    Ok(all
        .into_iter()
        .zip(answers)
        .filter_map(|(p, live)| live.then_some(p))
        .collect())
}

/// Redundancy that adapts to the network: 10+5 on 15 or more providers, 4+2 on 6 or more,
/// else as much parity as the providers allow with at least one data shard.
pub fn default_redundancy(providers: usize) -> (u16, u16) {
    match providers {
        n if n >= 15 => (10, 5),
        n if n >= 6 => (4, 2),
        0 | 1 => (1, 0),
        n => {
            let n = u16::try_from(n).unwrap_or(u16::MAX);
            (n.saturating_sub(1), 1)
        }
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // No randomness at all would only make placement deterministic, never wrong.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// The network an endpoint's host sits in, for placement spread: an IPv4 /24 or an IPv6 /48
/// (one operator's machines usually share one), else the host name itself.
pub fn endpoint_network(endpoint: &str) -> String {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.split(':').next().unwrap_or(authority),
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => crate::network::Network::of(ip).to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

/// Picks `n` distinct providers at random, weighted by stake, spreading shards over regions
/// and networks (IPv4 /24, IPv6 /48): each pick draws among the providers that share the
/// fewest of the two with the shards placed so far, so that one datacenter or operator
/// losing power takes as few shards of a blob as the providers allow (reliability §2c:
/// correlated losses are what the durability figures cannot see).
pub fn place(
    candidates: &[ProviderEntry],
    n: usize,
    shard_bytes: u64,
    exclude: &[Address],
) -> Result<Vec<ProviderEntry>, StoreError> {
    let mut pool: Vec<&ProviderEntry> = candidates
        .iter()
        .filter(|p| !exclude.contains(&p.address) && p.free_bytes >= shard_bytes)
        .collect();
    if pool.len() < n {
        return Err(StoreError::Placement(format!(
            "{n} shards need {n} distinct storage providers with room, {} are available",
            pool.len()
        )));
    }
    let mut chosen: Vec<ProviderEntry> = Vec::with_capacity(n);
    while chosen.len() < n {
        let regions: Vec<&str> = chosen.iter().map(|p| p.region.as_str()).collect();
        let networks: Vec<String> = chosen
            .iter()
            .map(|p| endpoint_network(&p.endpoint))
            .collect();
        let shared = |p: &ProviderEntry| {
            u8::from(regions.contains(&p.region.as_str()))
                + u8::from(networks.contains(&endpoint_network(&p.endpoint)))
        };
        let least = pool.iter().map(|p| shared(p)).min().unwrap_or(0);
        let indices: Vec<usize> = (0..pool.len())
            .filter(|&i| shared(pool[i]) == least)
            .collect();
        let total: u128 = indices.iter().map(|&i| pool[i].stake.max(1)).sum();
        let mut draw = u128::from(random_u64()) % total.max(1);
        let mut pick = indices[0];
        for &i in &indices {
            let w = pool[i].stake.max(1);
            if draw < w {
                pick = i;
                break;
            }
            draw -= w;
        }
        chosen.push(pool.remove(pick).clone());
    }
    Ok(chosen)
}

/// What `epochs` epochs of a `size_bytes` blob cost at `price` per GiB-epoch: each epoch
/// rounded up to whole uCRN, as the ledger charges it (`Deal::epoch_cost`).
fn deal_cost(price: Amount, size_bytes: u64, epochs: u64) -> Result<Amount, StoreError> {
    price
        .ucrn()
        .checked_mul(u128::from(size_bytes))
        .map(|c| c.div_ceil(1 << 30))
        .and_then(|c| c.checked_mul(u128::from(epochs)))
        .map(Amount::from_ucrn)
        .ok_or_else(|| StoreError::Placement("deal cost overflows".into()))
}

/// A deal as the owner's flows need it, read from `/v1/deals/{id}`.
struct DealTerms {
    owner: String,
    size_bytes: u64,
    price: Amount,
    end_epoch: Option<u64>,
    permanent: bool,
    status: String,
}

fn deal_terms(node: &NodeClient, deal: DealId) -> Result<DealTerms, StoreError> {
    let view = node.get(&format!("/v1/deals/{}", deal.0))?;
    let d = &view["deal"];
    let amount = |field: &str| -> Result<Amount, StoreError> {
        serde_json::from_value(d[field].clone())
            .map_err(|e| StoreError::BadAnswer(format!("deal {} {field}: {e}", deal.0)))
    };
    Ok(DealTerms {
        owner: d["owner"].as_str().unwrap_or_default().to_string(),
        size_bytes: d["blob"]["size_bytes"]
            .as_u64()
            .ok_or_else(|| StoreError::BadAnswer(format!("deal {} has no blob size", deal.0)))?,
        price: amount("price_per_gib_epoch")?,
        end_epoch: d["end_epoch"].as_u64(),
        permanent: d["permanent"].as_bool().unwrap_or(false),
        status: d["status"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// What extending a deal did.
#[derive(Clone, Debug, Serialize)]
pub struct ExtendOutcome {
    pub deal: DealId,
    pub extra_epochs: u64,
    /// Paid into the deal's escrow: the extra epochs at the deal's price.
    pub paid: Amount,
    /// The last paid epoch now (`None` while the deal awaits its certificate: its term then
    /// starts when it activates).
    pub end_epoch: Option<u64>,
    pub tx: Hash,
}

/// Keeps a deal `extra_epochs` longer, paying them into its escrow at its own price.
pub fn extend_deal(
    node: &NodeClient,
    owner: &Keypair,
    deal: DealId,
    extra_epochs: u64,
) -> Result<ExtendOutcome, StoreError> {
    let terms = deal_terms(node, deal)?;
    check_owned(&terms, owner, deal, "extend")?;
    let paid = deal_cost(terms.price, terms.size_bytes, extra_epochs)?;
    let (tx, _) = send_checked_and_wait(
        node,
        owner,
        TxBody::ExtendDeal(ExtendDeal {
            deal,
            extra_epochs,
            amount: paid,
        }),
    )?;
    let after = deal_terms(node, deal)?;
    Ok(ExtendOutcome {
        deal,
        extra_epochs,
        paid,
        end_epoch: after.end_epoch,
        tx,
    })
}

/// What cancelling a deal did.
#[derive(Clone, Debug, Serialize)]
pub struct CancelOutcome {
    pub deal: DealId,
    /// The escrow returned to the owner: the owner's balance after, plus the fee, less the
    /// balance before (so exact unless the account moved funds meanwhile).
    pub refunded: Amount,
    pub tx: Hash,
}

/// Ends a deal before its term: the unspent escrow comes back and the providers drop the
/// shards at their next garbage collection. The blob can no longer be read.
pub fn cancel_deal(
    node: &NodeClient,
    owner: &Keypair,
    deal: DealId,
) -> Result<CancelOutcome, StoreError> {
    let terms = deal_terms(node, deal)?;
    check_owned(&terms, owner, deal, "cancel")?;
    let balance = |node: &NodeClient| -> Result<Amount, StoreError> {
        let account = node.account(&owner.address())?;
        serde_json::from_value(account["balance"].clone())
            .map_err(|e| StoreError::BadAnswer(format!("account balance: {e}")))
    };
    let before = balance(node)?;
    let (tx, record) = send_checked_and_wait(node, owner, TxBody::CancelDeal(DealRef { deal }))?;
    let fee: Amount = serde_json::from_value(record["receipt"]["fee"].clone())
        .map_err(|e| StoreError::BadAnswer(format!("receipt fee: {e}")))?;
    let after = balance(node)?;
    let refunded = after
        .checked_add(fee)
        .and_then(|a| a.checked_sub(before))
        .unwrap_or_default();
    Ok(CancelOutcome { deal, refunded, tx })
}

/// Refuses, before any fee is paid, what the chain would refuse for being someone else's
/// deal, a permanent one, or one that already ended.
fn check_owned(
    terms: &DealTerms,
    owner: &Keypair,
    deal: DealId,
    verb: &'static str,
) -> Result<(), StoreError> {
    let refuse = |why: String| {
        Err(StoreError::DealRefused {
            deal: deal.0,
            verb,
            why,
        })
    };
    if terms.owner != owner.address().to_string() {
        return refuse(format!(
            "it belongs to {}, not to {}",
            terms.owner,
            owner.address()
        ));
    }
    if terms.permanent {
        return refuse("it is permanent (paid once into an endowment, kept forever)".into());
    }
    if terms.status != "active" && terms.status != "pending" {
        return refuse(format!("it is {}", terms.status));
    }
    Ok(())
}

/// [`send_and_wait`] after the node's check of the unsigned transaction, so one that would
/// fail (an escrow above the balance, say) costs no fee. Only for a user's own requests:
/// flows whose next step depends on one just landed send without asking.
pub(crate) fn send_checked_and_wait(
    node: &NodeClient,
    key: &Keypair,
    body: TxBody,
) -> Result<(Hash, Value), StoreError> {
    if let Some(refusal) = node.check(&key.address(), &body, None)? {
        return Err(StoreError::WouldFail {
            kind: body.kind(),
            message: refusal.message,
        });
    }
    send_and_wait(node, key, body)
}

/// Sends one transaction and waits for it to finalize without error.
pub(crate) fn send_and_wait(
    node: &NodeClient,
    key: &Keypair,
    body: TxBody,
) -> Result<(Hash, Value), StoreError> {
    let kind = body.kind();
    let (hash, nonce) = node.send_numbered(key, body, None)?;
    let record = node.wait_landed(&hash, &key.address(), nonce, FINALITY_TIMEOUT)?;
    let error = &record["receipt"]["error"];
    if !error.is_null() {
        return Err(StoreError::TxFailed {
            hash,
            kind,
            reason: error.to_string(),
        });
    }
    Ok((hash, record))
}

/// A bounded pipe: the encoder writes a shard, the upload thread writes its chunks onto the
/// PUT's connection and hands the emptied buffers back. When the upload dies the writer
/// swallows the rest, so one dead provider never stops the encoding of the others.
struct PipeWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    spares: Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

const PIPE_CHUNK_BYTES: usize = 256 * 1024;

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.tx.is_none() {
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIPE_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(PIPE_CHUNK_BYTES));
        let chunk = std::mem::replace(&mut self.buf, next);
        if let Some(tx) = &self.tx
            && tx.send(chunk).is_err()
        {
            self.tx = None;
        }
        Ok(())
    }
}

/// The upload side of a [`PipeWriter`]: every chunk onto `out`, each buffer back emptied.
fn drain_pipe(
    rx: &Receiver<Vec<u8>>,
    give: &SyncSender<Vec<u8>>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for mut chunk in rx.iter() {
        out.write_all(&chunk)?;
        chunk.clear();
        let _ = give.try_send(chunk);
    }
    Ok(())
}

/// Counts bytes read through it and reports progress.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(u64::try_from(n).unwrap_or(0));
        (self.progress)(self.read);
        Ok(n)
    }
}

/// The deal this owner just created for `blob` with exactly these providers.
fn find_deal(
    node: &NodeClient,
    blob: &Hash,
    owner: &Address,
    providers: &[Address],
) -> Result<DealId, StoreError> {
    let v = node.get(&format!("/v1/blobs/{blob}"))?;
    let deals = v["deals"].as_array().cloned().unwrap_or_default();
    deals
        .iter()
        .filter(|d| {
            d["owner"].as_str() == Some(&owner.to_string())
                && d["status"]["status"] == "pending"
                && d["providers"].as_array().is_some_and(|p| {
                    p.len() == providers.len()
                        && p.iter()
                            .zip(providers)
                            .all(|(a, b)| a.as_str() == Some(&b.to_string()))
                })
        })
        .filter_map(|d| d["id"].as_u64())
        .max()
        .map(DealId)
        .ok_or_else(|| StoreError::BadAnswer(format!("the new deal of blob {blob} is not listed")))
}

/// What identifies a file's contents cheaply: a changed size or modification time between
/// the two encoding passes means the shards would not match the roots on chain.
fn file_stamp(path: &Path) -> Result<(u64, Option<std::time::SystemTime>), StoreError> {
    let meta = std::fs::metadata(path).map_err(io("reading", path))?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Streams every shard of the file to its provider; returns the receipts and the failures.
#[allow(clippy::too_many_arguments)]
fn upload(
    path: &Path,
    stamp: (u64, Option<std::time::SystemTime>),
    encoded: &EncodedBlob,
    protection: &Protection,
    deal: DealId,
    owner: &Keypair,
    placement: &[ProviderEntry],
    progress: &mut dyn FnMut(u64),
) -> Result<(Vec<Receipt>, Vec<Failure>), StoreError> {
    let meta = &encoded.meta;
    let file = std::fs::File::open(path).map_err(io("opening", path))?;
    let mut sinks = Vec::with_capacity(placement.len());
    let mut workers = Vec::with_capacity(placement.len());
    for (index, provider) in (0u16..).zip(placement) {
        let (tx, rx) = sync_channel::<Vec<u8>>(UPLOAD_QUEUE_CHUNKS);
        let (give, spares) = sync_channel::<Vec<u8>>(UPLOAD_QUEUE_CHUNKS + 2);
        sinks.push(PipeWriter {
            tx: Some(tx),
            spares,
            buf: Vec::with_capacity(PIPE_CHUNK_BYTES),
        });
        let root = meta.shard_roots.0[usize::from(index)];
        let (blob, shard_bytes) = (meta.id, meta.shard_size_bytes);
        let (owner, provider) = (owner.clone(), provider.clone());
        workers.push(std::thread::spawn(
            move || -> Result<Receipt, ShardError> {
                ShardClient::new(&provider.endpoint).put(
                    &owner,
                    &provider.address,
                    deal,
                    &blob,
                    index,
                    &root,
                    shard_bytes,
                    &mut |out| drain_pipe(&rx, &give, out),
                )
            },
        ));
    }
    // No BufReader: the encoder asks for whole segments, so one would only add a copy.
    let reader = Counting {
        inner: file,
        read: 0,
        progress,
    };
    let lanes = available_lanes(MAX_CODING_LANES);
    let streamed = encode_again(reader, encoded, protection, &mut sinks, lanes);
    for s in &mut sinks {
        let _ = s.flush();
    }
    drop(sinks);
    let mut receipts = Vec::new();
    let mut failures = Vec::new();
    for (worker, provider) in workers.into_iter().zip(placement) {
        match worker.join() {
            Ok(Ok(r)) => receipts.push(r),
            Ok(Err(e)) => failures.push((provider.address, e.to_string())),
            Err(_) => failures.push((provider.address, "upload thread panicked".to_string())),
        }
    }
    streamed?;
    if file_stamp(path)? != stamp {
        return Err(StoreError::Unreadable {
            blob: meta.id,
            detail: format!(
                "{} changed while it was being stored (size or modification time): its shards no longer match the roots on chain",
                path.display()
            ),
        });
    }
    Ok((receipts, failures))
}

/// The planning rate and term a put's durability is figured with (`None` from a node that
/// does not count shard loss).
type Planning = Option<(LossEstimate, Term)>;

/// The code a put uses: `--redundancy`, else the cheapest for `--durability`, else the
/// default for the live providers; checked against the coding limits.
fn choose_code(
    node: &NodeClient,
    providers: usize,
    options: &PutOptions,
) -> Result<(u16, u16, Planning), StoreError> {
    // The durability figures need the chain's loss counts; only a put that plans by them
    // needs a node that has them.
    let planning = match NetworkLoss::fetch(node) {
        Ok(network) => Some((
            network.estimate(options.loss_rate)?,
            network.term(options.permanent, options.epochs),
        )),
        Err(_) if options.durability_nines.is_none() => None,
        Err(e) => return Err(e.into()),
    };
    let (k, m) = match (options.redundancy, options.durability_nines, &planning) {
        (Some(code), _, _) => code,
        (None, Some(nines), Some((loss, term))) => {
            crate::durability::plan(providers, loss, *term, nines)?
        }
        _ => default_redundancy(providers),
    };
    Params::new(k, m).validate()?;
    Ok((k, m, planning))
}

/// What a put pays into the deal: its term (the prepaid epochs of a permanent deal) at the
/// offered price.
fn put_escrow(
    options: &PutOptions,
    size_bytes: u64,
    permanent_prepay_epochs: u64,
) -> Result<Amount, StoreError> {
    let term = if options.permanent {
        permanent_prepay_epochs
    } else {
        options.epochs
    };
    deal_cost(options.price_per_gib_epoch, size_bytes, term)
}

/// What a put of `size_bytes` would do, without reading the file or paying anything.
#[derive(Clone, Debug, Serialize)]
pub struct PutPlan {
    pub size_bytes: u64,
    pub data_shards: u16,
    pub parity_shards: u16,
    pub shard_size_bytes: u64,
    /// Bytes the providers store in all: n shards.
    pub stored_bytes: u64,
    pub live_providers: usize,
    /// Paid into the deal's escrow (or the permanent deal's endowment) at the put.
    pub escrow: Amount,
    pub durability: Option<DurabilityReport>,
}

/// Plans a put: the code, the shard size, what it stores and costs, and what it buys.
pub fn plan_put(
    node: &NodeClient,
    size_bytes: u64,
    options: &PutOptions,
    permanent_prepay_epochs: u64,
) -> Result<PutPlan, StoreError> {
    let providers = live_storage_providers(node)?.len();
    let (k, m, planning) = choose_code(node, providers, options)?;
    let layout = Layout::new(size_bytes, &Params::new(k, m), !options.public)?;
    let n = u64::from(k) + u64::from(m);
    Ok(PutPlan {
        size_bytes,
        data_shards: k,
        parity_shards: m,
        shard_size_bytes: layout.shard_size_bytes,
        stored_bytes: layout.shard_size_bytes.saturating_mul(n),
        live_providers: providers,
        escrow: put_escrow(options, size_bytes, permanent_prepay_epochs)?,
        durability: planning
            .map(|(loss, term)| DurabilityReport::new(k, m, loss, term))
            .transpose()?,
    })
}

/// Stores a file: see the module docs. `progress` sees plaintext bytes streamed so far.
#[allow(clippy::too_many_arguments)]
pub fn put_file(
    node: &NodeClient,
    owner: &Keypair,
    path: &Path,
    options: &PutOptions,
    records: &Path,
    certificate_margin: u16,
    permanent_prepay_epochs: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<PutOutcome, StoreError> {
    let start = Instant::now();
    let stamp = file_stamp(path)?;
    let size = stamp.0;
    let candidates = live_storage_providers(node)?;
    let (k, m, planning) = choose_code(node, candidates.len(), options)?;
    let params = Params::new(k, m);
    let protection = if options.public {
        Protection::Public
    } else {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| StoreError::Io {
            what: "drawing a data key for",
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Protection::Encrypted(DataKey::from_bytes(key))
    };
    let file = std::fs::File::open(path).map_err(io("opening", path))?;
    let mut phases = PutPhases::default();
    let encoding = Instant::now();
    // Unbuffered for the same reason as in `upload`.
    let encoded = compute_meta_on_lanes(
        file,
        size,
        &params,
        &protection,
        available_lanes(MAX_CODING_LANES),
    )?;
    phases.encode_ms = encoding.elapsed().as_millis();
    let meta = encoded.meta.clone();
    // The key is saved before anything is paid for, so a crash later never strands data.
    let (data_key, sealed) = match &protection {
        Protection::Public => (None, None),
        Protection::Encrypted(key) => (
            Some(hex::encode(key.expose_bytes())),
            Some(seal_key(&owner.secret_bytes(), meta.id.as_bytes(), key)?),
        ),
    };
    let sealed_key = sealed.as_ref().map(|s| s.to_hex());
    // The deal carries the sealed key too, so the owner's key alone reads the blob back.
    let sealed_on_chain = BoundedBytes::new(
        sealed.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
    )
    .ok_or_else(|| StoreError::Placement("the sealed data key does not fit a deal".into()))?;
    save_record(
        records,
        &BlobRecord {
            blob: meta.id,
            owner: owner.address(),
            public: options.public,
            data_key,
            sealed_key,
            size_bytes: size,
        },
    )?;
    let cost = put_escrow(options, size, permanent_prepay_epochs)?.ucrn();
    let n = params.shard_count();
    let needed = (usize::from(k) + usize::from(certificate_margin)).min(n);
    let mut exclude: Vec<Address> = Vec::new();
    let mut last_failure = String::new();
    for attempt in 1..=MAX_PLACEMENTS {
        let placement = place(&candidates, n, meta.shard_size_bytes, &exclude)?;
        let addresses: Vec<Address> = placement.iter().map(|p| p.address).collect();
        let dealing = Instant::now();
        // Checked before it is signed: an escrow above the balance costs no fee.
        send_checked_and_wait(
            node,
            owner,
            TxBody::CreateDeal(CreateDeal {
                blob: meta.clone(),
                providers: BoundedVec(addresses.clone()),
                permanent: options.permanent,
                epochs: if options.permanent { 0 } else { options.epochs },
                price_per_gib_epoch: options.price_per_gib_epoch,
                escrow: Amount::from_ucrn(cost),
                sealed_key: sealed_on_chain.clone(),
            }),
        )?;
        let deal = find_deal(node, &meta.id, &owner.address(), &addresses)?;
        phases.deal_ms = dealing.elapsed().as_millis();
        let uploading = Instant::now();
        let (receipts, failures) = upload(
            path,
            stamp,
            &encoded,
            &protection,
            deal,
            owner,
            &placement,
            progress,
        )?;
        phases.upload_ms = uploading.elapsed().as_millis();
        if receipts.len() >= needed {
            let receipts: Vec<ShardReceipt> = receipts
                .iter()
                .map(|r| ShardReceipt {
                    shard_index: r.shard_index,
                    signature: r.signature.clone(),
                })
                .collect();
            let count = receipts.len();
            // What the deal holds now: shards without a receipt are lost until repaired.
            let held_parity = u16::try_from(count)
                .unwrap_or(u16::MAX)
                .saturating_sub(k)
                .min(m);
            let durability = planning
                .map(|(loss, term)| DurabilityReport::new(k, held_parity, loss, term))
                .transpose()?;
            let certifying = Instant::now();
            send_and_wait(
                node,
                owner,
                TxBody::ActivateDeal(ActivateDeal {
                    deal,
                    receipts: BoundedVec(receipts),
                }),
            )?;
            phases.certify_ms = certifying.elapsed().as_millis();
            return Ok(PutOutcome {
                blob: meta.id,
                deal,
                size_bytes: size,
                data_shards: k,
                parity_shards: m,
                public: options.public,
                providers: addresses,
                receipts: count,
                placements: attempt,
                elapsed_ms: start.elapsed().as_millis(),
                phases,
                durability,
            });
        }
        // Too few receipts: take the escrow back and place again without the failures.
        last_failure = failures
            .iter()
            .map(|(a, e)| format!("{a}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        let _ = send_and_wait(node, owner, TxBody::CancelDeal(DealRef { deal }));
        exclude.extend(failures.iter().map(|(a, _)| *a));
        if attempt == MAX_PLACEMENTS {
            return Err(StoreError::NotEnoughReceipts {
                got: receipts.len(),
                needed,
                failures: last_failure,
            });
        }
    }
    Err(StoreError::Placement(last_failure))
}

/// A live deal of the blob (active first) with its metadata.
pub fn blob_deal(node: &NodeClient, blob: &Hash) -> Result<(BlobMeta, Value), StoreError> {
    let v = blob_view(node, blob)?;
    let meta: BlobMeta = serde_json::from_value(v["blob"].clone())
        .map_err(|e| StoreError::BadAnswer(format!("blob metadata: {e}")))?;
    let deals = v["deals"].as_array().cloned().unwrap_or_default();
    let pick = |status: &str| {
        deals
            .iter()
            .filter(|d| d["status"]["status"] == status)
            .max_by_key(|d| d["id"].as_u64())
            .cloned()
    };
    let Some(deal) = pick("active").or_else(|| pick("pending")) else {
        // An inconsistency proof is a verdict on the blob itself, not on one deal: say so
        // rather than "no deal stores it", which would invite storing it again.
        if let Some(invalid) = pick("invalid") {
            return Err(StoreError::InvalidBlob {
                blob: *blob,
                deal: invalid["id"].as_u64().unwrap_or_default(),
                height: invalid["status"]["height"].as_u64().unwrap_or_default(),
            });
        }
        // Say which deal ended and how, so "store it again" is the obvious next step rather
        // than a hunt for a provider's endpoint.
        let last = deals.iter().max_by_key(|d| d["id"].as_u64());
        let detail = match last {
            Some(d) => format!(
                "no active or pending deal stores it: its last deal, deal-{}, is {} (its providers may have collected the shards; store the file again)",
                d["id"].as_u64().unwrap_or_default(),
                d["status"]["status"].as_str().unwrap_or("ended")
            ),
            None => "no active or pending deal stores it".to_string(),
        };
        return Err(StoreError::Unreadable {
            blob: *blob,
            detail,
        });
    };
    Ok((meta, deal))
}

/// The endpoint of each shard's provider (`None` when the registry has none).
///
/// Every holder is looked up by its own address, whatever its status: a jailed or leaving
/// provider still keeps and serves its shards (the registry's active list would hide it, and
/// a read would then blame a missing endpoint for what was a jail).
pub fn shard_endpoints(node: &NodeClient, deal: &Value) -> Result<Vec<Option<String>>, StoreError> {
    let providers = deal["providers"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::with_capacity(providers.len());
    let mut seen: Vec<(String, Option<String>)> = Vec::new();
    for a in &providers {
        let Some(address) = a.as_str() else {
            out.push(None);
            continue;
        };
        if let Some((_, endpoint)) = seen.iter().find(|(s, _)| s == address) {
            out.push(endpoint.clone());
            continue;
        }
        let endpoint = match node.get(&format!("/v1/providers/{address}")) {
            Ok(v) => v["provider"]["endpoint"]
                .as_str()
                .filter(|e| !e.is_empty())
                .map(str::to_string),
            Err(crate::node::NodeError::Refused { status: 404, .. }) => None,
            Err(e) => return Err(e.into()),
        };
        seen.push((address.to_string(), endpoint.clone()));
        out.push(endpoint);
    }
    Ok(out)
}

/// One shard's download: a thread streaming pieces `from..` of the shard in order, each
/// verified against its committed root before it is sent on.
struct Stream {
    rx: Receiver<Result<VerifiedPiece, String>>,
    last: Instant,
}

/// Where the download threads read pieces: one allocation per segment, cut into its `n`
/// piece slots, so a segment's data pieces land next to each other and the decoder works on
/// them in place (`Decoder::decode_on_lanes` joins adjacent slots back without a copy; the
/// copy of every piece into a segment buffer was a sixth of a get's client time).
///
/// Whole segment buffers come back once decoded and are reused: a fresh buffer is zeroed
/// memory the kernel must first hand over. A slot already taken (a stream that died and was
/// replaced), or one of a segment already decoded (a late stream), gets a buffer of its own:
/// that segment is then gathered by copy, just as correctly. Bounded: segments open at once
/// are those the streams read ahead, and past `max_free` a buffer is simply freed.
struct SegmentSlots {
    n: usize,
    piece_bytes: usize,
    max_free: usize,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// Segments a stream has started, with the slots no stream took yet.
    open: std::collections::HashMap<u64, Vec<Option<BytesMut>>>,
    /// Segments below this are gathered: their late pieces get buffers of their own.
    closed_below: u64,
    free: Vec<BytesMut>,
}

impl SegmentSlots {
    fn new(n: usize, piece_bytes: usize, max_free: usize) -> Self {
        Self {
            n,
            piece_bytes,
            max_free,
            state: Mutex::new(SlotState::default()),
        }
    }

    /// The buffer shard `index`'s piece of `segment` is read into.
    fn take(&self, segment: u64, index: usize) -> BytesMut {
        let (n, piece) = (self.n, self.piece_bytes);
        let slot = self.state.lock().ok().and_then(|mut state| {
            if segment < state.closed_below || index >= n {
                return None;
            }
            if !state.open.contains_key(&segment) {
                let mut whole = state
                    .free
                    .pop()
                    .unwrap_or_else(|| BytesMut::zeroed(n * piece));
                let slots = (0..n).map(|_| Some(whole.split_to(piece))).collect();
                state.open.insert(segment, slots);
            }
            state
                .open
                .get_mut(&segment)
                .and_then(|slots| slots.get_mut(index))
                .and_then(Option::take)
        });
        slot.unwrap_or_else(|| BytesMut::zeroed(piece))
    }

    /// The slots of `segment` no stream took, now that its pieces are gathered (the decoder
    /// rebuilds missing pieces into them and hands them back with the rest).
    fn close(&self, segment: u64) -> Vec<Option<BytesMut>> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        state.closed_below = state.closed_below.max(segment.saturating_add(1));
        let closed_below = state.closed_below;
        let spare = state.open.remove(&segment).unwrap_or_default();
        // Segments skipped over (none in order, but never keep what cannot be asked for).
        state.open.retain(|&s, _| s >= closed_below);
        spare
    }

    fn give(&self, buf: BytesMut) {
        if buf.len() != self.n * self.piece_bytes {
            return;
        }
        if let Ok(mut state) = self.state.lock()
            && state.free.len() < self.max_free
        {
            state.free.push(buf);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn open_stream(
    endpoint: String,
    blob: Hash,
    index: u16,
    checker: PieceChecker,
    slots: Arc<SegmentSlots>,
    layout: &Layout,
    from: u64,
    to: u64,
) -> Stream {
    let (tx, rx) = sync_channel(DOWNLOAD_AHEAD_SEGMENTS);
    let start = layout.piece_range(from).start;
    let end = if to > from {
        layout.piece_range(to - 1).end
    } else {
        start
    };
    std::thread::spawn(move || {
        let client = ShardClient::new(&endpoint);
        let mut reader = match client.get(&blob, index, Some((start, end))) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        for segment in from..to {
            let mut buf = slots.take(segment, usize::from(index));
            if let Err(e) = reader.read_exact(&mut buf[..]) {
                let _ = tx.send(Err(format!("reading segment {segment}: {e}")));
                return;
            }
            let checked = checker
                .check(index, segment, buf)
                .map_err(|e| e.to_string());
            let failed = checked.is_err();
            if tx.send(checked).is_err() || failed {
                return;
            }
        }
    });
    Stream {
        rx,
        last: Instant::now(),
    }
}

/// Decodes every segment of a blob in order, calling `sink(segment, plaintext)`: the
/// trailer from any shard, then each segment from the first k streams that deliver verified
/// pieces; a failing or stalled stream is replaced by another shard's (hedging), a bad piece
/// drops its shard. Shards in `skip` are never read. With `range` (plaintext bytes) only
/// the segments that hold it are fetched and decoded; `sink` still sees whole segments.
fn decode_segments(
    node: &NodeClient,
    blob: &Hash,
    protection: &Protection,
    skip: &[usize],
    range: Option<Range<u64>>,
    sink: SegmentSink<'_>,
) -> Result<(BlobMeta, Vec<String>), StoreError> {
    let (meta, deal) = blob_deal(node, blob)?;
    let endpoints = shard_endpoints(node, &deal)?;
    let mut decoder = Decoder::new(&meta, DEFAULT_MAX_PIECE_SIZE_BYTES, protection)?;
    let layout = decoder.layout().clone();
    let wanted = match range {
        Some(r) => layout.plan_range(r)?.segments,
        None => 0..layout.segment_count,
    };
    let n = layout.shard_count();
    let k = layout.data_shards();
    let mut failures: Vec<String> = Vec::new();
    let mut dead = vec![false; n];
    for (i, e) in endpoints.iter().enumerate() {
        if skip.contains(&i) {
            dead[i] = true;
        } else if e.is_none() {
            dead[i] = true;
            let who = deal["providers"][i].as_str().unwrap_or("?");
            failures.push(format!(
                "shard {i}: provider {who} is not registered or has no endpoint on chain"
            ));
        }
    }
    // Trailer: any shard whose copy opens every root.
    let trailer = layout.trailer_range();
    let mut loaded = false;
    for (i, endpoint) in endpoints.iter().enumerate() {
        let Some(endpoint) = endpoint.as_ref().filter(|_| !dead[i]) else {
            continue;
        };
        let index = u16::try_from(i).unwrap_or(u16::MAX);
        let fetched = ShardClient::new(endpoint)
            .get(blob, index, Some((trailer.start, trailer.end)))
            .map_err(|e| e.to_string())
            .and_then(|mut r| {
                let mut buf = Vec::new();
                r.read_to_end(&mut buf)
                    .map(|_| buf)
                    .map_err(|e| e.to_string())
            });
        match fetched.and_then(|t| decoder.load_trailer(&t).map_err(|e| e.to_string())) {
            Ok(()) => {
                loaded = true;
                break;
            }
            Err(e) => {
                dead[i] = true;
                failures.push(format!("shard {i} trailer: {e}"));
            }
        }
    }
    if !loaded {
        return Err(StoreError::Unreadable {
            blob: *blob,
            detail: format!("no shard's trailer could be read: {}", failures.join("; ")),
        });
    }
    let checker = decoder.piece_checker()?;
    let segments = wanted.end;
    let lanes = available_lanes(MAX_CODING_LANES);
    // Enough for the segments the streams read ahead, plus those on the lanes.
    let slots = Arc::new(SegmentSlots::new(
        n,
        usize::try_from(layout.piece_size_bytes).unwrap_or(0),
        DOWNLOAD_AHEAD_SEGMENTS + 2 + 2 * lanes + 2,
    ));
    let mut streams: Vec<Option<Stream>> = (0..n).map(|_| None).collect();
    let open = |i: usize, from: u64, endpoints: &[Option<String>]| {
        let index = u16::try_from(i).unwrap_or(u16::MAX);
        let endpoint = endpoints[i].clone().unwrap_or_default();
        open_stream(
            endpoint,
            *blob,
            index,
            checker.clone(),
            Arc::clone(&slots),
            &layout,
            from,
            segments,
        )
    };
    // Start with k shards, data first (no decoding needed when they all arrive).
    let mut started = 0;
    for i in 0..n {
        if started == k {
            break;
        }
        if !dead[i] {
            streams[i] = Some(open(i, wanted.start, &endpoints));
            started += 1;
        }
    }
    let mut segments_left = wanted;
    // This thread gathers each segment's k verified pieces while the lanes decode the
    // previous ones.
    let gather = || -> Result<Option<SegmentPieces>, StoreError> {
        let Some(segment) = segments_left.next() else {
            return Ok(None);
        };
        let mut pending: Vec<Option<VerifiedPiece>> = (0..n).map(|_| None).collect();
        loop {
            let good = pending.iter().filter(|p| p.is_some()).count();
            if good >= k {
                break;
            }
            let active: Vec<usize> = (0..n)
                .filter(|&i| streams[i].is_some() && pending[i].is_none())
                .collect();
            let spare = (0..n).find(|&i| streams[i].is_none() && !dead[i]);
            if active.len() + good < k {
                let Some(i) = spare else {
                    return Err(StoreError::Unreadable {
                        blob: *blob,
                        detail: format!(
                            "segment {segment}: {good} of {k} shards readable; {}",
                            failures.join("; ")
                        ),
                    });
                };
                streams[i] = Some(open(i, segment, &endpoints));
                continue;
            }
            let mut hedge = false;
            for &i in &active {
                let Some(stream) = streams[i].as_mut() else {
                    continue;
                };
                let failed = match stream.rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(Ok(piece)) if piece.segment() == segment => {
                        stream.last = Instant::now();
                        pending[i] = Some(piece);
                        None
                    }
                    // A piece of an earlier segment this stream delivered after k others.
                    Ok(Ok(piece)) if piece.segment() < segment => {
                        stream.last = Instant::now();
                        None
                    }
                    Ok(Ok(piece)) => Some(format!(
                        "sent segment {}, expected {segment}",
                        piece.segment()
                    )),
                    Ok(Err(e)) => Some(e),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        Some("stream ended early".to_string())
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if stream.last.elapsed() > HEDGE_AFTER {
                            stream.last = Instant::now();
                            hedge = true;
                        }
                        None
                    }
                };
                if let Some(reason) = failed {
                    failures.push(format!("shard {i}: {reason}"));
                    dead[i] = true;
                    streams[i] = None;
                }
            }
            // Hedge: a stalled stream gets a companion from another shard.
            if hedge && let Some(j) = spare {
                streams[j] = Some(open(j, segment, &endpoints));
            }
        }
        Ok(Some(SegmentPieces {
            segment,
            pieces: pending,
            spare: slots.close(segment),
        }))
    };
    decoder.decode_on_lanes(
        lanes,
        gather,
        |segment, plain| sink(&layout, segment, plain),
        |buf| slots.give(buf),
    )?;
    Ok((meta, failures))
}

/// Reads a whole blob into `out` (see [`decode_segments`]); `progress` sees bytes written.
pub fn read_blob<W: Write>(
    node: &NodeClient,
    blob: &Hash,
    protection: &Protection,
    out: &mut W,
    progress: &mut dyn FnMut(u64),
) -> Result<GetOutcome, StoreError> {
    read_blob_without(node, blob, protection, &[], out, progress)
}

/// [`read_blob`] as if the shards in `skip` were lost (never read): the worst-case decode
/// path when they are data shards, for benchmarks and tests.
pub fn read_blob_without<W: Write>(
    node: &NodeClient,
    blob: &Hash,
    protection: &Protection,
    skip: &[usize],
    out: &mut W,
    progress: &mut dyn FnMut(u64),
) -> Result<GetOutcome, StoreError> {
    let start = Instant::now();
    let mut written = 0u64;
    let write_error = |source| StoreError::Io {
        what: "writing",
        path: PathBuf::from("the output"),
        source,
    };
    let (_, failures) = decode_segments(
        node,
        blob,
        protection,
        skip,
        None,
        &mut |layout, segment, plain| {
            let range = layout.segment_plain_range(segment);
            let take = usize::try_from(range.end.saturating_sub(range.start))
                .unwrap_or(usize::MAX)
                .min(plain.len());
            out.write_all(&plain[..take]).map_err(write_error)?;
            written = written.saturating_add(u64::try_from(take).unwrap_or(0));
            progress(written);
            Ok(())
        },
    )?;
    out.flush().map_err(write_error)?;
    Ok(GetOutcome {
        blob: *blob,
        size_bytes: written,
        failures,
        elapsed_ms: start.elapsed().as_millis(),
    })
}

/// Writes the plaintext bytes `range` of a blob into `out`, fetching and decoding only the
/// segments that hold them (the gateway's Range reads); returns the shards dropped.
pub fn read_blob_range<W: Write>(
    node: &NodeClient,
    blob: &Hash,
    protection: &Protection,
    range: Range<u64>,
    out: &mut W,
) -> Result<Vec<String>, StoreError> {
    let write_error = |source| StoreError::Io {
        what: "writing",
        path: PathBuf::from("the output"),
        source,
    };
    let wanted = range.clone();
    let (_, failures) = decode_segments(
        node,
        blob,
        protection,
        &[],
        Some(range),
        &mut |layout, segment, plain| {
            let have = layout.segment_plain_range(segment);
            let start = wanted.start.max(have.start);
            let end = wanted.end.min(have.end);
            if start >= end {
                return Ok(());
            }
            let from = usize::try_from(start - have.start).unwrap_or(usize::MAX);
            let to = usize::try_from(end - have.start).unwrap_or(usize::MAX);
            let part = plain.get(from..to).ok_or_else(|| StoreError::Unreadable {
                blob: *blob,
                detail: format!("segment {segment} decoded short"),
            })?;
            out.write_all(part).map_err(write_error)
        },
    )?;
    out.flush().map_err(write_error)?;
    Ok(failures)
}

/// Rebuilds shard `lost` of a blob from the other shards into `out` (pieces in segment
/// order, then the trailer): decode each segment, re-encode it, keep the lost shard's piece.
/// Needs the blob's protection (the owner's data key, or public).
pub fn rebuild_shard<W: Write>(
    node: &NodeClient,
    blob: &Hash,
    protection: &Protection,
    lost: u16,
    out: &mut W,
) -> Result<(), StoreError> {
    let write_error = |source| StoreError::Io {
        what: "writing",
        path: PathBuf::from("the rebuilt shard"),
        source,
    };
    let mut encoder: Option<Encoder> = None;
    let (meta, _) = decode_segments(
        node,
        blob,
        protection,
        &[usize::from(lost)],
        None,
        &mut |layout, segment, plain| {
            if encoder.is_none() {
                let params = Params {
                    leaf_size_bytes: layout.params.leaf_size_bytes,
                    ..layout.params
                };
                encoder = Some(Encoder::new(layout.size_bytes, &params, protection)?);
            }
            let Some(enc) = encoder.as_mut() else {
                return Ok(());
            };
            let range = layout.segment_plain_range(segment);
            let take = usize::try_from(range.end.saturating_sub(range.start))
                .unwrap_or(usize::MAX)
                .min(plain.len());
            let pieces = enc.push_segment(&plain[..take])?;
            let piece = pieces
                .piece(usize::from(lost))
                .ok_or_else(|| StoreError::BadAnswer(format!("no piece {lost}")))?;
            out.write_all(piece).map_err(write_error)
        },
    )?;
    let encoder = encoder.ok_or_else(|| StoreError::Unreadable {
        blob: *blob,
        detail: "no segment decoded".to_string(),
    })?;
    let encoded = encoder.finish()?;
    if encoded.meta.shard_roots != meta.shard_roots {
        return Err(StoreError::Unreadable {
            blob: *blob,
            detail: "re-encoding does not reproduce the committed shard roots".to_string(),
        });
    }
    out.write_all(&encoded.trailer).map_err(write_error)?;
    out.flush().map_err(write_error)
}

/// Repairs shard `lost` of `deal`: rebuilds it into a temp file, stores it with `target`
/// (signed by `repairer`), and posts `RepairShard` with the new provider's receipt.
#[allow(clippy::too_many_arguments)]
pub fn repair_shard(
    node: &NodeClient,
    repairer: &Keypair,
    deal: DealId,
    meta: &BlobMeta,
    protection: &Protection,
    lost: u16,
    target: &ProviderEntry,
    spool_dir: &Path,
) -> Result<Hash, StoreError> {
    std::fs::create_dir_all(spool_dir).map_err(io("creating", spool_dir))?;
    let path = spool_dir.join(format!("{}-{lost}.rebuild", meta.id));
    let result = (|| {
        {
            let file = std::fs::File::create(&path).map_err(io("creating", &path))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            rebuild_shard(node, &meta.id, protection, lost, &mut w)?;
        }
        let root = meta.shard_roots.0[usize::from(lost)];
        let mut file = std::fs::File::open(&path).map_err(io("opening", &path))?;
        let receipt = ShardClient::new(&target.endpoint)
            .put(
                repairer,
                &target.address,
                deal,
                &meta.id,
                lost,
                &root,
                meta.shard_size_bytes,
                &mut |out| std::io::copy(&mut file, out).map(|_| ()),
            )
            .map_err(|e| StoreError::Placement(e.to_string()))?;
        let (hash, _) = send_and_wait(
            node,
            repairer,
            TxBody::RepairShard(RepairShard {
                deal,
                shard_index: lost,
                new_provider: target.address,
                receipt: receipt.signature,
            }),
        )?;
        Ok(hash)
    })();
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, endpoint: &str, region: &str) -> ProviderEntry {
        ProviderEntry {
            address: Address([n; 32]),
            endpoint: endpoint.to_string(),
            region: region.to_string(),
            stake: 1,
            free_bytes: u64::MAX,
            late_audit_epochs: 0,
        }
    }

    #[test]
    fn endpoints_group_by_network() {
        assert_eq!(endpoint_network("http://10.1.2.3:7900"), "10.1.2.0/24");
        assert_eq!(endpoint_network("http://10.1.2.99"), "10.1.2.0/24");
        assert_eq!(
            endpoint_network("https://[2001:db8:5:6::1]:443/x"),
            "2001:db8:5::/48"
        );
        assert_eq!(endpoint_network("http://Store.Example:80"), "store.example");
    }

    #[test]
    fn placement_spreads_over_networks_and_regions() {
        // Two machines in one /24, two in another, one alone; one region for all.
        let candidates = [
            entry(1, "http://10.0.1.1:1", "eu"),
            entry(2, "http://10.0.1.2:1", "eu"),
            entry(3, "http://10.0.2.1:1", "eu"),
            entry(4, "http://10.0.2.2:1", "eu"),
            entry(5, "http://10.0.3.1:1", "eu"),
        ];
        for _ in 0..200 {
            let picked = place(&candidates, 3, 1, &[]).unwrap();
            let mut networks: Vec<String> = picked
                .iter()
                .map(|p| endpoint_network(&p.endpoint))
                .collect();
            networks.sort();
            networks.dedup();
            assert_eq!(
                networks.len(),
                3,
                "three shards, three networks: {picked:?}"
            );
        }
        // More shards than networks: every network is used before any is used twice.
        for _ in 0..200 {
            let picked = place(&candidates, 4, 1, &[]).unwrap();
            let distinct: std::collections::BTreeSet<String> = picked
                .iter()
                .map(|p| endpoint_network(&p.endpoint))
                .collect();
            assert_eq!(distinct.len(), 3);
        }
    }
}
