//! The ELBv2 operation table: an `Action` parses into one [`Operation`], and
//! each operation declares in one `match` what it needs ([`EcsNeed`]),
//! checked by `dispatch` before its handler runs.

use crate::auth::EcsNeed;

crate::aws::operations! {
    /// Every ELBv2 operation the built-in load balancer serves.
    pub enum Operation ("elasticloadbalancing") {
        CreateTargetGroup,
        DescribeTargetGroups,
        DeleteTargetGroup,
        ModifyTargetGroup,
        ModifyTargetGroupAttributes,
        DescribeTargetGroupAttributes,
        RegisterTargets,
        DeregisterTargets,
        DescribeTargetHealth,
        CreateLoadBalancer,
        DescribeLoadBalancers,
        DeleteLoadBalancer,
        CreateListener,
        DescribeListeners,
        DeleteListener,
    }
}

impl Operation {
    /// What the caller needs: deployers see how traffic reaches their
    /// services; only operators change it, since listeners bind ports on the
    /// server's host and targets may name any address.
    pub fn authorization(self) -> EcsNeed {
        use Operation::*;
        match self {
            DescribeTargetGroups
            | DescribeTargetGroupAttributes
            | DescribeTargetHealth
            | DescribeLoadBalancers
            | DescribeListeners => EcsNeed::Deployer,
            CreateTargetGroup
            | DeleteTargetGroup
            | ModifyTargetGroup
            | ModifyTargetGroupAttributes
            | RegisterTargets
            | DeregisterTargets
            | CreateLoadBalancer
            | DeleteLoadBalancer
            | CreateListener
            | DeleteListener => EcsNeed::Operator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ELBv2 operation: its action, its operation, and what it needs.
    #[test]
    fn operation_table() {
        use Operation::*;
        let rows = [
            ("CreateTargetGroup", CreateTargetGroup, EcsNeed::Operator),
            (
                "DescribeTargetGroups",
                DescribeTargetGroups,
                EcsNeed::Deployer,
            ),
            ("DeleteTargetGroup", DeleteTargetGroup, EcsNeed::Operator),
            ("ModifyTargetGroup", ModifyTargetGroup, EcsNeed::Operator),
            (
                "ModifyTargetGroupAttributes",
                ModifyTargetGroupAttributes,
                EcsNeed::Operator,
            ),
            (
                "DescribeTargetGroupAttributes",
                DescribeTargetGroupAttributes,
                EcsNeed::Deployer,
            ),
            ("RegisterTargets", RegisterTargets, EcsNeed::Operator),
            ("DeregisterTargets", DeregisterTargets, EcsNeed::Operator),
            (
                "DescribeTargetHealth",
                DescribeTargetHealth,
                EcsNeed::Deployer,
            ),
            ("CreateLoadBalancer", CreateLoadBalancer, EcsNeed::Operator),
            (
                "DescribeLoadBalancers",
                DescribeLoadBalancers,
                EcsNeed::Deployer,
            ),
            ("DeleteLoadBalancer", DeleteLoadBalancer, EcsNeed::Operator),
            ("CreateListener", CreateListener, EcsNeed::Operator),
            ("DescribeListeners", DescribeListeners, EcsNeed::Deployer),
            ("DeleteListener", DeleteListener, EcsNeed::Operator),
        ];
        assert_eq!(rows.len(), Operation::ALL.len());
        for (action, operation, need) in rows {
            assert_eq!(Operation::parse(action), Some(operation), "{action}");
            assert_eq!(operation.name(), action);
            assert_eq!(
                operation.iam_name(),
                format!("elasticloadbalancing:{action}")
            );
            assert_eq!(operation.authorization(), need, "{action}");
        }
    }

    #[test]
    fn unknown_actions() {
        for name in ["", "CreateRule", "createtargetgroup", "ListClusters"] {
            assert_eq!(Operation::parse(name), None, "{name:?}");
        }
    }
}
