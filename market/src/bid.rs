//! The bid rule (pure): given what an order asks, what a provider has free and its prices,
//! bid with the exact hardware and a price, or say why not. The provider runs it on every
//! open order; `/v1/bid-check` runs the same function so a tenant's dry-run hears the very
//! reason the provider would give.

use cairn_ledger::compute::hardware_satisfies;
use cairn_types::{Amount, BoundedVec, GpuSpec, Hardware, Resources};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A provider's prices, in uCRN per block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub ucrn_per_cpu_core_block: u64,
    pub ucrn_per_gib_memory_block: u64,
    pub ucrn_per_gib_storage_block: u64,
    pub ucrn_per_gpu_block: u64,
}

impl Prices {
    /// Price per block of `hw`, each part rounded up so a fraction is never free.
    pub fn price(&self, hw: &Hardware) -> Amount {
        let part = |amount: u64, unit: u128, per_unit: u64| -> u128 {
            (u128::from(amount) * u128::from(per_unit)).div_ceil(unit)
        };
        let gpus = u64::try_from(hw.gpus.len()).unwrap_or(u64::MAX);
        Amount::from_ucrn(
            part(hw.cpu_millicores, 1_000, self.ucrn_per_cpu_core_block)
                + part(hw.memory_bytes, 1 << 30, self.ucrn_per_gib_memory_block)
                + part(hw.storage_bytes, 1 << 30, self.ucrn_per_gib_storage_block)
                + part(gpus, 1, self.ucrn_per_gpu_block),
        )
    }
}

/// What a provider has free now: declared capacity less leases and pending bids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Free {
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub gpus: Vec<GpuSpec>,
}

/// Why a provider will not bid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    #[error("capacity: {resource} needed {needed}, free {free}")]
    Capacity {
        resource: String,
        needed: u64,
        free: u64,
    },
    #[error("attributes: {detail}")]
    Attributes { detail: String },
    #[error("price: {price}/block is above the order's maximum {maximum}/block")]
    Price { price: Amount, maximum: Amount },
}

/// The bid a provider would place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub price_per_block: Amount,
    pub hardware: Hardware,
}

/// The bid rule.
pub fn evaluate(
    resources: &Resources,
    max_price_per_block: Amount,
    free: &Free,
    prices: &Prices,
) -> Result<Offer, Refusal> {
    let lack = |resource: &str, needed: u64, free: u64| Refusal::Capacity {
        resource: resource.to_string(),
        needed,
        free,
    };
    if resources.cpu_millicores > free.cpu_millicores {
        return Err(lack(
            "cpu_millicores",
            resources.cpu_millicores,
            free.cpu_millicores,
        ));
    }
    if resources.memory_bytes > free.memory_bytes {
        return Err(lack(
            "memory_bytes",
            resources.memory_bytes,
            free.memory_bytes,
        ));
    }
    if resources.storage_bytes > free.storage_bytes {
        return Err(lack(
            "storage_bytes",
            resources.storage_bytes,
            free.storage_bytes,
        ));
    }
    let wanted = usize::try_from(resources.gpu_count).unwrap_or(usize::MAX);
    let probe = |gpu: &GpuSpec| {
        let one = Hardware {
            cpu_millicores: resources.cpu_millicores,
            memory_bytes: resources.memory_bytes,
            storage_bytes: resources.storage_bytes,
            gpus: BoundedVec::new(vec![gpu.clone()]).unwrap_or_default(),
        };
        let mut r = resources.clone();
        r.gpu_count = 1;
        hardware_satisfies(&r, &one)
    };
    let mut gpus = Vec::new();
    let mut last_mismatch = None;
    for gpu in &free.gpus {
        if gpus.len() == wanted {
            break;
        }
        match probe(gpu) {
            Ok(()) => gpus.push(gpu.clone()),
            Err(e) => last_mismatch = Some(e),
        }
    }
    if gpus.len() < wanted {
        return Err(match last_mismatch {
            Some(detail) if free.gpus.len() >= wanted => Refusal::Attributes { detail },
            _ => lack(
                "gpus",
                u64::from(resources.gpu_count),
                u64::try_from(gpus.len()).unwrap_or(u64::MAX),
            ),
        });
    }
    let hardware = Hardware {
        cpu_millicores: resources.cpu_millicores,
        memory_bytes: resources.memory_bytes,
        storage_bytes: resources.storage_bytes,
        gpus: BoundedVec::new(gpus)
            .ok_or_else(|| lack("gpus", u64::from(resources.gpu_count), 16))?,
    };
    hardware_satisfies(resources, &hardware).map_err(|detail| Refusal::Attributes { detail })?;
    let price = prices.price(&hardware);
    if price > max_price_per_block {
        return Err(Refusal::Price {
            price,
            maximum: max_price_per_block,
        });
    }
    Ok(Offer {
        price_per_block: price,
        hardware,
    })
}

/// Capacity accounting: what is held by leases and by bids that may still be accepted, so
/// the provider never offers the same core twice.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    total: Free,
    held: BTreeMap<String, Hardware>,
}

