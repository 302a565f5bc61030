//! The signed transaction envelope and every transaction body.
//!
//! One canonical binary encoding (commonware-codec, fixed-width big-endian integers, one-byte
//! tags, u32-bounded lengths checked against per-field maxima) and one JSON form (serde).
//! The signature covers the encoding of [`Transaction`] under the [`TX_NAMESPACE`].

use crate::amount::Amount;
use crate::codec::{BoundedBytes, BoundedString, BoundedVec};
use crate::hash::Hash;
use crate::ids::{Capacity, ChallengeId, DealId, Hardware, LeaseId, OrderId, Resources};
use crate::keys::{Address, Keypair, PublicKey, Signature};
use crate::proof::{ComputeOpening, InconsistencyProof, StorageProof};
use crate::{codec_enum, codec_struct};
use commonware_codec::{Decode, Encode, EncodeSize};
use serde::{Deserialize, Serialize};

/// Signature namespace of transactions; unique to this use so a signature made for a shard
/// receipt or a p2p message can never authorize a transfer.
pub const TX_NAMESPACE: &[u8] = b"_CAIRN_TX";
/// Largest encoded signed transaction accepted anywhere.
pub const MAX_TX_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub to: Address,
    pub amount: Amount,
}
codec_struct!(Transfer { to, amount });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterProvider {
    pub endpoint: BoundedString<256>,
    pub region: BoundedString<32>,
    pub capacity: Capacity,
    /// Share of delegators' rewards the provider keeps, in basis points.
    pub commission_bps: u16,
    /// Self-bond moved from the balance into stake.
    pub bond: Amount,
    /// Claimed int8 rate in operations per second (0 for storage-only providers).
    pub claimed_int8_ops: u64,
}
codec_struct!(RegisterProvider {
    endpoint,
    region,
    capacity,
    commission_bps,
    bond,
    claimed_int8_ops
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateProvider {
    pub endpoint: BoundedString<256>,
    pub region: BoundedString<32>,
    pub capacity: Capacity,
    pub commission_bps: u16,
    pub claimed_int8_ops: u64,
}
codec_struct!(UpdateProvider {
    endpoint,
    region,
    capacity,
    commission_bps,
    claimed_int8_ops
});

/// Adds to (Bond) or starts unbonding (Unbond) the sender's own provider stake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeAmount {
    pub amount: Amount,
}
codec_struct!(StakeAmount { amount });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    pub provider: Address,
    pub amount: Amount,
}
codec_struct!(Delegation { provider, amount });

/// A body with no fields (leave, unjail).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}
impl commonware_codec::Write for Empty {
    fn write(&self, _: &mut impl bytes::BufMut) {}
}
impl commonware_codec::EncodeSize for Empty {
    fn encode_size(&self) -> usize {
        0
    }
}
impl commonware_codec::Read for Empty {
    type Cfg = ();
    fn read_cfg(
        _: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        Ok(Self {})
    }
}

/// What a blob is: its id commits to everything else here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    pub id: Hash,
    pub size_bytes: u64,
    pub data_shards: u16,
    pub parity_shards: u16,
    pub shard_size_bytes: u64,
    pub leaf_size_bytes: u32,
    pub shard_roots: BoundedVec<Hash, 256>,
}
codec_struct!(BlobMeta {
    id,
    size_bytes,
    data_shards,
    parity_shards,
    shard_size_bytes,
    leaf_size_bytes,
    shard_roots
});

