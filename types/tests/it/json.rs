//! The JSON forms (API and CLI): round trips of every wire type and the errors bad input gets.

use crate::{TX_BODY_VARIANTS, every_signed_tx, h, transfer_tx, two_tx_block, variant_index};
use cairn_types::tx::{PlaceBid, SubmitStorageProofs};
use cairn_types::{Address, Amount, Block, Hash, PublicKey, SignedTransaction, TxBody};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Parses `text` as `T`, expecting an error whose message contains every one of `needles`.
fn expect_error<T: DeserializeOwned + std::fmt::Debug>(text: &str, needles: &[&str]) {
    match serde_json::from_str::<T>(text) {
        Ok(v) => panic!("{text} parsed as {v:?}"),
        Err(e) => {
            let msg = e.to_string();
            for needle in needles {
                assert!(msg.contains(needle), "error {msg:?} lacks {needle:?}");
            }
        }
    }
}

/// The JSON of the Transfer fixture with `edit` applied.
fn edited_tx(edit: impl FnOnce(&mut Value)) -> String {
    let mut v = serde_json::to_value(transfer_tx()).unwrap();
    edit(&mut v);
    v.to_string()
}

fn set(v: &mut Value, pointer: &str, value: Value) {
    let shown = v.to_string();
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in {shown}")) = value;
}

#[test]
fn every_tx_body_round_trips() {
    let txs = every_signed_tx();
    let kinds: BTreeSet<usize> = txs.iter().map(|t| variant_index(&t.tx.body)).collect();
    assert_eq!(
        kinds.len(),
        TX_BODY_VARIANTS,
        "one transaction of every kind"
    );
    for tx in &txs {
        let text = serde_json::to_string(tx).unwrap();
        let back: SignedTransaction = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} did not parse back: {e}\n{text}", tx.tx.body.kind()));
        assert_eq!(&back, tx);
        assert!(back.verify_signature(), "{}", tx.tx.body.kind());
        assert_eq!(back.hash(), tx.hash());

        // The pretty form parses the same.
        let pretty = serde_json::to_string_pretty(tx).unwrap();
        assert_eq!(
            &serde_json::from_str::<SignedTransaction>(&pretty).unwrap(),
            tx
        );

        // The tag is the body's stable kind name.
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["tx"]["body"]["type"], tx.tx.body.kind());
        assert_eq!(value["tx"]["sender"], tx.sender().to_string());
        assert_eq!(value["signature"], tx.signature.to_hex());

        // The body alone round-trips too.
        let body: TxBody = serde_json::from_value(value["tx"]["body"].clone()).unwrap();
        assert_eq!(body, tx.tx.body);
    }
}

#[test]
fn block_round_trips() {
    let block = two_tx_block();
    let text = serde_json::to_string(&block).unwrap();
    let back: Block = serde_json::from_str(&text).unwrap();
    assert_eq!(back, block);
    assert_eq!(back.hash(), block.hash());
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["header"]["height"], 5);
    assert_eq!(value["header"]["parent"], h("parent").to_string());
    assert_eq!(value["header"]["tx_root"], block.header.tx_root.to_string());
    assert_eq!(value["txs"].as_array().unwrap().len(), 2);

    // An empty block too.
    let empty = Block::new(1, Hash::ZERO, 0, Address::default(), Hash::ZERO, vec![]).unwrap();
    let back: Block = serde_json::from_str(&serde_json::to_string(&empty).unwrap()).unwrap();
    assert_eq!(back, empty);
}

