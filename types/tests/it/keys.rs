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
    assert_eq!(text.len(), 64);
    assert!(text.starts_with("cairn1"));
    assert_eq!(text.parse::<Address>().unwrap(), alice);
    // Upper case alone is Bech32m too (QR codes); it prints back in lower case.
    assert_eq!(text.to_uppercase().parse::<Address>().unwrap(), alice);
    let hex64 = hex::encode(alice.0);

    // Every single-character substitution is caught by the checksum, whichever character.
    let alphabet = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    for position in 6..text.len() {
        for c in alphabet.chars() {
            let mut typo: Vec<char> = text.chars().collect();
            if typo[position] == c {
                continue;
            }
            typo[position] = c;
            let typo: String = typo.into_iter().collect();
            assert_eq!(
                typo.parse::<Address>(),
                Err(KeyError::BadChecksum { text: typo.clone() }),
                "{typo}"
            );
        }
    }
    // And so are two swapped neighbours.
    let mut swapped: Vec<char> = text.chars().collect();
    let i = (10..text.len() - 1)
        .find(|&i| swapped[i] != swapped[i + 1])
        .unwrap();
    swapped.swap(i, i + 1);
    let swapped: String = swapped.into_iter().collect();
    assert!(matches!(
        swapped.parse::<Address>(),
        Err(KeyError::BadChecksum { .. })
    ));
    let typo = format!(
        "{}{}",
        &text[..20],
        if &text[20..21] == "q" { "p" } else { "q" }
    );
    let typo = format!("{typo}{}", &text[21..]);
    assert_eq!(
        typo.parse::<Address>().unwrap_err().to_string(),
        format!("address {typo} has a bad checksum: a character is mistyped")
    );

    // The old unchecked form is refused, and the message gives the checked form.
    let legacy = format!("cairn{hex64}");
    assert_eq!(
        legacy.parse::<Address>(),
        Err(KeyError::Legacy {
            text: legacy.clone(),
            bech32: text.clone()
        })
    );
    assert!(
        legacy
            .parse::<Address>()
            .unwrap_err()
            .to_string()
            .contains(&text)
    );

    for bad in [
        format!("cosmos1{}", &text[6..]),
        format!("cairm1{}", &text[6..]),
        format!("bc1{}", &text[6..]),
    ] {
        assert!(
            matches!(bad.parse::<Address>(), Err(KeyError::WrongPrefix { .. })),
            "{bad:?} gave {:?}",
            bad.parse::<Address>()
        );
    }
    for bad in [
        String::new(),
        "alice".to_string(),
        hex64.clone(),
        "1abc".to_string(),
        format!(" {text}"),
    ] {
        assert_eq!(
            bad.parse::<Address>(),
            Err(KeyError::NotAnAddress { text: bad.clone() }),
            "{bad:?}"
        );
    }
    for (bad, got) in [
        (text[..63].to_string(), 63),
        (format!("{text}q"), 65),
        ("cairn1".to_string(), 6),
        (format!("{}{}", &text[..30], &text[31..]), 63),
    ] {
        assert_eq!(
            bad.parse::<Address>(),
            Err(KeyError::WrongLength {
                text: bad.clone(),
                got
            }),
            "{bad:?}"
        );
    }
    for (bad, character, position) in [
        (format!("{}b{}", &text[..10], &text[11..]), 'b', 11),
        (format!("{}1{}", &text[..10], &text[11..]), '1', 11),
        (format!("{text} "), ' ', 65),
        (format!("{}o", &text[..63]), 'o', 64),
    ] {
        assert_eq!(
            bad.parse::<Address>(),
            Err(KeyError::BadCharacter {
                text: bad.clone(),
                character,
                position
            }),
            "{bad:?}"
        );
    }
    let mixed = format!("{}{}", &text[..20], text[20..].to_uppercase());
    assert_eq!(
        mixed.parse::<Address>(),
        Err(KeyError::MixedCase {
            text: mixed.clone()
        })
    );

    // Any 32 bytes are an address; only a curve point is a public key.
    let not_a_key: Address = Address::from_bytes(NON_POINT).to_string().parse().unwrap();
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
        KeyError::InvalidPoint,
    ] {
        assert!(!err.to_string().is_empty());
    }
}

/// BIP-350's own vectors: the checksum is Bech32m, not Bech32, and not anything else.
#[test]
fn bech32m_matches_bip_350() {
    use cairn_types::bech32m::is_valid;
    for valid in [
        "A1LQFN3A",
        "a1lqfn3a",
        "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
        "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
        "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
        "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
        "?1v759aa",
    ] {
        assert!(is_valid(valid), "{valid}");
    }
    for invalid in [
        "1xj0phk",
        "pzry9x0s0muk",
        "x1b4n0q5v",
        "li1dgmt3",
        "A1G7SGD8",
        "1qzzfhee",
        "M1VUXWEZ",
        "16plkw9",
        "1p2gdwpf",
        // A valid Bech32 (not Bech32m) string.
        "a12uel5l",
        // Mixed case.
        "A1lqfn3a",
    ] {
        assert!(!is_valid(invalid), "{invalid}");
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
