//! Pending transactions, per sender in nonce order.
//!
//! The mempool only ever holds, for each sender, a gap-free run of nonces starting at the
//! sender's nonce in the *finalized* state: `submit` requires `nonce = state nonce + pending`,
//! and finalization evicts what the chain consumed. That keeps selection trivial (a run is
//! always executable in order) and makes a sender's queue a bounded resource it controls.
//! Admission itself (signature, chain id, nonce, fee) is the ledger's `Ledger::admit`; the
//! node handle calls it with the sender's pending count and pending fees.
//!
//! Selection for a proposal starts each run at the nonce of the *parent's* state, so transactions
//! already included by unfinalized ancestors are skipped, and merges the runs in arrival order.

use cairn_ledger::Ledger;
use cairn_types::{Address, Amount, Hash, SignedTransaction};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

/// One pending transaction.
#[derive(Clone, Debug)]
struct Entry {
    tx: Arc<SignedTransaction>,
    hash: Hash,
    /// Arrival order, for fair selection across senders.
    seq: u64,
    bytes: usize,
}

/// One sender's queue: nonce → entry, plus the fees it has pending.
#[derive(Clone, Debug, Default)]
struct Queue {
    txs: BTreeMap<u64, Entry>,
    fees: Amount,
}

/// Why the mempool refused a transaction before admission ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Duplicate,
    Full { capacity: usize },
    SenderFull { capacity: usize },
}

/// The pending pool. Not thread-safe on its own: the node handle keeps it behind a lock.
#[derive(Debug)]
pub(crate) struct Mempool {
    max_txs: usize,
    max_per_sender: usize,
    queues: BTreeMap<Address, Queue>,
    by_hash: HashMap<Hash, (Address, u64)>,
    next_seq: u64,
}

