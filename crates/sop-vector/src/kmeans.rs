//! k-means for centroids: k-means++ seeding, then Lloyd's iterations; deterministic for a seed.

use crate::vector::l2;

/// A small deterministic generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// `k` centroids of `points` (k-means++ seeds, `iters` Lloyd rounds). Fewer points than `k`:
/// one centroid per distinct point.
pub(crate) fn train(points: &[Vec<f32>], k: usize, iters: usize, seed: u64) -> Vec<Vec<f32>> {
    if points.is_empty() || k == 0 {
        return Vec::new();
    }
    let k = k.min(points.len());
    let mut rng = Rng::new(seed);
    // k-means++: each next seed drawn with probability proportional to its squared distance
    // to the nearest seed so far.
    let mut centroids = vec![points[rng.below(points.len())].clone()];
    let mut d2: Vec<f64> = points
        .iter()
        .map(|p| f64::from(l2(p, &centroids[0])).powi(2))
        .collect();
    while centroids.len() < k {
        let total: f64 = d2.iter().sum();
        if total <= 0.0 {
            break; // every point is a seed already
        }
        let mut target = rng.unit() * total;
        let mut pick = points.len() - 1;
        for (i, d) in d2.iter().enumerate() {
            if target < *d {
                pick = i;
                break;
            }
            target -= d;
        }
        centroids.push(points[pick].clone());
        let c = &centroids[centroids.len() - 1];
        for (p, d) in points.iter().zip(d2.iter_mut()) {
            *d = d.min(f64::from(l2(p, c)).powi(2));
        }
    }
    let dims = points[0].len();
    let mut assign = vec![0usize; points.len()];
    for _ in 0..iters {
        let mut changed = false;
        for (i, p) in points.iter().enumerate() {
            let best = nearest(&centroids, p).0;
            if best != assign[i] {
                assign[i] = best;
                changed = true;
            }
        }
        let mut sums = vec![vec![0f64; dims]; centroids.len()];
        let mut counts = vec![0usize; centroids.len()];
        for (p, a) in points.iter().zip(&assign) {
            counts[*a] += 1;
            for (s, x) in sums[*a].iter_mut().zip(p) {
                *s += f64::from(*x);
            }
        }
        for (c, (sum, n)) in centroids.iter_mut().zip(sums.iter().zip(&counts)) {
            if *n > 0 {
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                for (x, s) in c.iter_mut().zip(sum) {
                    *x = (s / *n as f64) as f32;
                }
            }
        }
        if !changed {
            break;
        }
    }
    centroids
}

/// The index of the centroid nearest `p` and the distance to it.
pub(crate) fn nearest(centroids: &[Vec<f32>], p: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (i, c) in centroids.iter().enumerate() {
        let d = l2(p, c);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}
