//! What a provider reads from the chain, through the node API (design §5): deals, the deals
//! of a blob, and its own storage challenges. Blocking calls (the node client is ureq);
//! async callers wrap them in `spawn_blocking`.

use cairn_client::{NodeClient, NodeError};
use cairn_types::tx::BlobMeta;
use cairn_types::{Address, DealId, Epoch, Hash, Height};
use serde::Deserialize;
use serde_json::Value;

/// A deal as the node API shows it, reduced to what the provider role checks.
#[derive(Clone, Debug, Deserialize)]
pub struct DealView {
    pub id: DealId,
    pub owner: Address,
    pub blob: BlobMeta,
    pub providers: Vec<Address>,
    pub status: DealStatusView,
    #[serde(default)]
    pub repair_needed: Vec<u16>,
    #[serde(default)]
    pub start_epoch: Option<Epoch>,
    #[serde(default)]
    pub end_epoch: Option<Epoch>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DealStatusView {
    pub status: String,
}

impl DealView {
    /// Pending (awaiting its certificate) or active: its shards must be kept.
    pub fn is_live(&self) -> bool {
        matches!(self.status.status.as_str(), "pending" | "active")
    }
    pub fn is_active(&self) -> bool {
        self.status.status == "active"
    }
    /// Whether `me` must keep shard `index` of this deal: assigned to it, or (during a
    /// repair) stored by it while the shard awaits reassignment.
    pub fn keeps(&self, me: &Address, index: u16) -> bool {
        if !self.is_live() {
            return false;
        }
        let assigned = self.providers.get(usize::from(index)) == Some(me);
        assigned || (self.is_active() && self.repair_needed.contains(&index))
    }
}

/// One of the provider's open storage challenges.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub deal: DealId,
    pub shard_index: u16,
    pub epoch: Epoch,
    pub seed: Hash,
    pub deadline: Height,
    pub pending: bool,
}

fn bad(url: &str, reason: impl std::fmt::Display) -> NodeError {
    NodeError::BadAnswer {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// The deal, `None` when the chain has no such deal.
pub fn deal(node: &NodeClient, id: DealId) -> Result<Option<DealView>, NodeError> {
    match node.get(&format!("/v1/deals/{id}")) {
        Ok(v) => serde_json::from_value(v["deal"].clone())
            .map(Some)
            .map_err(|e| bad(&format!("/v1/deals/{id}"), e)),
        Err(NodeError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every deal of a blob (empty when the chain has none).
pub fn deals_of_blob(node: &NodeClient, blob: &Hash) -> Result<Vec<DealView>, NodeError> {
    match node.get(&format!("/v1/blobs/{blob}")) {
        Ok(v) => serde_json::from_value(v["deals"].clone())
            .map_err(|e| bad(&format!("/v1/blobs/{blob}"), e)),
        Err(NodeError::Refused { status: 404, .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The provider's storage challenges as the chain lists them.
pub fn challenges(node: &NodeClient, me: &Address) -> Result<Vec<Challenge>, NodeError> {
    let url = format!("/v1/providers/{me}");
    let v: Value = node.get(&url)?;
    let list = v["storage_challenges"]
        .as_array()
        .ok_or_else(|| bad(&url, "no storage_challenges"))?;
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let c = &item["challenge"];
        let parse = || -> Option<Challenge> {
            Some(Challenge {
                deal: DealId(item["deal"].as_u64()?),
                shard_index: u16::try_from(item["shard_index"].as_u64()?).ok()?,
                epoch: c["epoch"].as_u64()?,
                seed: c["seed"].as_str()?.parse().ok()?,
                deadline: c["deadline"].as_u64()?,
                pending: c["verdict"]["verdict"].as_str()? == "pending",
            })
        };
        out.push(parse().ok_or_else(|| bad(&url, format!("malformed challenge {item}")))?);
    }
    Ok(out)
}

/// The finalized height.
pub fn height(node: &NodeClient) -> Result<Height, NodeError> {
    let status = node.status()?;
    status["height"]
        .as_u64()
        .ok_or_else(|| bad("/v1/status", "no height"))
}
