//! Integration tests of `cairn-types`: one binary, one module per concern.
//!
//! - `amount`: parsing, printing and checked arithmetic of money.
//! - `vectors`: frozen bytes of the canonical encoding (a protocol change when they move).
//! - `json`: the serde forms of every wire type and the errors bad input gets.
//! - `fuzz`: a bounded, seeded fuzz run of the transaction and block decoders.
//! - `keys`: signatures, transaction signature checks and address parsing.
//!
//! The fixtures below are shared: one transaction body of every kind, signed transactions
//! and a block, all deterministic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod amount;
mod fuzz;
mod json;
mod keys;
mod vectors;

use cairn_types::ids::blob_id;
use cairn_types::proof::{
    ComputeOpening, InconsistencyProof, LeafOpening, StorageProof, StripeLeaf,
};
use cairn_types::tx::{
    AcceptBid, ActivateDeal, AuditedShard, BlobMeta, CloseLease, CommitCompute, CreateDeal,
    CreateOrder, DealRef, Delegation, Empty, ExtendDeal, LeaseRef, LeaseStarted, OpenCompute,
    OrderRef, PlaceBid, RegisterProvider, RepairShard, ReportAuditFailures, ReportInconsistency,
    ShardReceipt, StakeAmount, SubmitStorageProofs, TopUpLease, Transfer, UpdateProvider,
};
use cairn_types::{
    Address, Amount, Block, BoundedBytes, BoundedString, BoundedVec, Capacity, ChallengeId, DealId,
    GpuSpec, Hardware, Hash, Keypair, LeaseId, OrderId, Resources, SignedTransaction, Transaction,
    TxBody,
};

/// Number of `TxBody` variants; `every_body` builds one of each.
pub const TX_BODY_VARIANTS: usize = 28;

/// The chain id every fixture signs for.
pub const CHAIN_ID: &str = "cairn-vector-1";

pub fn key(label: &str) -> Keypair {
    Keypair::from_test_seed(label)
}

pub fn addr(label: &str) -> Address {
    key(label).address()
}

pub fn h(label: &str) -> Hash {
    Hash::domain("cairn.test.fixture", &[label.as_bytes()])
}

pub fn crn(text: &str) -> Amount {
    text.parse().unwrap()
}

pub fn bstr<const MAX: usize>(s: &str) -> BoundedString<MAX> {
    BoundedString::new(s).unwrap()
}

pub fn bvec<T, const MAX: usize>(items: Vec<T>) -> BoundedVec<T, MAX> {
    BoundedVec::new(items).unwrap()
}

pub fn gpu(vendor: &str, model: &str, vram_mib: u64) -> GpuSpec {
    GpuSpec {
        vendor: bstr(vendor),
        model: bstr(model),
        vram_mib,
    }
}

pub fn transfer_body() -> TxBody {
    TxBody::Transfer(Transfer {
        to: addr("vector-bob"),
        amount: crn("12.5 CRN"),
    })
}

pub fn create_deal_body() -> TxBody {
    let roots: Vec<Hash> = (0..3).map(|i| h(&format!("shard-root-{i}"))).collect();
    let id = blob_id(3_000_000, 2, 1, 1_500_000, 65_536, &roots);
    TxBody::CreateDeal(CreateDeal {
        blob: BlobMeta {
            id,
            size_bytes: 3_000_000,
            data_shards: 2,
            parity_shards: 1,
            shard_size_bytes: 1_500_000,
            leaf_size_bytes: 65_536,
            shard_roots: bvec(roots),
        },
        providers: bvec(vec![
            addr("vector-carol"),
            addr("vector-dave"),
            addr("vector-erin"),
        ]),
        permanent: false,
        epochs: 12,
        price_per_gib_epoch: crn("0.002 CRN"),
        escrow: crn("40 CRN"),
        sealed_key: cairn_types::BoundedBytes::new((0..48).collect()).unwrap(),
    })
}

pub fn place_bid_body() -> TxBody {
    TxBody::PlaceBid(PlaceBid {
        order: OrderId(3),
        price_per_block: crn("0.25 CRN"),
        hardware: Hardware {
            cpu_millicores: 16_000,
            memory_bytes: 64 << 30,
            storage_bytes: 1 << 40,
            gpus: bvec(vec![gpu("nvidia", "H100-SXM5-80GB", 81_920)]),
        },
    })
}

pub fn open_compute_body() -> TxBody {
    TxBody::OpenCompute(OpenCompute {
        challenge: ChallengeId(9),
        first_opening: 0,
        openings: bvec(vec![
            ComputeOpening {
                entry_index: 17,
                leaf: [1, -2, 3, i32::MIN],
                path: bvec(vec![h("path-0"), h("path-1")]),
            },
            ComputeOpening {
                entry_index: 4_095,
                leaf: [i32::MAX, 0, -1, 42],
                path: bvec(vec![h("path-2")]),
            },
        ]),
    })
}

