//! Samplers over a caller's RNG: an alias table (O(1) draws from any finite distribution, used
//! for the Zipf popularity of domains and clients), exponential gaps, lognormal and Pareto
//! sizes, and small weighted tables. All of them are deterministic given the RNG's state.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator's RNG: a ChaCha8 stream plus the spare value of the last Box–Muller pair.
#[derive(Clone, Debug)]
pub struct GenRng {
    chacha: ChaCha8Rng,
    spare_normal: Option<f64>,
}

impl GenRng {
    /// Stream `stream` of the ChaCha8 generator seeded by `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut chacha = ChaCha8Rng::seed_from_u64(seed);
        chacha.set_stream(stream);
        GenRng {
            chacha,
            spare_normal: None,
        }
    }

    /// Standard normal (Box–Muller; each pair serves two calls).
    #[inline]
    pub fn std_normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.random::<f64>(); // (0, 1]
        let u2 = self.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare_normal = Some(r * sin);
        r * cos
    }
}

impl RngCore for GenRng {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        self.chacha.next_u32()
    }
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.chacha.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.chacha.fill_bytes(dst)
    }
}

/// Vose's alias method: O(n) to build, one 64-bit draw per sample. Each slot packs its
/// threshold (32-bit fixed point) and alias into one word, so a draw touches one cache line.
#[derive(Clone, Debug)]
pub struct AliasTable {
    /// `(threshold << 32) | alias`: keep the slot when the low 32 random bits are below it.
    slots: Vec<u64>,
}

impl AliasTable {
    /// `weights` must be non-empty, finite and non-negative with a positive sum.
    pub fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        assert!(n > 0 && n <= u32::MAX as usize, "alias table size {n}");
        let sum: f64 = weights.iter().sum();
        assert!(
            sum > 0.0 && sum.is_finite(),
            "alias table weights sum {sum}"
        );
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / sum).collect();
        let mut small = Vec::new();
        let mut large = Vec::new();
        for (i, &p) in scaled.iter().enumerate() {
            if p < 1.0 {
                small.push(i);
            } else {
                large.push(i);
            }
        }
        let mut prob = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] = (scaled[l] + scaled[s]) - 1.0;
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left (rounding) keeps probability 1 and aliases itself.
        AliasTable {
            slots: Self::pack(&prob, &alias),
        }
    }

    fn pack(prob: &[f64], alias: &[u32]) -> Vec<u64> {
        prob.iter()
            .zip(alias)
            .map(|(&p, &a)| {
                // Threshold in 32-bit fixed point; a slot of probability 1 aliases itself,
                // so it is kept whatever the draw.
                let t = (p * 4_294_967_296.0).clamp(0.0, 4_294_967_295.0) as u64;
                (t << 32) | u64::from(a)
            })
            .collect()
    }

    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let x: u64 = rng.random();
        // Multiply-shift maps the high half onto 0..n (bias below n / 2^32, negligible here).
        let i = ((x >> 32) * self.slots.len() as u64) >> 32;
        let slot = self.slots[i as usize];
        if (x & 0xffff_ffff) < slot >> 32 {
            i as usize
        } else {
            (slot & 0xffff_ffff) as usize
        }
    }
}

/// Zipf over ranks 1..=n, P(k) ∝ k^-s, returned as indices (0 is the most popular).
///
/// An alias table draws its slot uniformly, so over a large table nearly every draw misses the
/// cache. The head (the most popular ranks, which carry most of the mass) therefore has its
/// own small table, and the tail is drawn from a second one only when the head is not chosen:
/// the same distribution, and most draws stay in cache.
#[derive(Clone, Debug)]
pub struct Zipf {
    head: AliasTable,
    /// The ranks after the head, with the probability of falling in them as a 2^-64 fraction.
    tail: Option<(AliasTable, u64)>,
}

/// Ranks in the cache-resident head table.
const ZIPF_HEAD: usize = 4096;

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        if n <= ZIPF_HEAD {
            return Zipf {
                head: AliasTable::new(&weights),
                tail: None,
            };
        }
        let (head, tail) = weights.split_at(ZIPF_HEAD);
        let head_sum: f64 = head.iter().sum();
        let tail_sum: f64 = tail.iter().sum();
        let p_tail = tail_sum / (head_sum + tail_sum);
        let threshold = (p_tail * 18_446_744_073_709_551_616.0).min(u64::MAX as f64) as u64;
        Zipf {
            head: AliasTable::new(head),
            tail: Some((AliasTable::new(tail), threshold)),
        }
    }

    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        if let Some((tail, p_tail)) = &self.tail {
            if rng.random::<u64>() < *p_tail {
                return ZIPF_HEAD + tail.sample(rng);
            }
        }
        self.head.sample(rng)
    }
}

