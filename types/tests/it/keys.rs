//! Keys, signatures, transaction signature checks and address parsing.

use crate::{addr, bstr, crn, every_signed_tx, key, transfer_tx};
use cairn_types::keys::KeyError;
use cairn_types::tx::{SHARD_RECEIPT_NAMESPACE, TX_NAMESPACE, Transfer};
use cairn_types::{Address, Amount, Keypair, PublicKey, Signature, SignedTransaction, TxBody};

/// 32 bytes that are not an ed25519 curve point (y = 2 has no x).
pub const NON_POINT: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 2;
    b
};

#[test]
fn sign_and_verify() {
    let alice = key("vector-alice");
    let bob = key("vector-bob");
    let sig = alice.sign(b"_NS", b"message");
    assert!(alice.public_key().verify(b"_NS", b"message", &sig));
    // Deterministic.
    assert_eq!(alice.sign(b"_NS", b"message"), sig);

    // Another message, namespace or key.
    assert!(!alice.public_key().verify(b"_NS", b"messagf", &sig));
    assert!(!alice.public_key().verify(b"_NS", b"", &sig));
    assert!(!alice.public_key().verify(b"_NT", b"message", &sig));
    assert!(!alice.public_key().verify(b"", b"message", &sig));
    assert!(!bob.public_key().verify(b"_NS", b"message", &sig));
    // The namespace is length-prefixed: moving bytes between it and the message fails.
    assert!(!alice.public_key().verify(b"_N", b"Smessage", &sig));

    // A flipped bit anywhere in the signature.
    let raw = hex::decode(sig.to_hex()).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 1 << (i % 8);
        let bad: Signature = hex::encode(&bad).parse().unwrap();
        assert!(
            !alice.public_key().verify(b"_NS", b"message", &bad),
            "bit flip in byte {i} still verifies"
        );
    }
}

#[test]
fn keypairs_are_deterministic_and_distinct() {
    let alice = key("vector-alice");
    assert_eq!(key("vector-alice").address(), alice.address());
    assert_ne!(key("vector-bob").address(), alice.address());
    let again = Keypair::from_secret(&alice.secret_bytes());
    assert_eq!(again.address(), alice.address());
    assert_eq!(again.public_key(), alice.public_key());
    assert_eq!(alice.public_key().address(), alice.address());
    assert_eq!(alice.address().public_key().unwrap(), *alice.public_key());
    assert_eq!(alice.public_key().to_string(), alice.address().to_string());

    // Debug never shows the secret.
    let secret_hex = hex::encode(alice.secret_bytes());
    let debug = format!("{alice:?}");
    assert!(debug.starts_with("Keypair(cairn"), "{debug}");
    assert!(!debug.contains(&secret_hex[..16]), "{debug}");
}

#[test]
fn transactions_verify() {
    for tx in every_signed_tx() {
        assert!(tx.verify_signature(), "{}", tx.tx.body.kind());
        assert_eq!(tx.sender(), addr("vector-alice"));
        // The signature covers the encoding of the unsigned transaction under TX_NAMESPACE.
        assert!(
            tx.tx
                .sender
                .verify(TX_NAMESPACE, &tx.signing_bytes(), &tx.signature)
        );
        assert!(
            !tx.tx
                .sender
                .verify(SHARD_RECEIPT_NAMESPACE, &tx.signing_bytes(), &tx.signature)
        );
    }
}

#[test]
fn sign_sets_the_sender_from_the_key() {
    let mut unsigned = transfer_tx().tx;
    unsigned.sender = key("vector-mallory").public_key().clone();
    let signed = unsigned.sign(&key("vector-alice"));
    assert_eq!(signed.sender(), addr("vector-alice"));
    assert!(signed.verify_signature());
    assert_eq!(signed, transfer_tx());
}

