//! Compute market: orders, bids carrying exact hardware and proven rate, leases with lazy
//! idempotent settlement, pause on empty escrow with a grace period, top-up, close with a
//! recorded reason, provider withdraw; and the commit/open steps of compute challenges.
//!
//! A lease is billed only for blocks in which its workload runs: it starts unbilled
//! (`Starting`), the provider reports the start (`LeaseStarted`) and billing begins after
//! that block; a lease never reported started closes with all its escrow refunded.

use crate::error::{TxError, overflow};
use crate::state::{Bid, ComputePhase, Lease, LeaseState, Order, OrderStatus, Provider};
use crate::{Ctx, Ledger, RevenueSource};
use cairn_types::tx::{
    AcceptBid, CloseLease, CommitCompute, CreateOrder, LeaseStarted, OpenCompute, PlaceBid,
    TopUpLease,
};
use cairn_types::{
    Amount, CloseInitiator, Epoch, Hardware, Hash, Height, LeaseId, OrderId, Resources,
};

/// What settling a lease at a height would do; computed without touching state so a failing
/// transaction can refuse before changing anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub pay: Amount,
    pub settled_through: Height,
    pub outcome: SettledState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettledState {
    /// Not yet reported running; nothing owed.
    Starting {
        deadline: Height,
    },
    /// The start was not reported by `deadline`: the lease must close, escrow refunded.
    StartTimedOut {
        deadline: Height,
    },
    Active,
    Paused {
        since: Height,
    },
    /// The grace period after running dry has passed: the lease must close.
    Expired {
        since: Height,
    },
    Closed,
}

/// Owed = price × (height − settled), capped by escrow; pausing where escrow runs out.
/// A starting lease owes nothing: its workload has not been reported running.
pub fn project_settlement(lease: &Lease, height: Height, grace_blocks: u64) -> Settlement {
    let done = |pay, settled_through, outcome| Settlement {
        pay,
        settled_through,
        outcome,
    };
    match lease.state {
        LeaseState::Closed { .. } => {
            done(Amount::ZERO, lease.settled_through, SettledState::Closed)
        }
        LeaseState::Starting { deadline } => {
            let outcome = if height > deadline {
                SettledState::StartTimedOut { deadline }
            } else {
                SettledState::Starting { deadline }
            };
            done(Amount::ZERO, lease.settled_through, outcome)
        }
        LeaseState::Paused { since } => {
            let outcome = if height > since.saturating_add(grace_blocks) {
                SettledState::Expired { since }
            } else {
                SettledState::Paused { since }
            };
            done(Amount::ZERO, lease.settled_through, outcome)
        }
        LeaseState::Active => {
            let blocks = height.saturating_sub(lease.settled_through);
            let price = lease.price_per_block;
            let owed = price.checked_mul(u128::from(blocks));
            match owed {
                Some(owed) if owed <= lease.escrow => done(
                    owed,
                    lease.settled_through.max(height),
                    SettledState::Active,
                ),
                _ => {
                    // price > 0 here: a zero price never owes more than the escrow.
                    let affordable = lease.escrow.ucrn() / price.ucrn().max(1);
                    let affordable = u64::try_from(affordable).unwrap_or(u64::MAX).min(blocks);
                    let pay = Amount::from_ucrn(price.ucrn() * u128::from(affordable));
                    let since = lease.settled_through.saturating_add(affordable);
                    let outcome = if height > since.saturating_add(grace_blocks) {
                        SettledState::Expired { since }
                    } else {
                        SettledState::Paused { since }
                    };
                    done(pay, since, outcome)
                }
            }
        }
    }
}

