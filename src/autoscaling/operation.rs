//! The Application Auto Scaling operation table: an `X-Amz-Target` parses
//! into one [`Operation`], and each operation declares in one `match` what
//! it needs ([`EcsNeed`]), checked by `dispatch` before its handler runs.

use crate::auth::EcsNeed;

crate::aws::operations! {
    /// Every Application Auto Scaling operation served.
    pub enum Operation ("application-autoscaling") {
        RegisterScalableTarget,
        DeregisterScalableTarget,
        DescribeScalableTargets,
        PutScalingPolicy,
        DescribeScalingPolicies,
        DeleteScalingPolicy,
        DescribeScalingActivities,
    }
}

impl Operation {
    /// What the caller needs: a scalable target belongs to its service, so
    /// describing one needs what DescribeServices needs and changing one
    /// what UpdateService needs (`Owner`: push on the repositories of the
    /// service's images, checked service by service).
    pub fn authorization(self) -> EcsNeed {
        use Operation::*;
        match self {
            DescribeScalableTargets | DescribeScalingPolicies | DescribeScalingActivities => {
                EcsNeed::Owner
            }
            RegisterScalableTarget
            | DeregisterScalableTarget
            | PutScalingPolicy
            | DeleteScalingPolicy => EcsNeed::Owner,
        }
    }

    /// Whether the operation only reads.
    pub fn reads(self) -> bool {
        use Operation::*;
        matches!(
            self,
            DescribeScalableTargets | DescribeScalingPolicies | DescribeScalingActivities
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_table() {
        use Operation::*;
        let rows = [
            ("RegisterScalableTarget", RegisterScalableTarget, false),
            ("DeregisterScalableTarget", DeregisterScalableTarget, false),
            ("DescribeScalableTargets", DescribeScalableTargets, true),
            ("PutScalingPolicy", PutScalingPolicy, false),
            ("DescribeScalingPolicies", DescribeScalingPolicies, true),
            ("DeleteScalingPolicy", DeleteScalingPolicy, false),
            ("DescribeScalingActivities", DescribeScalingActivities, true),
        ];
        assert_eq!(rows.len(), Operation::ALL.len());
        for (target, operation, reads) in rows {
            assert_eq!(Operation::parse(target), Some(operation), "{target}");
            assert_eq!(operation.name(), target);
            assert_eq!(operation.authorization(), EcsNeed::Owner, "{target}");
            assert_eq!(operation.reads(), reads, "{target}");
        }
        assert_eq!(
            RegisterScalableTarget.iam_name(),
            "application-autoscaling:RegisterScalableTarget"
        );
    }

    #[test]
    fn unknown_targets() {
        for name in [
            "",
            "PutScheduledAction",
            "registerScalableTarget",
            "RunTask",
        ] {
            assert_eq!(Operation::parse(name), None, "{name:?}");
        }
    }
}
