//! Apply blocks of signed transactions to Cairn's state: bank, staking, providers, markets, proofs, rewards and revenue.
//!
//! The ledger is the deterministic state machine of design §4: `apply(state, block) ->
//! (state', receipts)`. It is pure: no tokio, no clock (time is the block's height and
//! timestamp), no file system, no system randomness (randomness is the block's seed), no
//! `HashMap` iteration and no floats. Money is [`Amount`] with checked arithmetic. The chain
//! crate replicates it with consensus; the CLI's `ledger simulate` drives it directly.
//!
//! A block is applied in four steps:
//! 1. the header is checked against the current tip (height, parent, timestamp, tx root);
//! 2. every transaction is *admitted* (chain id, batched signature check, nonce, fee): one
//!    inadmissible transaction makes the whole block invalid and changes nothing;
//! 3. all fees are collected and nonces bumped, then each body executes; a body that fails
//!    leaves a receipt with its typed [`TxError`] and no other effect;
//! 4. the last block of an epoch runs epoch processing ([`epoch`]): payments, verdicts,
//!    faults and slashes, emission and rewards, unbonding, and the next epoch's challenges.

pub mod error;
pub mod params;
pub mod sim;
pub mod state;

mod bank;
pub mod compute;
mod epoch;
mod staking;
mod storage;

pub use error::{AdmissionError, BlockError, PreviewError, TxError};
pub use params::{Genesis, GenesisError, Params};
pub use staking::PROVIDER_LEFT;
pub use state::{State, SupplyBreakdown};

use cairn_types::block::tx_root;
use cairn_types::tx::TX_NAMESPACE;
use cairn_types::{Address, Amount, Block, Epoch, Hash, Height, SignedTransaction, TxBody};
use commonware_codec::Encode;
use commonware_cryptography::{BatchEntry, BatchVerifier, ed25519};
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The outcome of one transaction in a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub tx: Hash,
    pub height: Height,
    pub index: u32,
    pub sender: Address,
    pub kind: String,
    pub fee: Amount,
    /// `None` when the body executed; otherwise why it did not (fee and nonce still taken).
    pub error: Option<TxError>,
}

impl Receipt {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// What applying a block produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutcome {
    pub height: Height,
    pub block_hash: Hash,
    pub state_root: Hash,
    pub receipts: Vec<Receipt>,
    /// The epoch this block finished, if it was an epoch's last block.
    pub finished_epoch: Option<Epoch>,
}

/// Per-block facts handlers need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    pub height: Height,
    pub timestamp_ms: u64,
    pub seed: Hash,
    pub epoch: Epoch,
    pub sender: Address,
}

/// The ledger: parameters plus state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    params: Params,
    state: State,
    /// Root of `state`, kept so the next header's commitment is checked without rehashing.
    root: Hash,
}

