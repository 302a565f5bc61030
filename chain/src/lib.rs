//! Replicate the ledger with Commonware simplex consensus: p2p, block building, mempool, finality and durable state.