/// Whether `hardware` satisfies `resources`; the reason when it does not.
pub fn hardware_satisfies(resources: &Resources, hardware: &Hardware) -> Result<(), String> {
    if hardware.cpu_millicores < resources.cpu_millicores {
        return Err(format!(
            "{} millicores offered, {} asked",
            hardware.cpu_millicores, resources.cpu_millicores
        ));
    }
    if hardware.memory_bytes < resources.memory_bytes {
        return Err(format!(
            "{} memory bytes offered, {} asked",
            hardware.memory_bytes, resources.memory_bytes
        ));
    }
    if hardware.storage_bytes < resources.storage_bytes {
        return Err(format!(
            "{} storage bytes offered, {} asked",
            hardware.storage_bytes, resources.storage_bytes
        ));
    }
    let wanted = usize::try_from(resources.gpu_count).unwrap_or(usize::MAX);
    if hardware.gpus.len() < wanted {
        return Err(format!(
            "{} GPUs offered, {wanted} asked",
            hardware.gpus.len()
        ));
    }
    for gpu in hardware.gpus.iter() {
        let vendor = resources.gpu_vendor.as_str();
        if !vendor.is_empty() && !gpu.vendor.as_str().eq_ignore_ascii_case(vendor) {
            return Err(format!("GPU vendor {} offered, {vendor} asked", gpu.vendor));
        }
        let model = resources.gpu_model.as_str();
        if !model.is_empty() && !gpu.model.as_str().eq_ignore_ascii_case(model) {
            return Err(format!("GPU model {} offered, {model} asked", gpu.model));
        }
        if gpu.vram_mib < resources.min_vram_mib {
            return Err(format!(
                "GPU with {} MiB VRAM offered, {} asked",
                gpu.vram_mib, resources.min_vram_mib
            ));
        }
    }
    Ok(())
}

/// Whether `provider` has `hardware` free right now (declared minus committed, and every
/// offered GPU among the declared ones).
pub fn check_free_capacity(provider: &Provider, hardware: &Hardware) -> Result<(), TxError> {
    let lack = |resource: &str, needed: u64, free: u64| TxError::InsufficientCapacity {
        resource: resource.to_string(),
        needed,
        free,
    };
    let d = &provider.declared;
    let c = &provider.committed;
    let free_cpu = d.cpu_millicores.saturating_sub(c.cpu_millicores);
    if hardware.cpu_millicores > free_cpu {
        return Err(lack("cpu_millicores", hardware.cpu_millicores, free_cpu));
    }
    let free_mem = d.memory_bytes.saturating_sub(c.memory_bytes);
    if hardware.memory_bytes > free_mem {
        return Err(lack("memory_bytes", hardware.memory_bytes, free_mem));
    }
    let free_disk = d
        .storage_bytes
        .saturating_sub(c.storage_bytes)
        .saturating_sub(provider.assigned_storage_bytes);
    if hardware.storage_bytes > free_disk {
        return Err(lack("storage_bytes", hardware.storage_bytes, free_disk));
    }
    let declared_gpus = u64::try_from(d.gpus.len()).unwrap_or(u64::MAX);
    let free_gpus = declared_gpus.saturating_sub(c.gpus);
    let offered = u64::try_from(hardware.gpus.len()).unwrap_or(u64::MAX);
    if offered > free_gpus {
        return Err(lack("gpus", offered, free_gpus));
    }
    for gpu in hardware.gpus.iter() {
        if !d.gpus.iter().any(|g| g == gpu) {
            return Err(TxError::HardwareMismatch {
                detail: format!(
                    "GPU {} {} is not among the declared GPUs",
                    gpu.vendor, gpu.model
                ),
            });
        }
    }
    Ok(())
}

impl Ledger {
    pub(crate) fn create_order(&mut self, ctx: &Ctx, body: &CreateOrder) -> Result<(), TxError> {
        let r = &body.resources;
        if r.cpu_millicores == 0 && r.gpu_count == 0 {
            return Err(crate::error::invalid(
                "resources",
                "asks for no CPU and no GPU",
            ));
        }
        if body.bid_window_blocks == 0 || body.bid_window_blocks > self.params.max_bid_window_blocks
        {
            return Err(TxError::BidWindow {
                blocks: body.bid_window_blocks,
                maximum: self.params.max_bid_window_blocks,
            });
        }
        let needed = body
            .max_price_per_block
            .checked_mul(u128::from(self.params.min_lease_deposit_blocks))
            .ok_or_else(|| overflow("deposit"))?;
        if body.deposit < needed || body.deposit.is_zero() {
            return Err(TxError::InsufficientEscrow {
                needed: needed.max(Amount::from_ucrn(1)),
                provided: body.deposit,
            });
        }
        self.state.debit(ctx.sender, body.deposit)?;
        let id = OrderId(self.state.counters.order);
        self.state.counters.order = self.state.counters.order.saturating_add(1);
        let bid_deadline = ctx.height.saturating_add(body.bid_window_blocks);
        self.state.orders.insert(
            id,
            Order {
                id,
                tenant: ctx.sender,
                manifest_hash: body.manifest_hash,
                resources: body.resources.clone(),
                max_price_per_block: body.max_price_per_block,
                deposit: body.deposit,
                created_height: ctx.height,
                bid_deadline,
                accept_deadline: bid_deadline.saturating_add(self.params.accept_window_blocks),
                bids: Default::default(),
                status: OrderStatus::Open,
            },
        );
        Ok(())
    }