impl Ledger {
    /// The state at height 0.
    pub fn from_genesis(genesis: &Genesis) -> Result<Self, GenesisError> {
        genesis.validate()?;
        let mut state = State {
            chain_id: genesis.chain_id.clone(),
            last_timestamp_ms: genesis.genesis_time_ms,
            last_block_hash: Hash::domain("cairn.genesis.v1", &[genesis.chain_id.as_bytes()]),
            next_emission: genesis.params.initial_emission_per_epoch,
            ..State::default()
        };
        for account in &genesis.accounts {
            state.accounts.insert(
                account.address,
                state::Account {
                    balance: account.balance,
                    nonce: 0,
                },
            );
        }
        for v in &genesis.validators {
            state.validators.insert(
                v.address,
                state::Validator {
                    address: v.address,
                    stake: v.stake,
                    p2p_address: v.p2p_address.clone(),
                    blocks_this_epoch: 0,
                    blocks_total: 0,
                    rewards_total: Amount::ZERO,
                },
            );
        }
        for p in &genesis.providers {
            state.providers.insert(
                p.address,
                state::Provider {
                    address: p.address,
                    endpoint: p.endpoint.clone(),
                    region: p.region.clone(),
                    declared: p.capacity.clone(),
                    commission_bps: p.commission_bps,
                    self_bond: p.bond,
                    delegated: Amount::ZERO,
                    status: state::ProviderStatus::Active,
                    claimed_int8_ops: p.claimed_int8_ops,
                    proven_int8_ops: 0,
                    proven_storage_bytes: 0,
                    last_proven_epoch: None,
                    assigned_storage_bytes: 0,
                    committed: state::Committed::default(),
                    active_leases: 0,
                    consecutive_faulty_epochs: 0,
                    late_audit_epochs: 0,
                    total_faults: 0,
                    total_slashed: Amount::ZERO,
                    fees_earned_total: Amount::ZERO,
                    rewards_total: Amount::ZERO,
                    registered_height: 0,
                    history: Default::default(),
                },
            );
        }
        state.supply.genesis = genesis.supply().ok_or(GenesisError::SupplyOverflow)?;
        let mut ledger = Self {
            params: genesis.params.clone(),
            state,
            root: Hash::ZERO,
        };
        // Challenges for epoch 0 so that genesis providers can prove from the first block.
        let seed = ledger.state.last_block_hash;
        let ctx = Ctx {
            height: 0,
            timestamp_ms: genesis.genesis_time_ms,
            seed,
            epoch: 0,
            sender: Address::default(),
        };
        ledger
            .issue_challenges(&ctx, 0)
            .map_err(|_| GenesisError::SupplyOverflow)?;
        ledger.state.epochs.insert(
            0,
            state::EpochReport {
                epoch: 0,
                start_height: 1,
                end_height: genesis.params.epoch_length_blocks,
                emission_scheduled: genesis.params.initial_emission_per_epoch,
                ..Default::default()
            },
        );
        ledger.root = ledger.state.root();
        Ok(ledger)
    }

    pub fn params(&self) -> &Params {
        &self.params
    }
    pub fn state(&self) -> &State {
        &self.state
    }
    pub fn height(&self) -> Height {
        self.state.height
    }
    /// The state root after the last applied block (what the next header must commit to).
    pub fn root(&self) -> Hash {
        self.root
    }
    /// The epoch the next block belongs to.
    pub fn current_epoch(&self) -> Epoch {
        State::epoch_of(self.state.height + 1, self.params.epoch_length_blocks)
    }

    /// Checks a transaction as the mempool and the API do before accepting it: signature,
    /// chain id, nonce (`expected_nonce` lets the caller account for pending transactions)
    /// and the fee against the sender's balance.
    pub fn admit(
        &self,
        tx: &SignedTransaction,
        expected_nonce: u64,
        fees_already_pending: Amount,
    ) -> Result<(), AdmissionError> {
        self.admit_signature_checked(tx, expected_nonce, fees_already_pending)?;
        if !tx.verify_signature() {
            return Err(AdmissionError::BadSignature {
                sender: tx.sender(),
            });
        }
        Ok(())
    }

