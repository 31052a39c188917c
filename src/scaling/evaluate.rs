//! Target tracking's decision, pure (reference §4): per policy an AlarmHigh
//! (the metric above the target for `scale_out_periods` consecutive
//! periods) and an AlarmLow (below 0.9 × the target for `scale_in_periods`);
//! a period without data breaks the run (no data is never read as low). The
//! new capacity is `ceil(current × metric / target)` within [min, max].
//! Several policies: scale out if any asks, in only if every policy with
//! scale-in enabled agrees, to the largest capacity asked. Cooldowns: after
//! a scale-out only a larger one may follow until its cooldown ends; a
//! scale-in waits out the scale-in cooldown of the last one, which a
//! scale-out cancels. Scale-in also waits while a deployment is in progress.

/// How many consecutive periods each alarm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub scale_out_periods: usize,
    pub scale_in_periods: usize,
}

/// One policy as the evaluator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyView<'a> {
    pub name: &'a str,
    pub target: f64,
    /// The metric per period, newest first; `None`: no data in that period.
    pub periods: &'a [Option<f64>],
    pub disable_scale_in: bool,
    pub scale_out_cooldown_ms: i64,
    pub scale_in_cooldown_ms: i64,
    pub alarm_high: &'a str,
    pub alarm_low: &'a str,
}

/// The scalable target and its service, as the evaluator sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetView {
    pub min: i64,
    pub max: i64,
    /// The service's desired count now.
    pub current: i64,
    pub scale_in_suspended: bool,
    pub scale_out_suspended: bool,
    /// The service has a deployment IN_PROGRESS.
    pub deploying: bool,
    /// When the last scale-out happened (ms) and the capacity it set.
    pub last_scale_out: Option<(i64, i64)>,
    pub last_scale_in_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Hold,
    Scale {
        to: i64,
        direction: Direction,
        /// AWS's wording: which alarm triggered which policy.
        cause: String,
    },
}

/// Whether the newest `n` periods all have data and satisfy `breach`.
fn alarm(periods: &[Option<f64>], n: usize, breach: impl Fn(f64) -> bool) -> bool {
    n > 0 && periods.len() >= n && periods[..n].iter().all(|p| p.is_some_and(&breach))
}

/// The capacity a policy asks for from the newest period's metric, within [min, max].
fn proposed(target: &TargetView, policy: &PolicyView<'_>) -> Option<i64> {
    let metric = (*policy.periods.first()?)?;
    let raw = (target.current as f64 * metric / policy.target).ceil();
    let raw = if raw.is_finite() {
        raw as i64
    } else {
        target.max
    };
    Some(raw.clamp(target.min, target.max.max(target.min)))
}

fn cause(alarm: &str, policy: &str) -> String {
    format!("monitor alarm {alarm} in state ALARM triggered policy {policy}")
}