impl Ledger {
    pub fn new(total: Free) -> Self {
        Self {
            total,
            held: BTreeMap::new(),
        }
    }

    pub fn total(&self) -> &Free {
        &self.total
    }

    /// Holds `hw` under `key` (`order-N` or `lease-N`); replaces an earlier hold of the key.
    pub fn hold(&mut self, key: &str, hw: Hardware) {
        self.held.insert(key.to_string(), hw);
    }

    pub fn release(&mut self, key: &str) -> Option<Hardware> {
        self.held.remove(key)
    }

    pub fn holds(&self, key: &str) -> bool {
        self.held.contains_key(key)
    }

    pub fn keys(&self) -> Vec<String> {
        self.held.keys().cloned().collect()
    }

    pub fn free(&self) -> Free {
        let mut free = self.total.clone();
        for hw in self.held.values() {
            free.cpu_millicores = free.cpu_millicores.saturating_sub(hw.cpu_millicores);
            free.memory_bytes = free.memory_bytes.saturating_sub(hw.memory_bytes);
            free.storage_bytes = free.storage_bytes.saturating_sub(hw.storage_bytes);
            for gpu in hw.gpus.iter() {
                if let Some(i) = free.gpus.iter().position(|g| g == gpu) {
                    free.gpus.remove(i);
                }
            }
        }
        free
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn prices() -> Prices {
        Prices {
            ucrn_per_cpu_core_block: 1_000,
            ucrn_per_gib_memory_block: 100,
            ucrn_per_gib_storage_block: 10,
            ucrn_per_gpu_block: 50_000,
        }
    }

    fn ask(cpu: u64, mem: u64) -> Resources {
        Resources {
            cpu_millicores: cpu,
            memory_bytes: mem,
            ..Resources::default()
        }
    }

    #[test]
    fn bids_the_exact_hardware_at_its_price() {
        let free = Free {
            cpu_millicores: 4_000,
            memory_bytes: 8 << 30,
            storage_bytes: 1 << 30,
            gpus: vec![],
        };
        let offer = evaluate(
            &ask(500, 1 << 30),
            Amount::from_ucrn(1_000),
            &free,
            &prices(),
        )
        .unwrap();
        assert_eq!(offer.price_per_block, Amount::from_ucrn(600));
        assert_eq!(offer.hardware.cpu_millicores, 500);
        let e = evaluate(&ask(500, 1 << 30), Amount::from_ucrn(599), &free, &prices()).unwrap_err();
        assert!(matches!(e, Refusal::Price { .. }), "{e}");
        let e = evaluate(&ask(8_000, 1), Amount::from_ucrn(1 << 40), &free, &prices()).unwrap_err();
        assert!(e.to_string().contains("cpu_millicores"), "{e}");
    }

    #[test]
    fn gpu_attributes_and_counts() {
        let gpu = GpuSpec {
            vendor: cairn_types::BoundedString::new("nvidia").unwrap(),
            model: cairn_types::BoundedString::new("h100").unwrap(),
            vram_mib: 80 * 1024,
        };
        let free = Free {
            cpu_millicores: 4_000,
            memory_bytes: 8 << 30,
            storage_bytes: 0,
            gpus: vec![gpu.clone()],
        };
        let mut r = ask(1_000, 1 << 20);
        r.gpu_count = 1;
        r.gpu_model = cairn_types::BoundedString::new("a100").unwrap();
        let e = evaluate(&r, Amount::from_ucrn(1 << 40), &free, &prices()).unwrap_err();
        assert!(matches!(e, Refusal::Attributes { .. }), "{e}");
        r.gpu_model = cairn_types::BoundedString::new("H100").unwrap();
        let offer = evaluate(&r, Amount::from_ucrn(1 << 40), &free, &prices()).unwrap();
        assert_eq!(offer.hardware.gpus.len(), 1);
        r.gpu_count = 2;
        let e = evaluate(&r, Amount::from_ucrn(1 << 40), &free, &prices()).unwrap_err();
        assert!(e.to_string().contains("gpus"), "{e}");
    }

    #[test]
    fn holds_prevent_overcommit() {
        let mut l = Ledger::new(Free {
            cpu_millicores: 1_000,
            memory_bytes: 1 << 30,
            storage_bytes: 0,
            gpus: vec![],
        });
        let offer = evaluate(
            &ask(600, 1),
            Amount::from_ucrn(1 << 40),
            &l.free(),
            &prices(),
        )
        .unwrap();
        l.hold("order-1", offer.hardware);
        assert!(
            evaluate(
                &ask(600, 1),
                Amount::from_ucrn(1 << 40),
                &l.free(),
                &prices()
            )
            .is_err()
        );
        l.release("order-1");
        assert!(
            evaluate(
                &ask(600, 1),
                Amount::from_ucrn(1 << 40),
                &l.free(),
                &prices()
            )
            .is_ok()
        );
    }
}