    /// [`Self::admit`] for a transaction whose signature the caller has already verified (the
    /// node verifies a whole batch of submissions at once, outside its mempool lock).
    pub fn admit_signature_checked(
        &self,
        tx: &SignedTransaction,
        expected_nonce: u64,
        fees_already_pending: Amount,
    ) -> Result<(), AdmissionError> {
        let sender = tx.sender();
        // The per-field bounds admit encodings above the wire limit; refuse them here so a
        // block never carries a transaction that no node would accept on its own.
        let size_bytes = tx.encoded_len();
        if size_bytes > cairn_types::tx::MAX_TX_BYTES {
            return Err(AdmissionError::TooLarge {
                size_bytes,
                limit_bytes: cairn_types::tx::MAX_TX_BYTES,
            });
        }
        if tx.tx.chain_id.as_str() != self.state.chain_id {
            return Err(AdmissionError::WrongChain {
                expected: self.state.chain_id.clone(),
                got: tx.tx.chain_id.as_str().to_string(),
            });
        }
        if tx.tx.nonce != expected_nonce {
            return Err(AdmissionError::BadNonce {
                sender,
                expected: expected_nonce,
                got: tx.tx.nonce,
            });
        }
        if tx.tx.fee < self.params.min_tx_fee {
            return Err(AdmissionError::FeeTooLow {
                fee: tx.tx.fee,
                minimum: self.params.min_tx_fee,
            });
        }
        let available = self.state.balance(&sender);
        let needed = fees_already_pending.checked_add(tx.tx.fee);
        match needed {
            Some(needed) if needed <= available => Ok(()),
            _ => Err(AdmissionError::CannotPayFee {
                sender,
                needed: needed.unwrap_or(Amount(u128::MAX)),
                available,
            }),
        }
    }

    /// What `body` from `sender` paying `fee` would do as the next block's only transaction,
    /// without signing or changing anything: the fee checks of admission, then the body run
    /// on a copy of the ledger after its fee is taken (a body cannot spend its own fee).
    /// Clients call it (through the node API) before signing, so a transfer above the balance
    /// is refused before it pays a fee. The block's time and seed are the last block's:
    /// handlers that read them see the state as of now.
    ///
    /// Costs a copy of the whole state, like the state root; fine at devnet scale, and the
    /// authenticated store that replaces the root will make copies cheap too.
    pub fn preview(&self, sender: Address, fee: Amount, body: &TxBody) -> Result<(), PreviewError> {
        if fee < self.params.min_tx_fee {
            return Err(AdmissionError::FeeTooLow {
                fee,
                minimum: self.params.min_tx_fee,
            }
            .into());
        }
        let available = self.state.balance(&sender);
        if fee > available {
            return Err(AdmissionError::CannotPayFee {
                sender,
                needed: fee,
                available,
            }
            .into());
        }
        let mut scratch = self.clone();
        let height = self.state.height.saturating_add(1);
        let ctx = Ctx {
            height,
            timestamp_ms: self.state.last_timestamp_ms,
            seed: self.state.last_seed,
            epoch: State::epoch_of(height, self.params.epoch_length_blocks),
            sender,
        };
        scratch.collect_fee(&sender, fee, ctx.epoch)?;
        scratch.execute(&ctx, body)?;
        Ok(())
    }

    /// Verifies every signature of `txs` in one batch. Returns the index of a bad one.
    ///
    /// The batch's random coefficients come from a ChaCha stream seeded by the hash of all the
    /// signatures: unpredictable to whoever chose the signatures, identical on every node.
    pub fn verify_signatures(txs: &[SignedTransaction]) -> Result<(), usize> {
        Self::verify_signatures_of(&txs.iter().collect::<Vec<_>>())
    }

    /// [`Self::verify_signatures`] over borrowed transactions (a subset of a block, say).
    pub fn verify_signatures_of(txs: &[&SignedTransaction]) -> Result<(), usize> {
        if txs.is_empty() {
            return Ok(());
        }
        let messages: Vec<(ed25519::PublicKey, Vec<u8>, ed25519::Signature)> = txs
            .iter()
            .map(|t| {
                (
                    t.tx.sender.0.clone(),
                    t.tx.encode().to_vec(),
                    t.signature.0.clone(),
                )
            })
            .collect();
        let mut seed = blake3::Hasher::new_derive_key("cairn.ledger.batch-verify.v1");
        for (_, msg, sig) in &messages {
            seed.update(sig.as_ref());
            seed.update(msg);
        }
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(*seed.finalize().as_bytes());
        let ok = ed25519::PublicKey::verify_batch(
            &mut rng,
            &messages,
            |_, (pk, msg, sig)| BatchEntry {
                namespace: TX_NAMESPACE,
                message: msg,
                public_key: pk,
                signature: sig,
            },
            &commonware_parallel::Sequential,
        );
        if ok {
            return Ok(());
        }
        // Find the culprit so the error names it; only on the failure path.
        Err(txs.iter().position(|t| !t.verify_signature()).unwrap_or(0))
    }

