//! Storage market: deals with escrow, activation by availability certificate, permanent
//! deals funded into an endowment, extension and cancellation, and storage-proof responses.
//! Per-epoch payments and verdicts live in `epoch.rs`.

use crate::error::{TxError, overflow};
use crate::state::{Deal, DealStatus, Verdict, epoch_cost};
use crate::{Ctx, Ledger};
use cairn_types::tx::{
    ActivateDeal, CreateDeal, ExtendDeal, RepairShard, ReportAuditFailures, ReportInconsistency,
    SEALED_KEY_BYTES, SHARD_RECEIPT_NAMESPACE, SubmitStorageProofs, shard_receipt_message,
};
use cairn_types::{Address, Amount, DealId};
use std::collections::BTreeSet;

/// Which timed-audit report a validator sent: wrong, missing or past the fault line
/// (`ReportAuditFailures`), or right but late (`ReportAuditLateness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuditReport {
    Failed,
    Late,
}

impl Ledger {
    fn check_blob(&self, body: &CreateDeal) -> Result<(), TxError> {
        let blob = &body.blob;
        let p = &self.params;
        let bad = |detail: String| TxError::InvalidBlob { detail };
        if blob.data_shards < p.min_data_shards || blob.data_shards > p.max_data_shards {
            return Err(bad(format!(
                "{} data shards, allowed {}..={}",
                blob.data_shards, p.min_data_shards, p.max_data_shards
            )));
        }
        if blob.parity_shards > p.max_parity_shards {
            return Err(bad(format!(
                "{} parity shards, at most {}",
                blob.parity_shards, p.max_parity_shards
            )));
        }
        if blob.shard_roots.len() != blob.shard_count() {
            return Err(bad(format!(
                "{} shard roots for {} shards",
                blob.shard_roots.len(),
                blob.shard_count()
            )));
        }
        if blob.leaf_size_bytes < p.min_leaf_size_bytes
            || blob.leaf_size_bytes > p.max_leaf_size_bytes
            || !blob.leaf_size_bytes.is_power_of_two()
        {
            return Err(bad(format!(
                "leaf size {} is not a power of two within {}..={}",
                blob.leaf_size_bytes, p.min_leaf_size_bytes, p.max_leaf_size_bytes
            )));
        }
        if blob.size_bytes > p.max_blob_size_bytes {
            return Err(bad(format!(
                "size {} above the maximum {}",
                blob.size_bytes, p.max_blob_size_bytes
            )));
        }
        // Shards must hold the blob; segmentation and AEAD tags may add bounded overhead.
        let minimum = blob.size_bytes.div_ceil(u64::from(blob.data_shards));
        let maximum = minimum.saturating_mul(2).saturating_add(1 << 20);
        if blob.shard_size_bytes < minimum || blob.shard_size_bytes > maximum {
            return Err(bad(format!(
                "shard size {} outside {minimum}..={maximum} for {} bytes in {} data shards",
                blob.shard_size_bytes, blob.size_bytes, blob.data_shards
            )));
        }
        let computed = blob.computed_id();
        if computed != blob.id {
            return Err(bad(format!(
                "id {} does not match its contents ({computed})",
                blob.id
            )));
        }
        Ok(())
    }