/// Uniform in [0, 1).
#[inline]
pub fn unit<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    rng.random::<f64>()
}

/// True with probability `p`.
#[inline]
pub fn chance<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// Exponential with mean 1.
#[inline]
pub fn exp1<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    -(1.0 - rng.random::<f64>()).ln()
}

/// Lognormal with the given median and log-space standard deviation.
#[inline]
pub fn lognormal(rng: &mut GenRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * rng.std_normal()).exp()
}

/// Pareto with scale `xm` (the minimum) and shape `alpha`, capped at `cap`.
#[inline]
pub fn pareto<R: Rng + ?Sized>(rng: &mut R, xm: f64, alpha: f64, cap: f64) -> f64 {
    (xm * (exp1(rng) / alpha).exp()).min(cap)
}

/// Draw from a small weighted table (weights are relative, any positive sum).
#[inline]
pub fn pick<R: Rng + ?Sized, T: Copy>(rng: &mut R, table: &[(u32, T)]) -> T {
    let total: u32 = table.iter().map(|e| e.0).sum();
    let mut x = rng.random_range(0..total);
    for &(w, v) in table {
        if x < w {
            return v;
        }
        x -= w;
    }
    table[table.len() - 1].1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_table_matches_weights() {
        let w = [5.0, 1.0, 0.0, 3.0, 1.0];
        let t = AliasTable::new(&w);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0u32; 5];
        let n = 200_000;
        for _ in 0..n {
            counts[t.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[2], 0);
        for (i, &c) in counts.iter().enumerate() {
            let expect = w[i] / 10.0;
            let got = f64::from(c) / f64::from(n);
            assert!((got - expect).abs() < 0.005, "{i}: {got} vs {expect}");
        }
    }

    #[test]
    fn zipf_head_share() {
        let n = 50;
        let s = 1.1;
        let t = Zipf::new(n, s);
        let h: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let draws = 100_000;
        let top = (0..draws).filter(|_| t.sample(&mut rng) == 0).count();
        let got = top as f64 / draws as f64;
        assert!(
            (got - 1.0 / h).abs() < 0.01,
            "top share {got} vs {}",
            1.0 / h
        );
    }

    #[test]
    fn split_zipf_keeps_the_distribution() {
        // Head and tail: check the head share, a tail rank's share and the range.
        let n = 3 * ZIPF_HEAD;
        let t = Zipf::new(n, 1.0);
        let h: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
        let p_head: f64 = (1..=ZIPF_HEAD).map(|k| 1.0 / k as f64).sum::<f64>() / h;
        let mut rng = GenRng::new(9, 0);
        let draws = 400_000;
        let mut in_head = 0;
        let mut last_block = 0;
        for _ in 0..draws {
            let i = t.sample(&mut rng);
            assert!(i < n);
            in_head += usize::from(i < ZIPF_HEAD);
            last_block += usize::from(i >= 2 * ZIPF_HEAD);
        }
        let p_last: f64 = (2 * ZIPF_HEAD + 1..=n).map(|k| 1.0 / k as f64).sum::<f64>() / h;
        assert!((in_head as f64 / draws as f64 - p_head).abs() < 0.004);
        assert!((last_block as f64 / draws as f64 - p_last).abs() < 0.004);
    }

    #[test]
    fn moments_are_plausible() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 100_000;
        let mean_exp = (0..n).map(|_| exp1(&mut rng)).sum::<f64>() / n as f64;
        assert!((mean_exp - 1.0).abs() < 0.02, "{mean_exp}");
        let mut g = GenRng::new(3, 0);
        let mut v: Vec<f64> = (0..n).map(|_| lognormal(&mut g, 1000.0, 1.0)).collect();
        v.sort_by(f64::total_cmp);
        let median = v[n / 2];
        assert!((median / 1000.0 - 1.0).abs() < 0.05, "{median}");
        let z: Vec<f64> = (0..n).map(|_| g.std_normal()).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
        let p = (0..n)
            .map(|_| pareto(&mut rng, 10.0, 2.0, 1e9))
            .fold(f64::MAX, f64::min);
        assert!(p >= 10.0);
    }
}