    /// Applies a block. On error nothing changes.
    pub fn apply_block(&mut self, block: &Block) -> Result<BlockOutcome, BlockError> {
        self.apply(block, true)
    }

    /// Applies a block whose signatures the caller has already verified (the chain verifies
    /// them once when the proposal arrives). Everything else is checked here.
    pub fn apply_verified_block(&mut self, block: &Block) -> Result<BlockOutcome, BlockError> {
        self.apply(block, false)
    }

    fn apply(
        &mut self,
        block: &Block,
        verify_signatures: bool,
    ) -> Result<BlockOutcome, BlockError> {
        let txs = &block.txs.0;
        self.check_header(block)?;
        if !verify_signatures {
            return self.execute_block(block);
        }
        if let Err(index) = Self::verify_signatures(txs) {
            let tx = &txs[index];
            return Err(BlockError::Inadmissible {
                index,
                tx: tx.hash(),
                source: AdmissionError::BadSignature {
                    sender: tx.sender(),
                },
            });
        }
        self.execute_block(block)
    }

    /// Admission and execution of a block whose header and signatures are checked.
    fn execute_block(&mut self, block: &Block) -> Result<BlockOutcome, BlockError> {
        let txs = &block.txs.0;

        // Admission over a scratch view so that a bad block changes nothing.
        let mut pending: BTreeMap<Address, (u64, Amount)> = BTreeMap::new();
        for (index, tx) in txs.iter().enumerate() {
            let sender = tx.sender();
            let (nonce, fees) = pending
                .get(&sender)
                .copied()
                .unwrap_or((self.state.nonce(&sender), Amount::ZERO));
            self.admit_signature_checked(tx, nonce, fees)
                .map_err(|source| BlockError::Inadmissible {
                    index,
                    tx: tx.hash(),
                    source,
                })?;
            let fees = fees
                .checked_add(tx.tx.fee)
                .ok_or(BlockError::Overflow { context: "fees" })?;
            let next = nonce
                .checked_add(1)
                .ok_or(BlockError::Overflow { context: "nonce" })?;
            pending.insert(sender, (next, fees));
        }

        let height = block.header.height;
        let epoch = State::epoch_of(height, self.params.epoch_length_blocks);
        let mut ctx = Ctx {
            height,
            timestamp_ms: block.header.timestamp_ms,
            seed: block.header.seed,
            epoch,
            sender: Address::default(),
        };

        // Fees first, all of them: a body cannot spend the balance its fee needs.
        for tx in txs {
            self.collect_fee(&tx.sender(), tx.tx.fee, epoch)
                .map_err(|_| BlockError::Overflow {
                    context: "collecting fees",
                })?;
        }

        let mut receipts = Vec::with_capacity(txs.len());
        for (index, tx) in txs.iter().enumerate() {
            ctx.sender = tx.sender();
            let result = self.execute(&ctx, &tx.tx.body);
            receipts.push(Receipt {
                tx: tx.hash(),
                height,
                index: u32::try_from(index).unwrap_or(u32::MAX),
                sender: ctx.sender,
                kind: tx.tx.body.kind().to_string(),
                fee: tx.tx.fee,
                error: result.err(),
            });
        }

        if let Some(v) = self.state.validators.get_mut(&block.header.proposer) {
            v.blocks_this_epoch = v.blocks_this_epoch.saturating_add(1);
            v.blocks_total = v.blocks_total.saturating_add(1);
        }

        self.state.height = height;
        self.state.last_block_hash = block.hash();
        self.state.last_timestamp_ms = block.header.timestamp_ms;
        self.state.last_seed = block.header.seed;

        let finished_epoch = if height.is_multiple_of(self.params.epoch_length_blocks) {
            self.finish_epoch(&ctx).map_err(|_| BlockError::Overflow {
                context: "epoch processing",
            })?;
            Some(epoch)
        } else {
            None
        };

        self.root = self.state.root();
        Ok(BlockOutcome {
            height,
            block_hash: self.state.last_block_hash,
            state_root: self.root,
            receipts,
            finished_epoch,
        })
    }