fn capacity() -> Capacity {
    Capacity {
        storage_bytes: 4 << 40,
        cpu_millicores: 64_000,
        memory_bytes: 256 << 30,
        gpus: bvec(vec![
            gpu("nvidia", "RTX 4090", 24_576),
            gpu("amd", "MI300X", 196_608),
        ]),
    }
}

pub fn lease_started_body() -> TxBody {
    TxBody::LeaseStarted(LeaseStarted { lease: LeaseId(8) })
}

/// One body of every kind, in tag order, each with non-trivial content.
pub fn every_body() -> Vec<TxBody> {
    let bodies = vec![
        transfer_body(),
        TxBody::RegisterProvider(RegisterProvider {
            endpoint: bstr("https://provider-1.example:7443"),
            region: bstr("eu-west"),
            capacity: capacity(),
            commission_bps: 500,
            bond: crn("1000 CRN"),
            claimed_int8_ops: 1_979_000_000_000_000,
        }),
        TxBody::UpdateProvider(UpdateProvider {
            endpoint: bstr("https://provider-1.example:8443"),
            region: bstr("us-east"),
            capacity: Capacity::default(),
            commission_bps: 10_000,
            claimed_int8_ops: 0,
        }),
        TxBody::Bond(StakeAmount {
            amount: crn("250 CRN"),
        }),
        TxBody::Unbond(StakeAmount {
            amount: Amount::from_ucrn(1),
        }),
        TxBody::Delegate(Delegation {
            provider: addr("vector-carol"),
            amount: crn("99.999999 CRN"),
        }),
        TxBody::Undelegate(Delegation {
            provider: addr("vector-dave"),
            amount: Amount::from_ucrn(u128::MAX),
        }),
        TxBody::LeaveProvider(Empty {}),
        TxBody::Unjail(Empty {}),
        create_deal_body(),
        TxBody::ActivateDeal(ActivateDeal {
            deal: DealId(1),
            receipts: bvec(vec![
                ShardReceipt {
                    shard_index: 0,
                    signature: key("vector-carol").sign(b"_CAIRN_SHARD_RECEIPT", b"shard 0"),
                },
                ShardReceipt {
                    shard_index: 2,
                    signature: key("vector-erin").sign(b"_CAIRN_SHARD_RECEIPT", b"shard 2"),
                },
            ]),
        }),
        TxBody::ExtendDeal(ExtendDeal {
            deal: DealId(1),
            extra_epochs: 6,
            amount: crn("20 CRN"),
        }),
        TxBody::CancelDeal(DealRef { deal: DealId(2) }),
        TxBody::SubmitStorageProofs(SubmitStorageProofs {
            epoch: 44,
            proofs: bvec(vec![StorageProof {
                deal: DealId(1),
                shard_index: 1,
                leaves: bvec(vec![
                    LeafOpening {
                        data: BoundedBytes::new(b"leaf bytes".to_vec()).unwrap(),
                        path: bvec(vec![h("sibling-0"), h("sibling-1")]),
                    },
                    LeafOpening::default(),
                ]),
            }]),
        }),
        TxBody::CreateOrder(CreateOrder {
            manifest_hash: h("manifest"),
            resources: Resources {
                cpu_millicores: 8_000,
                memory_bytes: 32 << 30,
                storage_bytes: 100 << 30,
                gpu_count: 1,
                gpu_vendor: bstr("nvidia"),
                gpu_model: bstr(""),
                min_vram_mib: 40_960,
            },
            max_price_per_block: crn("0.5 CRN"),
            deposit: crn("5000 CRN"),
            bid_window_blocks: 20,
        }),
        TxBody::CancelOrder(OrderRef { order: OrderId(4) }),
        place_bid_body(),
        TxBody::AcceptBid(AcceptBid {
            order: OrderId(3),
            provider: addr("vector-carol"),
        }),
        TxBody::TopUpLease(TopUpLease {
            lease: LeaseId(8),
            amount: crn("100 CRN"),
        }),
        TxBody::CloseLease(CloseLease {
            lease: LeaseId(8),
            reason: bstr("workload finished — ünïcode ok"),
        }),
        TxBody::WithdrawLease(LeaseRef { lease: LeaseId(8) }),
        TxBody::CommitCompute(CommitCompute {
            challenge: ChallengeId(9),
            root: h("compute-root"),
        }),
        open_compute_body(),
        TxBody::RepairShard(RepairShard {
            deal: DealId(1),
            shard_index: 3,
            new_provider: addr("vector-erin"),
            receipt: key("vector-erin").sign(b"_CAIRN_SHARD_RECEIPT", b"shard 3"),
        }),
        TxBody::ReportInconsistency(ReportInconsistency {
            proof: InconsistencyProof {
                deal: DealId(1),
                leaf_index: 5,
                piece_size_bytes: 4096,
                header: StripeLeaf {
                    shard_index: 2,
                    opening: LeafOpening {
                        data: BoundedBytes(b"cairnc02\x01\0\0\0\0\0\x10\0".to_vec()),
                        path: BoundedVec(vec![h("header-sibling")]),
                    },
                },
                leaves: BoundedVec(
                    (0u16..3)
                        .map(|shard_index| StripeLeaf {
                            shard_index,
                            opening: LeafOpening {
                                data: BoundedBytes(vec![u8::try_from(shard_index).unwrap(); 1024]),
                                path: BoundedVec(vec![h("sibling"), h("uncle")]),
                            },
                        })
                        .collect(),
                ),
            },
        }),
        TxBody::ReportAuditFailures(ReportAuditFailures {
            epoch: 12,
            shards: BoundedVec(vec![AuditedShard {
                deal: DealId(1),
                shard_index: 4,
                provider: addr("vector-erin"),
            }]),
        }),
        TxBody::ReportAuditLateness(ReportAuditFailures {
            epoch: 13,
            shards: BoundedVec(vec![AuditedShard {
                deal: DealId(2),
                shard_index: 1,
                provider: addr("vector-erin"),
            }]),
        }),
        lease_started_body(),
    ];
    assert_eq!(bodies.len(), TX_BODY_VARIANTS);
    bodies
}

