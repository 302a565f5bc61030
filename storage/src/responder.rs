//! The provider's chain duties: answer each epoch's storage challenges in one batched
//! `SubmitStorageProofs` (split only where one transaction would exceed the size limit), and
//! garbage-collect shards no live deal assigns here.

use crate::chain::{self, Challenge};
use crate::store::ShardStore;
use cairn_client::{NodeClient, NodeError};
use cairn_types::proof::{LeafOpening, StorageProof};
use cairn_types::tx::{MAX_TX_BYTES, SubmitStorageProofs};
use cairn_types::{BoundedBytes, BoundedVec, DealId, Epoch, Hash, Keypair, TxBody};
use commonware_codec::EncodeSize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Room left in a transaction for everything but the proofs.
const TX_OVERHEAD_BYTES: usize = 4 * 1024;
/// How long an epoch's answer may stay unconfirmed before it is sent again.
const RESEND_AFTER: Duration = Duration::from_secs(15);
/// Most blob lookups one garbage-collection pass makes.
const GC_LOOKUPS_PER_PASS: usize = 256;

/// What the responder did, for the role's log.
#[derive(Debug)]
pub enum Event {
    Answered {
        epoch: Epoch,
        proofs: usize,
        txs: usize,
    },
    Unprovable {
        deal: DealId,
        shard_index: u16,
        reason: String,
    },
    Collected {
        blob: Hash,
        shard_index: u16,
    },
    Error(String),
}

/// How the provider treats its challenges: honest, or a Byzantine test double.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    #[default]
    Honest,
    /// Signs receipts, then never answers a challenge (and is caught at the epoch's end).
    Withholder,
    /// Answers every challenge, bluffing for shards it can no longer read (deleted or
    /// unreadable): made-up leaves with empty paths, which the chain records as failed.
    Forger,
    /// Keeps its shards and answers every on-chain proof, but answers a timed audit
    /// (`/chain`) only after [`LAGGARD_DELAY`]: what a `Regenerator`'s sequential peer round
    /// trips cost it (storage/tests/it/regeneration.rs regenerates for real; on one machine's
    /// loopback a real regenerator would be as fast as an honest disk).
    Laggard,
}

/// How long a [`Behaviour::Laggard`] waits before answering a timed audit: past the default
/// rule's fault line (about 6 s), as a regenerator over the internet is (20 s and more in
/// the simulation), so one audit faults it whatever the machine's load adds.
pub const LAGGARD_DELAY: std::time::Duration = std::time::Duration::from_secs(8);

impl std::str::FromStr for Behaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "honest" => Ok(Self::Honest),
            "withholder" => Ok(Self::Withholder),
            "forger" => Ok(Self::Forger),
            "laggard" => Ok(Self::Laggard),
            other => Err(format!(
                "{other:?} is not a behaviour: honest, withholder, forger or laggard"
            )),
        }
    }
}

/// A bluffed answer: the right number of leaves, all zeros, no Merkle paths.
fn forged(deal: DealId, shard_index: u16, leaves: usize, leaf_bytes: usize) -> StorageProof {
    let opening = LeafOpening {
        data: BoundedBytes(vec![
            0u8;
            leaf_bytes.min(cairn_types::proof::MAX_LEAF_BYTES)
        ]),
        path: Default::default(),
    };
    StorageProof {
        deal,
        shard_index,
        leaves: BoundedVec(vec![opening; leaves.clamp(1, 64)]),
    }
}

pub struct Responder {
    pub node: NodeClient,
    pub key: Keypair,
    pub store: Arc<ShardStore>,
    pub leaves_per_challenge: usize,
    pub behaviour: Behaviour,
    sent: BTreeMap<Epoch, Instant>,
    blob_of: BTreeMap<DealId, Hash>,
}

impl Responder {
    pub fn new(
        node: NodeClient,
        key: Keypair,
        store: Arc<ShardStore>,
        leaves_per_challenge: usize,
    ) -> Self {
        Self {
            node,
            key,
            store,
            leaves_per_challenge,
            behaviour: Behaviour::Honest,
            sent: BTreeMap::new(),
            blob_of: BTreeMap::new(),
        }
    }

    fn blob(&mut self, deal: DealId) -> Result<Option<Hash>, NodeError> {
        if let Some(b) = self.blob_of.get(&deal) {
            return Ok(Some(*b));
        }
        let Some(view) = chain::deal(&self.node, deal)? else {
            return Ok(None);
        };
        if self.blob_of.len() > 100_000 {
            self.blob_of.clear();
        }
        self.blob_of.insert(deal, view.blob.id);
        Ok(Some(view.blob.id))
    }

