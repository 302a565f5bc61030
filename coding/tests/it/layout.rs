//! Layouts fit what the ledger accepts, and range plans cover what they promise.

use crate::support::small_params;
use cairn_coding::{CodingError, Layout, Params};
use proptest::prelude::*;

/// The ledger's `check_blob` bound on the shard size (ledger/src/storage.rs).
fn ledger_accepts(size: u64, k: u16, shard_size: u64) -> bool {
    let minimum = size.div_ceil(u64::from(k));
    let maximum = minimum.saturating_mul(2).saturating_add(1 << 20);
    (minimum..=maximum).contains(&shard_size)
}

fn check(size: u64, params: &Params, encrypted: bool) {
    let layout = Layout::new(size, params, encrypted).unwrap();
    assert!(
        ledger_accepts(size, params.data_shards, layout.shard_size_bytes),
        "size {size} {params:?} encrypted {encrypted}: shard {}",
        layout.shard_size_bytes
    );
    let capacity = layout.segment_capacity_bytes();
    assert!(layout.segment_count >= 1);
    assert!(layout.segment_count * capacity >= size);
    assert!((layout.segment_count - 1) * capacity < size.max(1));
    let leaves = layout.piece_size_bytes / u64::from(params.leaf_size_bytes);
    assert!(leaves.is_power_of_two());
    assert!(layout.piece_size_bytes <= u64::from(params.max_piece_size_bytes));
    let last = layout.segment_plain_range(layout.segment_count - 1);
    assert_eq!(last.end, size);
}

#[test]
fn boundary_sizes_fit_the_ledger_bounds() {
    for params in [
        small_params(),
        Params::new(4, 2),
        Params::new(10, 4),
        Params::new(1, 0),
        Params::new(10, 5),
    ] {
        for encrypted in [false, true] {
            let capacity = Layout::new(u64::MAX / 1024, &params, encrypted)
                .unwrap()
                .segment_capacity_bytes();
            for size in [
                0,
                1,
                2,
                15,
                16,
                17,
                1023,
                1024,
                capacity - 1,
                capacity,
                capacity + 1,
                2 * capacity,
                3 * capacity + 5,
                1 << 30,
                (1 << 40) + 3,
            ] {
                check(size, &params, encrypted);
            }
        }
    }
}

proptest! {
    #[test]
    fn random_sizes_fit_the_ledger_bounds(size in 0u64..(1u64 << 36), k in 1u16..20, m in 0u16..10, encrypted: bool) {
        check(size, &Params::new(k, m), encrypted);
    }
}

#[test]
fn bad_params_are_named() {
    let cases = [
        (
            Params {
                data_shards: 0,
                ..Params::new(4, 2)
            },
            "data shard",
        ),
        (Params::new(200, 100), "shards"),
        (
            Params {
                leaf_size_bytes: 63,
                ..Params::new(4, 2)
            },
            "leaf size",
        ),
        (
            Params {
                leaf_size_bytes: 512,
                ..Params::new(4, 2)
            },
            "leaf size",
        ),
        (
            Params {
                leaf_size_bytes: 1536,
                max_piece_size_bytes: 3072,
                ..Params::new(4, 2)
            },
            "leaf size",
        ),
        (
            Params {
                max_piece_size_bytes: 3000,
                ..Params::new(4, 2)
            },
            "piece size",
        ),
    ];
    for (params, word) in cases {
        let error = Layout::new(10, &params, false).unwrap_err();
        assert!(matches!(error, CodingError::InvalidParams { .. }));
        assert!(error.to_string().contains(word), "{error}");
    }
}

#[test]
fn range_plans_cover_the_range() {
    let layout = Layout::new(10_000, &small_params(), true).unwrap();
    let capacity = layout.segment_capacity_bytes();
    for (start, end) in [
        (0, 0),
        (0, 1),
        (0, 10_000),
        (capacity - 1, capacity + 1),
        (5000, 5001),
        (9999, 10_000),
    ] {
        let plan = layout.plan_range(start..end).unwrap();
        assert_eq!(plan.segments.start * capacity + plan.skip_bytes, start);
        assert_eq!(plan.take_bytes, end - start);
        assert!(plan.segments.end * capacity >= end);
        assert_eq!(
            plan.shard_bytes.start,
            plan.segments.start * layout.piece_size_bytes
        );
        assert_eq!(
            plan.shard_bytes.end,
            plan.segments.end * layout.piece_size_bytes
        );
    }
    assert!(matches!(
        layout.plan_range(0..10_001),
        Err(CodingError::RangeOutOfBounds { .. })
    ));
}