    fn open_order(&self, id: OrderId) -> Result<&Order, TxError> {
        let order = self
            .state
            .orders
            .get(&id)
            .ok_or(TxError::UnknownOrder { order: id })?;
        if order.status != OrderStatus::Open {
            return Err(TxError::OrderNotOpen {
                order: id,
                status: order.status.name().to_string(),
            });
        }
        Ok(order)
    }

    /// Ends an open order and refunds its deposit.
    pub(crate) fn end_order(&mut self, id: OrderId, status: OrderStatus) -> Result<(), TxError> {
        let order = self
            .state
            .orders
            .get_mut(&id)
            .ok_or(TxError::UnknownOrder { order: id })?;
        let refund = order.deposit;
        order.deposit = Amount::ZERO;
        order.status = status;
        let tenant = order.tenant;
        self.state.credit(tenant, refund)
    }

    pub(crate) fn cancel_order(&mut self, ctx: &Ctx, id: OrderId) -> Result<(), TxError> {
        let order = self.open_order(id)?;
        if order.tenant != ctx.sender {
            return Err(TxError::NotOrderOwner {
                order: id,
                sender: ctx.sender,
            });
        }
        self.end_order(id, OrderStatus::Cancelled)
    }

    pub(crate) fn place_bid(&mut self, ctx: &Ctx, body: &PlaceBid) -> Result<(), TxError> {
        let order = self.open_order(body.order)?;
        if ctx.height > order.bid_deadline {
            return Err(TxError::BidWindowClosed {
                deadline: order.bid_deadline,
            });
        }
        if body.price_per_block > order.max_price_per_block {
            return Err(TxError::PriceAboveMax {
                price: body.price_per_block,
                maximum: order.max_price_per_block,
            });
        }
        hardware_satisfies(&order.resources, &body.hardware)
            .map_err(|detail| TxError::HardwareMismatch { detail })?;
        let provider = self.provider(&ctx.sender)?;
        if !provider.is_active() {
            return Err(TxError::ProviderNotActive {
                provider: ctx.sender,
                status: provider.status.name().to_string(),
            });
        }
        check_free_capacity(provider, &body.hardware)?;
        let bid = Bid {
            provider: ctx.sender,
            price_per_block: body.price_per_block,
            hardware: body.hardware.clone(),
            proven_int8_ops: provider.proven_int8_ops,
            placed_height: ctx.height,
        };
        if let Some(order) = self.state.orders.get_mut(&body.order) {
            // A provider may revise its bid: the latest one stands.
            order.bids.insert(ctx.sender, bid);
        }
        Ok(())
    }

