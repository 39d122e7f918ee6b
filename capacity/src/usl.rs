//! Latency against load, and the ceiling: the Universal Scalability Law fitted to the service's
//! minutes.
//!
//! Each bin of minutes gives a throughput X (requests per second) and a concurrency N (Little's
//! law: N = X · R, the mean number of requests in flight, from the time the requests took). The
//! law says X(N) = λN / (1 + σ(N − 1) + κN(N − 1)): λ the throughput of one request in flight,
//! σ the share lost to contention (queueing on something shared), κ to coherence (keeping
//! shared state in step). It is fitted by weighted nonlinear least squares (Levenberg-Marquardt,
//! from the classic linearised fit of N/X as a start; weights are the bins' minutes), with 95%
//! intervals from the fit's covariance (Student's t). The throughput peaks at
//! N* = √((1 − σ)/κ): X(N*) is the predicted maximum. Its interval is the wider of the delta
//! method's and what κ's interval alone allows; when κ's interval reaches 0 the ceiling is not
//! bounded above.
//!
//! The knee is where latency starts to climb: the load at which the mean latency the law
//! predicts (R = N / X) is half as long again as with one request in flight. The headroom is
//! what is left between the observed peak (the 99th percentile minute) and the knee, the
//! maximum and the load at which the p99 would break the objective (the p99 taken to grow as the
//! mean does, scaled by the p99-to-mean ratio seen at light load).

use crate::input::LoadBin;
use crate::robust::median;
use levenberg_marquardt::{LeastSquaresProblem, LevenbergMarquardt};
use nalgebra::storage::Owned;
use nalgebra::{DMatrix, DVector, Dyn, U3, Vector3};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Bins a fit needs.
pub const MIN_BINS: usize = 5;
/// How much longer than at one request in flight the mean latency is at the knee.
const KNEE_LATENCY_RATIO: f64 = 1.5;
/// Observed peaks below this share of the predicted maximum make the maximum an extrapolation.
const EXTRAPOLATION_SHARE: f64 = 0.5;

/// A value with its 95% interval (`high` is `None` when not bounded above).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The fitted value.
    pub value: f64,
    /// Lower end.
    pub low: f64,
    /// Upper end, when bounded.
    pub high: Option<f64>,
}

/// The fit and what follows from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scalability {
    /// λ: requests per second with one request in flight.
    pub lambda: Estimate,
    /// σ: contention.
    pub sigma: Estimate,
    /// κ: coherence.
    pub kappa: Estimate,
    /// The predicted maximum throughput (`None` when κ is 0: no ceiling in sight).
    pub max_rps: Option<Estimate>,
    /// The concurrency at which it is reached.
    pub concurrency_at_max: Option<f64>,
    /// The throughput at the knee.
    pub knee_rps: Option<f64>,
    /// The highest bin's throughput.
    pub observed_max_rps: f64,
    /// Whether the maximum lies far past anything observed (peak under half of it).
    pub extrapolated: bool,
    /// Bins fitted.
    pub bins: usize,
}

/// Requests per second left before each limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Headroom {
    /// Before the knee.
    pub to_knee: Option<f64>,
    /// Before the maximum.
    pub to_max: Option<f64>,
    /// Before the p99 breaks the objective.
    pub to_objective: Option<f64>,
}

/// A bin as a point of the fit.
#[derive(Clone, Copy, Debug)]
struct Point {
    n: f64,
    x: f64,
    weight: f64,
}

fn points(bins: &[LoadBin]) -> Vec<Point> {
    bins.iter()
        .filter(|b| b.minutes > 0 && b.requests > 0)
        .map(|b| {
            let seconds = 60.0 * b.minutes as f64;
            Point {
                x: b.requests as f64 / seconds,
                n: b.duration_sum_us as f64 / 1e6 / seconds,
                weight: b.minutes as f64,
            }
        })
        .filter(|p| p.n > 0.0)
        .collect()
}

/// X(N) for θ = (λ, σ, κ).
fn throughput(theta: &Vector3<f64>, n: f64) -> f64 {
    theta[0] * n / (1.0 + theta[1] * (n - 1.0) + theta[2] * n * (n - 1.0))
}

