//! W3C trace context ids. A traced request gets its ids when it is admitted (the trace id of
//! the client's `traceparent`, else a fresh one) and each upstream attempt its own span id,
//! sent upstream in the attempt's `traceparent`; the spans themselves are built when the
//! request ends, with these ids, so nothing about tracing happens between those two points.

use std::fmt::Write as _;

/// The trace context of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceIds {
    /// Never 0.
    pub trace_id: u128,
    /// The request span's id. Never 0.
    pub span_id: u64,
    /// The caller's span (from its `traceparent`), the request span's parent; 0 when none.
    pub parent_span_id: u64,
    /// Whether the trace is recorded (the caller's sampled flag, else `sample_ratio`).
    pub sampled: bool,
}

impl TraceIds {
    /// Ids for a request: continuing `traceparent` when it is well formed, else a new trace
    /// sampled with probability `ratio`.
    pub fn start(traceparent: Option<&str>, ratio: f64) -> TraceIds {
        if let Some((trace_id, parent_span_id, flags)) = traceparent.and_then(parse_traceparent) {
            return TraceIds {
                trace_id,
                span_id: new_span_id(),
                parent_span_id,
                sampled: flags & 1 == 1,
            };
        }
        let trace_id = loop {
            let id: u128 = rand::random();
            if id != 0 {
                break id;
            }
        };
        TraceIds {
            trace_id,
            span_id: new_span_id(),
            parent_span_id: 0,
            sampled: sampled_by_ratio(trace_id, ratio),
        }
    }

    /// The `traceparent` for a call whose span is `span_id`.
    pub fn traceparent(&self, span_id: u64) -> String {
        let mut out = String::with_capacity(55);
        let flags = u8::from(self.sampled);
        // Writing to a String cannot fail.
        let _ = write!(out, "00-{:032x}-{span_id:016x}-{flags:02x}", self.trace_id);
        out
    }

    /// The trace id as 32 lowercase hex digits (the call log's `trace_id`).
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// A random span id, never 0 (0 means "none" in W3C trace context).
pub fn new_span_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// The OpenTelemetry `TraceIdRatioBased` rule: the low 63 bits of the trace id under
/// `ratio * 2^63`, so that every service with the same ratio makes the same decision.
fn sampled_by_ratio(trace_id: u128, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    // The trace id's low 64 bits, without the top bit: 63 random bits.
    let low = (trace_id as u64) >> 1;
    low < bound
}

/// `00-<32 hex>-<16 hex>-<2 hex>` with non-zero ids, as (trace id, span id, flags).
pub fn parse_traceparent(text: &str) -> Option<(u128, u64, u8)> {
    let mut parts = text.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    // Version 00 has exactly four fields; later versions may append more.
    if version == "00" && parts.next().is_some() || version == "ff" {
        return None;
    }
    let trace_id = u128::from_str_radix(trace, 16).ok()?;
    let span_id = u64::from_str_radix(span, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace_id != 0 && span_id != 0).then_some((trace_id, span_id, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_a_well_formed_parent() {
        let ids = TraceIds::start(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            0.0,
        );
        assert_eq!(ids.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ids.parent_span_id, 0x00f067aa0ba902b7);
        assert!(ids.sampled, "the parent's flag wins over the ratio");
        let sent = ids.traceparent(0xabc);
        assert_eq!(
            sent,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
        );
    }

    #[test]
    fn an_unsampled_parent_stays_unsampled() {
        let ids = TraceIds::start(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            1.0,
        );
        assert!(!ids.sampled);
        assert!(ids.traceparent(1).ends_with("-00"));
    }

    #[test]
    fn malformed_parents_start_a_new_trace() {
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            let ids = TraceIds::start(Some(bad), 1.0);
            assert_eq!(ids.parent_span_id, 0, "{bad}");
            assert!(ids.sampled);
        }
    }

    #[test]
    fn the_ratio_decides_new_traces() {
        assert!(!TraceIds::start(None, 0.0).sampled);
        assert!(TraceIds::start(None, 1.0).sampled);
        let sampled = (0..2000)
            .filter(|_| TraceIds::start(None, 0.5).sampled)
            .count();
        assert!((800..1200).contains(&sampled), "{sampled}");
    }
}