impl BlobMeta {
    /// The id these parameters and roots imply.
    pub fn computed_id(&self) -> Hash {
        crate::ids::blob_id(
            self.size_bytes,
            self.data_shards,
            self.parity_shards,
            self.shard_size_bytes,
            self.leaf_size_bytes,
            &self.shard_roots.0,
        )
    }
    pub fn shard_count(&self) -> usize {
        usize::from(self.data_shards) + usize::from(self.parity_shards)
    }
    /// Leaves per shard (the last leaf may be short).
    pub fn leaf_count(&self) -> u64 {
        let leaf = u64::from(self.leaf_size_bytes.max(1));
        self.shard_size_bytes.div_ceil(leaf).max(1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDeal {
    pub blob: BlobMeta,
    /// Provider of each shard, by shard index.
    pub providers: BoundedVec<Address, 256>,
    /// Paid once into an endowment and never expires (`epochs` is then ignored).
    pub permanent: bool,
    pub epochs: u64,
    pub price_per_gib_epoch: Amount,
    /// Moved from the owner's balance into the deal's escrow (or endowment).
    pub escrow: Amount,
    /// The blob's data key sealed to the owner's key ([`SEALED_KEY_BYTES`]), empty for a
    /// public blob: the owner's key alone then reads the blob back, on any machine.
    pub sealed_key: BoundedBytes<SEALED_KEY_BYTES>,
}
codec_struct!(CreateDeal {
    blob,
    providers,
    permanent,
    epochs,
    price_per_gib_epoch,
    escrow,
    sealed_key
});

/// Bytes of a sealed data key: the 32-byte key under AES-256-GCM, then its 16-byte tag.
pub const SEALED_KEY_BYTES: usize = 48;

/// Signature namespace of shard receipts.
pub const SHARD_RECEIPT_NAMESPACE: &[u8] = b"_CAIRN_SHARD_RECEIPT";

/// The message a provider signs when it has a shard durably on disk.
pub fn shard_receipt_message(deal: DealId, blob: &Hash, shard_index: u16, root: &Hash) -> Vec<u8> {
    let mut msg = Vec::with_capacity(8 + 32 + 2 + 32);
    msg.extend_from_slice(&deal.0.to_be_bytes());
    msg.extend_from_slice(&blob.0);
    msg.extend_from_slice(&shard_index.to_be_bytes());
    msg.extend_from_slice(&root.0);
    msg
}

/// Signature namespace of a deal owner's (or repairer's) request to store a shard with a
/// provider; distinct from receipts and transactions so neither can be replayed as the other.
pub const SHARD_PUT_NAMESPACE: &[u8] = b"_CAIRN_SHARD_PUT";

/// The message the uploader signs to `PUT /v1/shards/{blob}/{index}?deal=<deal>`: the same
/// fields as the receipt, under [`SHARD_PUT_NAMESPACE`].
pub fn shard_put_message(deal: DealId, blob: &Hash, shard_index: u16, root: &Hash) -> Vec<u8> {
    shard_receipt_message(deal, blob, shard_index, root)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReceipt {
    pub shard_index: u16,
    pub signature: Signature,
}
codec_struct!(ShardReceipt {
    shard_index,
    signature
});

/// The availability certificate: receipts of at least k + margin providers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateDeal {
    pub deal: DealId,
    pub receipts: BoundedVec<ShardReceipt, 256>,
}
codec_struct!(ActivateDeal { deal, receipts });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendDeal {
    pub deal: DealId,
    pub extra_epochs: u64,
    pub amount: Amount,
}
codec_struct!(ExtendDeal {
    deal,
    extra_epochs,
    amount
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRef {
    pub deal: DealId,
}
codec_struct!(DealRef { deal });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitStorageProofs {
    pub epoch: u64,
    pub proofs: BoundedVec<StorageProof, 1024>,
}
codec_struct!(SubmitStorageProofs { epoch, proofs });

/// Moves a faulted shard to a new provider once it holds the rebuilt shard: `receipt` is the
/// new provider's signature over `shard_receipt_message(deal, blob, shard_index, root)`.
/// Anyone may send it; the chain checks the shard awaits repair and the receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairShard {
    pub deal: DealId,
    pub shard_index: u16,
    pub new_provider: Address,
    pub receipt: Signature,
}
codec_struct!(RepairShard {
    deal,
    shard_index,
    new_provider,
    receipt
});

/// Proves a deal's blob inconsistent (its shards are not one codeword). Anyone may send it;
/// the chain verifies the proof against the deal's shard roots, marks the deal invalid
/// (no more challenges, payments or repairs) and burns what is left of its escrow and
/// endowment: the uploader who encoded it inconsistently gets nothing back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportInconsistency {
    pub proof: InconsistencyProof,
}
codec_struct!(ReportInconsistency { proof });

/// One shard whose holder failed a validator's timed audit (`cairn_proofs::timed`): late or
/// wrong. `provider` is the holder the validator audited, so a report cannot land on the
/// shard's next holder after a repair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedShard {
    pub deal: DealId,
    pub shard_index: u16,
    pub provider: Address,
}
codec_struct!(AuditedShard {
    deal,
    shard_index,
    provider
});

/// Most shards one audit report names.
pub const MAX_AUDIT_REPORT_SHARDS: usize = 64;

/// A validator's timed-audit failures of this epoch. Only validators may send it: an audit
/// verdict is a measurement, not a proof, so it counts only when validators holding more
/// than a third of the stake (at least one honest one, under the chain's own assumption)
/// report the same shard; the epoch's verdict on that shard's challenge is then a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAuditFailures {
    pub epoch: u64,
    pub shards: BoundedVec<AuditedShard, MAX_AUDIT_REPORT_SHARDS>,
}
codec_struct!(ReportAuditFailures { epoch, shards });

/// A validator's timed audits of this epoch that were answered right but late: after the
/// deadline and before the fault line (`cairn_proofs::timed::Timeliness::Late`). Carried in
/// the same shape as [`ReportAuditFailures`], but it faults nothing by itself: with more
/// than a third of the stake behind it, the provider takes a strike and is audited again
/// by every validator; only `late_audits_before_fault` consecutive strikes fault it.
pub type ReportAuditLateness = ReportAuditFailures;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrder {
    pub manifest_hash: Hash,
    pub resources: Resources,
    pub max_price_per_block: Amount,
    /// Moved into the order and on into the lease's escrow.
    pub deposit: Amount,
    pub bid_window_blocks: u64,
}
codec_struct!(CreateOrder {
    manifest_hash,
    resources,
    max_price_per_block,
    deposit,
    bid_window_blocks
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    pub order: OrderId,
}
codec_struct!(OrderRef { order });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceBid {
    pub order: OrderId,
    pub price_per_block: Amount,
    pub hardware: Hardware,
}
codec_struct!(PlaceBid {
    order,
    price_per_block,
    hardware
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptBid {
    pub order: OrderId,
    pub provider: Address,
}
codec_struct!(AcceptBid { order, provider });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUpLease {
    pub lease: LeaseId,
    pub amount: Amount,
}
codec_struct!(TopUpLease { lease, amount });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseLease {
    pub lease: LeaseId,
    pub reason: BoundedString<256>,
}
codec_struct!(CloseLease { lease, reason });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRef {
    pub lease: LeaseId,
}
codec_struct!(LeaseRef { lease });

/// The lease's provider reports that the workload runs. A lease is billed only from the
/// block that records this: until then it is starting and costs the tenant nothing, and a
/// lease whose start is never reported is closed by the protocol with its escrow refunded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStarted {
    pub lease: LeaseId,
}
codec_struct!(LeaseStarted { lease });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCompute {
    pub challenge: ChallengeId,
    pub root: Hash,
}
codec_struct!(CommitCompute { challenge, root });

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCompute {
    pub challenge: ChallengeId,
    /// Position of `openings[0]` among the challenge's openings: a challenge's openings
    /// (700 by default, each with its Merkle path) exceed one transaction, so they arrive in
    /// consecutive parts, each verified as it lands.
    pub first_opening: u16,
    pub openings: BoundedVec<ComputeOpening, 4096>,
}
codec_struct!(OpenCompute {
    challenge,
    first_opening,
    openings
});

/// Every state change a signed transaction can ask for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TxBody {
    Transfer(Transfer),
    RegisterProvider(RegisterProvider),
    UpdateProvider(UpdateProvider),
    Bond(StakeAmount),
    Unbond(StakeAmount),
    Delegate(Delegation),
    Undelegate(Delegation),
    LeaveProvider(Empty),
    Unjail(Empty),
    CreateDeal(CreateDeal),
    ActivateDeal(ActivateDeal),
    ExtendDeal(ExtendDeal),
    CancelDeal(DealRef),
    SubmitStorageProofs(SubmitStorageProofs),
    CreateOrder(CreateOrder),
    CancelOrder(OrderRef),
    PlaceBid(PlaceBid),
    AcceptBid(AcceptBid),
    TopUpLease(TopUpLease),
    CloseLease(CloseLease),
    WithdrawLease(LeaseRef),
    CommitCompute(CommitCompute),
    OpenCompute(OpenCompute),
    RepairShard(RepairShard),
    ReportInconsistency(ReportInconsistency),
    ReportAuditFailures(ReportAuditFailures),
    ReportAuditLateness(ReportAuditLateness),
    LeaseStarted(LeaseStarted),
}
codec_enum!(TxBody {
    0 => Transfer,
    1 => RegisterProvider,
    2 => UpdateProvider,
    3 => Bond,
    4 => Unbond,
    5 => Delegate,
    6 => Undelegate,
    7 => LeaveProvider,
    8 => Unjail,
    9 => CreateDeal,
    10 => ActivateDeal,
    11 => ExtendDeal,
    12 => CancelDeal,
    13 => SubmitStorageProofs,
    14 => CreateOrder,
    15 => CancelOrder,
    16 => PlaceBid,
    17 => AcceptBid,
    18 => TopUpLease,
    19 => CloseLease,
    20 => WithdrawLease,
    21 => CommitCompute,
    22 => OpenCompute,
    23 => RepairShard,
    24 => ReportInconsistency,
    25 => ReportAuditFailures,
    26 => ReportAuditLateness,
    27 => LeaseStarted,
});

impl TxBody {
    /// A short stable name for receipts, metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transfer(_) => "transfer",
            Self::RegisterProvider(_) => "register_provider",
            Self::UpdateProvider(_) => "update_provider",
            Self::Bond(_) => "bond",
            Self::Unbond(_) => "unbond",
            Self::Delegate(_) => "delegate",
            Self::Undelegate(_) => "undelegate",
            Self::LeaveProvider(_) => "leave_provider",
            Self::Unjail(_) => "unjail",
            Self::CreateDeal(_) => "create_deal",
            Self::ActivateDeal(_) => "activate_deal",
            Self::ExtendDeal(_) => "extend_deal",
            Self::CancelDeal(_) => "cancel_deal",
            Self::SubmitStorageProofs(_) => "submit_storage_proofs",
            Self::CreateOrder(_) => "create_order",
            Self::CancelOrder(_) => "cancel_order",
            Self::PlaceBid(_) => "place_bid",
            Self::AcceptBid(_) => "accept_bid",
            Self::TopUpLease(_) => "top_up_lease",
            Self::CloseLease(_) => "close_lease",
            Self::WithdrawLease(_) => "withdraw_lease",
            Self::CommitCompute(_) => "commit_compute",
            Self::OpenCompute(_) => "open_compute",
            Self::RepairShard(_) => "repair_shard",
            Self::ReportInconsistency(_) => "report_inconsistency",
            Self::ReportAuditFailures(_) => "report_audit_failures",
            Self::ReportAuditLateness(_) => "report_audit_lateness",
            Self::LeaseStarted(_) => "lease_started",
        }
    }
}

