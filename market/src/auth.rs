//! Signed lease-API requests: the tenant signs method, path with query, a timestamp and the
//! body's BLAKE3 with its account key; the provider accepts a request only from the lease's
//! tenant on chain and only within [`MAX_SKEW_MS`] of its own clock.

use cairn_types::{Address, Keypair, Signature};

pub const NAMESPACE: &[u8] = b"_CAIRN_LEASE_API";
pub const HEADER_ADDRESS: &str = "x-cairn-address";
pub const HEADER_TIMESTAMP: &str = "x-cairn-timestamp-ms";
pub const HEADER_SIGNATURE: &str = "x-cairn-signature";
/// How far a request's timestamp may be from the provider's clock.
pub const MAX_SKEW_MS: u64 = 300_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unsigned request: header {header} is missing (sign it with the tenant's key)")]
    Missing { header: &'static str },
    #[error("header {header} is malformed: {reason}")]
    Malformed {
        header: &'static str,
        reason: String,
    },
    #[error(
        "the request's timestamp is {skew_ms} ms from the provider's clock (at most {MAX_SKEW_MS})"
    )]
    Stale { skew_ms: u64 },
    #[error("the signature does not verify for {address}")]
    BadSignature { address: Address },
}

pub fn message(method: &str, path_and_query: &str, timestamp_ms: u64, body: &[u8]) -> Vec<u8> {
    format!(
        "{method}\n{path_and_query}\n{timestamp_ms}\n{}",
        blake3::hash(body).to_hex()
    )
    .into_bytes()
}

/// The three headers of a signed request.
pub fn sign(
    key: &Keypair,
    method: &str,
    path_and_query: &str,
    timestamp_ms: u64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let sig = key.sign(
        NAMESPACE,
        &message(method, path_and_query, timestamp_ms, body),
    );
    [
        (HEADER_ADDRESS, key.address().to_string()),
        (HEADER_TIMESTAMP, timestamp_ms.to_string()),
        (HEADER_SIGNATURE, sig.to_hex()),
    ]
}

/// The signer of a request, given its headers (by name) and the provider's clock.
pub fn verify(
    header: impl Fn(&str) -> Option<String>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_ms: u64,
) -> Result<Address, AuthError> {
    let get = |h: &'static str| header(h).ok_or(AuthError::Missing { header: h });
    let bad = |h: &'static str, reason: String| AuthError::Malformed { header: h, reason };
    let address: Address = get(HEADER_ADDRESS)?
        .parse()
        .map_err(|e: cairn_types::keys::KeyError| bad(HEADER_ADDRESS, e.to_string()))?;
    let ts: u64 = get(HEADER_TIMESTAMP)?
        .parse()
        .map_err(|e: std::num::ParseIntError| bad(HEADER_TIMESTAMP, e.to_string()))?;
    let sig: Signature = get(HEADER_SIGNATURE)?
        .parse()
        .map_err(|e: cairn_types::keys::KeyError| bad(HEADER_SIGNATURE, e.to_string()))?;
    let skew_ms = now_ms.abs_diff(ts);
    if skew_ms > MAX_SKEW_MS {
        return Err(AuthError::Stale { skew_ms });
    }
    let key = address
        .public_key()
        .map_err(|e| bad(HEADER_ADDRESS, e.to_string()))?;
    if !key.verify(NAMESPACE, &message(method, path_and_query, ts, body), &sig) {
        return Err(AuthError::BadSignature { address });
    }
    Ok(address)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signed_requests_verify_and_tampering_fails() {
        let key = Keypair::from_test_seed("tenant");
        let headers = sign(&key, "PUT", "/v1/leases/lease-1/manifest", 1_000, b"body");
        let lookup = |hs: [(&'static str, String); 3]| {
            move |name: &str| hs.iter().find(|(h, _)| *h == name).map(|(_, v)| v.clone())
        };
        let ok = verify(
            lookup(headers.clone()),
            "PUT",
            "/v1/leases/lease-1/manifest",
            b"body",
            2_000,
        );
        assert_eq!(ok.unwrap(), key.address());
        let e = verify(
            lookup(headers.clone()),
            "PUT",
            "/v1/leases/lease-1/manifest",
            b"other",
            2_000,
        );
        assert!(matches!(e, Err(AuthError::BadSignature { .. })));
        let e = verify(
            lookup(headers.clone()),
            "PUT",
            "/v1/leases/lease-2/manifest",
            b"body",
            2_000,
        );
        assert!(matches!(e, Err(AuthError::BadSignature { .. })));
        let e = verify(
            lookup(headers),
            "PUT",
            "/v1/leases/lease-1/manifest",
            b"body",
            1_000 + MAX_SKEW_MS + 1,
        );
        assert!(matches!(e, Err(AuthError::Stale { .. })));
        let e = verify(|_| None, "GET", "/", b"", 0);
        assert!(matches!(e, Err(AuthError::Missing { .. })));
    }
}
