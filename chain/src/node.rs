//! Wiring one validator: simplex + marshal + buffered broadcast + resolver + archives, over any
//! Commonware runtime and any p2p network.
//!
//! [`start_node`] is generic over the runtime context (`Spawner + Clock + Storage + Metrics +
//! CryptoRng`) and over the p2p traits (`Sender`, `Receiver`, `Blocker`, `Provider`), so the same
//! code runs under `deterministic` + `p2p::simulated` in tests and under `tokio` +
//! `authenticated::lookup` in production ([`crate::runner`]).
//!
//! # Startup and durability
//!
//! Marshal's finalized-block archive is the source of truth. On start the node opens it, replays
//! every finalized block from height 1 into a fresh `Ledger::from_genesis` (rebuilding the
//! transaction index), and only then hands the archive to marshal. Marshal persists each
//! finalized block (and its finalization) before delivering it, and records a block as
//! processed only after the application acknowledges it; the finalizer acknowledges only after
//! the block is applied in memory. So after any stop, `kill -9` included, every block marshal
//! considers processed is in the archive and replayed, and every block it delivers again is
//! either already replayed (skipped, acknowledged) or the next one (applied). No finalized
//! transaction is lost, and nothing is applied twice.
//!
//! Fsyncs: the application writes nothing to disk itself. For each batch of finalizations
//! marshal writes the blocks and certificates to its two archives and starts one sync of both
//! (group commit: one sync covers every write since the previous one), dispatching only once it
//! completes; it then records the processed height with one metadata sync per drained batch of
//! acknowledgements. Simplex syncs its own vote journal (it must never sign twice). The ledger
//! lives in memory and is rebuilt by replay, so there is no second copy of the state to keep in
//! step with the archive.

use crate::app::App;
use crate::block::ChainBlock;
use crate::config::NodeConfig;
use crate::error::ChainError;
use crate::handle::NodeHandle;
use crate::state::{Replayer, Shared};
use cairn_ledger::Ledger;
use cairn_types::Address;
use commonware_actor::Feedback;
use commonware_broadcast::buffered;
use commonware_consensus::Reporter;
use commonware_consensus::marshal::core::Actor as MarshalActor;
use commonware_consensus::marshal::resolver::p2p as marshal_resolver;
use commonware_consensus::marshal::standard::{Inline, Standard};
use commonware_consensus::marshal::store::Blocks as _;
use commonware_consensus::marshal::{self, Update};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::{self, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::types::{Epoch, FixedEpocher, ViewDelta};
use commonware_cryptography::certificate::ConstantProvider;
use commonware_cryptography::sha256::{Digest, Sha256};
use commonware_cryptography::{Digested, Digestible, ed25519};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage};
use commonware_storage::archive::{Identifier, immutable};
use commonware_utils::acknowledgement::Exact;
use commonware_utils::ordered::Set;
use commonware_utils::{Acknowledgement as _, NZDuration, NZU16, NZU64, NZUsize};
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use rand_core::CryptoRng;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracing::{error, info};

/// Channel ids: every network a node runs on registers these six.
pub mod channels {
    /// Simplex votes.
    pub const VOTES: u64 = 0;
    /// Simplex certificates.
    pub const CERTIFICATES: u64 = 1;
    /// Simplex certificate fetches.
    pub const RESOLVER: u64 = 2;
    /// Marshal backfill of finalized blocks.
    pub const BACKFILL: u64 = 3;
    /// Block dissemination (buffered broadcast).
    pub const BROADCAST: u64 = 4;
    /// Transaction gossip (`crate::gossip`).
    pub const TXS: u64 = 5;
    /// All of them, in order.
    pub const ALL: [u64; 6] = [VOTES, CERTIFICATES, RESOLVER, BACKFILL, BROADCAST, TXS];
}

/// The six registered channels a node uses.
pub struct NodeChannels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub backfill: (S, R),
    pub broadcast: (S, R),
    pub txs: (S, R),
}