impl Mempool {
    pub(crate) fn new(max_txs: usize, max_per_sender: usize) -> Self {
        Self {
            max_txs,
            max_per_sender,
            queues: BTreeMap::new(),
            by_hash: HashMap::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub(crate) fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// How many transactions `sender` has pending and the fees they owe.
    pub(crate) fn pending(&self, sender: &Address) -> (u64, Amount) {
        self.queues.get(sender).map_or((0, Amount::ZERO), |q| {
            (u64::try_from(q.txs.len()).unwrap_or(u64::MAX), q.fees)
        })
    }

    /// Checks the limits that do not need the ledger.
    pub(crate) fn check_room(&self, sender: &Address, hash: &Hash) -> Result<(), Refusal> {
        if self.by_hash.contains_key(hash) {
            return Err(Refusal::Duplicate);
        }
        if self.by_hash.len() >= self.max_txs {
            return Err(Refusal::Full {
                capacity: self.max_txs,
            });
        }
        if self
            .queues
            .get(sender)
            .is_some_and(|q| q.txs.len() >= self.max_per_sender)
        {
            return Err(Refusal::SenderFull {
                capacity: self.max_per_sender,
            });
        }
        Ok(())
    }

    /// Adds an admitted transaction (the caller ran `Ledger::admit` with [`Self::pending`]).
    pub(crate) fn insert(&mut self, tx: SignedTransaction, hash: Hash) {
        let sender = tx.sender();
        let nonce = tx.tx.nonce;
        let bytes = tx.encoded_len();
        let fee = tx.tx.fee;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        let queue = self.queues.entry(sender).or_default();
        queue.fees = queue.fees.checked_add(fee).unwrap_or(Amount(u128::MAX));
        queue.txs.insert(
            nonce,
            Entry {
                tx: Arc::new(tx),
                hash,
                seq,
                bytes,
            },
        );
        self.by_hash.insert(hash, (sender, nonce));
    }

    /// Picks transactions for a block built on `parent`: per sender, the run starting at the
    /// parent state's nonce whose cumulative fees the sender's balance covers, merged across
    /// senders by arrival. Stops at `max_txs` transactions or `max_bytes` encoded bytes.
    pub(crate) fn select(
        &self,
        parent: &Ledger,
        max_txs: usize,
        max_bytes: usize,
    ) -> Vec<SignedTransaction> {
        // Each sender's executable run, oldest first.
        let mut runs: Vec<Vec<&Entry>> = Vec::new();
        for (sender, queue) in &self.queues {
            let state = parent.state();
            let mut expected = state.nonce(sender);
            let balance = state.balance(sender);
            let mut fees = Amount::ZERO;
            let mut run = Vec::new();
            for (nonce, entry) in queue.txs.range(expected..) {
                if *nonce != expected {
                    break;
                }
                let Some(total) = fees.checked_add(entry.tx.tx.fee) else {
                    break;
                };
                if total > balance {
                    break;
                }
                fees = total;
                run.push(entry);
                expected = expected.saturating_add(1);
            }
            if !run.is_empty() {
                runs.push(run);
            }
        }

        // Merge by arrival order: a heap of (next seq, run index, position).
        let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| Reverse((run[0].seq, i, 0)))
            .collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some(Reverse((_, i, pos))) = heap.pop() {
            if out.len() >= max_txs {
                break;
            }
            let entry = runs[i][pos];
            let next_bytes = bytes.saturating_add(entry.bytes);
            if next_bytes > max_bytes {
                // This sender's later nonces cannot go without this one; others may fit.
                continue;
            }
            bytes = next_bytes;
            out.push((*entry.tx).clone());
            if let Some(next) = runs[i].get(pos + 1) {
                heap.push(Reverse((next.seq, i, pos + 1)));
            }
        }
        out
    }

    /// After finalization: drops what the finalized state consumed or made unexecutable for
    /// `senders` (nonces passed, a nonce gap, fees the balance no longer covers).
    pub(crate) fn evict(&mut self, finalized: &Ledger, senders: &BTreeSet<Address>) -> usize {
        let mut removed = 0;
        for sender in senders {
            let Some(queue) = self.queues.get_mut(sender) else {
                continue;
            };
            let state = finalized.state();
            let nonce = state.nonce(sender);
            let balance = state.balance(sender);
            // Keep the run from the state nonce whose fees the balance covers; drop the rest.
            let mut keep = BTreeMap::new();
            let mut fees = Amount::ZERO;
            let mut expected = nonce;
            let old = std::mem::take(&mut queue.txs);
            for (n, entry) in old {
                let affordable = fees
                    .checked_add(entry.tx.tx.fee)
                    .filter(|total| *total <= balance);
                match affordable {
                    Some(total) if n == expected => {
                        fees = total;
                        expected = expected.saturating_add(1);
                        keep.insert(n, entry);
                    }
                    _ => {
                        self.by_hash.remove(&entry.hash);
                        removed += 1;
                    }
                }
            }
            queue.txs = keep;
            queue.fees = fees;
            if queue.txs.is_empty() {
                self.queues.remove(sender);
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::params::{GenesisAccount, GenesisValidator};
    use cairn_ledger::{Genesis, Params};
    use cairn_types::tx::Transfer;
    use cairn_types::{BoundedString, Keypair, Transaction, TxBody};

    fn genesis(funded: &[&Keypair]) -> Ledger {
        let v = Keypair::from_test_seed("v0");
        let g = Genesis {
            chain_id: "test-chain".into(),
            genesis_time_ms: 0,
            params: Params::default(),
            accounts: funded
                .iter()
                .map(|k| GenesisAccount {
                    address: k.address(),
                    balance: Amount::from_ucrn(10_000_000),
                })
                .collect(),
            validators: vec![GenesisValidator {
                address: v.address(),
                stake: Amount::from_ucrn(1),
                p2p_address: String::new(),
            }],
            providers: vec![],
        };
        Ledger::from_genesis(&g).unwrap()
    }

    fn transfer(k: &Keypair, nonce: u64, fee: u128) -> SignedTransaction {
        Transaction {
            chain_id: BoundedString::new("test-chain").unwrap(),
            sender: k.public_key().clone(),
            nonce,
            fee: Amount::from_ucrn(fee),
            body: TxBody::Transfer(Transfer {
                to: Keypair::from_test_seed("sink").address(),
                amount: Amount::from_ucrn(1),
            }),
        }
        .sign(k)
    }

    #[test]
    fn select_merges_runs_by_arrival_and_respects_parent_nonce() {
        let a = Keypair::from_test_seed("a");
        let b = Keypair::from_test_seed("b");
        let ledger = genesis(&[&a, &b]);
        let mut pool = Mempool::new(100, 10);
        for (k, n) in [(&a, 0), (&b, 0), (&a, 1), (&b, 1), (&a, 2)] {
            let tx = transfer(k, n, 1_000);
            let h = tx.hash();
            pool.check_room(&k.address(), &h).unwrap();
            pool.insert(tx, h);
        }
        let picked = pool.select(&ledger, 100, usize::MAX);
        let order: Vec<_> = picked.iter().map(|t| (t.sender(), t.tx.nonce)).collect();
        assert_eq!(
            order,
            vec![
                (a.address(), 0),
                (b.address(), 0),
                (a.address(), 1),
                (b.address(), 1),
                (a.address(), 2)
            ]
        );
        assert_eq!(pool.select(&ledger, 2, usize::MAX).len(), 2);
    }

    #[test]
    fn limits_and_duplicates() {
        let a = Keypair::from_test_seed("a");
        let mut pool = Mempool::new(3, 2);
        let t0 = transfer(&a, 0, 1_000);
        let h0 = t0.hash();
        pool.insert(t0, h0);
        assert_eq!(pool.check_room(&a.address(), &h0), Err(Refusal::Duplicate));
        let t1 = transfer(&a, 1, 1_000);
        let h1 = t1.hash();
        pool.insert(t1, h1);
        let t2 = transfer(&a, 2, 1_000);
        assert_eq!(
            pool.check_room(&a.address(), &t2.hash()),
            Err(Refusal::SenderFull { capacity: 2 })
        );
        assert_eq!(pool.pending(&a.address()), (2, Amount::from_ucrn(2_000)));
    }

    #[test]
    fn evict_drops_consumed_nonces() {
        let a = Keypair::from_test_seed("a");
        let mut ledger = genesis(&[&a]);
        let mut pool = Mempool::new(100, 10);
        let txs: Vec<_> = (0..3).map(|n| transfer(&a, n, 1_000)).collect();
        for tx in &txs {
            pool.insert(tx.clone(), tx.hash());
        }
        // Apply a block carrying nonce 0 and 1.
        let block = cairn_types::Block::new(
            1,
            ledger.state().last_block_hash,
            1,
            Address::default(),
            Hash::ZERO,
            txs[..2].to_vec(),
        )
        .unwrap()
        .with_state_root(ledger.root());
        ledger.apply_block(&block).unwrap();
        let removed = pool.evict(&ledger, &BTreeSet::from([a.address()]));
        assert_eq!(removed, 2);
        assert_eq!(pool.len(), 1);
        assert!(pool.contains(&txs[2].hash()));
        assert_eq!(pool.pending(&a.address()), (1, Amount::from_ucrn(1_000)));
    }
}