    /// One pass: answers the newest epoch's pending challenges if not already sent.
    pub fn answer(&mut self, events: &mut dyn FnMut(Event)) -> Result<(), NodeError> {
        if self.behaviour == Behaviour::Withholder {
            return Ok(());
        }
        let challenges = chain::challenges(&self.node, &self.key.address())?;
        let Some(epoch) = challenges
            .iter()
            .filter(|c| c.pending)
            .map(|c| c.epoch)
            .max()
        else {
            return Ok(());
        };
        if self
            .sent
            .get(&epoch)
            .is_some_and(|at| at.elapsed() < RESEND_AFTER)
        {
            return Ok(());
        }
        let pending: Vec<Challenge> = challenges
            .into_iter()
            .filter(|c| c.pending && c.epoch == epoch)
            .collect();
        let mut proofs = Vec::with_capacity(pending.len());
        for c in &pending {
            let Some(blob) = self.blob(c.deal)? else {
                continue;
            };
            match self.store.prove(
                &blob,
                c.shard_index,
                &c.seed,
                c.deal,
                self.leaves_per_challenge,
            ) {
                Ok(p) => proofs.push(p),
                Err(_) if self.behaviour == Behaviour::Forger => proofs.push(forged(
                    c.deal,
                    c.shard_index,
                    self.leaves_per_challenge,
                    1024,
                )),
                Err(e) => events(Event::Unprovable {
                    deal: c.deal,
                    shard_index: c.shard_index,
                    reason: e.to_string(),
                }),
            }
        }
        if proofs.is_empty() {
            self.sent.insert(epoch, Instant::now());
            return Ok(());
        }
        // One transaction, unless the proofs do not fit in one.
        let budget = MAX_TX_BYTES.saturating_sub(TX_OVERHEAD_BYTES);
        let mut bodies = Vec::new();
        let mut batch = Vec::new();
        let mut size = 0usize;
        let count = proofs.len();
        for p in proofs {
            let len = p.encode_size();
            if !batch.is_empty() && (size.saturating_add(len) > budget || batch.len() >= 1024) {
                bodies.push(std::mem::take(&mut batch));
                size = 0;
            }
            size = size.saturating_add(len);
            batch.push(p);
        }
        bodies.push(batch);
        let bodies: Vec<TxBody> = bodies
            .into_iter()
            .map(|proofs| {
                TxBody::SubmitStorageProofs(SubmitStorageProofs {
                    epoch,
                    proofs: BoundedVec(proofs),
                })
            })
            .collect();
        let txs = bodies.len();
        self.node.send_all(&self.key, bodies, None)?;
        self.sent.insert(epoch, Instant::now());
        self.sent.retain(|e, _| e.saturating_add(4) > epoch);
        events(Event::Answered {
            epoch,
            proofs: count,
            txs,
        });
        Ok(())
    }

    /// Deletes stored shards that no live deal keeps here (expired, cancelled, repaired away).
    pub fn collect_garbage(&mut self, events: &mut dyn FnMut(Event)) -> Result<(), NodeError> {
        let me = self.key.address();
        let mut by_blob: BTreeMap<Hash, Vec<u16>> = BTreeMap::new();
        for (blob, index, _) in self.store.list() {
            by_blob.entry(blob).or_default().push(index);
        }
        for (blob, indices) in by_blob.into_iter().take(GC_LOOKUPS_PER_PASS) {
            let deals = chain::deals_of_blob(&self.node, &blob)?;
            for index in indices {
                if deals.iter().any(|d| d.keeps(&me, index)) {
                    continue;
                }
                match self.store.remove(&blob, index) {
                    Ok(true) => events(Event::Collected {
                        blob,
                        shard_index: index,
                    }),
                    Ok(false) => {}
                    Err(e) => events(Event::Error(e.to_string())),
                }
            }
        }
        Ok(())
    }
}

/// Runs the responder until `stop`: challenges every `poll`, garbage collection every
/// `gc_every` polls.
pub fn run(
    mut responder: Responder,
    poll: Duration,
    gc_every: u32,
    stop: &AtomicBool,
    mut events: impl FnMut(Event),
) {
    let mut tick = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = responder.answer(&mut events) {
            events(Event::Error(e.to_string()));
        }
        tick = tick.wrapping_add(1);
        if gc_every > 0
            && tick.is_multiple_of(gc_every)
            && let Err(e) = responder.collect_garbage(&mut events)
        {
            events(Event::Error(e.to_string()));
        }
        let until = Instant::now() + poll;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
