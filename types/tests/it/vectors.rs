//! Frozen test vectors of the canonical encoding (and of the JSON form of a transaction).
//!
//! Changing a vector is a protocol change: bump the domain version and say so in the commit.
//! (2026-12-02: `CreateDeal` gained `sealed_key`, the tx hash domain went to `cairn.tx.v2`,
//! which moved the transfer hash, the block's tx root and the block hash.)
//!
//! Every value here is deterministic: keys come from `Keypair::from_test_seed`, ed25519
//! signatures are deterministic (RFC 8032), hashes are BLAKE3 under fixed domains. The hex
//! strings were printed once and pasted in; they must never be regenerated to make a test
//! pass. A failing vector means the bytes on the wire, a hash or a signature changed.

use crate::{
    CHAIN_ID, addr, create_deal_body, h, key, lease_started_body, open_compute_body,
    place_bid_body, transfer_tx, two_tx_block,
};
use cairn_types::commonware_codec::{DecodeExt, Encode};
use cairn_types::ids::blob_id;
use cairn_types::{Address, Amount, Block, Hash, SignedTransaction, TxBody};

/// Compares `bytes` with the frozen hex, printing the actual value on a mismatch so a
/// deliberate protocol change can be reviewed (never blindly pasted).
fn assert_hex(name: &str, bytes: &[u8], frozen: &str) {
    let actual = hex::encode(bytes);
    assert!(
        actual == frozen,
        "vector {name} changed:\n  frozen: {frozen}\n  actual: {actual}"
    );
}

