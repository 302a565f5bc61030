//! Data keys sealed to their owner, and decryption failures.

use crate::support::{bytes, encode_vecs, encrypted, key, small_params, sources};
use cairn_coding::{CodingError, Decoder, Protection, open_key, seal_key};

#[test]
fn sealed_key_opens_with_the_owner_key_only() {
    let owner = [7u8; 32];
    let context = b"blob id bytes";
    let sealed = seal_key(&owner, context, &key(9)).unwrap();
    assert_eq!(open_key(&owner, context, &sealed).unwrap(), key(9));
    // Deterministic: another device sealing the same key gets the same bytes.
    assert_eq!(seal_key(&owner, context, &key(9)).unwrap(), sealed);
    assert!(matches!(
        open_key(&[8u8; 32], context, &sealed),
        Err(CodingError::Unseal)
    ));
    assert!(matches!(
        open_key(&owner, b"another blob", &sealed),
        Err(CodingError::Unseal)
    ));
    let mut tampered = sealed;
    tampered.0[3] ^= 1;
    assert!(matches!(
        open_key(&owner, context, &tampered),
        Err(CodingError::Unseal)
    ));
    assert_ne!(sealed.0[..32], key(9).expose_bytes()[..]);
}

#[test]
fn wrong_key_or_no_key_fails_naming_the_segment() {
    let params = small_params();
    let data = bytes(4, 3000);
    let (encoded, shards) = encode_vecs(&data, &params, &encrypted(1));
    let all = vec![true; 6];

    let mut wrong =
        Decoder::new(&encoded.meta, params.max_piece_size_bytes, &encrypted(2)).unwrap();
    let error = wrong
        .read_all(&mut sources(&shards, &all), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(error, CodingError::Decrypt { segment: 0 }),
        "{error}"
    );

    // Reading an encrypted blob as public is refused (the authenticated trailer says which).
    let mut public = Decoder::new(
        &encoded.meta,
        params.max_piece_size_bytes,
        &Protection::Public,
    )
    .unwrap();
    let error = public
        .read_all(&mut sources(&shards, &all), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(error, CodingError::TrailerHeader { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("the blob is encrypted"),
        "{error}"
    );
    // And a public blob read with a key.
    let (public_blob, public_shards) = encode_vecs(&data, &params, &Protection::Public);
    let mut keyed = Decoder::new(
        &public_blob.meta,
        params.max_piece_size_bytes,
        &encrypted(1),
    )
    .unwrap();
    let error = keyed
        .read_all(&mut sources(&public_shards, &all), &mut Vec::new())
        .unwrap_err();
    assert!(error.to_string().contains("the blob is public"), "{error}");
}

#[test]
fn ciphertext_does_not_contain_the_plaintext() {
    let params = small_params();
    let data = vec![0x41u8; 4000];
    let (_, shards) = encode_vecs(&data, &params, &encrypted(1));
    let run = [0x41u8; 32];
    for shard in &shards {
        assert!(!shard.windows(32).any(|w| w == run));
    }
}
