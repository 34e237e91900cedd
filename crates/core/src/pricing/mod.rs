//! What a call costs. [`cost`] turns a normalised [`Usage`] and a [`Price`] into integer
//! micro-dollars, exactly: every token class is multiplied by its price per million tokens in
//! `i128`, the products are summed, and the sum is divided by one million once, rounding up, so
//! that spend is never under-counted and no rounding error accumulates across token classes.
//!
//! Prices come from the config (`price:` on a target or a model) or, when the config gives
//! none, from the built-in [`Catalog`] (`crates/core/data/prices.yaml`, see [`builtin`]).
//! docs/pricing.md describes both.
//!
//! Files: `catalog.rs` the built-in price list and its model-name lookup.

mod catalog;
#[cfg(test)]
mod tests;

pub use crate::config::Price;
pub use catalog::{builtin, Catalog, CatalogError};

use switchboard_types::{MicroUsd, Usage};

/// One million: prices are per million tokens.
const PER_MTOK: i128 = 1_000_000;

/// The cost of one call, rounded up to the next micro-dollar.
///
/// `usage` follows the invariants of [`Usage`]: `input_tokens` includes cache reads and cache
/// writes, `output_tokens` includes reasoning. So the sum is
///
/// ```text
///   (input - cached - cache_write) x input
/// + cached                         x (cached_input, else input)
/// + cache_write                    x (cache_write,  else input)
/// + (output - reasoning)           x output
/// + reasoning                      x (reasoning,    else output)
/// ```
///
/// over one million, rounded up. A usage that breaks the invariants (more cached than input
/// tokens) never yields a negative count: the uncached remainders saturate at zero.
pub fn cost(usage: &Usage, price: &Price) -> MicroUsd {
    let input = price.input_per_mtok;
    let output = price.output_per_mtok;
    let terms = [
        (usage.uncached_input_tokens(), input),
        (
            usage.cached_input_tokens,
            price.cached_input_per_mtok.unwrap_or(input),
        ),
        (
            usage.cache_write_tokens,
            price.cache_write_per_mtok.unwrap_or(input),
        ),
        (
            usage.output_tokens.saturating_sub(usage.reasoning_tokens),
            output,
        ),
        (
            usage.reasoning_tokens,
            price.reasoning_per_mtok.unwrap_or(output),
        ),
    ];
    // Each product is below 2^64 * 2^63, and five of them fit in an i128 with room to spare.
    let total: i128 = terms
        .iter()
        .map(|&(tokens, per_mtok)| i128::from(tokens) * i128::from(per_mtok.0))
        .sum();
    // Ceiling division that is also right for a (misconfigured) negative total.
    let micros = total.div_euclid(PER_MTOK) + i128::from(total.rem_euclid(PER_MTOK) != 0);
    MicroUsd(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
}

/// The field-wise maximum of two prices, for reserving the worst case of a call that any of
/// several targets may serve. An absent optional price stands for the base price it falls
/// back to (cache reads and writes: input; reasoning: output), so the result's optional
/// fields are always set: `cost` with the result is at least `cost` with either argument.
pub fn max_of(a: &Price, b: &Price) -> Price {
    let cached = |p: &Price| p.cached_input_per_mtok.unwrap_or(p.input_per_mtok);
    let write = |p: &Price| p.cache_write_per_mtok.unwrap_or(p.input_per_mtok);
    let reasoning = |p: &Price| p.reasoning_per_mtok.unwrap_or(p.output_per_mtok);
    Price {
        input_per_mtok: a.input_per_mtok.max(b.input_per_mtok),
        output_per_mtok: a.output_per_mtok.max(b.output_per_mtok),
        cached_input_per_mtok: Some(cached(a).max(cached(b))),
        cache_write_per_mtok: Some(write(a).max(write(b))),
        reasoning_per_mtok: Some(reasoning(a).max(reasoning(b))),
    }
}