/// ∂X/∂(λ, σ, κ) at N.
fn gradient(theta: &Vector3<f64>, n: f64) -> [f64; 3] {
    let d = 1.0 + theta[1] * (n - 1.0) + theta[2] * n * (n - 1.0);
    [
        n / d,
        -theta[0] * n * (n - 1.0) / (d * d),
        -theta[0] * n * n * (n - 1.0) / (d * d),
    ]
}

/// The least-squares problem, with σ = s² and κ = k² so both stay at or above zero.
struct Fit<'a> {
    points: &'a [Point],
    /// (λ, s, k).
    p: Vector3<f64>,
}

impl Fit<'_> {
    fn theta(&self) -> Vector3<f64> {
        Vector3::new(self.p[0], self.p[1] * self.p[1], self.p[2] * self.p[2])
    }
}

impl LeastSquaresProblem<f64, Dyn, U3> for Fit<'_> {
    type ResidualStorage = Owned<f64, Dyn>;
    type JacobianStorage = Owned<f64, Dyn, U3>;
    type ParameterStorage = Owned<f64, U3>;

    fn set_params(&mut self, p: &Vector3<f64>) {
        self.p = *p;
    }

    fn params(&self) -> Vector3<f64> {
        self.p
    }

    fn residuals(&self) -> Option<DVector<f64>> {
        let theta = self.theta();
        Some(DVector::from_iterator(
            self.points.len(),
            self.points
                .iter()
                .map(|p| p.weight.sqrt() * (p.x - throughput(&theta, p.n))),
        ))
    }

    fn jacobian(&self) -> Option<nalgebra::OMatrix<f64, Dyn, U3>> {
        let theta = self.theta();
        let mut j = nalgebra::OMatrix::<f64, Dyn, U3>::zeros(self.points.len());
        for (i, p) in self.points.iter().enumerate() {
            let g = gradient(&theta, p.n);
            let w = p.weight.sqrt();
            j[(i, 0)] = -w * g[0];
            j[(i, 1)] = -w * g[1] * 2.0 * self.p[1];
            j[(i, 2)] = -w * g[2] * 2.0 * self.p[2];
        }
        Some(j)
    }
}

/// The classic start: N/X = 1/λ + (σ/λ)(N − 1) + (κ/λ)N(N − 1), a weighted linear fit.
fn linearised(points: &[Point]) -> Vector3<f64> {
    let rows = points.len();
    let a = DMatrix::from_fn(rows, 3, |i, c| {
        let (n, w) = (points[i].n, points[i].weight.sqrt());
        w * match c {
            0 => 1.0,
            1 => n - 1.0,
            _ => n * (n - 1.0),
        }
    });
    let b = DVector::from_fn(rows, |i, _| {
        points[i].weight.sqrt() * points[i].n / points[i].x
    });
    let solved = a.svd(true, true).solve(&b, 1e-12).ok();
    let fallback = {
        let mut rates: Vec<f64> = points.iter().map(|p| p.x / p.n).collect();
        median(&mut rates).unwrap_or(1.0)
    };
    match solved {
        Some(c) if c[0] > 0.0 => Vector3::new(
            1.0 / c[0],
            (c[1] / c[0]).clamp(1e-4, 0.99),
            (c[2] / c[0]).max(1e-7),
        ),
        _ => Vector3::new(fallback, 0.01, 1e-5),
    }
}

