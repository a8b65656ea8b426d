//! The load tool's one source of seeded randomness: SplitMix64 (as a sequence and as a
//! stateless hash) and xoshiro256** seeded from it.
//!
//! Both algorithms are fully specified by their authors, so a seed means the same
//! thing on every platform and with every version of every dependency: the generator
//! ([`crate::generate`]) promises that a seed remakes its queue file byte for byte,
//! which `rand`'s `SmallRng` or `StdRng` (whose algorithms may change between `rand`
//! versions) could not. The driver and the replay use [`mix64`] for randomness that must
//! be stateless (a section or a retry delay per arrival, from its index).

/// The golden-ratio increment of SplitMix64's sequence.
const SPLITMIX64_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64 (Steele, Lea and Flood): one step of its sequence from `state`.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(SPLITMIX64_GAMMA);
    finalize(*state)
}

/// A fast, well-mixed hash of `value`: SplitMix64's first output from the state
/// `value`, for randomness derived from an index without any state to share.
pub fn mix64(value: u64) -> u64 {
    let mut state = value;
    splitmix64(&mut state)
}

/// SplitMix64's output function (a variant of MurmurHash3's finalizer).
fn finalize(value: u64) -> u64 {
    let mut mixed = value;
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

/// xoshiro256** 1.0 (Blackman and Vigna, <https://prng.di.unimi.it/>), its state seeded
/// from SplitMix64 as its authors advise: small, fast, statistically sound, and the same
/// on every platform forever.
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut splitmix = seed;
        let mut state = [0; 4];
        for word in &mut state {
            *word = splitmix64(&mut splitmix);
        }
        Rng { state }
    }

    pub fn next_u64(&mut self) -> u64 {
        let state = &mut self.state;
        let result = state[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = state[1] << 17;
        state[2] ^= state[0];
        state[3] ^= state[1];
        state[1] ^= state[2];
        state[0] ^= state[3];
        state[2] ^= shifted;
        state[3] = state[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1): 53 random bits, every value a multiple of 2^-53.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, bound) by multiply-shift (Lemire): the bias, below bound / 2^64,
    /// is far below anything a load test could notice.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// True with probability `share`.
    pub fn chance(&mut self, share: f64) -> bool {
        self.unit() < share
    }

    /// Exponential of mean 1; `1 - unit` is in (0, 1], so the logarithm is finite.
    pub fn exponential(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }

    /// Standard normal, by the Box–Muller transform (one of its pair of values).
    pub fn normal(&mut self) -> f64 {
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        radius * angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prngs_match_their_reference_outputs() {
        // SplitMix64 from 0, and xoshiro256** from the state [1, 2, 3, 4], as published.
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
        let mut rng = Rng { state: [1, 2, 3, 4] };
        let outputs: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(outputs, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn the_hash_is_the_sequence_s_first_output() {
        // The values the driver's and the replay's own copies gave before they shared
        // this one: a section pick or a retry's jitter for an index stays the same.
        assert_eq!(mix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(mix64(7), 0x63cb_e1e4_5932_0dd7);
        for value in [1, 7, u64::MAX, 0x6172_7269_7661_6c73] {
            let mut state = value;
            assert_eq!(mix64(value), splitmix64(&mut state));
            assert_eq!(state, value.wrapping_add(SPLITMIX64_GAMMA));
        }
        assert_ne!(mix64(1), mix64(2));
    }
}