const AMOUNT_12_5_CRN: &str = "00000000000000000000000000bebc20";
const AMOUNT_MAX: &str = "ffffffffffffffffffffffffffffffff";
const HASH_DOMAIN: &str = "6b7af7073b5980c2ac969eab077fc627bd1428a742822d0798d01e1a618671f2";
const HASH_OF: &str = "0a35e41e05f8a79793f4436f3c778283f6215c381a24071eb1ae871aba2c797b";
const ADDRESS_ALICE: &str = "47ff882e8fa891dddac603214e3ed3ca058be8f20f7859cde88e059554091b45";
// The text form is Bech32m since the address checksum (computed here by an independent
// implementation of BIP-350); the binary form above is unchanged.
const ADDRESS_ALICE_TEXT: &str = "cairn1gllcst504zgamkkxqvs5u0knegzch68jpau9nn0g3cze24qfrdzsya4tl2";
const ADDRESS_DERIVED: &str = "55f6dc909873fe100e0611e7d69d04acfa6b197031fa7b2f8518682f3219d349";
const SECRET_ALICE: &str = "a8f32bf93a23c2ca5eebda14a2dd3e4fe7b4abc9d47b070d86bfd0681a0c39f0";
const TRANSFER_TX: &str = concat!(
    "0e636169726e2d766563746f722d3147ff882e8fa891dddac603214e3ed3ca058be8f20f7859cde88e059554091b4500",
    "0000000000000700000000000000000000000000002710003b31e0fd16c27658e4042355e31045167798deaccbb236b4",
    "8bf89b05c343ffde00000000000000000000000000bebc202322e445a26fad575c941b9689f81095e39939649a21a3ab",
    "78cffee04045422f965fa311086890e2f474c8f7039899f149a205ee31a2d656e827ccae100fa90a",
);
const TRANSFER_TX_HASH: &str = "8e99515aacbd9817b5d9e25e44739554fb23cebca03cb96efcc0093587b82f32";
const TRANSFER_TX_JSON: &str = concat!(
    r#"{"tx":{"chain_id":"cairn-vector-1","#,
    r#""sender":"cairn1gllcst504zgamkkxqvs5u0knegzch68jpau9nn0g3cze24qfrdzsya4tl2","#,
    r#""nonce":7,"#,
    r#""fee":"10000","#,
    r#""body":{"type":"transfer","#,
    r#""to":"cairn18vc7plgkcfm93eqyyd27xyz9zeme3h4vewerddytlzdsts6rll0qlzuj2r","#,
    r#""amount":"12500000"}},"#,
    r#""signature":"2322e445a26fad575c941b9689f81095e39939649a21a3ab78cffee04045422f965fa311086890e2f474c8f7039899f149a205ee31a2d656e827ccae100fa90a"}"#,
);
const CREATE_DEAL_BODY: &str = concat!(
    "09187c73790f6edba7e011401fe1543f92f580ebba2e79e70139165f66678e399e00000000002dc6c000020001000000",
    "000016e3600001000003d367d24806a6769016d617d890fdaabf8d15371797095fcdd6e81f45e07956e71f87811aa673",
    "a5fad024e920f81335b12c3ff938ef3518e91890e34a5395f0b68b2e22f9f9aaf3bdf5a3a5a85c04b2348bc9134da782",
    "b3081b175a4c6a93bb18034c0d91b55f1a920ff3679b77af5d339e0f21d99f250c5acb5622a012a2af58b60fac1f2bf0",
    "05199199c6fa7dea43ae7e9f2f9e4fdec10ab29fb2dad4090e776657bd6419c107bc317a6379b68a116353acce82aee5",
    "781bf13ee8c9977aacc7d900000000000000000c000000000000000000000000000007d0000000000000000000000000",
    "02625a0030000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a",
    "2b2c2d2e2f",
);
const PLACE_BID_BODY: &str = concat!(
    "1000000000000000030000000000000000000000000003d0900000000000003e80000000100000000000000100000000",
    "0001066e76696469610e483130302d53584d352d383047420000000000014000",
);
const OPEN_COMPUTE_BODY: &str = concat!(
    "1600000000000000090000",
    "02000000000000001100000001fffffffe000000038000000002185513adf2b2d7771a2be5c631",
    "8e82cb2223e81f67a5c38f86406f700ac638bec851c40682ed5ffde39efd1b653786ea103a35ccc465354791615332b3",
    "5a40040000000000000fff7fffffff00000000ffffffff0000002a0124791ebb1cf46314ef696ae106364f375ca1eee9",
    "81f955c0c5a583e919e6e58e",
);
/// Tag 27 (26 is `ReportAuditLateness`), then the lease id.
const LEASE_STARTED_BODY: &str = "1b0000000000000008";
const LEASE_STARTED_BODY_JSON: &str = r#"{"type":"lease_started","lease":8}"#;
const BLOCK: &str = concat!(
    "00000000000000055a63b4832c74737d326bce5c28f5505a645182df2cc808ab4e98cd6067a0d7b70000018bcfe56800",
    "56af492fdef2b59a60256875fffdc67e02f0e49e8251060bdf76c2a758829cef29c42ea03d7ebf3ab6258e263ce5b669",
    "669911667de870d85b468fbcfcd4719931848c3597b86f130a261112211d7f42afc78a416ad4cc93af968b98c7630159",
    "4acaac4bedd195ae13fe7c44403ea0b2f11e5c8d230bb2c6a9a3d4a23075a19b020e636169726e2d766563746f722d31",
    "47ff882e8fa891dddac603214e3ed3ca058be8f20f7859cde88e059554091b4500000000000000070000000000000000",
    "0000000000002710003b31e0fd16c27658e4042355e31045167798deaccbb236b48bf89b05c343ffde00000000000000",
    "000000000000bebc202322e445a26fad575c941b9689f81095e39939649a21a3ab78cffee04045422f965fa311086890",
    "e2f474c8f7039899f149a205ee31a2d656e827ccae100fa90a0e636169726e2d766563746f722d313b31e0fd16c27658",
    "e4042355e31045167798deaccbb236b48bf89b05c343ffde000000000000000000000000000000000000000000004e20",
    "1000000000000000030000000000000000000000000003d0900000000000003e80000000100000000000000100000000",
    "0001066e76696469610e483130302d53584d352d3830474200000000000140003982e97cf23b145cddaa215842dc5852",
    "61a52ca217dcacaf28c2f2550ee2c467e44d5f9e63d4d77c5075c843301af0a2c0c7fcf6e7b0da76dc87184a1f9bbf0a",
);
const BLOCK_HASH: &str = "8ab7f8475f73c9d432bcbd81082cbe5e39115ddd14135b7c9d3333693d3843fe";
const BLOB_ID: &str = "187c73790f6edba7e011401fe1543f92f580ebba2e79e70139165f66678e399e";

#[test]
fn amount_vectors() {
    let amount: Amount = "12.5 CRN".parse().unwrap();
    assert_hex("amount 12.5 CRN", &amount.encode(), AMOUNT_12_5_CRN);
    assert_hex(
        "amount max",
        &Amount::from_ucrn(u128::MAX).encode(),
        AMOUNT_MAX,
    );
    let back =
        Amount::decode(cairn_types::commonware_codec::Copying(&amount.encode()[..])).unwrap();
    assert_eq!(back, amount);
}

#[test]
fn hash_vectors() {
    let domain = Hash::domain("cairn.test.vector.v1", &[b"alpha", b"beta"]);
    assert_hex("hash domain", &domain.encode(), HASH_DOMAIN);
    assert_eq!(domain.to_string(), HASH_DOMAIN);
    assert_hex("hash of", &Hash::of(b"cairn").encode(), HASH_OF);
    // Parts are concatenated: the split between them is not part of the digest.
    assert_eq!(
        Hash::domain("cairn.test.vector.v1", &[b"alphabeta"]),
        domain
    );
    assert_ne!(
        Hash::domain("cairn.test.vector.v2", &[b"alpha", b"beta"]),
        domain
    );
}