/// Fails to compile when a variant is added, so `every_body` is kept complete.
pub fn variant_index(body: &TxBody) -> usize {
    match body {
        TxBody::Transfer(_) => 0,
        TxBody::RegisterProvider(_) => 1,
        TxBody::UpdateProvider(_) => 2,
        TxBody::Bond(_) => 3,
        TxBody::Unbond(_) => 4,
        TxBody::Delegate(_) => 5,
        TxBody::Undelegate(_) => 6,
        TxBody::LeaveProvider(_) => 7,
        TxBody::Unjail(_) => 8,
        TxBody::CreateDeal(_) => 9,
        TxBody::ActivateDeal(_) => 10,
        TxBody::ExtendDeal(_) => 11,
        TxBody::CancelDeal(_) => 12,
        TxBody::SubmitStorageProofs(_) => 13,
        TxBody::CreateOrder(_) => 14,
        TxBody::CancelOrder(_) => 15,
        TxBody::PlaceBid(_) => 16,
        TxBody::AcceptBid(_) => 17,
        TxBody::TopUpLease(_) => 18,
        TxBody::CloseLease(_) => 19,
        TxBody::WithdrawLease(_) => 20,
        TxBody::CommitCompute(_) => 21,
        TxBody::OpenCompute(_) => 22,
        TxBody::RepairShard(_) => 23,
        TxBody::ReportInconsistency(_) => 24,
        TxBody::ReportAuditFailures(_) => 25,
        TxBody::ReportAuditLateness(_) => 26,
        TxBody::LeaseStarted(_) => 27,
    }
}

/// Signs `body` as `signer` on the fixture chain.
pub fn signed(signer: &str, nonce: u64, fee: Amount, body: TxBody) -> SignedTransaction {
    let k = key(signer);
    Transaction {
        chain_id: bstr(CHAIN_ID),
        sender: k.public_key().clone(),
        nonce,
        fee,
        body,
    }
    .sign(&k)
}

/// One signed transaction of every kind.
pub fn every_signed_tx() -> Vec<SignedTransaction> {
    every_body()
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            signed(
                "vector-alice",
                u64::try_from(i).unwrap(),
                crn("0.01 CRN"),
                body,
            )
        })
        .collect()
}

/// The frozen Transfer transaction of the vectors.
pub fn transfer_tx() -> SignedTransaction {
    signed("vector-alice", 7, crn("0.01 CRN"), transfer_body())
}

/// The frozen two-transaction block of the vectors.
pub fn two_tx_block() -> Block {
    Block::new(
        5,
        h("parent"),
        1_700_000_000_000,
        addr("vector-validator"),
        h("seed"),
        vec![
            transfer_tx(),
            signed("vector-bob", 0, crn("0.02 CRN"), place_bid_body()),
        ],
    )
    .unwrap()
    .with_state_root(h("parent-state"))
}