/// Fits the law to `bins`; `None` with fewer than [`MIN_BINS`] usable bins or a fit that does
/// not converge to something finite.
pub fn fit(bins: &[LoadBin]) -> Option<Scalability> {
    let points = points(bins);
    if points.len() < MIN_BINS {
        return None;
    }
    let start = linearised(&points);
    let problem = Fit {
        points: &points,
        p: Vector3::new(start[0], start[1].sqrt(), start[2].sqrt()),
    };
    let (solved, _report) = LevenbergMarquardt::new().minimize(problem);
    let theta = solved.theta();
    if !theta.iter().all(|v| v.is_finite()) || theta[0] <= 0.0 {
        return None;
    }
    // Covariance of (λ, σ, κ): s² (JᵀWJ)⁻¹.
    let rows = points.len();
    let j = DMatrix::from_fn(rows, 3, |i, c| {
        points[i].weight.sqrt() * gradient(&theta, points[i].n)[c]
    });
    let residual: f64 = points
        .iter()
        .map(|p| p.weight * (p.x - throughput(&theta, p.n)).powi(2))
        .sum();
    let dof = (rows as f64 - 3.0).max(1.0);
    let s2 = residual / dof;
    let cov = (j.transpose() * &j).try_inverse().map(|m| m * s2)?;
    let t = StudentsT::new(0.0, 1.0, dof).ok()?.inverse_cdf(0.975);
    let se = |i: usize| cov[(i, i)].max(0.0).sqrt();
    let estimate = |i: usize, floor: f64| Estimate {
        value: theta[i],
        low: (theta[i] - t * se(i)).max(floor),
        high: Some(theta[i] + t * se(i)),
    };
    let (lambda, sigma, kappa) = (estimate(0, 0.0), estimate(1, 0.0), estimate(2, 0.0));
    let observed_max_rps = points.iter().map(|p| p.x).fold(0.0, f64::max);

    let peak_at = |th: &Vector3<f64>| -> Option<(f64, f64)> {
        (th[2] > 0.0 && th[1] < 1.0).then(|| {
            let n = ((1.0 - th[1]) / th[2]).sqrt();
            (n, throughput(th, n))
        })
    };
    let max = peak_at(&theta).map(|(n, x)| {
        // The delta method: the gradient of X(N*(θ)) by central differences.
        let mut grad = [0.0; 3];
        for (i, g) in grad.iter_mut().enumerate() {
            let h = (theta[i].abs() * 1e-4).max(1e-12);
            let (mut up, mut down) = (theta, theta);
            up[i] += h;
            down[i] -= h;
            let value = |th: &Vector3<f64>| peak_at(th).map_or(x, |(_, v)| v);
            *g = (value(&up) - value(&down)) / (2.0 * h);
        }
        let var: f64 = (0..3)
            .flat_map(|a| (0..3).map(move |b| (a, b)))
            .map(|(a, b)| grad[a] * cov[(a, b)] * grad[b])
            .sum();
        let delta = t * var.max(0.0).sqrt();
        // What κ's interval alone allows, the other parameters held.
        let at_kappa = |k: f64| {
            let mut th = theta;
            th[2] = k;
            peak_at(&th).map(|(_, v)| v)
        };
        let low = at_kappa(kappa.high.unwrap_or(theta[2]))
            .map_or(x - delta, |v| v.min(x - delta))
            .max(observed_max_rps.min(x));
        let high = if kappa.low <= 0.0 {
            None
        } else {
            at_kappa(kappa.low).map(|v| v.max(x + delta))
        };
        (
            Estimate {
                value: x,
                low,
                high,
            },
            n,
        )
    });
    let knee_rps = knee(&theta).map(|n| throughput(&theta, n));
    Some(Scalability {
        lambda,
        sigma,
        kappa,
        max_rps: max.map(|(e, _)| e),
        concurrency_at_max: max.map(|(_, n)| n),
        knee_rps,
        observed_max_rps,
        extrapolated: max.is_some_and(|(e, _)| observed_max_rps < EXTRAPOLATION_SHARE * e.value),
        bins: rows,
    })
}

/// The concurrency at which the mean latency is `ratio` times that of one request in flight:
/// the root of κN² + (σ − κ)N + (1 − σ − ratio) = 0, never past N*.
fn concurrency_at_latency_ratio(theta: &Vector3<f64>, ratio: f64) -> Option<f64> {
    let (s, k) = (theta[1], theta[2]);
    let c = 1.0 - s - ratio;
    let n = if k > 0.0 {
        let b = s - k;
        (-b + (b * b - 4.0 * k * c).sqrt()) / (2.0 * k)
    } else if s > 0.0 {
        -c / s
    } else {
        return None;
    };
    let ceiling = (k > 0.0 && s < 1.0).then(|| ((1.0 - s) / k).sqrt());
    Some(ceiling.map_or(n, |m| n.min(m))).filter(|n| n.is_finite() && *n > 0.0)
}