#[test]
fn amount_json_forms() {
    let amount = Amount::from_ucrn(12_500_000);
    assert_eq!(serde_json::to_string(&amount).unwrap(), r#""12500000""#);
    for text in [
        r#""12500000""#,
        r#""12.5 CRN""#,
        r#""12.5CRN""#,
        r#""12500000 uCRN""#,
        "12500000",
    ] {
        assert_eq!(
            serde_json::from_str::<Amount>(text).unwrap(),
            amount,
            "{text}"
        );
    }
    // The whole u128 range survives as a string, where a JSON number would not.
    let max = Amount::from_ucrn(u128::MAX);
    let text = serde_json::to_string(&max).unwrap();
    assert_eq!(text, format!("\"{}\"", u128::MAX));
    assert_eq!(serde_json::from_str::<Amount>(&text).unwrap(), max);
    assert_eq!(
        serde_json::from_str::<Amount>(&u64::MAX.to_string()).unwrap(),
        Amount::from_ucrn(u128::from(u64::MAX))
    );
    assert_eq!(serde_json::from_str::<Amount>("0").unwrap(), Amount::ZERO);

    expect_error::<Amount>(r#""12.5 BTC""#, &["unknown unit", "BTC"]);
    expect_error::<Amount>(r#""""#, &["empty amount"]);
    expect_error::<Amount>(r#""0.0000001 CRN""#, &["6 decimal places"]);
    expect_error::<Amount>(
        r#""340282366920938463463374607431768211456""#,
        &["too large"],
    );
    expect_error::<Amount>("-1", &[]);
    expect_error::<Amount>("12.5", &[]);
    // "12" is uCRN in JSON, so a unitless decimal string is refused, not read as CRN.
    expect_error::<Amount>(r#""12.5""#, &["ambiguous", "unit"]);
    expect_error::<Amount>("null", &[]);

    // Inside a transaction body (an internally tagged enum) every form works too.
    for amount_json in [json!("12500000"), json!("12.5 CRN"), json!(12_500_000)] {
        let text = edited_tx(|v| set(v, "/tx/body/amount", amount_json.clone()));
        let tx: SignedTransaction = serde_json::from_str(&text).unwrap();
        assert_eq!(tx, transfer_tx(), "{amount_json}");
    }
}

#[test]
fn address_json_form() {
    let alice = crate::addr("vector-alice");
    let text = serde_json::to_string(&alice).unwrap();
    assert_eq!(text, format!("\"{alice}\""));
    assert!(text.starts_with("\"cairn1"));
    assert_eq!(text.len(), 2 + 64);
    assert_eq!(serde_json::from_str::<Address>(&text).unwrap(), alice);
    // Upper case is accepted and printed back in lower case.
    let upper = text.to_uppercase();
    assert_eq!(serde_json::from_str::<Address>(&upper).unwrap(), alice);

    let plain = alice.to_string();
    let hex64 = hex::encode(alice.0);
    expect_error::<Address>(
        &format!("\"cosmos1{}\"", &plain[6..]),
        &["has the prefix \"cosmos\"", "starts with cairn1"],
    );
    expect_error::<Address>(&format!("\"{hex64}\""), &["is not an address"]);
    expect_error::<Address>(
        &format!("\"cairn{hex64}\""),
        &["old unchecked address form", &plain],
    );
    expect_error::<Address>(
        &format!("\"{}\"", &plain[..62]),
        &["is 62 characters long", "has 64"],
    );
    let typo = format!(
        "{}{}",
        &plain[..63],
        if plain.ends_with('q') { "p" } else { "q" }
    );
    expect_error::<Address>(&format!("\"{typo}\""), &["bad checksum"]);
    expect_error::<Address>("42", &[]);

    // A public key must also be a curve point.
    let pk = serde_json::to_string(crate::key("vector-alice").public_key()).unwrap();
    assert_eq!(pk, text);
    assert_eq!(
        &serde_json::from_str::<PublicKey>(&pk).unwrap(),
        crate::key("vector-alice").public_key()
    );
    let non_point = Address::from_bytes(crate::keys::NON_POINT);
    expect_error::<PublicKey>(
        &format!("\"{non_point}\""),
        &["not a valid ed25519 public key"],
    );
}

#[test]
fn hash_json_form() {
    let hash = h("json");
    let text = serde_json::to_string(&hash).unwrap();
    assert_eq!(text, format!("\"{}\"", hex::encode(hash.0)));
    assert_eq!(serde_json::from_str::<Hash>(&text).unwrap(), hash);
    assert_eq!(
        serde_json::from_str::<Hash>(&format!("\"{}\"", "00".repeat(32))).unwrap(),
        Hash::ZERO
    );
    let hex64 = hex::encode(hash.0);
    expect_error::<Hash>(
        &format!("\"{}\"", &hex64[..63]),
        &["hash must be 64 hex characters, got 63"],
    );
    expect_error::<Hash>(&format!("\"0x{}\"", &hex64[..62]), &["hash is not hex"]);
    expect_error::<Hash>(r#""""#, &["got 0"]);
}

#[test]
fn bad_transactions_name_the_problem() {
    // Bad address prefix in a body field.
    let text = edited_tx(|v| {
        let to = v["tx"]["body"]["to"]
            .as_str()
            .unwrap()
            .replacen("cairn", "cairm", 1);
        set(v, "/tx/body/to", json!(to));
    });
    expect_error::<SignedTransaction>(&text, &["starts with cairn1"]);

    // Wrong hex length of the sender.
    let text = edited_tx(|v| {
        let sender = v["tx"]["sender"].as_str().unwrap().to_string();
        set(v, "/tx/sender", json!(&sender[..sender.len() - 2]));
    });
    expect_error::<SignedTransaction>(&text, &["is 62 characters long"]);

    // A sender that is not a curve point.
    let text = edited_tx(|v| {
        let sender = Address::from_bytes(crate::keys::NON_POINT).to_string();
        set(v, "/tx/sender", json!(sender));
    });
    expect_error::<SignedTransaction>(&text, &["not a valid ed25519 public key"]);

    // Signature of the wrong length.
    let text = edited_tx(|v| set(v, "/signature", json!("ab".repeat(63))));
    expect_error::<SignedTransaction>(&text, &["signature must be 128 hex characters, got 126"]);

    // BoundedString too long: the chain id holds at most 64 bytes.
    let text = edited_tx(|v| set(v, "/tx/chain_id", json!("c".repeat(65))));
    expect_error::<SignedTransaction>(&text, &["string of 65 bytes, at most 64 allowed"]);
    // ... exactly 64 is fine (the signature no longer verifies, but it parses).
    let text = edited_tx(|v| set(v, "/tx/chain_id", json!("c".repeat(64))));
    let tx: SignedTransaction = serde_json::from_str(&text).unwrap();
    assert!(!tx.verify_signature());
    // Length is in bytes, not characters.
    let text = edited_tx(|v| set(v, "/tx/chain_id", json!("é".repeat(33))));
    expect_error::<SignedTransaction>(&text, &["string of 66 bytes, at most 64 allowed"]);

    // Unknown body type and missing fields.
    let text = edited_tx(|v| set(v, "/tx/body/type", json!("mint")));
    expect_error::<SignedTransaction>(&text, &["unknown variant", "mint"]);
    let text = edited_tx(|v| {
        v["tx"].as_object_mut().unwrap().remove("nonce");
    });
    expect_error::<SignedTransaction>(&text, &["missing field `nonce`"]);
    let text = edited_tx(|v| set(v, "/tx/nonce", json!(-1)));
    expect_error::<SignedTransaction>(&text, &[]);
}

#[test]
fn bounded_vectors_and_bytes_refuse_too_many() {
    let bid = match crate::place_bid_body() {
        TxBody::PlaceBid(bid) => bid,
        other => panic!("{other:?}"),
    };
    let mut v = serde_json::to_value(&bid).unwrap();
    let one_gpu = v["hardware"]["gpus"][0].clone();
    set(
        &mut v,
        "/hardware/gpus",
        Value::Array(vec![one_gpu.clone(); 17]),
    );
    expect_error::<PlaceBid>(&v.to_string(), &["17 items, at most 16 allowed"]);
    set(
        &mut v,
        "/hardware/gpus",
        Value::Array(vec![one_gpu.clone(); 16]),
    );
    let parsed: PlaceBid = serde_json::from_value(v).unwrap();
    assert_eq!(parsed.hardware.gpus.len(), 16);

    // Inside a whole transaction, through the tagged body.
    let mut v = serde_json::to_value(crate::signed(
        "vector-alice",
        1,
        Amount::ZERO,
        TxBody::PlaceBid(bid),
    ))
    .unwrap();
    set(
        &mut v,
        "/tx/body/hardware/gpus",
        Value::Array(vec![one_gpu; 17]),
    );
    expect_error::<SignedTransaction>(&v.to_string(), &["17 items, at most 16 allowed"]);

    // A GPU model longer than its bound.
    let mut v = serde_json::to_value(crate::place_bid_body()).unwrap();
    set(&mut v, "/hardware/gpus/0/model", json!("m".repeat(65)));
    expect_error::<TxBody>(&v.to_string(), &["string of 65 bytes, at most 64 allowed"]);

    // Opaque bytes: hex, bounded.
    let proofs = match crate::every_body().swap_remove(13) {
        TxBody::SubmitStorageProofs(p) => p,
        other => panic!("{other:?}"),
    };
    let mut v = serde_json::to_value(&proofs).unwrap();
    assert_eq!(
        v["proofs"][0]["leaves"][0]["data"],
        hex::encode(b"leaf bytes")
    );
    set(
        &mut v,
        "/proofs/0/leaves/0/data",
        json!("00".repeat(64 * 1024 + 1)),
    );
    expect_error::<SubmitStorageProofs>(&v.to_string(), &["more than 65536 bytes"]);
    set(&mut v, "/proofs/0/leaves/0/data", json!("0g"));
    expect_error::<SubmitStorageProofs>(&v.to_string(), &["Invalid character"]);
}

/// Ids parse in both forms cairn prints (`deal-0` in text, `0` in JSON), and nothing else.
#[test]
fn ids_parse_as_printed() {
    use cairn_types::{ChallengeId, DealId, LeaseId, OrderId};
    for (text, id) in [("deal-0", 0), ("0", 0), ("deal-42", 42), ("42", 42)] {
        assert_eq!(text.parse::<DealId>().unwrap(), DealId(id), "{text}");
    }
    assert_eq!(DealId(7).to_string().parse::<DealId>().unwrap(), DealId(7));
    assert_eq!(
        LeaseId(3).to_string().parse::<LeaseId>().unwrap(),
        LeaseId(3)
    );
    assert_eq!(
        OrderId(2).to_string().parse::<OrderId>().unwrap(),
        OrderId(2)
    );
    assert_eq!(
        ChallengeId(9).to_string().parse::<ChallengeId>().unwrap(),
        ChallengeId(9)
    );
    assert_eq!("lease-0".parse::<LeaseId>().unwrap(), LeaseId(0));
    for bad in [
        "lease-0", "deal-", "", "-1", "+1", "deal-x", "deal--1", "deal-0 ",
    ] {
        let err = bad.parse::<DealId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{bad:?} is not a deal id: write it as cairn prints it, deal-N or N (e.g. deal-0)"
            )
        );
    }
    assert_eq!(serde_json::to_string(&DealId(5)).unwrap(), "5");
}
