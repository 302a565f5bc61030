//! Staking and the provider registry: registration, self-bond, delegation with commission,
//! unbonding, leaving and unjailing. Slashing happens in epoch processing.

use crate::error::{TxError, invalid, overflow};
use crate::state::{Committed, DealStatus, Provider, ProviderStatus, Unbonding};
use crate::{Ctx, Ledger};
use cairn_types::tx::{Delegation, RegisterProvider, UpdateProvider};
use cairn_types::{Address, Amount, Capacity};

/// The reason a leaving provider's leases are closed with.
pub const PROVIDER_LEFT: &str = "provider left";

/// An endpoint as two providers could share it: scheme and host are case-insensitive and a
/// trailing slash names the same base URL, so `HTTP://Host:80/` and `http://host:80` are one.
fn endpoint_key(endpoint: &str) -> String {
    let trimmed = endpoint.trim().trim_end_matches('/');
    let authority_end = trimmed
        .find("://")
        .map(|at| at + 3)
        .and_then(|start| trimmed[start..].find('/').map(|slash| start + slash))
        .unwrap_or(trimmed.len());
    let (authority, path) = trimmed.split_at(authority_end);
    format!("{}{path}", authority.to_ascii_lowercase())
}

impl Ledger {
    fn check_provider_fields(
        &self,
        endpoint: &str,
        region: &str,
        capacity: &Capacity,
        commission_bps: u16,
    ) -> Result<(), TxError> {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(invalid("endpoint", "must be an http:// or https:// URL"));
        }
        if region.is_empty() {
            return Err(invalid("region", "must not be empty"));
        }
        if capacity.storage_bytes == 0 && capacity.cpu_millicores == 0 && capacity.gpus.is_empty() {
            return Err(invalid("capacity", "declares no storage, CPU or GPU"));
        }
        for gpu in capacity.gpus.iter() {
            if gpu.vendor.as_str().is_empty() || gpu.model.as_str().is_empty() || gpu.vram_mib == 0
            {
                return Err(invalid(
                    "capacity.gpus",
                    "each GPU needs vendor, model and VRAM",
                ));
            }
        }
        if commission_bps > self.params.max_commission_bps {
            return Err(TxError::CommissionTooHigh {
                commission_bps,
                maximum_bps: self.params.max_commission_bps,
            });
        }
        Ok(())
    }

    /// Refuses `endpoint` when another provider holds it. Every registered provider holds
    /// its endpoint except one that has left and keeps nothing there any more (no shard of
    /// a live deal, no lease), so its operator can come back under a new key. `sender`
    /// never conflicts with itself: an update may keep its own endpoint, even one a genesis
    /// file gave to two providers. A scan of the registry, which is small next to deals.
    fn check_endpoint_free(&self, sender: &Address, endpoint: &str) -> Result<(), TxError> {
        let wanted = endpoint_key(endpoint);
        let holder = self.state.providers.values().find(|p| {
            p.address != *sender
                && endpoint_key(&p.endpoint) == wanted
                && !(p.status == ProviderStatus::Leaving
                    && p.assigned_storage_bytes == 0
                    && p.active_leases == 0)
        });
        match holder {
            Some(p) => Err(TxError::EndpointTaken {
                endpoint: endpoint.to_string(),
                holder: p.address,
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn register_provider(
        &mut self,
        ctx: &Ctx,
        body: &RegisterProvider,
    ) -> Result<(), TxError> {
        if self.state.providers.contains_key(&ctx.sender) {
            return Err(TxError::ProviderExists {
                provider: ctx.sender,
            });
        }
        self.check_provider_fields(
            body.endpoint.as_str(),
            body.region.as_str(),
            &body.capacity,
            body.commission_bps,
        )?;
        self.check_endpoint_free(&ctx.sender, body.endpoint.as_str())?;
        if body.bond < self.params.min_provider_bond {
            return Err(TxError::BondBelowMinimum {
                bond: body.bond,
                minimum: self.params.min_provider_bond,
            });
        }
        self.state.debit(ctx.sender, body.bond)?;
        self.state.providers.insert(
            ctx.sender,
            Provider {
                address: ctx.sender,
                endpoint: body.endpoint.as_str().to_string(),
                region: body.region.as_str().to_string(),
                declared: body.capacity.clone(),
                commission_bps: body.commission_bps,
                self_bond: body.bond,
                delegated: Amount::ZERO,
                status: ProviderStatus::Active,
                claimed_int8_ops: body.claimed_int8_ops,
                proven_int8_ops: 0,
                proven_storage_bytes: 0,
                last_proven_epoch: None,
                assigned_storage_bytes: 0,
                committed: Committed::default(),
                active_leases: 0,
                consecutive_faulty_epochs: 0,
                late_audit_epochs: 0,
                total_faults: 0,
                total_slashed: Amount::ZERO,
                fees_earned_total: Amount::ZERO,
                rewards_total: Amount::ZERO,
                registered_height: ctx.height,
                history: Default::default(),
            },
        );
        Ok(())
    }

    pub(crate) fn provider(&self, address: &Address) -> Result<&Provider, TxError> {
        self.state
            .providers
            .get(address)
            .ok_or(TxError::UnknownProvider { provider: *address })
    }

    pub(crate) fn provider_mut(&mut self, address: &Address) -> Result<&mut Provider, TxError> {
        self.state
            .providers
            .get_mut(address)
            .ok_or(TxError::UnknownProvider { provider: *address })
    }

    pub(crate) fn update_provider(
        &mut self,
        ctx: &Ctx,
        body: &UpdateProvider,
    ) -> Result<(), TxError> {
        let current = self.provider(&ctx.sender)?;
        self.check_provider_fields(
            body.endpoint.as_str(),
            body.region.as_str(),
            &body.capacity,
            body.commission_bps,
        )?;
        // Keeping the endpoint takes nothing from anyone; only a change is checked.
        if endpoint_key(&current.endpoint) != endpoint_key(body.endpoint.as_str()) {
            self.check_endpoint_free(&ctx.sender, body.endpoint.as_str())?;
        }
        let provider = self.provider_mut(&ctx.sender)?;
        // Capacity may shrink below what is committed: running leases keep running, the
        // bid engine simply sees no free capacity until they end.
        provider.endpoint = body.endpoint.as_str().to_string();
        provider.region = body.region.as_str().to_string();
        if provider.claimed_int8_ops != body.claimed_int8_ops {
            // A new claim must be proven afresh.
            provider.proven_int8_ops = 0;
        }
        provider.declared = body.capacity.clone();
        provider.commission_bps = body.commission_bps;
        provider.claimed_int8_ops = body.claimed_int8_ops;
        Ok(())
    }

    pub(crate) fn bond(&mut self, ctx: &Ctx, amount: Amount) -> Result<(), TxError> {
        if amount.is_zero() {
            return Err(TxError::ZeroAmount);
        }
        let bonded = self.provider(&ctx.sender)?.self_bond;
        let new_bond = bonded.checked_add(amount).ok_or_else(|| overflow("bond"))?;
        self.state.debit(ctx.sender, amount)?;
        self.provider_mut(&ctx.sender)?.self_bond = new_bond;
        Ok(())
    }

    fn push_unbonding(&mut self, ctx: &Ctx, owner: Address, provider: Address, amount: Amount) {
        let release_epoch = ctx.epoch.saturating_add(self.params.unbonding_epochs);
        let seq = self.state.counters.unbonding;
        self.state.counters.unbonding = seq.saturating_add(1);
        self.state.unbonding.insert(
            (release_epoch, seq),
            Unbonding {
                owner,
                provider,
                amount,
                release_epoch,
            },
        );
    }

    pub(crate) fn unbond(&mut self, ctx: &Ctx, amount: Amount) -> Result<(), TxError> {
        if amount.is_zero() {
            return Err(TxError::ZeroAmount);
        }
        let provider = self.provider(&ctx.sender)?;
        let remaining =
            provider
                .self_bond
                .checked_sub(amount)
                .ok_or(TxError::InsufficientStake {
                    requested: amount,
                    bonded: provider.self_bond,
                })?;
        // An active provider keeps the minimum bond; only a leaving one may go below.
        if provider.status != ProviderStatus::Leaving && remaining < self.params.min_provider_bond {
            return Err(TxError::BondBelowMinimum {
                bond: remaining,
                minimum: self.params.min_provider_bond,
            });
        }
        self.provider_mut(&ctx.sender)?.self_bond = remaining;
        self.push_unbonding(ctx, ctx.sender, ctx.sender, amount);
        Ok(())
    }

    pub(crate) fn delegate(&mut self, ctx: &Ctx, body: &Delegation) -> Result<(), TxError> {
        if body.amount < self.params.min_delegation {
            return Err(TxError::DelegationBelowMinimum {
                amount: body.amount,
                minimum: self.params.min_delegation,
            });
        }
        let provider = self.provider(&body.provider)?;
        if !provider.is_active() {
            return Err(TxError::ProviderNotActive {
                provider: body.provider,
                status: provider.status.name().to_string(),
            });
        }
        let new_total = provider
            .delegated
            .checked_add(body.amount)
            .ok_or_else(|| overflow("delegate"))?;
        let key = (body.provider, ctx.sender);
        let current = self
            .state
            .delegations
            .get(&key)
            .copied()
            .unwrap_or_default();
        let new_delegation = current
            .checked_add(body.amount)
            .ok_or_else(|| overflow("delegate"))?;
        self.state.debit(ctx.sender, body.amount)?;
        self.state.delegations.insert(key, new_delegation);
        self.provider_mut(&body.provider)?.delegated = new_total;
        Ok(())
    }

    pub(crate) fn undelegate(&mut self, ctx: &Ctx, body: &Delegation) -> Result<(), TxError> {
        if body.amount.is_zero() {
            return Err(TxError::ZeroAmount);
        }
        let key = (body.provider, ctx.sender);
        let current =
            self.state
                .delegations
                .get(&key)
                .copied()
                .ok_or(TxError::UnknownDelegation {
                    delegator: ctx.sender,
                    provider: body.provider,
                })?;
        let remaining = current
            .checked_sub(body.amount)
            .ok_or(TxError::InsufficientStake {
                requested: body.amount,
                bonded: current,
            })?;
        let provider_total = self
            .provider(&body.provider)?
            .delegated
            .checked_sub(body.amount)
            .ok_or_else(|| overflow("undelegate"))?;
        if remaining.is_zero() {
            self.state.delegations.remove(&key);
        } else {
            self.state.delegations.insert(key, remaining);
        }
        self.provider_mut(&body.provider)?.delegated = provider_total;
        self.push_unbonding(ctx, ctx.sender, body.provider, body.amount);
        Ok(())
    }

    /// Leaving, all at once: no new deals, bids or leases (the provider is no longer
    /// active); every lease it runs is settled to this block and closed with the reason
    /// [`PROVIDER_LEFT`], its unspent escrow back to the tenant; every shard it holds in a
    /// live deal is queued for repair, as a fault would queue it, so the repairer moves it
    /// to another provider; and the whole self-bond starts unbonding. Until a shard is
    /// moved the provider still holds it, is still challenged on it and can still be
    /// slashed for it, and its self-bond is not released before the last one is moved
    /// (`release_unbonding`), so leaving is no way to drop data unpunished.
    pub(crate) fn leave_provider(&mut self, ctx: &Ctx) -> Result<(), TxError> {
        let provider = self.provider(&ctx.sender)?;
        // A jailed provider serves its time first: leaving must not be a way out of jail.
        if provider.status != ProviderStatus::Active {
            return Err(TxError::ProviderNotActive {
                provider: ctx.sender,
                status: provider.status.name().to_string(),
            });
        }
        let bond = provider.self_bond;
        self.close_provider_leases(ctx, ctx.sender, PROVIDER_LEFT)?;
        self.queue_provider_shards_for_repair(ctx.sender);
        let p = self.provider_mut(&ctx.sender)?;
        p.status = ProviderStatus::Leaving;
        p.self_bond = Amount::ZERO;
        if !bond.is_zero() {
            self.push_unbonding(ctx, ctx.sender, ctx.sender, bond);
        }
        Ok(())
    }

    /// Whether `provider` still holds a shard of a deal that is pending or active: a
    /// leaving provider's self-bond waits for these to be repaired away.
    pub(crate) fn holds_live_shards(&self, provider: &Address) -> bool {
        self.state.deals.values().any(|d| {
            matches!(d.status, DealStatus::Active | DealStatus::Pending { .. })
                && d.providers.contains(provider)
        })
    }

    pub(crate) fn unjail(&mut self, ctx: &Ctx) -> Result<(), TxError> {
        let min_bond = self.params.min_provider_bond;
        let provider = self.provider(&ctx.sender)?;
        match provider.status {
            ProviderStatus::Jailed { until_epoch } if ctx.epoch < until_epoch => {
                Err(TxError::StillJailed { until_epoch })
            }
            ProviderStatus::Jailed { .. } => {
                if provider.self_bond < min_bond {
                    return Err(TxError::BondBelowMinimum {
                        bond: provider.self_bond,
                        minimum: min_bond,
                    });
                }
                self.provider_mut(&ctx.sender)?.status = ProviderStatus::Active;
                Ok(())
            }
            _ => Err(TxError::NotJailed),
        }
    }
}