/// The decision at `now_ms`.
pub fn decide(
    now_ms: i64,
    rules: Rules,
    target: &TargetView,
    policies: &[PolicyView<'_>],
) -> Decision {
    let high: Vec<&PolicyView<'_>> = policies
        .iter()
        .filter(|p| alarm(p.periods, rules.scale_out_periods, |v| v > p.target))
        .collect();
    if !high.is_empty() {
        if target.scale_out_suspended {
            return Decision::Hold;
        }
        // The largest capacity a policy may set now: during its scale-out
        // cooldown only one above what the last scale-out set.
        let best = high
            .iter()
            .filter_map(|p| {
                let to = proposed(target, p)?;
                let cooling = target
                    .last_scale_out
                    .is_some_and(|(at, set)| now_ms < at + p.scale_out_cooldown_ms && to <= set);
                (to > target.current && !cooling).then_some((to, *p))
            })
            .max_by_key(|(to, _)| *to);
        return match best {
            Some((to, p)) => Decision::Scale {
                to,
                direction: Direction::Out,
                cause: cause(p.alarm_high, p.name),
            },
            // An alarm asking for more holds every scale-in back.
            None => Decision::Hold,
        };
    }
    let voters: Vec<&PolicyView<'_>> = policies.iter().filter(|p| !p.disable_scale_in).collect();
    if voters.is_empty()
        || target.scale_in_suspended
        || target.deploying
        || !voters
            .iter()
            .all(|p| alarm(p.periods, rules.scale_in_periods, |v| v < 0.9 * p.target))
    {
        return Decision::Hold;
    }
    let cooldown = voters
        .iter()
        .map(|p| p.scale_in_cooldown_ms)
        .max()
        .unwrap_or(0);
    let cancelled = match (target.last_scale_in_ms, target.last_scale_out) {
        (Some(scaled_in), Some((scaled_out, _))) => scaled_out >= scaled_in,
        _ => false,
    };
    if let Some(at) = target.last_scale_in_ms
        && !cancelled
        && now_ms < at + cooldown
    {
        return Decision::Hold;
    }
    let best = voters
        .iter()
        .filter_map(|p| Some((proposed(target, p)?, *p)))
        .max_by_key(|(to, _)| *to);
    match best {
        Some((to, p)) if to < target.current => Decision::Scale {
            to,
            direction: Direction::In,
            cause: cause(p.alarm_low, p.name),
        },
        _ => Decision::Hold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        scale_out_periods: 3,
        scale_in_periods: 5,
    };

    fn target(current: i64) -> TargetView {
        TargetView {
            min: 1,
            max: 10,
            current,
            ..Default::default()
        }
    }

    fn policy<'a>(name: &'a str, target: f64, periods: &'a [Option<f64>]) -> PolicyView<'a> {
        PolicyView {
            name,
            target,
            periods,
            disable_scale_in: false,
            scale_out_cooldown_ms: 300_000,
            scale_in_cooldown_ms: 300_000,
            alarm_high: "TargetTracking-service/c/s-AlarmHigh-1",
            alarm_low: "TargetTracking-service/c/s-AlarmLow-1",
        }
    }

    fn to(d: &Decision) -> Option<(i64, Direction)> {
        match d {
            Decision::Scale { to, direction, .. } => Some((*to, *direction)),
            Decision::Hold => None,
        }
    }

    #[test]
    fn the_high_alarm_needs_consecutive_periods_above_the_target() {
        let hot = [Some(90.0), Some(80.0), Some(70.0)];
        let d = decide(0, RULES, &target(2), &[policy("cpu", 50.0, &hot)]);
        // ceil(2 × 90 / 50) = 4
        assert_eq!(to(&d), Some((4, Direction::Out)));
        let Decision::Scale { cause, .. } = d else {
            unreachable!()
        };
        assert_eq!(
            cause,
            "monitor alarm TargetTracking-service/c/s-AlarmHigh-1 in state ALARM triggered policy cpu"
        );
        // Two periods are not three; one at the target breaks the run.
        for periods in [
            vec![Some(90.0), Some(80.0)],
            vec![Some(90.0), Some(50.0), Some(90.0)],
        ] {
            let d = decide(0, RULES, &target(2), &[policy("cpu", 50.0, &periods)]);
            assert_eq!(d, Decision::Hold, "{periods:?}");
        }
    }

    #[test]
    fn no_data_is_no_action() {
        let gap = [Some(90.0), None, Some(90.0)];
        assert_eq!(
            decide(0, RULES, &target(2), &[policy("cpu", 50.0, &gap)]),
            Decision::Hold
        );
        let none = [None; 5];
        assert_eq!(
            decide(0, RULES, &target(5), &[policy("cpu", 50.0, &none)]),
            Decision::Hold
        );
        assert_eq!(
            decide(0, RULES, &target(5), &[policy("cpu", 50.0, &[])]),
            Decision::Hold
        );
    }

    #[test]
    fn the_low_alarm_needs_its_periods_below_nine_tenths() {
        let cold = [Some(10.0); 5];
        // ceil(4 × 10 / 50) = 1
        let d = decide(0, RULES, &target(4), &[policy("cpu", 50.0, &cold)]);
        assert_eq!(to(&d), Some((1, Direction::In)));
        // 45 is not below 0.9 × 50.
        let mut periods = [Some(10.0); 5];
        periods[3] = Some(45.0);
        assert_eq!(
            decide(0, RULES, &target(4), &[policy("cpu", 50.0, &periods)]),
            Decision::Hold
        );
        // Four periods are not five.
        assert_eq!(
            decide(0, RULES, &target(4), &[policy("cpu", 50.0, &cold[..4])]),
            Decision::Hold
        );
    }

    #[test]
    fn capacity_is_clamped() {
        let hot = [Some(1000.0); 3];
        assert_eq!(
            to(&decide(0, RULES, &target(2), &[policy("p", 50.0, &hot)])),
            Some((10, Direction::Out))
        );
        // Below the minimum, a scale-out jumps to it first.
        let warm = [Some(60.0); 3];
        let mut t = target(0);
        t.min = 3;
        assert_eq!(
            to(&decide(0, RULES, &t, &[policy("p", 50.0, &warm)])),
            Some((3, Direction::Out))
        );
        // Above the maximum, a scale-in drops to it.
        let mut t = target(20);
        t.max = 5;
        let cold = [Some(40.0); 5];
        assert_eq!(
            to(&decide(0, RULES, &t, &[policy("p", 50.0, &cold)])),
            Some((5, Direction::In))
        );
        // Already at the minimum: nothing to do.
        let idle = [Some(0.0); 5];
        assert_eq!(
            decide(0, RULES, &target(1), &[policy("p", 50.0, &idle)]),
            Decision::Hold
        );
    }

    #[test]
    fn scale_out_cooldown_lets_only_a_larger_scale_out_through() {
        let mut t = target(4);
        t.last_scale_out = Some((1_000, 4));
        let same = [Some(60.0); 3]; // ceil(4 × 60 / 50) = 5 > 4: larger, goes through
        assert_eq!(
            to(&decide(2_000, RULES, &t, &[policy("p", 50.0, &same)])),
            Some((5, Direction::Out))
        );
        // The service was set back below the last scale-out meanwhile: not above it, held.
        let mut t = target(2);
        t.last_scale_out = Some((1_000, 4));
        let hot = [Some(90.0); 3]; // ceil(2 × 90 / 50) = 4
        assert_eq!(
            decide(2_000, RULES, &t, &[policy("p", 50.0, &hot)]),
            Decision::Hold
        );
        // After the cooldown, it may.
        assert_eq!(
            to(&decide(302_000, RULES, &t, &[policy("p", 50.0, &hot)])),
            Some((4, Direction::Out))
        );
    }

    #[test]
    fn scale_in_cooldown_blocks_scale_in_until_a_scale_out_cancels_it() {
        let cold = [Some(10.0); 5];
        let mut t = target(4);
        t.last_scale_in_ms = Some(1_000);
        assert_eq!(
            decide(2_000, RULES, &t, &[policy("p", 50.0, &cold)]),
            Decision::Hold
        );
        assert_eq!(
            to(&decide(301_000, RULES, &t, &[policy("p", 50.0, &cold)])),
            Some((1, Direction::In))
        );
        // A scale-out in the cooldown goes through at once...
        let hot = [Some(90.0); 3];
        assert_eq!(
            to(&decide(2_000, RULES, &t, &[policy("p", 50.0, &hot)])),
            Some((8, Direction::Out))
        );
        // ...and cancels it.
        t.last_scale_out = Some((3_000, 8));
        assert_eq!(
            to(&decide(4_000, RULES, &t, &[policy("p", 50.0, &cold)])),
            Some((1, Direction::In))
        );
    }

    #[test]
    fn several_policies_scale_out_if_any_and_in_if_all() {
        let hot = [Some(90.0); 5];
        let cold = [Some(10.0); 5];
        let ok = [Some(48.0); 5];
        // Any: out, to the largest asked.
        let d = decide(
            0,
            RULES,
            &target(2),
            &[
                policy("a", 50.0, &cold),
                policy("b", 50.0, &hot),
                policy("c", 30.0, &hot),
            ],
        );
        assert_eq!(to(&d), Some((6, Direction::Out)));
        let Decision::Scale { cause, .. } = d else {
            unreachable!()
        };
        assert!(cause.ends_with("triggered policy c"), "{cause}");
        // In only if every policy that may scale in agrees, to the largest asked.
        assert_eq!(
            decide(
                0,
                RULES,
                &target(4),
                &[policy("a", 50.0, &cold), policy("b", 50.0, &ok)]
            ),
            Decision::Hold
        );
        let mut quiet = policy("b", 50.0, &ok);
        quiet.disable_scale_in = true;
        let other = [Some(20.0); 5];
        let d = decide(
            0,
            RULES,
            &target(4),
            &[policy("a", 50.0, &cold), quiet, policy("c", 50.0, &other)],
        );
        assert_eq!(to(&d), Some((2, Direction::In)));
        // No policy may scale in: never in.
        let mut only = policy("a", 50.0, &cold);
        only.disable_scale_in = true;
        assert_eq!(decide(0, RULES, &target(4), &[only]), Decision::Hold);
    }

    #[test]
    fn deployments_and_suspension_hold_scale_in_and_suspension_holds_scale_out() {
        let cold = [Some(10.0); 5];
        let hot = [Some(90.0); 5];
        let mut t = target(4);
        t.deploying = true;
        assert_eq!(
            decide(0, RULES, &t, &[policy("p", 50.0, &cold)]),
            Decision::Hold
        );
        // A deployment does not hold scale-out.
        assert_eq!(
            to(&decide(0, RULES, &t, &[policy("p", 50.0, &hot)])),
            Some((8, Direction::Out))
        );
        let mut t = target(4);
        t.scale_in_suspended = true;
        assert_eq!(
            decide(0, RULES, &t, &[policy("p", 50.0, &cold)]),
            Decision::Hold
        );
        let mut t = target(4);
        t.scale_out_suspended = true;
        assert_eq!(
            decide(0, RULES, &t, &[policy("p", 50.0, &hot)]),
            Decision::Hold
        );
    }
}