    pub(crate) fn create_deal(&mut self, ctx: &Ctx, body: &CreateDeal) -> Result<(), TxError> {
        self.check_blob(body)?;
        let blob = &body.blob;
        // A sealed key is whole or absent: a cut one would strand the owner's data.
        let sealed = body.sealed_key.0.len();
        if sealed != 0 && sealed != SEALED_KEY_BYTES {
            return Err(TxError::InvalidField {
                field: "sealed_key".to_string(),
                detail: format!(
                    "{sealed} bytes: a sealed data key is {SEALED_KEY_BYTES} bytes, or empty for a public blob"
                ),
            });
        }
        if body.providers.len() != blob.shard_count() {
            return Err(TxError::ProviderCountMismatch {
                expected: blob.shard_count(),
                got: body.providers.len(),
            });
        }
        let mut seen = BTreeSet::new();
        for address in body.providers.iter() {
            if !seen.insert(*address) {
                return Err(TxError::DuplicateShardProvider { provider: *address });
            }
            let provider = self.provider(address)?;
            if !provider.is_active() {
                return Err(TxError::ProviderNotActive {
                    provider: *address,
                    status: provider.status.name().to_string(),
                });
            }
            // Lease disks and deal shards share the declared storage (as in the bid check).
            let free = provider
                .declared
                .storage_bytes
                .saturating_sub(provider.committed.storage_bytes)
                .saturating_sub(provider.assigned_storage_bytes);
            if free < blob.shard_size_bytes {
                return Err(TxError::InsufficientCapacity {
                    resource: format!("storage bytes at {address}"),
                    needed: blob.shard_size_bytes,
                    free,
                });
            }
        }
        let term = if body.permanent {
            self.params.permanent_prepay_epochs
        } else {
            if body.epochs < self.params.min_deal_epochs
                || body.epochs > self.params.max_deal_epochs
            {
                return Err(TxError::DealTerm {
                    epochs: body.epochs,
                    minimum: self.params.min_deal_epochs,
                    maximum: self.params.max_deal_epochs,
                });
            }
            body.epochs
        };
        let needed = epoch_cost(body.price_per_gib_epoch, blob.size_bytes)
            .and_then(|c| c.checked_mul(u128::from(term)))
            .ok_or_else(|| overflow("deal cost"))?;
        if body.escrow < needed {
            return Err(TxError::InsufficientEscrow {
                needed,
                provided: body.escrow,
            });
        }
        self.state.debit(ctx.sender, body.escrow)?;
        for address in body.providers.iter() {
            let provider = self.provider_mut(address)?;
            provider.assigned_storage_bytes = provider
                .assigned_storage_bytes
                .saturating_add(blob.shard_size_bytes);
        }
        let id = DealId(self.state.counters.deal);
        self.state.counters.deal = self.state.counters.deal.saturating_add(1);
        self.state.blobs.entry(blob.id).or_default().push(id);
        self.state.deals.insert(
            id,
            Deal {
                id,
                owner: ctx.sender,
                blob: blob.clone(),
                providers: body.providers.0.clone(),
                permanent: body.permanent,
                epochs: if body.permanent { 0 } else { body.epochs },
                start_epoch: None,
                end_epoch: None,
                price_per_gib_epoch: body.price_per_gib_epoch,
                escrow: body.escrow,
                endowment: Amount::ZERO,
                paid_total: Amount::ZERO,
                status: DealStatus::Pending {
                    expires_height: ctx
                        .height
                        .saturating_add(self.params.deal_activation_timeout_blocks),
                },
                created_height: ctx.height,
                repair_needed: Vec::new(),
                sealed_key: body.sealed_key.clone(),
            },
        );
        Ok(())
    }

    fn deal(&self, id: DealId) -> Result<&Deal, TxError> {
        self.state
            .deals
            .get(&id)
            .ok_or(TxError::UnknownDeal { deal: id })
    }