/// The unsigned transaction: what the signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub chain_id: BoundedString<64>,
    pub sender: PublicKey,
    pub nonce: u64,
    pub fee: Amount,
    pub body: TxBody,
}
codec_struct!(Transaction {
    chain_id,
    sender,
    nonce,
    fee,
    body
});

impl Transaction {
    /// Signs with `key`; the sender field is set from the key so the two cannot disagree.
    pub fn sign(mut self, key: &Keypair) -> SignedTransaction {
        self.sender = key.public_key().clone();
        let signature = key.sign(TX_NAMESPACE, &self.encode());
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

/// A transaction with its sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signature: Signature,
}
codec_struct!(SignedTransaction { tx, signature });

/// Most transactions in one batch (`POST /v1/txs/batch`).
pub const MAX_BATCH_TXS: usize = 4_096;

/// The canonical encoding of a batch of transactions: a length-prefixed list.
pub fn encode_batch(txs: &[SignedTransaction]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(txs.iter().map(|t| t.encode_size()).sum::<usize>() + 8);
    commonware_codec::Write::write(&txs.to_vec(), &mut buf);
    buf
}

/// Decodes [`encode_batch`]'s output, refusing more than [`MAX_BATCH_TXS`] before allocating.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<SignedTransaction>, DecodeError> {
    crate::BoundedVec::<SignedTransaction, MAX_BATCH_TXS>::decode_cfg(
        commonware_codec::Copying(bytes),
        &(),
    )
    .map(|batch| batch.0)
    .map_err(|source| DecodeError::Malformed {
        what: "transaction batch",
        source,
    })
}

