//! A read budget per stored shard (design §10, reliability §2a: "rate-limit shard reads").
//!
//! A provider that deleted its shard can rebuild any one leaf from the same leaf of `k`
//! peers' shards. The timed audit makes it rebuild 2 048 dependent leaves within about 2 s,
//! which a peer round trip of a few milliseconds rules out, but not peers in the same
//! datacenter (under about 1.5 ms). This budget closes much of that gap from the other
//! side: every read of a shard (a GET, whole or ranged, or a `/proof`) takes a token from the
//! bucket of that shard and the requester's network (its IPv4 /24 or IPv6 /48), so a peer
//! serves a regenerator at most `burst + per_second · t` reads of its shard in `t` seconds
//! per network it reads from. At the defaults (128 at once, 64 a second) the five peers of a
//! 4+2 shard answer one network about 320 stripes within the 2 s deadline, against the
//! ~1 300 distinct leaves a chain of 2 048 reads lands on: in
//! the deterministic simulation (`storage/tests/it/regeneration.rs`, peers 0.1–0.5 ms away)
//! a `Regenerator` passes 200/200 audits without budgets and 0/1 000 with them, and a
//! provider must keep more than about 78% of its shard to pass (75% fails 200/200, 80%
//! passes). The on-chain proof's random leaves find most of the rest: 8 of them miss a
//! 20% hole with probability 0.8⁸ ≈ 17% per epoch.
//!
//! Why per network and not per shard alone: a budget every requester shares would let
//! anyone deny a shard to everyone with a request every couple of seconds (a few shards per
//! blob and its reads fail). Per network, a flood only spends the flooder's own budget. The
//! price is that a regenerator reading from five or more networks at once gets through;
//! paying for reads by the byte is the defence that does not care how many addresses it has.
//!
//! Honest reads are few per shard: a get streams each shard in one ranged GET after one
//! trailer read, a repair reads whole shards, the gateway two or three reads per shard per
//! request. So one provider serves a blob to the gateway about 20 times a second sustained;
//! a hot public blob needs a cache in front, as Walrus's aggregators have.
//! What the budget does not stop: a regenerator that downloads whole shards (few requests,
//! many bytes). Paying for reads by the byte is the defence for that, and is not built.
//!
//! Pure: the caller passes the time, so the deterministic simulation drives the same code.

use cairn_types::Hash;
use std::collections::BTreeMap;

/// Reads one shard may answer at once before the rate applies.
pub const DEFAULT_READ_BURST: u32 = 128;
/// Reads per second one shard's budget refills.
pub const DEFAULT_READS_PER_SECOND: u32 = 64;
/// (shard, network) pairs tracked at once (about 80 bytes each). A bucket that has refilled is dropped,
/// since a new one starts full; beyond this, the longest-idle is dropped first.
pub const MAX_TRACKED_SHARDS: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub burst: u32,
    pub per_second: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            burst: DEFAULT_READ_BURST,
            per_second: DEFAULT_READS_PER_SECOND,
        }
    }
}

impl ThrottleConfig {
    /// A full bucket, in millionths of a token.
    fn full_micro_tokens(self) -> u64 {
        u64::from(self.burst).saturating_mul(MICRO)
    }

    /// A bucket's tokens at `now_us`: refilled since it was last touched, capped at full.
    fn level(self, bucket: &Bucket, now_us: u64) -> u64 {
        let elapsed = now_us.saturating_sub(bucket.updated_us);
        let refill = elapsed.saturating_mul(u64::from(self.per_second));
        bucket
            .micro_tokens
            .saturating_add(refill)
            .min(self.full_micro_tokens())
    }
}

/// A refused read: when the bucket will hold enough tokens again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_us: u64,
    pub config: ThrottleConfig,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens in millionths, so refills at any rate stay exact in integers.
    micro_tokens: u64,
    updated_us: u64,
}

/// The network a request came from: an IPv4 /24 or an IPv6 /48, one address's neighbours
/// sharing its budget. The same grouping spreads a blob's shards at placement.
pub use cairn_client::network::Network;