    pub(crate) fn activate_deal(&mut self, ctx: &Ctx, body: &ActivateDeal) -> Result<(), TxError> {
        let deal = self.deal(body.deal)?;
        match deal.status {
            DealStatus::Pending { expires_height } if ctx.height >= expires_height => {
                // Past its activation deadline: the epoch sweep refunds it.
                return Err(TxError::DealWrongStatus {
                    deal: body.deal,
                    status: "expired".to_string(),
                });
            }
            DealStatus::Pending { .. } => {}
            _ => {
                return Err(TxError::DealWrongStatus {
                    deal: body.deal,
                    status: deal.status.name().to_string(),
                });
            }
        }
        let n = deal.blob.shard_count();
        let needed = (usize::from(deal.blob.data_shards)
            + usize::from(self.params.certificate_margin))
        .min(n);
        let mut seen = BTreeSet::new();
        for receipt in body.receipts.iter() {
            let index = usize::from(receipt.shard_index);
            let (Some(provider), Some(root)) = (
                deal.providers.get(index),
                deal.blob.shard_roots.0.get(index),
            ) else {
                return Err(TxError::BadReceipt {
                    shard_index: receipt.shard_index,
                    detail: format!("no shard {index} in a blob of {n}"),
                });
            };
            if !seen.insert(receipt.shard_index) {
                return Err(TxError::BadReceipt {
                    shard_index: receipt.shard_index,
                    detail: "duplicate receipt".to_string(),
                });
            }
            let key = provider.public_key().map_err(|_| TxError::BadReceipt {
                shard_index: receipt.shard_index,
                detail: "provider address is not a public key".to_string(),
            })?;
            let message =
                shard_receipt_message(body.deal, &deal.blob.id, receipt.shard_index, root);
            if !key.verify(SHARD_RECEIPT_NAMESPACE, &message, &receipt.signature) {
                return Err(TxError::BadReceipt {
                    shard_index: receipt.shard_index,
                    detail: format!("signature is not {provider}'s"),
                });
            }
        }
        if seen.len() < needed {
            return Err(TxError::NotEnoughReceipts {
                got: seen.len(),
                needed,
            });
        }
        let epoch = ctx.epoch;
        let deal = self
            .state
            .deals
            .get_mut(&body.deal)
            .ok_or(TxError::UnknownDeal { deal: body.deal })?;
        let start = epoch.saturating_add(1);
        deal.status = DealStatus::Active;
        deal.start_epoch = Some(start);
        let funded = if deal.permanent {
            deal.endowment = deal.escrow;
            deal.escrow = Amount::ZERO;
            deal.endowment
        } else {
            deal.end_epoch = Some(start.saturating_add(deal.epochs).saturating_sub(1));
            Amount::ZERO
        };
        let report = self.report_mut(epoch);
        report.endowment_funded = report
            .endowment_funded
            .checked_add(funded)
            .ok_or_else(|| overflow("endowment"))?;
        Ok(())
    }

    fn owned_deal(&self, ctx: &Ctx, id: DealId) -> Result<&Deal, TxError> {
        let deal = self.deal(id)?;
        if deal.owner != ctx.sender {
            return Err(TxError::NotDealOwner {
                deal: id,
                sender: ctx.sender,
            });
        }
        if deal.permanent {
            return Err(TxError::PermanentDeal { deal: id });
        }
        if !matches!(deal.status, DealStatus::Pending { .. } | DealStatus::Active) {
            return Err(TxError::DealWrongStatus {
                deal: id,
                status: deal.status.name().to_string(),
            });
        }
        Ok(deal)
    }

    pub(crate) fn extend_deal(&mut self, ctx: &Ctx, body: &ExtendDeal) -> Result<(), TxError> {
        let deal = self.owned_deal(ctx, body.deal)?;
        let epochs = deal
            .epochs
            .checked_add(body.extra_epochs)
            .ok_or_else(|| overflow("deal term"))?;
        if body.extra_epochs == 0 || epochs > self.params.max_deal_epochs {
            return Err(TxError::DealTerm {
                epochs,
                minimum: deal.epochs.saturating_add(1),
                maximum: self.params.max_deal_epochs,
            });
        }
        let needed = deal
            .epoch_cost()
            .and_then(|c| c.checked_mul(u128::from(body.extra_epochs)))
            .ok_or_else(|| overflow("deal cost"))?;
        if body.amount < needed {
            return Err(TxError::InsufficientEscrow {
                needed,
                provided: body.amount,
            });
        }
        let escrow = deal
            .escrow
            .checked_add(body.amount)
            .ok_or_else(|| overflow("escrow"))?;
        self.state.debit(ctx.sender, body.amount)?;
        let deal = self
            .state
            .deals
            .get_mut(&body.deal)
            .ok_or(TxError::UnknownDeal { deal: body.deal })?;
        deal.escrow = escrow;
        deal.epochs = epochs;
        if let Some(end) = deal.end_epoch.as_mut() {
            *end = end.saturating_add(body.extra_epochs);
        }
        Ok(())
    }

    pub(crate) fn cancel_deal(&mut self, ctx: &Ctx, id: DealId) -> Result<(), TxError> {
        self.owned_deal(ctx, id)?;
        self.end_deal(id, DealStatus::Cancelled)
    }

