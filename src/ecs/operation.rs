//! The ECS operation table: an `X-Amz-Target` parses into one [`Operation`],
//! and each operation declares in one `match` what it needs ([`EcsNeed`]),
//! checked by `dispatch` before its handler runs.

use crate::auth::EcsNeed;

crate::aws::operations! {
    /// Every ECS operation the task runner serves.
    pub enum Operation ("ecs") {
        CreateCluster,
        DescribeClusters,
        ListClusters,
        DeleteCluster,
        RegisterTaskDefinition,
        DeregisterTaskDefinition,
        DescribeTaskDefinition,
        ListTaskDefinitions,
        ListTaskDefinitionFamilies,
        RunTask,
        StartTask,
        StopTask,
        DescribeTasks,
        ListTasks,
        CreateService,
        UpdateService,
        DeleteService,
        DescribeServices,
        ListServices,
        ListContainerInstances,
        DescribeContainerInstances,
        UpdateContainerInstancesState,
        RegisterContainerInstance,
        DeregisterContainerInstance,
        PutAttributes,
        DeleteAttributes,
        ListAttributes,
    }
}

impl Operation {
    /// What the caller needs: clusters carry no secrets, so anyone sees them
    /// and deployers create and delete them; deployers see the container
    /// instances they deploy onto, and only operators change them (they host
    /// every team's tasks); everything else belongs to the repositories of
    /// the images it runs, checked resource by resource.
    pub fn authorization(self) -> EcsNeed {
        use Operation::*;
        match self {
            DescribeClusters | ListClusters => EcsNeed::Caller,
            CreateCluster | DeleteCluster => EcsNeed::Deployer,
            ListContainerInstances | DescribeContainerInstances | ListAttributes => {
                EcsNeed::Deployer
            }
            UpdateContainerInstancesState
            | RegisterContainerInstance
            | DeregisterContainerInstance
            | PutAttributes
            | DeleteAttributes => EcsNeed::Operator,
            RegisterTaskDefinition
            | DeregisterTaskDefinition
            | DescribeTaskDefinition
            | ListTaskDefinitions
            | ListTaskDefinitionFamilies
            | RunTask
            | StartTask
            | StopTask
            | DescribeTasks
            | ListTasks
            | CreateService
            | UpdateService
            | DeleteService
            | DescribeServices
            | ListServices => EcsNeed::Owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ECS operation: its target, its operation, and what it needs.
    #[test]
    fn operation_table() {
        use Operation::*;
        let rows = [
            ("CreateCluster", CreateCluster, EcsNeed::Deployer),
            ("DescribeClusters", DescribeClusters, EcsNeed::Caller),
            ("ListClusters", ListClusters, EcsNeed::Caller),
            ("DeleteCluster", DeleteCluster, EcsNeed::Deployer),
            (
                "RegisterTaskDefinition",
                RegisterTaskDefinition,
                EcsNeed::Owner,
            ),
            (
                "DeregisterTaskDefinition",
                DeregisterTaskDefinition,
                EcsNeed::Owner,
            ),
            (
                "DescribeTaskDefinition",
                DescribeTaskDefinition,
                EcsNeed::Owner,
            ),
            ("ListTaskDefinitions", ListTaskDefinitions, EcsNeed::Owner),
            (
                "ListTaskDefinitionFamilies",
                ListTaskDefinitionFamilies,
                EcsNeed::Owner,
            ),
            ("RunTask", RunTask, EcsNeed::Owner),
            ("StartTask", StartTask, EcsNeed::Owner),
            ("StopTask", StopTask, EcsNeed::Owner),
            ("DescribeTasks", DescribeTasks, EcsNeed::Owner),
            ("ListTasks", ListTasks, EcsNeed::Owner),
            ("CreateService", CreateService, EcsNeed::Owner),
            ("UpdateService", UpdateService, EcsNeed::Owner),
            ("DeleteService", DeleteService, EcsNeed::Owner),
            ("DescribeServices", DescribeServices, EcsNeed::Owner),
            ("ListServices", ListServices, EcsNeed::Owner),
            (
                "ListContainerInstances",
                ListContainerInstances,
                EcsNeed::Deployer,
            ),
            (
                "DescribeContainerInstances",
                DescribeContainerInstances,
                EcsNeed::Deployer,
            ),
            (
                "UpdateContainerInstancesState",
                UpdateContainerInstancesState,
                EcsNeed::Operator,
            ),
            (
                "RegisterContainerInstance",
                RegisterContainerInstance,
                EcsNeed::Operator,
            ),
            (
                "DeregisterContainerInstance",
                DeregisterContainerInstance,
                EcsNeed::Operator,
            ),
            ("PutAttributes", PutAttributes, EcsNeed::Operator),
            ("DeleteAttributes", DeleteAttributes, EcsNeed::Operator),
            ("ListAttributes", ListAttributes, EcsNeed::Deployer),
        ];
        assert_eq!(rows.len(), Operation::ALL.len());
        for (target, operation, need) in rows {
            assert_eq!(Operation::parse(target), Some(operation), "{target}");
            assert_eq!(operation.name(), target);
            assert_eq!(operation.authorization(), need, "{target}");
        }
    }

    #[test]
    fn unknown_targets() {
        for name in ["", "RunTasks", "runtask", "PutImage", "ecs:RunTask"] {
            assert_eq!(Operation::parse(name), None, "{name:?}");
        }
    }
}
