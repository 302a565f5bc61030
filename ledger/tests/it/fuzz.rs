//! Bounded fuzzing of block handling: mutated encodings of real blocks are decoded and, when
//! they decode, applied. Nothing may panic; whatever applies keeps the invariants.

use cairn_ledger::sim::{SimConfig, Simulation, SplitMix};
use cairn_types::Block;

#[test]
fn mutated_blocks_never_panic_or_corrupt() {
    let mut sim = Simulation::new(SimConfig {
        seed: 99,
        chaos_percent: 30,
        ..SimConfig::default()
    })
    .expect("genesis");
    let mut rng = SplitMix::new(4242);
    let mut decoded = 0u32;
    for _ in 0..40 {
        let block = sim.next_block();
        let bytes = block.to_bytes();
        for _ in 0..60 {
            let mut m = bytes.clone();
            match rng.below(5) {
                0 if !m.is_empty() => {
                    let i = rng.index(m.len());
                    m[i] ^= 1 << rng.below(8);
                }
                1 => m.truncate(rng.index(m.len() + 1)),
                2 => {
                    let i = rng.index(m.len() + 1);
                    m.insert(i, u8::try_from(rng.below(256)).unwrap_or(0));
                }
                3 if !m.is_empty() => {
                    let i = rng.index(m.len());
                    m.remove(i);
                }
                _ => {
                    let len = rng.index(16) + 1;
                    m.extend(rng.bytes(len));
                }
            }
            let result = std::panic::catch_unwind(|| Block::from_bytes(&m));
            let Ok(parsed) = result else {
                panic!("decoder panicked on a mutated block");
            };
            if let Ok(parsed) = parsed {
                decoded += 1;
                let mut ledger = sim.ledger().clone();
                let before = ledger.clone();
                let applied = std::panic::catch_unwind(move || {
                    let r = ledger.apply_block(&parsed);
                    (r.is_ok(), ledger)
                });
                let Ok((ok, ledger)) = applied else {
                    panic!("ledger panicked on a mutated block");
                };
                if ok {
                    ledger
                        .state()
                        .check_invariants()
                        .expect("invariants after a mutated block");
                } else {
                    assert_eq!(ledger, before, "a refused block changed state");
                }
            }
        }
        sim.step().expect("block applies");
    }
    // Some mutations (e.g. of the timestamp or seed) still decode; make sure we tried those.
    assert!(decoded > 0);
}
