//! Settlements merged before they go to Redis: consecutive settlements of one counter whose
//! combined effect equals applying them one by one become one entry of settle.lua, so that
//! Redis's work for a batch grows with its counters rather than with its requests (a busy key's
//! requests settle the same token window and budget).
//!
//! Exact because of how settle.lua applies them: tokens are `n = max(0, n + delta)`, and two
//! deltas of the same sign give the same `n` as their sum (two give-backs clamp at zero either
//! way; two additions never clamp); releases of leases of one bucket are subtractions clamped
//! at zero, which compose the same way; a budget adds `actual` to spent unclamped and takes
//! `reserved` from the reservations with a clamp at zero, the same for a sum of non-negative
//! reservations. Each budget settlement's own spend before and after (for threshold alerts) is
//! rebuilt from the merged entry's: the spend before it plus the actual costs of the earlier
//! settlements merged with it.

use super::Distinct;
use switchboard_core::limits::{Counter, CounterKind, Settle, SettleKind, SpendChange};

/// One entry of settle.lua.
pub(super) struct Entry {
    /// The counter's position among the batch's distinct counters.
    pub counter: usize,
    pub op: Op,
}

pub(super) enum Op {
    Tokens {
        window: u64,
        delta: i64,
    },
    Release {
        bucket: u64,
        count: u64,
    },
    Budget {
        reserved: i64,
        actual: i64,
        /// The settlements merged here, in order: job, position in the job, actual cost.
        from: Vec<(usize, usize, i64)>,
    },
}

impl Op {
    /// settle.lua's op number.
    pub fn code(&self) -> u8 {
        match self {
            Op::Tokens { .. } => 1,
            Op::Release { .. } => 2,
            Op::Budget { .. } => 3,
        }
    }

    /// Adds `next` (the job's `entry`-th settlement) to this entry when the two merged equal
    /// the two applied in order.
    fn absorb(&mut self, next: &SettleKind, job: usize, entry: usize) -> bool {
        match (self, *next) {
            (
                Op::Tokens { window, delta },
                SettleKind::Tokens {
                    window: w,
                    delta: d,
                },
            ) if *window == w && ((*delta >= 0 && d >= 0) || (*delta <= 0 && d <= 0)) => {
                *delta = delta.saturating_add(d);
                true
            }
            (Op::Release { bucket, count }, SettleKind::Release { bucket: b }) if *bucket == b => {
                *count += 1;
                true
            }
            (
                Op::Budget {
                    reserved,
                    actual,
                    from,
                },
                SettleKind::Budget {
                    reserved: r,
                    actual: a,
                },
            ) if *reserved >= 0 && r >= 0 => {
                *reserved = reserved.saturating_add(r);
                *actual = actual.saturating_add(a);
                from.push((job, entry, a));
                true
            }
            _ => false,
        }
    }
}

/// The batch's distinct counters and its entries, merged where exact.
pub(super) struct Entries<'a> {
    pub counters: Vec<&'a Counter>,
    pub entries: Vec<Entry>,
    /// How many budget entries (each answered with spend before and after).
    pub budgets: usize,
}