/// Why bytes did not decode into a transaction or block.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is {size_bytes} bytes, the limit is {limit_bytes}")]
    TooLarge {
        what: &'static str,
        size_bytes: usize,
        limit_bytes: usize,
    },
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        #[source]
        source: commonware_codec::Error,
    },
}

impl SignedTransaction {
    /// Decodes the canonical encoding, refusing oversized input before parsing it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(DecodeError::TooLarge {
                what: "transaction",
                size_bytes: bytes.len(),
                limit_bytes: MAX_TX_BYTES,
            });
        }
        Self::decode_cfg(commonware_codec::Copying(bytes), &()).map_err(|source| {
            DecodeError::Malformed {
                what: "transaction",
                source,
            }
        })
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode().to_vec()
    }
    /// The transaction hash: BLAKE3 of the canonical encoding (signature included).
    pub fn hash(&self) -> Hash {
        Hash::domain("cairn.tx.v2", &[&self.encode()])
    }
    /// The bytes the signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        self.tx.encode().to_vec()
    }
    /// Checks the signature alone (one verification; blocks batch theirs).
    pub fn verify_signature(&self) -> bool {
        self.tx
            .sender
            .verify(TX_NAMESPACE, &self.tx.encode(), &self.signature)
    }
    pub fn sender(&self) -> Address {
        self.tx.sender.address()
    }
    pub fn encoded_len(&self) -> usize {
        self.encode_size()
    }
}