/// Token buckets per (shard, network). Time is microseconds on any monotonic clock the
/// caller keeps.
#[derive(Debug)]
pub struct ReadThrottle {
    config: ThrottleConfig,
    buckets: BTreeMap<(Hash, u16, Network), Bucket>,
    capacity: usize,
}

const MICRO: u64 = 1_000_000;

impl ReadThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self::with_capacity(config, MAX_TRACKED_SHARDS)
    }

    pub fn with_capacity(config: ThrottleConfig, capacity: usize) -> Self {
        Self {
            config,
            buckets: BTreeMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn config(&self) -> ThrottleConfig {
        self.config
    }

    /// Takes one token from the bucket of this shard and network, or says when to retry.
    pub fn take(
        &mut self,
        blob: &Hash,
        index: u16,
        from: Network,
        now_us: u64,
    ) -> Result<(), Throttled> {
        let cost = MICRO;
        let key = (*blob, index, from);
        let level = match self.buckets.get(&key) {
            Some(bucket) => self.config.level(bucket, now_us),
            None => self.config.full_micro_tokens(),
        };
        if level < cost {
            let missing = cost - level;
            let rate = u64::from(self.config.per_second).max(1);
            return Err(Throttled {
                retry_after_us: missing.div_ceil(rate),
                config: self.config,
            });
        }
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            self.make_room(now_us);
        }
        self.buckets.insert(
            key,
            Bucket {
                micro_tokens: level - cost,
                updated_us: now_us,
            },
        );
        debug_assert!(self.buckets.len() <= self.capacity);
        Ok(())
    }

    /// Drops refilled buckets; if none has refilled, the longest idle one.
    fn make_room(&mut self, now_us: u64) {
        let config = self.config;
        self.buckets
            .retain(|_, b| config.level(b, now_us) < config.full_micro_tokens());
        if self.buckets.len() >= self.capacity
            && let Some(oldest) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.updated_us)
                .map(|(k, _)| *k)
        {
            self.buckets.remove(&oldest);
        }
    }

    /// Shards with a bucket now (for tests and the provider's figures).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn net(last: u8) -> Network {
        Network::of(std::net::IpAddr::from([10, 0, last, 1]))
    }

    #[test]
    fn a_burst_then_the_rate() {
        let config = ThrottleConfig {
            burst: 4,
            per_second: 2,
        };
        let mut t = ReadThrottle::new(config);
        for _ in 0..4 {
            t.take(&blob(1), 0, net(0), 0).unwrap();
        }
        let refused = t.take(&blob(1), 0, net(0), 0).unwrap_err();
        assert_eq!(refused.retry_after_us, 500_000, "one token at 2/s");
        // Other shards, other indices of the same blob and other networks have budgets of
        // their own: a flood spends only the flooder's.
        t.take(&blob(1), 1, net(0), 0).unwrap();
        t.take(&blob(2), 0, net(0), 0).unwrap();
        t.take(&blob(1), 0, net(1), 0).unwrap();
        // Half a second later exactly one more read.
        t.take(&blob(1), 0, net(0), 500_000).unwrap();
        assert!(t.take(&blob(1), 0, net(0), 500_000).is_err());
        // A long idle refills to the burst, not beyond.
        for _ in 0..4 {
            t.take(&blob(1), 0, net(0), 100_000_000).unwrap();
        }
        assert!(t.take(&blob(1), 0, net(0), 100_000_000).is_err());
    }

    #[test]
    fn tracking_is_bounded() {
        let config = ThrottleConfig {
            burst: 2,
            per_second: 1,
        };
        let mut t = ReadThrottle::with_capacity(config, 3);
        for n in 0..10u8 {
            t.take(&blob(n), 0, net(0), u64::from(n)).unwrap();
            assert!(t.tracked() <= 3);
        }
        // The newest buckets are the ones kept: blob 9 is still half spent.
        t.take(&blob(9), 0, net(0), 10).unwrap();
        assert!(t.take(&blob(9), 0, net(0), 10).is_err());
    }
}