impl<'a> Entries<'a> {
    pub fn of(jobs: &'a [(&'a str, &'a [Settle])]) -> Entries<'a> {
        let mut counters = Distinct::default();
        let mut entries: Vec<Entry> = Vec::new();
        // Per counter, its last entry: only that one may absorb the next settlement.
        let mut last: Vec<usize> = Vec::new();
        for (job, (_, settles)) in jobs.iter().enumerate() {
            for (at, settle) in settles.iter().enumerate() {
                let op = match (settle.counter.kind, settle.kind) {
                    (CounterKind::Tokens { .. }, SettleKind::Tokens { window, delta }) => {
                        Op::Tokens { window, delta }
                    }
                    (CounterKind::Concurrent { .. }, SettleKind::Release { bucket }) => {
                        Op::Release { bucket, count: 1 }
                    }
                    (CounterKind::Budget { .. }, SettleKind::Budget { reserved, actual }) => {
                        Op::Budget {
                            reserved,
                            actual,
                            from: vec![(job, at, actual)],
                        }
                    }
                    // A kind that does not fit its counter's is left out.
                    _ => continue,
                };
                let counter = counters.position(&&settle.counter);
                if counter == last.len() {
                    last.push(entries.len());
                } else if entries[last[counter]].op.absorb(&settle.kind, job, at) {
                    continue;
                } else {
                    last[counter] = entries.len();
                }
                entries.push(Entry { counter, op });
            }
        }
        let budgets = entries
            .iter()
            .filter(|e| matches!(e.op, Op::Budget { .. }))
            .count();
        Entries {
            counters: counters.items,
            entries,
            budgets,
        }
    }

    /// Each job's spend changes, one per settlement (`None` but for budgets), from the spend
    /// before and after of each budget entry, in order.
    pub fn changes(
        &self,
        jobs: &[(&str, &[Settle])],
        pairs: &[i64],
    ) -> Option<Vec<Vec<Option<SpendChange>>>> {
        if pairs.len() != 2 * self.budgets {
            return None;
        }
        let mut out: Vec<Vec<Option<SpendChange>>> = jobs
            .iter()
            .map(|(_, settles)| vec![None; settles.len()])
            .collect();
        let budgets = self.entries.iter().filter_map(|e| match &e.op {
            Op::Budget { from, .. } => Some(from),
            _ => None,
        });
        for (from, pair) in budgets.zip(pairs.chunks_exact(2)) {
            let mut spent = pair[0];
            for &(job, at, actual) in from {
                let after = spent.saturating_add(actual);
                out[job][at] = Some(SpendChange {
                    before: spent,
                    after,
                });
                spent = after;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(key: &str, kind: CounterKind) -> Counter {
        Counter {
            key: key.into(),
            kind,
        }
    }

    fn tokens() -> Counter {
        counter(
            "t",
            CounterKind::Tokens {
                limit: 1000,
                window_ms: 60_000,
            },
        )
    }

    fn budget() -> Counter {
        counter(
            "b",
            CounterKind::Budget {
                limit: 1000,
                enforce: true,
                seed: 0,
                expires_at_ms: 0,
            },
        )
    }

    fn settle(counter: &Counter, kind: SettleKind) -> Settle {
        Settle {
            counter: counter.clone(),
            kind,
        }
    }

    fn ops(entries: &Entries<'_>) -> Vec<String> {
        entries
            .entries
            .iter()
            .map(|e| match &e.op {
                Op::Tokens { window, delta } => format!("{} tokens {window} {delta}", e.counter),
                Op::Release { bucket, count } => {
                    format!("{} release {bucket} {count}", e.counter)
                }
                Op::Budget {
                    reserved, actual, ..
                } => format!("{} budget {reserved} {actual}", e.counter),
            })
            .collect()
    }

    #[test]
    fn token_deltas_merge_only_with_the_same_sign_and_window() {
        let t = tokens();
        let jobs_settles = [
            vec![settle(
                &t,
                SettleKind::Tokens {
                    window: 7,
                    delta: -5,
                },
            )],
            vec![settle(
                &t,
                SettleKind::Tokens {
                    window: 7,
                    delta: -3,
                },
            )],
            vec![settle(
                &t,
                SettleKind::Tokens {
                    window: 7,
                    delta: 4,
                },
            )],
            vec![settle(
                &t,
                SettleKind::Tokens {
                    window: 7,
                    delta: 0,
                },
            )],
            vec![settle(
                &t,
                SettleKind::Tokens {
                    window: 8,
                    delta: 2,
                },
            )],
        ];
        let jobs: Vec<(&str, &[Settle])> =
            jobs_settles.iter().map(|s| ("r", s.as_slice())).collect();
        let entries = Entries::of(&jobs);
        assert_eq!(
            ops(&entries),
            ["0 tokens 7 -8", "0 tokens 7 4", "0 tokens 8 2"]
        );
    }

    #[test]
    fn budgets_merge_and_each_settlement_gets_its_own_spend_change() {
        let (t, b) = (tokens(), budget());
        let first = [
            settle(
                &t,
                SettleKind::Tokens {
                    window: 1,
                    delta: -1,
                },
            ),
            settle(
                &b,
                SettleKind::Budget {
                    reserved: 50,
                    actual: 10,
                },
            ),
        ];
        let second = [settle(
            &b,
            SettleKind::Budget {
                reserved: 50,
                actual: 20,
            },
        )];
        // A negative reservation (never made by the limiter) is kept apart.
        let third = [settle(
            &b,
            SettleKind::Budget {
                reserved: -1,
                actual: 5,
            },
        )];
        let jobs: Vec<(&str, &[Settle])> = vec![("a", &first), ("b", &second), ("c", &third)];
        let entries = Entries::of(&jobs);
        assert_eq!(
            ops(&entries),
            ["0 tokens 1 -1", "1 budget 100 30", "1 budget -1 5"]
        );
        let changes = entries.changes(&jobs, &[100, 130, 130, 135]).unwrap();
        let change = |before, after| Some(SpendChange { before, after });
        assert_eq!(changes[0], [None, change(100, 110)]);
        assert_eq!(changes[1], [change(110, 130)]);
        assert_eq!(changes[2], [change(130, 135)]);
        assert!(entries.changes(&jobs, &[100, 130]).is_none());
    }

    #[test]
    fn releases_merge_per_bucket_and_misfits_are_left_out() {
        let lease = counter(
            "c",
            CounterKind::Concurrent {
                limit: 2,
                lease_ms: 1000,
            },
        );
        let first = [
            settle(&lease, SettleKind::Release { bucket: 5 }),
            settle(
                &lease,
                SettleKind::Tokens {
                    window: 1,
                    delta: 1,
                },
            ),
        ];
        let second = [settle(&lease, SettleKind::Release { bucket: 5 })];
        let third = [settle(&lease, SettleKind::Release { bucket: 6 })];
        let fourth = [settle(&lease, SettleKind::Release { bucket: 6 })];
        let jobs: Vec<(&str, &[Settle])> =
            vec![("a", &first), ("b", &second), ("c", &third), ("d", &fourth)];
        let entries = Entries::of(&jobs);
        assert_eq!(ops(&entries), ["0 release 5 2", "0 release 6 2"]);
        assert_eq!(entries.budgets, 0);
    }
}
