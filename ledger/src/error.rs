//! Every way the ledger refuses something, as types.
//!
//! Two layers, following design §10 and reliability.md §2e:
//! - [`AdmissionError`]: the transaction is not authentic or cannot pay (bad signature, wrong
//!   chain, wrong nonce, fee too low or unpayable). It never enters a block; a block that
//!   carries one is invalid as a whole ([`BlockError`]).
//! - [`TxError`]: the transaction is authentic but its body cannot execute. It still pays its
//!   fee and consumes its nonce; its receipt carries the reason and nothing else changes.

use cairn_types::{Address, Amount, ChallengeId, DealId, Epoch, Hash, Height, LeaseId, OrderId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AdmissionError {
    #[error("transaction is {size_bytes} bytes encoded, the limit is {limit_bytes}")]
    TooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
    #[error("transaction is for chain {got:?}, this chain is {expected:?}")]
    WrongChain { expected: String, got: String },
    #[error("signature does not verify for sender {sender}")]
    BadSignature { sender: Address },
    #[error("nonce {got} for {sender}, expected {expected}")]
    BadNonce {
        sender: Address,
        expected: u64,
        got: u64,
    },
    #[error("fee {fee} is below the minimum {minimum}")]
    FeeTooLow { fee: Amount, minimum: Amount },
    #[error("{sender} cannot pay fees of {needed}: balance {available}")]
    CannotPayFee {
        sender: Address,
        needed: Amount,
        available: Amount,
    },
}

/// Why [`crate::Ledger::preview`] expects a transaction to fail: the fee could not be paid
/// (it would be refused at admission) or the body would fail (its fee would be charged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    #[error(transparent)]
    Body(#[from] TxError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block height {got}, expected {expected}")]
    WrongHeight { expected: Height, got: Height },
    #[error("block parent {got}, expected {expected}")]
    WrongParent { expected: Hash, got: Hash },
    #[error("block timestamp {got_ms} ms is before its parent's {parent_ms} ms")]
    TimestampDecreased { parent_ms: u64, got_ms: u64 },
    #[error("block commits to state root {got}, the parent left {expected}")]
    StateRootMismatch { expected: Hash, got: Hash },
    #[error("block tx root {got} does not match its transactions ({expected})")]
    TxRootMismatch { expected: Hash, got: Hash },
    #[error("transaction {index} ({tx}) is not admissible: {source}")]
    Inadmissible {
        index: usize,
        tx: Hash,
        #[source]
        source: AdmissionError,
    },
    #[error("ledger arithmetic overflowed while {context}")]
    Overflow { context: &'static str },
}

/// Why an authentic transaction's body did not execute. Typed so clients can match on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum TxError {
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("insufficient balance: needed {needed}, available {available}")]
    InsufficientBalance { needed: Amount, available: Amount },
    #[error("invalid {field}: {detail}")]
    InvalidField { field: String, detail: String },
    #[error("{provider} is already registered")]
    ProviderExists { provider: Address },
    /// Placement, bidding and every client reach a provider by its endpoint, so two
    /// providers at one endpoint would answer for each other.
    #[error("endpoint {endpoint} is already the endpoint of provider {holder}")]
    EndpointTaken { endpoint: String, holder: Address },
    #[error("no provider {provider}")]
    UnknownProvider { provider: Address },
    #[error("provider {provider} is {status}, not active")]
    ProviderNotActive { provider: Address, status: String },
    #[error("bond {bond} is below the minimum {minimum}")]
    BondBelowMinimum { bond: Amount, minimum: Amount },
    #[error("commission {commission_bps} bps is above the maximum {maximum_bps}")]
    CommissionTooHigh {
        commission_bps: u16,
        maximum_bps: u16,
    },
    #[error("cannot unbond {requested}: bonded {bonded}")]
    InsufficientStake { requested: Amount, bonded: Amount },
    #[error("delegation of {amount} is below the minimum {minimum}")]
    DelegationBelowMinimum { amount: Amount, minimum: Amount },
    #[error("no delegation from {delegator} to {provider}")]
    UnknownDelegation {
        delegator: Address,
        provider: Address,
    },
    #[error("provider is not jailed")]
    NotJailed,
    #[error("provider is jailed until epoch {until_epoch}")]
    StillJailed { until_epoch: Epoch },
    #[error("invalid blob: {detail}")]
    InvalidBlob { detail: String },
    #[error("{got} providers for {expected} shards")]
    ProviderCountMismatch { expected: usize, got: usize },
    #[error("provider {provider} holds two shards of the same blob")]
    DuplicateShardProvider { provider: Address },
    #[error("deal term {epochs} epochs is outside {minimum}..={maximum}")]
    DealTerm {
        epochs: u64,
        minimum: u64,
        maximum: u64,
    },
    #[error("escrow {provided} is below the required {needed}")]
    InsufficientEscrow { needed: Amount, provided: Amount },
    #[error("no deal {deal}")]
    UnknownDeal { deal: DealId },
    #[error("{sender} does not own deal {deal}")]
    NotDealOwner { deal: DealId, sender: Address },
    #[error("deal {deal} is {status}")]
    DealWrongStatus { deal: DealId, status: String },
    #[error("the inconsistency proof against deal {deal} does not hold: {detail}")]
    BadInconsistencyProof { deal: DealId, detail: String },
    #[error("{got} valid receipts, the certificate needs {needed}")]
    NotEnoughReceipts { got: usize, needed: usize },
    #[error("receipt for shard {shard_index}: {detail}")]
    BadReceipt { shard_index: u16, detail: String },
    #[error("shard {shard_index} of deal {deal} does not await repair")]
    NotAwaitingRepair { deal: DealId, shard_index: u16 },
    #[error("deal {deal} is permanent")]
    PermanentDeal { deal: DealId },
    #[error("proofs are for epoch {given}, the current challenge epoch is {current}")]
    WrongEpoch { given: Epoch, current: Epoch },
    #[error("{sender} is not a validator with stake: only validators report timed audits")]
    NotValidator { sender: Address },
    #[error("the audit report names {deal} shard {shard_index} twice")]
    DuplicateAuditedShard { deal: DealId, shard_index: u16 },
    #[error("no storage challenge for {deal} shard {shard_index} this epoch")]
    UnknownStorageChallenge { deal: DealId, shard_index: u16 },
    #[error("no compute challenge {challenge}")]
    UnknownComputeChallenge { challenge: ChallengeId },
    #[error("challenge belongs to {provider}, not to the sender")]
    NotChallengedProvider { provider: Address },
    #[error("deadline was height {deadline}, now {height}")]
    DeadlinePassed { deadline: Height, height: Height },
    #[error("challenge already answered")]
    AlreadyAnswered,
    #[error("challenge is {status}, expected {expected}")]
    ChallengeWrongStatus { status: String, expected: String },
    #[error("openings must continue at {expected}, this part starts at {got}")]
    OpeningsOutOfOrder { expected: u16, got: u16 },
    #[error("openings {first}..{end} run past the challenge's {openings}")]
    OpeningsBeyondChallenge { first: u16, end: u32, openings: u16 },
    #[error("no order {order}")]
    UnknownOrder { order: OrderId },
    #[error("{sender} does not own order {order}")]
    NotOrderOwner { order: OrderId, sender: Address },
    #[error("order {order} is {status}")]
    OrderNotOpen { order: OrderId, status: String },
    #[error("bidding closed at height {deadline}")]
    BidWindowClosed { deadline: Height },
    #[error("accepting closed at height {deadline}")]
    AcceptWindowClosed { deadline: Height },
    #[error("bid window {blocks} blocks is outside 1..={maximum}")]
    BidWindow { blocks: u64, maximum: u64 },
    #[error("price {price} per block is above the order's maximum {maximum}")]
    PriceAboveMax { price: Amount, maximum: Amount },
    #[error("offered hardware does not match the order: {detail}")]
    HardwareMismatch { detail: String },
    #[error("provider lacks free {resource}: needs {needed}, free {free}")]
    InsufficientCapacity {
        resource: String,
        needed: u64,
        free: u64,
    },
    #[error("no bid from {provider} on this order")]
    UnknownBid { provider: Address },
    #[error("no lease {lease}")]
    UnknownLease { lease: LeaseId },
    #[error("{sender} is neither tenant nor provider of lease {lease}")]
    NotLeaseParty { lease: LeaseId, sender: Address },
    #[error("lease {lease} is closed")]
    LeaseClosed { lease: LeaseId },
    #[error("only lease {lease}'s provider {provider} may report its start, not {sender}")]
    NotLeaseProvider {
        lease: LeaseId,
        provider: Address,
        sender: Address,
    },
    #[error("lease {lease} is {state}: only a starting lease can be reported started")]
    LeaseNotStarting { lease: LeaseId, state: String },
    #[error("arithmetic overflow in {context}")]
    Overflow { context: String },
}

impl TxError {
    /// The stable snake_case name of the reason (as in the JSON receipt).
    pub fn code(&self) -> String {
        serde_json_code(self)
    }
}

fn serde_json_code(err: &TxError) -> String {
    // The serde tag is the code; derive it from Debug to avoid a JSON dependency here.
    let debug = format!("{err:?}");
    let name = debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

pub(crate) fn overflow(context: &str) -> TxError {
    TxError::Overflow {
        context: context.to_string(),
    }
}

pub(crate) fn invalid(field: &str, detail: impl Into<String>) -> TxError {
    TxError::InvalidField {
        field: field.to_string(),
        detail: detail.into(),
    }
}