    pub(crate) fn accept_bid(&mut self, ctx: &Ctx, body: &AcceptBid) -> Result<(), TxError> {
        let order = self.open_order(body.order)?;
        if order.tenant != ctx.sender {
            return Err(TxError::NotOrderOwner {
                order: body.order,
                sender: ctx.sender,
            });
        }
        if ctx.height > order.accept_deadline {
            return Err(TxError::AcceptWindowClosed {
                deadline: order.accept_deadline,
            });
        }
        let bid = order
            .bids
            .get(&body.provider)
            .ok_or(TxError::UnknownBid {
                provider: body.provider,
            })?
            .clone();
        if order.deposit < bid.price_per_block {
            return Err(TxError::InsufficientEscrow {
                needed: bid.price_per_block,
                provided: order.deposit,
            });
        }
        let provider = self.provider(&body.provider)?;
        if !provider.is_active() {
            return Err(TxError::ProviderNotActive {
                provider: body.provider,
                status: provider.status.name().to_string(),
            });
        }
        // Capacity may have been taken since the bid.
        check_free_capacity(provider, &bid.hardware)?;
        let (tenant, deposit, manifest_hash) = (order.tenant, order.deposit, order.manifest_hash);
        let id = LeaseId(self.state.counters.lease);
        self.state.counters.lease = self.state.counters.lease.saturating_add(1);
        let hw = &bid.hardware;
        let p = self.provider_mut(&body.provider)?;
        p.committed.cpu_millicores = p.committed.cpu_millicores.saturating_add(hw.cpu_millicores);
        p.committed.memory_bytes = p.committed.memory_bytes.saturating_add(hw.memory_bytes);
        p.committed.storage_bytes = p.committed.storage_bytes.saturating_add(hw.storage_bytes);
        p.committed.gpus = p
            .committed
            .gpus
            .saturating_add(u64::try_from(hw.gpus.len()).unwrap_or(u64::MAX));
        p.active_leases = p.active_leases.saturating_add(1);
        if let Some(order) = self.state.orders.get_mut(&body.order) {
            order.deposit = Amount::ZERO;
            order.status = OrderStatus::Matched { lease: id };
        }
        self.state.leases.insert(
            id,
            Lease {
                id,
                order: body.order,
                tenant,
                provider: body.provider,
                manifest_hash,
                price_per_block: bid.price_per_block,
                hardware: bid.hardware,
                escrow: deposit,
                // Nothing is owed until the provider reports the workload running; then
                // `settled_through` moves to that block.
                settled_through: ctx.height,
                paid_total: Amount::ZERO,
                state: LeaseState::Starting {
                    deadline: ctx
                        .height
                        .saturating_add(self.params.lease_start_timeout_blocks),
                },
                created_height: ctx.height,
                started_height: None,
            },
        );
        Ok(())
    }

    fn lease(&self, id: LeaseId) -> Result<&Lease, TxError> {
        self.state
            .leases
            .get(&id)
            .ok_or(TxError::UnknownLease { lease: id })
    }

    /// Settles a lease up to `height` (idempotent), pausing or closing it as its escrow allows.
    pub(crate) fn settle_lease(
        &mut self,
        id: LeaseId,
        height: Height,
        epoch: Epoch,
    ) -> Result<SettledState, TxError> {
        let lease = self.lease(id)?;
        let s = project_settlement(lease, height, self.params.lease_grace_blocks);
        let provider = lease.provider;
        let escrow = lease
            .escrow
            .checked_sub(s.pay)
            .ok_or_else(|| overflow("lease escrow"))?;
        let paid = lease
            .paid_total
            .checked_add(s.pay)
            .ok_or_else(|| overflow("lease paid"))?;
        if let Some(lease) = self.state.leases.get_mut(&id) {
            lease.escrow = escrow;
            lease.paid_total = paid;
            lease.settled_through = s.settled_through;
            match s.outcome {
                SettledState::Paused { since } => lease.state = LeaseState::Paused { since },
                SettledState::Expired { since } => lease.state = LeaseState::Paused { since },
                SettledState::Starting { .. }
                | SettledState::StartTimedOut { .. }
                | SettledState::Active
                | SettledState::Closed => {}
            }
        }
        if !s.pay.is_zero() {
            self.pay_provider(provider, s.pay, RevenueSource::Compute, epoch)?;
        }
        if let SettledState::Expired { since } = s.outcome {
            let reason = format!(
                "escrow exhausted at height {since}; not topped up within {} blocks",
                self.params.lease_grace_blocks
            );
            self.close_lease(id, height, CloseInitiator::Protocol, reason)?;
        }
        if let SettledState::StartTimedOut { deadline } = s.outcome {
            // Nothing was ever billed, so the close refunds the whole escrow.
            let reason = format!(
                "the provider did not report the workload started within {} blocks (by height {deadline})",
                self.params.lease_start_timeout_blocks
            );
            self.close_lease(id, height, CloseInitiator::Protocol, reason)?;
        }
        Ok(s.outcome)
    }