    fn check_header(&self, block: &Block) -> Result<(), BlockError> {
        let header = &block.header;
        let expected = self.state.height + 1;
        if header.height != expected {
            return Err(BlockError::WrongHeight {
                expected,
                got: header.height,
            });
        }
        if header.parent != self.state.last_block_hash {
            return Err(BlockError::WrongParent {
                expected: self.state.last_block_hash,
                got: header.parent,
            });
        }
        if header.timestamp_ms < self.state.last_timestamp_ms {
            return Err(BlockError::TimestampDecreased {
                parent_ms: self.state.last_timestamp_ms,
                got_ms: header.timestamp_ms,
            });
        }
        if header.state_root != self.root {
            return Err(BlockError::StateRootMismatch {
                expected: self.root,
                got: header.state_root,
            });
        }
        let root = tx_root(&block.txs.0);
        if root != header.tx_root {
            return Err(BlockError::TxRootMismatch {
                expected: root,
                got: header.tx_root,
            });
        }
        Ok(())
    }

    /// Takes a fee, bumps the nonce, and splits the fee into burn and treasury.
    fn collect_fee(&mut self, sender: &Address, fee: Amount, epoch: Epoch) -> Result<(), TxError> {
        self.state.debit(*sender, fee)?;
        let account = self.state.accounts.entry(*sender).or_default();
        account.nonce = account
            .nonce
            .checked_add(1)
            .ok_or_else(|| error::overflow("nonce"))?;
        let burn = fee.bps(self.params.fee_burn_bps);
        let treasury = fee
            .checked_sub(burn)
            .ok_or_else(|| error::overflow("fee split"))?;
        self.burn(burn)?;
        self.credit_treasury(treasury, epoch)?;
        let report = self.report_mut(epoch);
        report.revenue.tx_fees = report
            .revenue
            .tx_fees
            .checked_add(fee)
            .ok_or_else(|| error::overflow("revenue"))?;
        report.burned_fees = report
            .burned_fees
            .checked_add(burn)
            .ok_or_else(|| error::overflow("revenue"))?;
        Ok(())
    }

    fn burn(&mut self, amount: Amount) -> Result<(), TxError> {
        self.state.supply.burned = self
            .state
            .supply
            .burned
            .checked_add(amount)
            .ok_or_else(|| error::overflow("burn"))?;
        Ok(())
    }

    fn credit_treasury(&mut self, amount: Amount, epoch: Epoch) -> Result<(), TxError> {
        self.state.treasury = self
            .state
            .treasury
            .checked_add(amount)
            .ok_or_else(|| error::overflow("treasury"))?;
        let report = self.report_mut(epoch);
        report.to_treasury = report
            .to_treasury
            .checked_add(amount)
            .ok_or_else(|| error::overflow("treasury"))?;
        Ok(())
    }

    pub(crate) fn report_mut(&mut self, epoch: Epoch) -> &mut state::EpochReport {
        let length = self.params.epoch_length_blocks;
        self.state
            .epochs
            .entry(epoch)
            .or_insert_with(|| state::EpochReport {
                epoch,
                start_height: epoch * length + 1,
                end_height: (epoch + 1) * length,
                ..Default::default()
            })
    }

