//! Money as integer micro-dollars. Never `f64`: sums of many small costs must be exact.

use serde::{Deserialize, Serialize};
use std::ops::{Add, AddAssign};

/// An amount of US dollars in millionths of a dollar.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MicroUsd(pub i64);

impl MicroUsd {
    pub const ZERO: MicroUsd = MicroUsd(0);

    /// Cost of `tokens` at `per_mtok_micros` micro-dollars per million tokens, rounded up to the
    /// next micro-dollar so that spend is never under-counted.
    pub fn for_tokens(tokens: u64, per_mtok_micros: i64) -> MicroUsd {
        let product = i128::from(tokens) * i128::from(per_mtok_micros);
        let micros = (product + 999_999) / 1_000_000;
        MicroUsd(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// Parses a decimal dollar amount such as `2.50` exactly (up to six decimals).
    pub fn parse_dollars(text: &str) -> Option<MicroUsd> {
        let text = text.trim();
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && frac.is_empty() || frac.len() > 6 {
            return None;
        }
        if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut frac_micros: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        for _ in frac.len()..6 {
            frac_micros *= 10;
        }
        let total = whole.checked_mul(1_000_000)?.checked_add(frac_micros)?;
        Some(MicroUsd(if neg { -total } else { total }))
    }
}

impl Add for MicroUsd {
    type Output = MicroUsd;
    fn add(self, rhs: MicroUsd) -> MicroUsd {
        MicroUsd(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for MicroUsd {
    fn add_assign(&mut self, rhs: MicroUsd) {
        *self = *self + rhs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dollars_exactly() {
        assert_eq!(MicroUsd::parse_dollars("2.50"), Some(MicroUsd(2_500_000)));
        assert_eq!(MicroUsd::parse_dollars("0.000001"), Some(MicroUsd(1)));
        assert_eq!(MicroUsd::parse_dollars("10"), Some(MicroUsd(10_000_000)));
        assert_eq!(MicroUsd::parse_dollars("1.0000001"), None);
        assert_eq!(MicroUsd::parse_dollars("abc"), None);
    }

    #[test]
    fn token_cost_rounds_up() {
        // 1 token at $2.50 per million tokens is 2.5 micro-dollars: billed as 3.
        assert_eq!(MicroUsd::for_tokens(1, 2_500_000), MicroUsd(3));
        assert_eq!(
            MicroUsd::for_tokens(1_000_000, 2_500_000),
            MicroUsd(2_500_000)
        );
    }
}