    /// Closes a settled lease: refunds the escrow and frees the provider's capacity.
    fn close_lease(
        &mut self,
        id: LeaseId,
        height: Height,
        initiator: CloseInitiator,
        reason: String,
    ) -> Result<(), TxError> {
        let lease = self
            .state
            .leases
            .get_mut(&id)
            .ok_or(TxError::UnknownLease { lease: id })?;
        if matches!(lease.state, LeaseState::Closed { .. }) {
            return Err(TxError::LeaseClosed { lease: id });
        }
        let refund = lease.escrow;
        lease.escrow = Amount::ZERO;
        lease.state = LeaseState::Closed {
            at: height,
            initiator,
            reason,
        };
        let (tenant, provider, hw) = (lease.tenant, lease.provider, lease.hardware.clone());
        if let Some(p) = self.state.providers.get_mut(&provider) {
            p.committed.cpu_millicores =
                p.committed.cpu_millicores.saturating_sub(hw.cpu_millicores);
            p.committed.memory_bytes = p.committed.memory_bytes.saturating_sub(hw.memory_bytes);
            p.committed.storage_bytes = p.committed.storage_bytes.saturating_sub(hw.storage_bytes);
            p.committed.gpus = p
                .committed
                .gpus
                .saturating_sub(u64::try_from(hw.gpus.len()).unwrap_or(u64::MAX));
            p.active_leases = p.active_leases.saturating_sub(1);
        }
        self.state.credit(tenant, refund)
    }

    /// Settles every live lease of `provider` to this block and closes it, initiated by the
    /// provider with `reason`: what it has earned so far is paid, the rest of the escrow
    /// goes back to the tenant. A lease the settlement itself closes (its start timed out,
    /// its grace ran out) keeps the protocol's reason.
    pub(crate) fn close_provider_leases(
        &mut self,
        ctx: &Ctx,
        provider: cairn_types::Address,
        reason: &str,
    ) -> Result<(), TxError> {
        let live: Vec<LeaseId> = self
            .state
            .leases
            .values()
            .filter(|l| l.provider == provider && !matches!(l.state, LeaseState::Closed { .. }))
            .map(|l| l.id)
            .collect();
        for id in live {
            let outcome = self.settle_lease(id, ctx.height, ctx.epoch)?;
            if matches!(
                outcome,
                SettledState::Expired { .. } | SettledState::StartTimedOut { .. }
            ) {
                continue;
            }
            self.close_lease(id, ctx.height, CloseInitiator::Provider, reason.to_string())?;
        }
        Ok(())
    }

    fn live_lease(&self, id: LeaseId, height: Height) -> Result<&Lease, TxError> {
        let lease = self.lease(id)?;
        let s = project_settlement(lease, height, self.params.lease_grace_blocks);
        if matches!(s.outcome, SettledState::Closed) {
            return Err(TxError::LeaseClosed { lease: id });
        }
        Ok(lease)
    }

    pub(crate) fn top_up_lease(&mut self, ctx: &Ctx, body: &TopUpLease) -> Result<(), TxError> {
        if body.amount.is_zero() {
            return Err(TxError::ZeroAmount);
        }
        let lease = self.live_lease(body.lease, ctx.height)?;
        let s = project_settlement(lease, ctx.height, self.params.lease_grace_blocks);
        if matches!(
            s.outcome,
            SettledState::Expired { .. } | SettledState::StartTimedOut { .. }
        ) {
            // Too late: the protocol closes it at the next settlement; refuse cleanly now.
            return Err(TxError::LeaseClosed { lease: body.lease });
        }
        self.state.require_balance(&ctx.sender, body.amount)?;
        let outcome = self.settle_lease(body.lease, ctx.height, ctx.epoch)?;
        self.state.debit(ctx.sender, body.amount)?;
        let lease = self
            .state
            .leases
            .get_mut(&body.lease)
            .ok_or(TxError::UnknownLease { lease: body.lease })?;
        lease.escrow = lease
            .escrow
            .checked_add(body.amount)
            .ok_or_else(|| overflow("lease escrow"))?;
        if let SettledState::Paused { .. } = outcome {
            // The paused blocks are not charged: the workload did not run.
            lease.state = LeaseState::Active;
            lease.settled_through = ctx.height;
        }
        Ok(())
    }