    /// Ends a deal: refunds what is left in escrow, frees provider capacity, drops challenges.
    pub(crate) fn end_deal(&mut self, id: DealId, status: DealStatus) -> Result<(), TxError> {
        let (owner, refund) = self.close_deal(id, status)?;
        self.state.credit(owner, refund)
    }

    /// What ending a deal always does: sets its status, takes its escrow out (returned with
    /// the owner, for the caller to refund or forfeit), frees its providers' capacity and
    /// drops its open challenges.
    fn close_deal(&mut self, id: DealId, status: DealStatus) -> Result<(Address, Amount), TxError> {
        let deal = self
            .state
            .deals
            .get_mut(&id)
            .ok_or(TxError::UnknownDeal { deal: id })?;
        let escrow = std::mem::replace(&mut deal.escrow, Amount::ZERO);
        deal.status = status;
        let owner = deal.owner;
        let shard_bytes = deal.blob.shard_size_bytes;
        let providers = deal.providers.clone();
        let shards = u16::try_from(providers.len()).unwrap_or(u16::MAX);
        for address in &providers {
            if let Some(p) = self.state.providers.get_mut(address) {
                p.assigned_storage_bytes = p.assigned_storage_bytes.saturating_sub(shard_bytes);
            }
        }
        for index in 0..shards {
            self.state.storage_challenges.remove(&(id, index));
        }
        Ok((owner, escrow))
    }

    /// The storage challenge of `(deal, shard)` issued for this epoch.
    fn current_challenge(
        &self,
        ctx: &Ctx,
        (deal, shard_index): (DealId, u16),
    ) -> Result<&crate::state::StorageChallenge, TxError> {
        self.state
            .storage_challenges
            .get(&(deal, shard_index))
            .filter(|c| c.epoch == ctx.epoch)
            .ok_or(TxError::UnknownStorageChallenge { deal, shard_index })
    }

    /// A validator's timed-audit failures or lateness (`cairn_proofs::timed`) of this epoch's
    /// challenges.
    /// Checked whole before anything is recorded; a validator repeating a shard it already
    /// reported changes nothing. The verdict waits for the epoch's end (`storage_verdicts`),
    /// where only reports from more than a third of the stake fail the challenge.
    pub(crate) fn report_audit_failures(
        &mut self,
        ctx: &Ctx,
        body: &ReportAuditFailures,
        kind: AuditReport,
    ) -> Result<(), TxError> {
        if self
            .state
            .validators
            .get(&ctx.sender)
            .is_none_or(|v| v.stake.is_zero())
        {
            return Err(TxError::NotValidator { sender: ctx.sender });
        }
        check_epoch(ctx, body.epoch)?;
        let mut seen = BTreeSet::new();
        for shard in body.shards.iter() {
            let key = (shard.deal, shard.shard_index);
            let challenge = self.current_challenge(ctx, key)?;
            if challenge.provider != shard.provider {
                return Err(TxError::NotChallengedProvider {
                    provider: challenge.provider,
                });
            }
            if !seen.insert(key) {
                return Err(TxError::DuplicateAuditedShard {
                    deal: shard.deal,
                    shard_index: shard.shard_index,
                });
            }
        }
        for key in seen {
            if let Some(challenge) = self.state.storage_challenges.get_mut(&key) {
                match kind {
                    AuditReport::Failed => challenge.audit_reporters.insert(ctx.sender),
                    AuditReport::Late => challenge.late_reporters.insert(ctx.sender),
                };
            }
        }
        Ok(())
    }

