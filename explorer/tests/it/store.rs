//! The index log and the index without a network: torn tails, refusals, replays.

use cairn_explorer::index::{Index, IndexError};
use cairn_explorer::model::{Batch, BlockRecord};
use cairn_explorer::store::Log;
use std::io::Write;

fn batch(from: u64, to: u64) -> Batch {
    Batch {
        blocks: (from..=to)
            .map(|h| BlockRecord {
                height: h,
                timestamp_ms: 1_000 * h,
                tx_count: h % 3,
                epoch: None,
            })
            .collect(),
    }
}

#[test]
fn a_torn_tail_is_cut_and_whole_batches_replay_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.log");
    {
        let (mut log, replayed) = Log::open(&path).expect("open");
        assert!(replayed.is_empty());
        log.append(&batch(1, 5)).expect("append");
        log.append(&batch(6, 9)).expect("append");
    }
    let whole = std::fs::metadata(&path).expect("meta").len();
    // A crash mid-append: a length prefix and part of a payload.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("reopen");
    file.write_all(&[0, 0, 1, 0, 7, 7, 7])
        .expect("write garbage");
    drop(file);
    let (mut log, replayed) = Log::open(&path).expect("open after a torn write");
    assert_eq!(log.truncated_bytes, 7);
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), whole);
    assert_eq!(replayed, vec![batch(1, 5), batch(6, 9)]);
    log.append(&batch(10, 10)).expect("append after the cut");
    drop(log);
    let (_, replayed) = Log::open(&path).expect("open again");
    let mut index = Index::default();
    for b in &replayed {
        index.apply(b).expect("apply");
    }
    assert_eq!((index.height, index.blocks), (10, 10));
    assert_eq!(index.txs, (1..=10).map(|h| h % 3).sum::<u64>());
}

#[test]
fn a_flipped_byte_in_the_last_frame_drops_only_that_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("index.log");
    {
        let (mut log, _) = Log::open(&path).expect("open");
        log.append(&batch(1, 2)).expect("append");
        log.append(&batch(3, 4)).expect("append");
    }
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let (_, replayed) = Log::open(&path).expect("open");
    assert_eq!(replayed, vec![batch(1, 2)]);
}

#[test]
fn the_index_refuses_a_batch_it_already_counted_or_one_with_a_gap() {
    let mut index = Index::default();
    index.apply(&batch(1, 4)).expect("first");
    assert_eq!(
        index.apply(&batch(1, 4)),
        Err(IndexError::Gap {
            expected: 5,
            got: 1
        })
    );
    assert_eq!(
        index.apply(&batch(3, 6)),
        Err(IndexError::Gap {
            expected: 5,
            got: 3
        })
    );
    assert_eq!(
        index.apply(&batch(7, 8)),
        Err(IndexError::Gap {
            expected: 5,
            got: 7
        })
    );
    let mut bad = batch(5, 6);
    bad.blocks[1].height = 9;
    assert_eq!(
        index.apply(&bad),
        Err(IndexError::NotConsecutive { after: 5 })
    );
    assert_eq!((index.height, index.blocks, index.txs), (4, 4, 1 + 2 + 1));
}

#[test]
fn calendar_periods_come_from_block_timestamps() {
    use cairn_explorer::figures::civil_date;
    assert_eq!(civil_date(0), (1970, 1, 1));
    assert_eq!(civil_date(951_782_400_000), (2000, 2, 29));
    assert_eq!(civil_date(1_798_761_599_999), (2026, 12, 31));
    assert_eq!(civil_date(1_798_761_600_000), (2027, 1, 1));
}

#[test]
fn the_price_table_parses_and_refuses_nonsense() {
    use cairn_explorer::prices::PriceTable;
    let table = PriceTable::builtin().expect("builtin table");
    assert!(!table.storage.is_empty() && !table.gpu.is_empty() && !table.as_of.is_empty());
    assert!(
        table
            .storage
            .iter()
            .all(|s| s.source.starts_with("https://"))
    );
    let bad = cairn_explorer::prices::PRICES_TOML.replace("crn_usd = 0.10", "crn_usd = -1.0");
    assert!(PriceTable::parse(&bad).is_err());
    assert!(PriceTable::parse("as_of = 3").is_err());
}

#[test]
fn the_openapi_document_names_every_json_route() {
    let doc = cairn_explorer::openapi::document();
    for path in cairn_explorer::server::API_PATHS {
        assert!(doc["paths"].get(*path).is_some(), "{path} undocumented");
    }
}