    pub(crate) fn close_lease_tx(&mut self, ctx: &Ctx, body: &CloseLease) -> Result<(), TxError> {
        let lease = self.live_lease(body.lease, ctx.height)?;
        let initiator = if ctx.sender == lease.tenant {
            CloseInitiator::Tenant
        } else if ctx.sender == lease.provider {
            CloseInitiator::Provider
        } else {
            return Err(TxError::NotLeaseParty {
                lease: body.lease,
                sender: ctx.sender,
            });
        };
        let reason = body.reason.as_str();
        if reason.trim().is_empty() {
            return Err(crate::error::invalid("reason", "a close needs a reason"));
        }
        let outcome = self.settle_lease(body.lease, ctx.height, ctx.epoch)?;
        if matches!(
            outcome,
            SettledState::Expired { .. } | SettledState::StartTimedOut { .. }
        ) {
            // The protocol closed it during settlement, with its own reason.
            return Ok(());
        }
        self.close_lease(body.lease, ctx.height, initiator, reason.to_string())
    }

    /// The provider reports the workload running: billing starts after this block.
    pub(crate) fn start_lease(&mut self, ctx: &Ctx, body: &LeaseStarted) -> Result<(), TxError> {
        let lease = self.lease(body.lease)?;
        if lease.provider != ctx.sender {
            return Err(TxError::NotLeaseProvider {
                lease: body.lease,
                provider: lease.provider,
                sender: ctx.sender,
            });
        }
        let deadline = match lease.state {
            LeaseState::Starting { deadline } => deadline,
            LeaseState::Closed { .. } => return Err(TxError::LeaseClosed { lease: body.lease }),
            LeaseState::Active | LeaseState::Paused { .. } => {
                return Err(TxError::LeaseNotStarting {
                    lease: body.lease,
                    state: lease.state.name().to_string(),
                });
            }
        };
        if ctx.height > deadline {
            // The protocol closes it at the next settlement, refunding the tenant.
            return Err(TxError::DeadlinePassed {
                deadline,
                height: ctx.height,
            });
        }
        if let Some(lease) = self.state.leases.get_mut(&body.lease) {
            lease.state = LeaseState::Active;
            lease.started_height = Some(ctx.height);
            // Like an accepted lease before this change: the block after the report is the
            // first one paid.
            lease.settled_through = ctx.height;
        }
        Ok(())
    }

    pub(crate) fn withdraw_lease(&mut self, ctx: &Ctx, id: LeaseId) -> Result<(), TxError> {
        let lease = self.live_lease(id, ctx.height)?;
        if lease.provider != ctx.sender {
            return Err(TxError::NotLeaseParty {
                lease: id,
                sender: ctx.sender,
            });
        }
        self.settle_lease(id, ctx.height, ctx.epoch).map(|_| ())
    }

    pub(crate) fn commit_compute(
        &mut self,
        ctx: &Ctx,
        body: &CommitCompute,
    ) -> Result<(), TxError> {
        let challenge = self.state.compute_challenges.get(&body.challenge).ok_or(
            TxError::UnknownComputeChallenge {
                challenge: body.challenge,
            },
        )?;
        if challenge.provider != ctx.sender {
            return Err(TxError::NotChallengedProvider {
                provider: challenge.provider,
            });
        }
        if challenge.phase != ComputePhase::Issued {
            return Err(TxError::ChallengeWrongStatus {
                status: challenge.phase.name().to_string(),
                expected: "issued".to_string(),
            });
        }
        if ctx.height > challenge.commit_deadline {
            return Err(TxError::DeadlinePassed {
                deadline: challenge.commit_deadline,
                height: ctx.height,
            });
        }
        let reveal_seed = Hash::domain(
            "cairn.compute.reveal.v1",
            &[&ctx.seed.0, &body.challenge.0.to_be_bytes()],
        );
        let open_deadline = ctx
            .height
            .saturating_add(self.params.compute_open_deadline_blocks);
        if let Some(challenge) = self.state.compute_challenges.get_mut(&body.challenge) {
            challenge.phase = ComputePhase::Committed {
                root: body.root,
                committed_height: ctx.height,
                committed_timestamp_ms: ctx.timestamp_ms,
                reveal_seed,
                open_deadline,
                opened: 0,
            };
        }
        Ok(())
    }