    pub(crate) fn submit_storage_proofs(
        &mut self,
        ctx: &Ctx,
        body: &SubmitStorageProofs,
    ) -> Result<(), TxError> {
        check_epoch(ctx, body.epoch)?;
        // Check every entry before recording any verdict, so a bad entry rejects the whole
        // transaction cleanly.
        let mut seen = BTreeSet::new();
        for proof in body.proofs.iter() {
            let key = (proof.deal, proof.shard_index);
            let challenge = self.current_challenge(ctx, key)?;
            if challenge.provider != ctx.sender {
                return Err(TxError::NotChallengedProvider {
                    provider: challenge.provider,
                });
            }
            if challenge.verdict != Verdict::Pending || !seen.insert(key) {
                return Err(TxError::AlreadyAnswered);
            }
            if ctx.height > challenge.deadline {
                return Err(TxError::DeadlinePassed {
                    deadline: challenge.deadline,
                    height: ctx.height,
                });
            }
            self.deal(proof.deal)?;
        }
        let leaves = usize::from(self.params.storage_leaves_per_challenge);
        for proof in body.proofs.iter() {
            let key = (proof.deal, proof.shard_index);
            let verdict = {
                let deal = self.deal(proof.deal)?;
                let challenge = self.state.storage_challenges.get(&key).ok_or(
                    TxError::UnknownStorageChallenge {
                        deal: proof.deal,
                        shard_index: proof.shard_index,
                    },
                )?;
                match cairn_proofs::storage::verify(&deal.blob, &challenge.seed, proof, leaves) {
                    Ok(()) => Verdict::Passed,
                    Err(e) => Verdict::Failed {
                        detail: e.to_string(),
                    },
                }
            };
            if let Some(challenge) = self.state.storage_challenges.get_mut(&key) {
                challenge.verdict = verdict;
            }
        }
        Ok(())
    }

    /// Reassigns a faulted shard to a provider that holds the rebuilt copy. Checks that the
    /// shard awaits repair, that the new provider is active, holds no other shard of the
    /// deal and has room, and that its receipt signs this shard's root; then moves the
    /// capacity, drops the old provider's open challenge on the shard (it no longer holds it,
    /// and a missed verdict would queue the shard for repair again) and clears the repair.
    pub(crate) fn repair_shard(&mut self, _ctx: &Ctx, body: &RepairShard) -> Result<(), TxError> {
        let deal = self.deal(body.deal)?;
        if deal.status != DealStatus::Active {
            return Err(TxError::DealWrongStatus {
                deal: body.deal,
                status: deal.status.name().to_string(),
            });
        }
        let index = usize::from(body.shard_index);
        let (Some(old), Some(root)) = (
            deal.providers.get(index).copied(),
            deal.blob.shard_roots.0.get(index),
        ) else {
            return Err(TxError::BadReceipt {
                shard_index: body.shard_index,
                detail: format!("no shard {index} in a blob of {}", deal.blob.shard_count()),
            });
        };
        if !deal.repair_needed.contains(&body.shard_index) {
            return Err(TxError::NotAwaitingRepair {
                deal: body.deal,
                shard_index: body.shard_index,
            });
        }
        if deal.providers.contains(&body.new_provider) {
            return Err(TxError::DuplicateShardProvider {
                provider: body.new_provider,
            });
        }
        let shard_bytes = deal.blob.shard_size_bytes;
        let message = shard_receipt_message(body.deal, &deal.blob.id, body.shard_index, root);
        let provider = self.provider(&body.new_provider)?;
        if !provider.is_active() {
            return Err(TxError::ProviderNotActive {
                provider: body.new_provider,
                status: provider.status.name().to_string(),
            });
        }
        let free = provider
            .declared
            .storage_bytes
            .saturating_sub(provider.committed.storage_bytes)
            .saturating_sub(provider.assigned_storage_bytes);
        if free < shard_bytes {
            return Err(TxError::InsufficientCapacity {
                resource: format!("storage bytes at {}", body.new_provider),
                needed: shard_bytes,
                free,
            });
        }
        let key = body
            .new_provider
            .public_key()
            .map_err(|_| TxError::BadReceipt {
                shard_index: body.shard_index,
                detail: "provider address is not a public key".to_string(),
            })?;
        if !key.verify(SHARD_RECEIPT_NAMESPACE, &message, &body.receipt) {
            return Err(TxError::BadReceipt {
                shard_index: body.shard_index,
                detail: format!("signature is not {}'s", body.new_provider),
            });
        }
        // Everything is checked: mutate.
        if let Some(p) = self.state.providers.get_mut(&old) {
            p.assigned_storage_bytes = p.assigned_storage_bytes.saturating_sub(shard_bytes);
        }
        let new = self.provider_mut(&body.new_provider)?;
        new.assigned_storage_bytes = new.assigned_storage_bytes.saturating_add(shard_bytes);
        self.state
            .storage_challenges
            .remove(&(body.deal, body.shard_index));
        let deal = self
            .state
            .deals
            .get_mut(&body.deal)
            .ok_or(TxError::UnknownDeal { deal: body.deal })?;
        if let Some(slot) = deal.providers.get_mut(index) {
            *slot = body.new_provider;
        }
        deal.repair_needed.retain(|i| *i != body.shard_index);
        Ok(())
    }

