//! Whether a log-in attempt's password check tells a known username from an unknown one by its time: a wrong
//! password against a real argon2id hash (`verify_password`) against the check an unknown username gets
//! (`dummy_verify`), interleaved so that machine noise falls on both alike. Prints p50 / p95 of each and their
//! ratio.
//!
//! Run with `cargo bench -p latchkey-crypto --bench password`. It measures; it asserts nothing about time.

use std::time::{Duration, Instant};

use latchkey_core::Secret;
use latchkey_crypto::{dummy_verify, hash_password, verify_password};

/// Samples of each kind.
const SAMPLES: usize = 60;

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let stored = hash_password(&Secret::new("the right password")).expect("hashes");
    let attempt = Secret::new("a wrong password");
    let mut known = Vec::with_capacity(SAMPLES);
    let mut unknown = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let matched = verify_password(&attempt, &stored);
        known.push(started.elapsed());
        assert!(!matched, "a wrong password never matches");
        let started = Instant::now();
        dummy_verify(&attempt);
        unknown.push(started.elapsed());
    }
    let (k50, u50) = (percentile(&known, 50), percentile(&unknown, 50));
    println!("| check | samples | p50 ms | p95 ms |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| known username, wrong password | {SAMPLES} | {:.2} | {:.2} |", ms(k50), ms(percentile(&known, 95)));
    println!("| unknown username | {SAMPLES} | {:.2} | {:.2} |", ms(u50), ms(percentile(&unknown, 95)));
    println!("p50 ratio unknown / known: {:.3}", u50.as_secs_f64() / k50.as_secs_f64());
}