    pub(crate) fn open_compute(&mut self, ctx: &Ctx, body: &OpenCompute) -> Result<(), TxError> {
        let challenge = self.state.compute_challenges.get(&body.challenge).ok_or(
            TxError::UnknownComputeChallenge {
                challenge: body.challenge,
            },
        )?;
        if challenge.provider != ctx.sender {
            return Err(TxError::NotChallengedProvider {
                provider: challenge.provider,
            });
        }
        let ComputePhase::Committed {
            root,
            committed_timestamp_ms,
            reveal_seed,
            open_deadline,
            opened,
            ..
        } = &challenge.phase
        else {
            return Err(TxError::ChallengeWrongStatus {
                status: challenge.phase.name().to_string(),
                expected: "committed".to_string(),
            });
        };
        if ctx.height > *open_deadline {
            return Err(TxError::DeadlinePassed {
                deadline: *open_deadline,
                height: ctx.height,
            });
        }
        if body.first_opening != *opened {
            return Err(TxError::OpeningsOutOfOrder {
                expected: *opened,
                got: body.first_opening,
            });
        }
        let end = u32::from(body.first_opening)
            + u32::try_from(body.openings.0.len()).unwrap_or(u32::MAX);
        if end > u32::from(challenge.openings) || body.openings.0.is_empty() {
            return Err(TxError::OpeningsBeyondChallenge {
                first: body.first_opening,
                end,
                openings: challenge.openings,
            });
        }
        let shape = challenge.shape();
        let indices = cairn_proofs::compute::opening_indices(
            reveal_seed,
            body.challenge,
            shape,
            usize::from(challenge.openings),
        );
        let part = indices
            .get(usize::from(body.first_opening)..)
            .and_then(|rest| rest.get(..body.openings.0.len()))
            .unwrap_or_default();
        let verdict = cairn_proofs::compute::verify_openings(
            &challenge.seed,
            shape,
            root,
            part,
            &body.openings.0,
        );
        let end = u16::try_from(end).unwrap_or(u16::MAX);
        if verdict.is_ok() && end < challenge.openings {
            // A correct part of an unfinished set: wait for the rest.
            if let Some(ComputePhase::Committed { opened, .. }) = self
                .state
                .compute_challenges
                .get_mut(&body.challenge)
                .map(|c| &mut c.phase)
            {
                *opened = end;
            }
            return Ok(());
        }
        let phase = match verdict {
            Ok(()) => {
                // Rate = work / time from issue to commitment less the forgiven latency,
                // never measured over less than one block time, never above the claim.
                let allowance_ms = self
                    .params
                    .compute_latency_allowance_blocks
                    .saturating_mul(self.params.block_time_ms);
                let elapsed_ms = committed_timestamp_ms
                    .saturating_sub(challenge.issued_timestamp_ms)
                    .saturating_sub(allowance_ms)
                    .max(self.params.block_time_ms);
                let rate = shape.ops().saturating_mul(1_000) / u128::from(elapsed_ms);
                let rate = u64::try_from(rate).unwrap_or(u64::MAX);
                // A challenge clamped by `max_gemm_dim` cannot show more than its work in one
                // block time: the floor applies to what the challenge could measure, so a
                // fast GPU is proven at that ceiling rather than left unproven.
                let measurable = shape.ops().saturating_mul(1_000)
                    / u128::from(self.params.block_time_ms.max(1));
                let floor = u128::from(challenge.claimed_int8_ops).min(measurable)
                    * u128::from(self.params.compute_proven_floor_bps)
                    / 10_000;
                if u128::from(rate) < floor {
                    ComputePhase::Unproven {
                        measured_int8_ops: rate,
                    }
                } else {
                    ComputePhase::Passed {
                        proven_int8_ops: rate.min(challenge.claimed_int8_ops),
                    }
                }
            }
            Err(e) => ComputePhase::Failed {
                detail: e.to_string(),
            },
        };
        if let Some(challenge) = self.state.compute_challenges.get_mut(&body.challenge) {
            challenge.phase = phase;
        }
        Ok(())
    }
}
