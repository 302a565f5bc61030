//! Staking and the provider registry: registration, self-bond, delegation with commission,
//! unbonding, leaving and unjailing. Slashing happens in epoch processing.

use crate::error::{TxError, invalid, overflow};
use crate::state::{Committed, Provider, ProviderStatus, Unbonding};
use crate::{Ctx, Ledger};
use cairn_types::tx::{Delegation, RegisterProvider, UpdateProvider};
use cairn_types::{Address, Amount, Capacity};

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
        self.provider(&ctx.sender)?;
        self.check_provider_fields(
            body.endpoint.as_str(),
            body.region.as_str(),
            &body.capacity,
            body.commission_bps,
        )?;
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

    /// Stops new deals and bids and starts unbonding the whole self-bond. Existing deals and
    /// leases keep being served (and challenged) until they end.
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
        let p = self.provider_mut(&ctx.sender)?;
        p.status = ProviderStatus::Leaving;
        p.self_bond = Amount::ZERO;
        if !bond.is_zero() {
            self.push_unbonding(ctx, ctx.sender, ctx.sender, bond);
        }
        Ok(())
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