/// A started node: its handle and the task running it (abort it to stop the node abruptly).
pub struct RunningNode {
    pub handle: NodeHandle,
    pub task: Handle<()>,
}

/// The validator set of a genesis, as consensus orders it (sorted by public key).
pub fn validator_set(
    genesis: &cairn_ledger::Genesis,
) -> Result<Set<ed25519::PublicKey>, ChainError> {
    let mut keys = Vec::with_capacity(genesis.validators.len());
    for v in &genesis.validators {
        let key = v
            .address
            .public_key()
            .map_err(|_| ChainError::BadValidatorKey { address: v.address })?;
        keys.push(key.0);
    }
    Ok(Set::from_iter_dedup(keys))
}

/// Largest p2p message a node sends for a validator set of `validators`: every network
/// carrying the node's channels must admit it.
pub fn max_message_size(validators: usize) -> u32 {
    let n = u32::try_from(validators).unwrap_or(u32::MAX);
    let simplex = simplex::max_payload_size::<Scheme, Digest>(n);
    let marshal = marshal::max_payload_size::<Standard<ChainBlock>, Scheme>(n, &());
    u32::try_from(simplex.max(marshal)).unwrap_or(u32::MAX)
}

/// The signing namespace of consensus messages, bound to the chain id so that votes of one
/// chain are worthless on another.
pub fn consensus_namespace(chain_id: &str) -> Vec<u8> {
    format!("_CAIRN_CONSENSUS_{chain_id}").into_bytes()
}

const PAGE_SIZE: u16 = 4096;

fn archive_config<C>(
    prefix: &str,
    name: &str,
    page_cache: CacheRef,
    codec: C,
) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size: 4_096,
        freezer_table_resize_frequency: 4,
        freezer_table_resize_chunk_size: 1_024,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache,
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_target_size: 64 * 1024 * 1024,
        freezer_value_compression: None,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        items_per_section: NZU64!(1_024),
        codec_config: codec,
        replay_buffer: NZUsize!(1 << 20),
        freezer_key_write_buffer: NZUsize!(1 << 20),
        freezer_value_write_buffer: NZUsize!(1 << 20),
        ordinal_write_buffer: NZUsize!(1 << 20),
    }
}

fn storage_error(e: impl std::fmt::Display) -> ChainError {
    ChainError::Storage {
        reason: e.to_string(),
    }
}

/// Marshal's reporter: forwards finalized blocks to the finalizer task in order.
#[derive(Clone)]
struct FinalizerMailbox {
    sender: mpsc::UnboundedSender<(Digested<ChainBlock>, Exact)>,
    shared: Arc<Shared>,
}

impl Reporter for FinalizerMailbox {
    type Activity = Update<ChainBlock>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match activity {
            Update::Block(block, ack) => {
                if self.sender.unbounded_send((block, ack)).is_err() {
                    return Feedback::Closed;
                }
            }
            Update::Tip(_, height, _) => {
                self.shared
                    .finalized_tip
                    .fetch_max(height.get(), Ordering::Relaxed);
            }
        }
        Feedback::Ok
    }
}

/// Applies finalized blocks in order, publishes events, then acknowledges to marshal.
async fn run_finalizer(
    shared: Arc<Shared>,
    mut receiver: mpsc::UnboundedReceiver<(Digested<ChainBlock>, Exact)>,
) {
    // Acknowledgements of blocks that failed to apply are held (never dropped) so marshal
    // waits instead of treating the drop as a shutdown.
    let mut held = Vec::new();
    while let Some((block, ack)) = receiver.next().await {
        if shared.halted.lock().is_some() {
            held.push(ack);
            continue;
        }
        match shared.finalize(block.inner()) {
            Ok(Some(event)) => {
                shared.publish(event);
                ack.acknowledge();
            }
            Ok(None) => ack.acknowledge(),
            Err(e) => {
                error!(error = %e, "finalized block does not apply: halting");
                shared.halt(e);
                held.push(ack);
            }
        }
    }
}