    /// Marks a deal whose blob is proven inconsistent invalid (design §10). Anyone may report:
    /// the proof is checked against the deal's own shard roots, so it cannot hit an honest
    /// blob. A pending deal can be reported too, so an uploader cannot get its escrow back
    /// by letting the certificate lapse. The deal's shards stop being challenged, paid and
    /// repaired, and their capacity is freed. Of the escrow and endowment left, the reporter
    /// gets `inconsistency_bounty_bps` and the rest is burned: a refund would make an
    /// inconsistent upload free, and the bounty is below what cancelling would refund, so
    /// an owner gains nothing by reporting itself.
    pub(crate) fn report_inconsistency(
        &mut self,
        ctx: &Ctx,
        body: &ReportInconsistency,
    ) -> Result<(), TxError> {
        let id = body.proof.deal;
        let deal = self.deal(id)?;
        if !matches!(deal.status, DealStatus::Active | DealStatus::Pending { .. }) {
            return Err(TxError::DealWrongStatus {
                deal: id,
                status: deal.status.name().to_string(),
            });
        }
        cairn_proofs::inconsistency::verify(&deal.blob, &body.proof).map_err(|e| {
            TxError::BadInconsistencyProof {
                deal: id,
                detail: e.to_string(),
            }
        })?;
        // The endowment is forfeit as well: `close_deal` takes out only the escrow.
        let deal = self
            .state
            .deals
            .get_mut(&id)
            .ok_or(TxError::UnknownDeal { deal: id })?;
        let endowment = std::mem::replace(&mut deal.endowment, Amount::ZERO);
        deal.repair_needed.clear();
        let status = DealStatus::Invalid {
            height: ctx.height,
            reporter: ctx.sender,
        };
        let (_, escrow) = self.close_deal(id, status)?;
        let forfeit = escrow
            .checked_add(endowment)
            .ok_or_else(|| overflow("deal escrow"))?;
        let bounty = forfeit.bps(self.params.inconsistency_bounty_bps);
        let burned = forfeit
            .checked_sub(bounty)
            .ok_or_else(|| overflow("burned forfeit"))?;
        self.state.credit(ctx.sender, bounty)?;
        self.burn(burned)?;
        let report = self.report_mut(ctx.epoch);
        report.burned_forfeit = report
            .burned_forfeit
            .checked_add(burned)
            .ok_or_else(|| overflow("burned forfeit"))?;
        Ok(())
    }

    /// Queues for repair every shard `provider` holds in a pending or active deal, as a
    /// failed proof queues one (`apply_faults`): the repairer rebuilds it onto a provider
    /// that holds no shard of the deal and `RepairShard` moves it. A pending deal's shard
    /// is queued too: it awaits repair from the moment the deal activates.
    pub(crate) fn queue_provider_shards_for_repair(&mut self, provider: Address) {
        for deal in self.state.deals.values_mut() {
            if !matches!(deal.status, DealStatus::Active | DealStatus::Pending { .. }) {
                continue;
            }
            for (index, holder) in deal.providers.iter().enumerate() {
                let Ok(index) = u16::try_from(index) else {
                    continue;
                };
                if *holder == provider && !deal.repair_needed.contains(&index) {
                    deal.repair_needed.push(index);
                }
            }
        }
    }

    /// Providers' addresses of a deal's shards, for tests and the simulator.
    pub fn deal_providers(&self, id: DealId) -> Option<&[Address]> {
        self.state.deals.get(&id).map(|d| d.providers.as_slice())
    }
}

/// Proofs and audit reports answer this epoch's challenges only.
fn check_epoch(ctx: &Ctx, given: cairn_types::Epoch) -> Result<(), TxError> {
    if given == ctx.epoch {
        Ok(())
    } else {
        Err(TxError::WrongEpoch {
            given,
            current: ctx.epoch,
        })
    }
}