    /// Splits a market payment into the protocol take (burn + treasury) and the provider's
    /// part, credits the provider and books the revenue. Returns the provider's part.
    fn pay_provider(
        &mut self,
        provider: Address,
        gross: Amount,
        source: RevenueSource,
        epoch: Epoch,
    ) -> Result<Amount, TxError> {
        let take = gross.bps(self.params.take_rate_bps);
        let net = gross
            .checked_sub(take)
            .ok_or_else(|| error::overflow("take"))?;
        let burn = take.bps(self.params.take_burn_bps);
        let treasury = take
            .checked_sub(burn)
            .ok_or_else(|| error::overflow("take"))?;
        self.state.credit(provider, net)?;
        self.burn(burn)?;
        self.credit_treasury(treasury, epoch)?;
        if let Some(p) = self.state.providers.get_mut(&provider) {
            p.fees_earned_total = p
                .fees_earned_total
                .checked_add(net)
                .unwrap_or(Amount(u128::MAX));
        }
        let report = self.report_mut(epoch);
        let bucket = match source {
            RevenueSource::Storage => &mut report.revenue.storage,
            RevenueSource::Compute => &mut report.revenue.compute,
        };
        *bucket = bucket
            .checked_add(gross)
            .ok_or_else(|| error::overflow("revenue"))?;
        report.protocol_take = report
            .protocol_take
            .checked_add(take)
            .ok_or_else(|| error::overflow("revenue"))?;
        report.burned_take = report
            .burned_take
            .checked_add(burn)
            .ok_or_else(|| error::overflow("revenue"))?;
        Ok(net)
    }

    fn execute(&mut self, ctx: &Ctx, body: &TxBody) -> Result<(), TxError> {
        match body {
            TxBody::Transfer(b) => self.transfer(ctx, b),
            TxBody::RegisterProvider(b) => self.register_provider(ctx, b),
            TxBody::UpdateProvider(b) => self.update_provider(ctx, b),
            TxBody::Bond(b) => self.bond(ctx, b.amount),
            TxBody::Unbond(b) => self.unbond(ctx, b.amount),
            TxBody::Delegate(b) => self.delegate(ctx, b),
            TxBody::Undelegate(b) => self.undelegate(ctx, b),
            TxBody::LeaveProvider(_) => self.leave_provider(ctx),
            TxBody::Unjail(_) => self.unjail(ctx),
            TxBody::CreateDeal(b) => self.create_deal(ctx, b),
            TxBody::ActivateDeal(b) => self.activate_deal(ctx, b),
            TxBody::ExtendDeal(b) => self.extend_deal(ctx, b),
            TxBody::CancelDeal(b) => self.cancel_deal(ctx, b.deal),
            TxBody::SubmitStorageProofs(b) => self.submit_storage_proofs(ctx, b),
            TxBody::CreateOrder(b) => self.create_order(ctx, b),
            TxBody::CancelOrder(b) => self.cancel_order(ctx, b.order),
            TxBody::PlaceBid(b) => self.place_bid(ctx, b),
            TxBody::AcceptBid(b) => self.accept_bid(ctx, b),
            TxBody::TopUpLease(b) => self.top_up_lease(ctx, b),
            TxBody::CloseLease(b) => self.close_lease_tx(ctx, b),
            TxBody::WithdrawLease(b) => self.withdraw_lease(ctx, b.lease),
            TxBody::CommitCompute(b) => self.commit_compute(ctx, b),
            TxBody::OpenCompute(b) => self.open_compute(ctx, b),
            TxBody::RepairShard(b) => self.repair_shard(ctx, b),
            TxBody::ReportInconsistency(b) => self.report_inconsistency(ctx, b),
            TxBody::ReportAuditFailures(b) => {
                self.report_audit_failures(ctx, b, storage::AuditReport::Failed)
            }
            TxBody::ReportAuditLateness(b) => {
                self.report_audit_failures(ctx, b, storage::AuditReport::Late)
            }
            TxBody::LeaseStarted(b) => self.start_lease(ctx, b),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum RevenueSource {
    Storage,
    Compute,
}