/// Starts a validator on `context` with already-registered `channels`.
///
/// Everything the node runs is spawned under one task ([`RunningNode::task`]): aborting it stops
/// the whole node, as a crash would, and a later `start_node` with the same storage recovers.
pub async fn start_node<E, S, R, B, P>(
    context: E,
    config: NodeConfig,
    channels: NodeChannels<S, R>,
    blocker: B,
    peers: P,
) -> Result<RunningNode, ChainError>
where
    E: Spawner + Clock + Storage + Metrics + CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    P: Provider<PublicKey = ed25519::PublicKey>,
{
    let (ready_tx, ready_rx) = oneshot::channel();
    let task = context.child("node").spawn(move |context| async move {
        match init(context, config, channels, blocker, peers).await {
            Ok((handle, engine)) => {
                let _ = ready_tx.send(Ok(handle));
                // The node lives as long as consensus does.
                let _ = engine.await;
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        }
    });
    let handle = ready_rx.await.map_err(|_| ChainError::StartAborted)??;
    Ok(RunningNode { handle, task })
}

async fn init<E, S, R, B, P>(
    context: E,
    config: NodeConfig,
    channels: NodeChannels<S, R>,
    blocker: B,
    peers: P,
) -> Result<(NodeHandle, Handle<()>), ChainError>
where
    E: Spawner + Clock + Storage + Metrics + CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
    P: Provider<PublicKey = ed25519::PublicKey>,
{
    let NodeConfig {
        genesis,
        key,
        partition_prefix: prefix,
        chain,
    } = config;

    // Identity and validator set.
    let participants = validator_set(&genesis)?;
    let me = key.address();
    let private = signing_key(&key)?;
    let public = private_public(&private);
    let chain_id = genesis.chain_id.clone();
    let scheme = Scheme::signer(
        &consensus_namespace(&chain_id),
        participants.clone(),
        private,
    )
    .ok_or(ChainError::NotAValidator { address: me })?;
    let validators: Vec<Address> = genesis.validators.iter().map(|v| v.address).collect();

    // Genesis state and the block marshal anchors on.
    let genesis_ledger = Ledger::from_genesis(&genesis)?;
    let block_time_ms = genesis_ledger.params().block_time_ms;
    let genesis_block = ChainBlock::genesis(genesis_ledger.state().last_block_hash);
    let genesis_digest = genesis_block.digest();

    // Archives of finalized blocks and finalizations (marshal's immutable stores).
    let page_cache = CacheRef::new(NZU16!(PAGE_SIZE), NZUsize!(1_024));
    let finalizations = immutable::Archive::init(
        context.child("finalizations"),
        archive_config(
            &prefix,
            "finalizations",
            page_cache.clone(),
            <Scheme as commonware_cryptography::certificate::Verifier>::certificate_codec_config_unbounded(),
        ),
    )
    .await
    .map_err(storage_error)?;
    let blocks: immutable::Archive<E, Digest, Arc<ChainBlock>> = immutable::Archive::init(
        context.child("blocks"),
        archive_config(&prefix, "blocks", page_cache.clone(), ()),
    )
    .await
    .map_err(storage_error)?;

    // Replay the finalized history into a fresh ledger.
    let mut replayer = Replayer::new(genesis_ledger, genesis_digest, chain.block_cache);
    loop {
        let next = replayer.height() + 1;
        let Some(block) = blocks
            .get(Identifier::Index(next))
            .await
            .map_err(storage_error)?
        else {
            break;
        };
        replayer
            .apply(&block)
            .map_err(|source| ChainError::Replay {
                height: next,
                source,
            })?;
    }
    let replayed = replayer.finish();
    info!(
        height = replayed.finalized.ledger.height(),
        validator = %me,
        "replayed finalized blocks"
    );

    // Marshal.
    let provider = ConstantProvider::new(scheme.clone());
    let epocher = FixedEpocher::new(NZU64!(u64::MAX));
    let (marshal_actor, marshal, _floor) =
        MarshalActor::<_, Standard<ChainBlock>, _, _, _, _, _>::init(
            context.child("marshal"),
            finalizations,
            blocks,
            marshal::Config {
                provider,
                epocher: epocher.clone(),
                start: marshal::Start::Genesis(Digested::precomputed(
                    genesis_block,
                    genesis_digest,
                )),
                partition_prefix: format!("{prefix}-marshal"),
                mailbox_size: NZUsize!(1_024),
                view_retention: ViewDelta::new(64),
                prunable_items_per_section: NZU64!(256),
                page_cache: page_cache.clone(),
                replay_buffer: NZUsize!(1 << 20),
                key_write_buffer: NZUsize!(1 << 20),
                value_write_buffer: NZUsize!(1 << 20),
                block_codec_config: (),
                max_repair: NZUsize!(16),
                max_pending_acks: NZUsize!(16),
                strategy: Sequential,
            },
        )
        .await;

    let shared = Arc::new(Shared::new(
        chain_id,
        validators,
        block_time_ms,
        chain.clone(),
        me,
        replayed,
    ));
    let handle = NodeHandle::new(Arc::clone(&shared), marshal.clone());
    crate::gossip::start(
        context.child("gossip"),
        Arc::clone(&shared),
        handle.clone(),
        channels.txs,
    );

    // Finalizer.
    let (finalized_tx, finalized_rx) = mpsc::unbounded();
    let finalizer_shared = Arc::clone(&shared);
    context
        .child("finalizer")
        .spawn(move |_| run_finalizer(finalizer_shared, finalized_rx));

    // Backfill resolver and block broadcast.
    let resolver = marshal_resolver::init(
        context.child("backfill"),
        marshal_resolver::Config {
            public_key: public.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size: NZUsize!(1_024),
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );
    let (broadcast_engine, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: public.clone(),
            mailbox_size: NZUsize!(1_024),
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peers,
            strategy: Sequential,
        },
    );
    broadcast_engine.start(channels.broadcast);
    marshal_actor.start(
        FinalizerMailbox {
            sender: finalized_tx,
            shared: Arc::clone(&shared),
        },
        buffer,
        resolver,
    );

    // Consensus.
    let application = Inline::new(
        context.child("application"),
        App::new(Arc::clone(&shared)),
        marshal,
        epocher,
    );
    let leader_timeout = chain.leader_timeout(block_time_ms);
    let engine = simplex::Engine::new(
        context.child("simplex"),
        simplex::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: application.clone(),
            relay: application.clone(),
            reporter: application,
            strategy: Sequential,
            partition: format!("{prefix}-simplex"),
            mailbox_size: NZUsize!(1_024),
            epoch: Epoch::zero(),
            floor: simplex::Floor::Genesis(genesis_digest),
            replay_buffer: NZUsize!(1 << 20),
            write_buffer: NZUsize!(1 << 20),
            page_cache,
            leader_timeout,
            certification_timeout: leader_timeout.saturating_add(Duration::from_secs(1)),
            timeout_retry: Duration::from_secs(1),
            view_retention: ViewDelta::new(64),
            skip: SkipPolicy::Enabled {
                timeout: leader_timeout
                    .saturating_mul(3)
                    .saturating_add(Duration::from_secs(2)),
                budget: SkipBudget::Participants,
            },
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(250),
            forward: ForwardPolicy::Disabled,
            track_historical_votes: false,
        },
    );
    let engine = engine.start(channels.votes, channels.certificates, channels.resolver);
    Ok((handle, engine))
}

/// The commonware signing key behind a Cairn keypair (same 32-byte ed25519 seed).
pub fn signing_key(key: &cairn_types::Keypair) -> Result<ed25519::PrivateKey, ChainError> {
    use commonware_codec::DecodeExt as _;
    ed25519::PrivateKey::decode(commonware_codec::Copying(&key.secret_bytes()[..])).map_err(|_| {
        ChainError::NotAValidator {
            address: key.address(),
        }
    })
}

fn private_public(private: &ed25519::PrivateKey) -> ed25519::PublicKey {
    use commonware_cryptography::Signer as _;
    private.public_key()
}