#[test]
fn address_and_key_vectors() {
    let alice = addr("vector-alice");
    assert_hex("address alice", &alice.encode(), ADDRESS_ALICE);
    assert_eq!(alice.to_string(), ADDRESS_ALICE_TEXT);
    assert_eq!(key("vector-alice").public_key().address(), alice);
    assert_hex(
        "secret alice",
        &key("vector-alice").secret_bytes(),
        SECRET_ALICE,
    );
    assert_hex(
        "address derived",
        &Address::derived("treasury").encode(),
        ADDRESS_DERIVED,
    );
}

#[test]
fn transfer_tx_vector() {
    let tx = transfer_tx();
    assert_eq!(tx.tx.chain_id.as_str(), CHAIN_ID);
    assert_hex("transfer tx", &tx.to_bytes(), TRANSFER_TX);
    assert_hex("transfer tx hash", &tx.hash().0, TRANSFER_TX_HASH);
    assert_eq!(tx.encoded_len(), TRANSFER_TX.len() / 2);
    // The frozen bytes decode to the same transaction, which verifies.
    let decoded = SignedTransaction::from_bytes(&hex::decode(TRANSFER_TX).unwrap()).unwrap();
    assert_eq!(decoded, tx);
    assert!(decoded.verify_signature());
    // The JSON form is frozen too, and parses back.
    let json = serde_json::to_string(&tx).unwrap();
    assert_eq!(
        serde_json::from_str::<SignedTransaction>(TRANSFER_TX_JSON).unwrap(),
        tx
    );
    assert!(
        json == TRANSFER_TX_JSON,
        "transfer tx JSON changed:\n  frozen: {TRANSFER_TX_JSON}\n  actual: {json}"
    );
}

#[test]
fn body_vectors() {
    for (name, body, frozen) in [
        ("create deal body", create_deal_body(), CREATE_DEAL_BODY),
        ("place bid body", place_bid_body(), PLACE_BID_BODY),
        ("open compute body", open_compute_body(), OPEN_COMPUTE_BODY),
        (
            "lease started body",
            lease_started_body(),
            LEASE_STARTED_BODY,
        ),
    ] {
        let bytes = body.encode();
        assert_hex(name, &bytes, frozen);
        let decoded = TxBody::decode(cairn_types::commonware_codec::Copying(&bytes[..])).unwrap();
        assert_eq!(decoded, body, "{name}");
    }
}

#[test]
fn lease_started_json_vector() {
    let body = lease_started_body();
    assert_eq!(
        serde_json::to_string(&body).unwrap(),
        LEASE_STARTED_BODY_JSON
    );
    assert_eq!(
        serde_json::from_str::<TxBody>(LEASE_STARTED_BODY_JSON).unwrap(),
        body
    );
    // Tag 26 is the lateness report (`ReportAuditLateness`): the lease id's bytes after it
    // are no such report, so they must not decode as one.
    let other = hex::decode("1a0000000000000008").unwrap();
    assert!(TxBody::decode(cairn_types::commonware_codec::Copying(&other[..])).is_err());
}

#[test]
fn block_vector() {
    let block = two_tx_block();
    assert_hex("block", &block.to_bytes(), BLOCK);
    assert_hex("block hash", &block.hash().0, BLOCK_HASH);
    assert_eq!(block.hash(), block.header.hash());
    let decoded = Block::from_bytes(&hex::decode(BLOCK).unwrap()).unwrap();
    assert_eq!(decoded, block);
    assert_eq!(decoded.txs.0[0], transfer_tx());
    assert_eq!(
        decoded.header.tx_root,
        cairn_types::block::tx_root(&decoded.txs.0)
    );
}

#[test]
fn blob_id_vector() {
    let roots: Vec<Hash> = (0..3).map(|i| h(&format!("shard-root-{i}"))).collect();
    let id = blob_id(3_000_000, 2, 1, 1_500_000, 65_536, &roots);
    assert_hex("blob id", &id.0, BLOB_ID);
    // Every parameter is committed to.
    assert_ne!(blob_id(3_000_001, 2, 1, 1_500_000, 65_536, &roots), id);
    assert_ne!(blob_id(3_000_000, 1, 2, 1_500_000, 65_536, &roots), id);
    assert_ne!(blob_id(3_000_000, 2, 1, 1_500_000, 4_096, &roots), id);
    assert_ne!(blob_id(3_000_000, 2, 1, 1_500_000, 65_536, &roots[..2]), id);
}