fn knee(theta: &Vector3<f64>) -> Option<f64> {
    concurrency_at_latency_ratio(theta, KNEE_LATENCY_RATIO)
}

/// The headroom of a service whose busiest minutes run at `peak_rps`, with a p99 objective.
pub fn headroom(fit: &Scalability, bins: &[LoadBin], peak_rps: f64, objective_ms: f64) -> Headroom {
    let theta = Vector3::new(fit.lambda.value, fit.sigma.value, fit.kappa.value);
    // The p99-to-mean ratio at light load (the lighter half of the bins).
    let mut light: Vec<(f64, f64)> = bins
        .iter()
        .filter(|b| b.minutes > 0 && b.requests > 0 && b.duration_sum_us > 0)
        .map(|b| {
            let mean_ms = b.duration_sum_us as f64 / 1000.0 / b.requests as f64;
            (b.requests as f64 / b.minutes as f64, b.p99_ms / mean_ms)
        })
        .collect();
    light.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut ratios: Vec<f64> = light
        .iter()
        .take(light.len().div_ceil(2))
        .map(|(_, r)| *r)
        .collect();
    let to_objective = median(&mut ratios).and_then(|ratio| {
        // R(N) = (1 + σ(N−1) + κN(N−1)) / λ, seconds; the objective on the mean.
        let target_mean_s = objective_ms / 1000.0 / ratio;
        let at_one = 1.0 / theta[0];
        if target_mean_s <= at_one {
            return Some(0.0);
        }
        concurrency_at_latency_ratio(&theta, target_mean_s / at_one).map(|n| throughput(&theta, n))
    });
    let left = |x: Option<f64>| x.map(|x| (x - peak_rps).max(0.0));
    Headroom {
        to_knee: left(fit.knee_rps),
        to_max: left(fit.max_rps.map(|m| m.value)),
        to_objective: left(to_objective),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bins along a known curve, a minute each, from concurrency 0.5 to `top`.
    fn bins(lambda: f64, sigma: f64, kappa: f64, top: f64) -> Vec<LoadBin> {
        let theta = Vector3::new(lambda, sigma, kappa);
        (1..=40)
            .map(|i| {
                let n = top * f64::from(i) / 40.0;
                let x = throughput(&theta, n);
                let requests = (x * 60.0).round() as u64;
                LoadBin {
                    minutes: 1,
                    requests,
                    // N = X · R → the requests' time adds up to N · 60 s.
                    duration_sum_us: (n * 60.0 * 1e6) as u64,
                    p50_ms: 0.0,
                    p95_ms: 0.0,
                    p99_ms: 1000.0 * n / x * 2.0,
                }
            })
            .collect()
    }

    #[test]
    fn a_known_curve_is_found_again() {
        let (lambda, sigma, kappa): (f64, f64, f64) = (100.0, 0.05, 0.002);
        let n_star = ((1.0 - sigma) / kappa).sqrt();
        let truth = throughput(&Vector3::new(lambda, sigma, kappa), n_star);
        let fit = fit(&bins(lambda, sigma, kappa, n_star)).expect("fit");
        let max = fit.max_rps.expect("a ceiling");
        assert!(
            (max.value - truth).abs() / truth < 0.02,
            "{fit:?} vs {truth}"
        );
        assert!(!fit.extrapolated);
        assert!(fit.knee_rps.expect("knee") < max.value);
        let room = headroom(&fit, &bins(lambda, sigma, kappa, n_star), 0.5 * truth, 1e9);
        assert!(room.to_max.expect("max") > 0.4 * truth, "{room:?}");
    }

    #[test]
    fn light_load_is_flagged_as_an_extrapolation() {
        let (lambda, sigma, kappa): (f64, f64, f64) = (100.0, 0.05, 0.002);
        let n_star = ((1.0 - sigma) / kappa).sqrt();
        let fit = fit(&bins(lambda, sigma, kappa, 0.15 * n_star)).expect("fit");
        assert!(fit.extrapolated || fit.max_rps.is_none(), "{fit:?}");
        assert!(super::fit(&bins(lambda, sigma, kappa, n_star)[..3]).is_none());
    }
}
