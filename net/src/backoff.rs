//! One exponential backoff with jitter for every retry loop in Plumb.
//!
//! A [`Backoff`] is checked when it is built ([`Backoff::try_new`]): the first delay is above
//! zero, the largest is at least the first, and the jitter is a fraction from 0 to 1. Each retry
//! loop takes its own [`Delays`]: the base delay doubles after each failure up to the largest, and
//! each delay handed out is the base less a random part of up to `jitter` of it, so many
//! processes retrying against one peer spread out instead of retrying in step.

use std::time::Duration;

/// Why a backoff's settings are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBackoff {
    /// The first delay is zero.
    #[error("the first backoff delay must be above zero")]
    ZeroFirst,
    /// The largest delay is below the first.
    #[error("the largest backoff delay ({max:?}) is below the first ({first:?})")]
    MaxBelowFirst {
        /// The first delay.
        first: Duration,
        /// The largest delay.
        max: Duration,
    },
    /// The jitter is not a fraction from 0 to 1.
    #[error("the backoff jitter must be from 0 to 1")]
    Jitter,
}

/// Checked backoff settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay after the first failure.
    first: Duration,
    /// The largest base delay.
    max: Duration,
    /// The largest share of a delay taken off at random (0: none, 0.5: from half to all of it).
    jitter: f64,
}

impl Backoff {
    /// A backoff from `first` doubling up to `max`, each delay shortened at random by up to
    /// `jitter` of it.
    pub fn try_new(first: Duration, max: Duration, jitter: f64) -> Result<Self, InvalidBackoff> {
        if first.is_zero() {
            return Err(InvalidBackoff::ZeroFirst);
        }
        if max < first {
            return Err(InvalidBackoff::MaxBelowFirst { first, max });
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(InvalidBackoff::Jitter);
        }
        Ok(Self { first, max, jitter })
    }

    /// A backoff from settings known to be valid, for constants; each constant built this way is
    /// checked by a unit test through [`Backoff::try_new`].
    pub const fn new_unchecked(first: Duration, max: Duration, jitter: f64) -> Self {
        Self { first, max, jitter }
    }

    /// The settings again, checked.
    pub fn checked(self) -> Result<Self, InvalidBackoff> {
        Self::try_new(self.first, self.max, self.jitter)
    }

    /// The delays for one retry loop, starting from the first.
    pub fn delays(&self) -> Delays {
        Delays {
            settings: *self,
            base: self.first,
            rng: fastrand::Rng::new(),
        }
    }
}

/// The delays of one retry loop.
#[derive(Debug)]
pub struct Delays {
    settings: Backoff,
    base: Duration,
    rng: fastrand::Rng,
}

impl Delays {
    /// The delay to wait after the latest failure; the next one is about twice as long, up to the
    /// largest.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self
            .base
            .mul_f64(1.0 - self.settings.jitter * self.rng.f64());
        self.base = (self.base * 2).min(self.settings.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn settings_are_checked() {
        assert_eq!(
            Backoff::try_new(Duration::ZERO, MS, 0.0),
            Err(InvalidBackoff::ZeroFirst)
        );
        assert!(matches!(
            Backoff::try_new(MS * 10, MS, 0.0),
            Err(InvalidBackoff::MaxBelowFirst { .. })
        ));
        assert_eq!(Backoff::try_new(MS, MS, 1.5), Err(InvalidBackoff::Jitter));
        assert_eq!(
            Backoff::try_new(MS, MS, f64::NAN),
            Err(InvalidBackoff::Jitter)
        );
    }

    #[test]
    fn delays_double_up_to_the_largest() {
        let backoff = Backoff::try_new(MS * 100, MS * 1000, 0.0).expect("valid");
        let mut delays = backoff.delays();
        let got: Vec<Duration> = (0..6).map(|_| delays.next_delay()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000].map(|n| MS * n));
        assert_eq!(
            backoff.delays().next_delay(),
            MS * 100,
            "each loop starts afresh"
        );
    }

    #[test]
    fn jitter_stays_within_its_share_and_spreads() {
        let backoff = Backoff::try_new(MS * 1000, MS * 1000, 0.5).expect("valid");
        let mut delays = backoff.delays();
        let got: Vec<Duration> = (0..200).map(|_| delays.next_delay()).collect();
        assert!(got.iter().all(|d| *d >= MS * 500 && *d <= MS * 1000));
        let distinct: std::collections::HashSet<_> = got.iter().collect();
        assert!(
            distinct.len() > 100,
            "delays spread out: {}",
            distinct.len()
        );
    }
}