#[test]
fn verify_signature_fails_after_any_mutation() {
    let good = transfer_tx();
    assert!(good.verify_signature());

    type Mutation = Box<dyn Fn(&mut SignedTransaction)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        ("nonce", Box::new(|t| t.tx.nonce += 1)),
        ("nonce to zero", Box::new(|t| t.tx.nonce = 0)),
        (
            "fee",
            Box::new(|t| t.tx.fee = Amount::from_ucrn(t.tx.fee.ucrn() + 1)),
        ),
        ("fee to zero", Box::new(|t| t.tx.fee = Amount::ZERO)),
        (
            "chain id",
            Box::new(|t| t.tx.chain_id = bstr("cairn-vector-2")),
        ),
        ("empty chain id", Box::new(|t| t.tx.chain_id = bstr(""))),
        (
            "body amount",
            Box::new(|t| {
                t.tx.body = TxBody::Transfer(Transfer {
                    to: addr("vector-bob"),
                    amount: crn("12.500001 CRN"),
                })
            }),
        ),
        (
            "body recipient",
            Box::new(|t| {
                t.tx.body = TxBody::Transfer(Transfer {
                    to: addr("vector-mallory"),
                    amount: crn("12.5 CRN"),
                })
            }),
        ),
        (
            "body kind",
            Box::new(|t| t.tx.body = crate::place_bid_body()),
        ),
        (
            "sender",
            Box::new(|t| t.tx.sender = key("vector-bob").public_key().clone()),
        ),
        (
            "signature",
            Box::new(|t| t.signature = key("vector-alice").sign(TX_NAMESPACE, b"other")),
        ),
    ];
    for (what, mutate) in &mutations {
        let mut tx = good.clone();
        mutate(&mut tx);
        assert_ne!(tx, good, "{what}: no change");
        assert!(!tx.verify_signature(), "{what}: still verifies");
        assert_ne!(tx.hash(), good.hash(), "{what}: same hash");
        // Through the wire too.
        let decoded = SignedTransaction::from_bytes(&tx.to_bytes()).unwrap();
        assert!(
            !decoded.verify_signature(),
            "{what}: verifies after decoding"
        );
        // Re-signing the mutated transaction makes it valid again (except for a changed
        // sender, which `sign` resets to the signer).
        let resigned = tx.tx.clone().sign(&key("vector-alice"));
        assert!(resigned.verify_signature(), "{what}");
    }

    // Every signed byte matters: flip each byte of the signed part of the encoding.
    let bytes = good.to_bytes();
    let signed_len = good.signing_bytes().len();
    assert_eq!(&bytes[..signed_len], &good.signing_bytes()[..]);
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        if let Ok(tx) = SignedTransaction::from_bytes(&bad) {
            assert!(!tx.verify_signature(), "flipping byte {i} still verifies");
        }
    }
}

#[test]
fn address_parse_errors_by_type() {
    let alice = addr("vector-alice");
    let text = alice.to_string();
    assert_eq!(text.parse::<Address>().unwrap(), alice);
    let hex64 = &text[5..];
    assert_eq!(hex64.len(), 64);

    for bad in [
        hex64.to_string(),
        format!("CAIRN{hex64}"),
        format!("cosmos{hex64}"),
        format!(" cairn{hex64}"),
        String::new(),
    ] {
        assert_eq!(
            bad.parse::<Address>(),
            Err(KeyError::MissingPrefix { text: bad.clone() }),
            "{bad:?}"
        );
    }

    for (bad, got) in [
        (format!("cairn{}", &hex64[..63]), 63),
        (format!("cairn{hex64}0"), 65),
        ("cairn".to_string(), 0),
        (format!("cairn{hex64} "), 65),
    ] {
        assert_eq!(
            bad.parse::<Address>(),
            Err(KeyError::Length {
                what: "address",
                expected: 64,
                got
            }),
            "{bad:?}"
        );
    }

    for bad in [
        format!("cairn{}zz", &hex64[..62]),
        format!("cairn0x{}", &hex64[..62]),
        format!("cairn{}", "g".repeat(64)),
    ] {
        assert!(
            matches!(
                bad.parse::<Address>(),
                Err(KeyError::NotHex {
                    what: "address",
                    ..
                })
            ),
            "{bad:?} gave {:?}",
            bad.parse::<Address>()
        );
    }

    // Any 32 bytes are an address; only a curve point is a public key.
    let not_a_key: Address = format!("cairn{}", hex::encode(NON_POINT)).parse().unwrap();
    assert_eq!(not_a_key.public_key(), Err(KeyError::InvalidPoint));
    assert_eq!(
        PublicKey::from_bytes(&NON_POINT),
        Err(KeyError::InvalidPoint)
    );
    assert!(PublicKey::from_bytes(alice.as_bytes()).is_ok());

    // Every error explains itself.
    for err in [
        "x".parse::<Address>().unwrap_err(),
        "cairn00".parse::<Address>().unwrap_err(),
        format!("cairn{}", "g".repeat(64))
            .parse::<Address>()
            .unwrap_err(),
        KeyError::InvalidPoint,
    ] {
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn signature_text_form() {
    let sig = key("vector-alice").sign(b"_NS", b"message");
    let text = sig.to_hex();
    assert_eq!(text.len(), 128);
    assert_eq!(text.parse::<Signature>().unwrap(), sig);
    assert_eq!(
        text[..126].parse::<Signature>(),
        Err(KeyError::Length {
            what: "signature",
            expected: 128,
            got: 126
        })
    );
    assert!(matches!(
        format!("{}zz", &text[..126]).parse::<Signature>(),
        Err(KeyError::NotHex {
            what: "signature",
            ..
        })
    ));
    assert!(format!("{sig:?}").starts_with("Signature("));
}

#[test]
fn derived_addresses_are_stable_and_keyless() {
    let a = Address::derived("treasury");
    assert_eq!(a, Address::derived("treasury"));
    assert_ne!(a, Address::derived("treasury2"));
    assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
    assert_eq!(format!("{a:?}").chars().count(), 14, "{a:?}");
}
