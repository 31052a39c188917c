//! The ECR operation table: an `X-Amz-Target` parses into one [`Operation`],
//! and each operation declares in one `match` what it needs ([`EcrNeed`]):
//! the IAM action a repository policy names and the rule action behind it.

use crate::auth::scope::{ALL, DELETE, PULL, PUSH};
use crate::auth::{EcrAction, EcrNeed};

crate::aws::operations! {
    /// Every ECR operation Wharf serves.
    pub enum Operation ("ecr") {
        CreateRepository,
        DescribeRepositories,
        DeleteRepository,
        GetAuthorizationToken,
        ListImages,
        DescribeImages,
        BatchGetImage,
        BatchDeleteImage,
        PutImageTagMutability,
        PutImage,
        ListImageReferrers,
        DescribeRegistry,
        BatchCheckLayerAvailability,
        InitiateLayerUpload,
        UploadLayerPart,
        CompleteLayerUpload,
        GetDownloadUrlForLayer,
        PutLifecyclePolicy,
        GetLifecyclePolicy,
        DeleteLifecyclePolicy,
        StartLifecyclePolicyPreview,
        GetLifecyclePolicyPreview,
        SetRepositoryPolicy,
        GetRepositoryPolicy,
        DeleteRepositoryPolicy,
        TagResource,
        UntagResource,
        ListTagsForResource,
    }
}

impl Operation {
    /// The audit log's action for an operation that changes a repository or
    /// its policies (recorded once it succeeded); `None` for the others
    /// (reads, and pushes and deletes, which the notifier records).
    pub fn audited(&self) -> Option<&'static str> {
        Some(match self {
            Operation::CreateRepository => "repository.create",
            Operation::DeleteRepository => "repository.delete",
            Operation::PutImageTagMutability => "policy.tag_mutability",
            Operation::PutLifecyclePolicy => "policy.lifecycle",
            Operation::DeleteLifecyclePolicy => "policy.lifecycle.delete",
            Operation::SetRepositoryPolicy => "policy.repository",
            Operation::DeleteRepositoryPolicy => "policy.repository.delete",
            _ => return None,
        })
    }

    /// What the caller needs. A repository policy names the operation's own
    /// `ecr:` action (ECR checks ListImageReferrers as `ecr:BatchGetImage`);
    /// when it is silent, the configuration's rules decide: reads (previews
    /// too: they change nothing) need pull, writes push, removals delete, and
    /// changing who may do what every action.
    pub fn authorization(self) -> EcrNeed {
        use Operation::*;
        let on = |rule| {
            EcrNeed::Repository(EcrAction {
                policy: self.policy_action(),
                rule,
            })
        };
        match self {
            DescribeRegistry => EcrNeed::Admitted,
            GetAuthorizationToken => EcrNeed::User,
            DescribeRepositories => EcrNeed::EachRepository(EcrAction {
                policy: self.policy_action(),
                rule: PULL,
            }),
            ListImages
            | DescribeImages
            | BatchGetImage
            | ListImageReferrers
            | BatchCheckLayerAvailability
            | GetDownloadUrlForLayer
            | GetLifecyclePolicy
            | StartLifecyclePolicyPreview
            | GetLifecyclePolicyPreview
            | GetRepositoryPolicy
            | ListTagsForResource => on(PULL),
            CreateRepository
            | PutImage
            | InitiateLayerUpload
            | UploadLayerPart
            | CompleteLayerUpload
            | TagResource
            | UntagResource
            | PutImageTagMutability => on(PUSH),
            DeleteRepository | BatchDeleteImage | PutLifecyclePolicy | DeleteLifecyclePolicy => {
                on(DELETE)
            }
            SetRepositoryPolicy | DeleteRepositoryPolicy => on(ALL),
        }
    }

    /// The IAM action a repository policy must allow.
    fn policy_action(self) -> &'static str {
        match self {
            Operation::ListImageReferrers => "ecr:BatchGetImage",
            other => other.iam_name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ECR operation: its target, its operation, and what it needs:
    /// the `ecr:` action a repository policy names and the rule action.
    #[test]
    fn operation_table() {
        use Operation::*;
        let repo = |policy, rule| EcrNeed::Repository(EcrAction { policy, rule });
        let rows = [
            (
                "CreateRepository",
                CreateRepository,
                repo("ecr:CreateRepository", PUSH),
            ),
            (
                "DescribeRepositories",
                DescribeRepositories,
                EcrNeed::EachRepository(EcrAction {
                    policy: "ecr:DescribeRepositories",
                    rule: PULL,
                }),
            ),
            (
                "DeleteRepository",
                DeleteRepository,
                repo("ecr:DeleteRepository", DELETE),
            ),
            (
                "GetAuthorizationToken",
                GetAuthorizationToken,
                EcrNeed::User,
            ),
            ("ListImages", ListImages, repo("ecr:ListImages", PULL)),
            (
                "DescribeImages",
                DescribeImages,
                repo("ecr:DescribeImages", PULL),
            ),
            (
                "BatchGetImage",
                BatchGetImage,
                repo("ecr:BatchGetImage", PULL),
            ),
            (
                "BatchDeleteImage",
                BatchDeleteImage,
                repo("ecr:BatchDeleteImage", DELETE),
            ),
            (
                "PutImageTagMutability",
                PutImageTagMutability,
                repo("ecr:PutImageTagMutability", PUSH),
            ),
            ("PutImage", PutImage, repo("ecr:PutImage", PUSH)),
            // ECR checks the referrers API as BatchGetImage.
            (
                "ListImageReferrers",
                ListImageReferrers,
                repo("ecr:BatchGetImage", PULL),
            ),
            ("DescribeRegistry", DescribeRegistry, EcrNeed::Admitted),
            (
                "BatchCheckLayerAvailability",
                BatchCheckLayerAvailability,
                repo("ecr:BatchCheckLayerAvailability", PULL),
            ),
            (
                "InitiateLayerUpload",
                InitiateLayerUpload,
                repo("ecr:InitiateLayerUpload", PUSH),
            ),
            (
                "UploadLayerPart",
                UploadLayerPart,
                repo("ecr:UploadLayerPart", PUSH),
            ),
            (
                "CompleteLayerUpload",
                CompleteLayerUpload,
                repo("ecr:CompleteLayerUpload", PUSH),
            ),
            (
                "GetDownloadUrlForLayer",
                GetDownloadUrlForLayer,
                repo("ecr:GetDownloadUrlForLayer", PULL),
            ),
            (
                "PutLifecyclePolicy",
                PutLifecyclePolicy,
                repo("ecr:PutLifecyclePolicy", DELETE),
            ),
            (
                "GetLifecyclePolicy",
                GetLifecyclePolicy,
                repo("ecr:GetLifecyclePolicy", PULL),
            ),
            (
                "DeleteLifecyclePolicy",
                DeleteLifecyclePolicy,
                repo("ecr:DeleteLifecyclePolicy", DELETE),
            ),
            (
                "StartLifecyclePolicyPreview",
                StartLifecyclePolicyPreview,
                repo("ecr:StartLifecyclePolicyPreview", PULL),
            ),
            (
                "GetLifecyclePolicyPreview",
                GetLifecyclePolicyPreview,
                repo("ecr:GetLifecyclePolicyPreview", PULL),
            ),
            (
                "SetRepositoryPolicy",
                SetRepositoryPolicy,
                repo("ecr:SetRepositoryPolicy", ALL),
            ),
            (
                "GetRepositoryPolicy",
                GetRepositoryPolicy,
                repo("ecr:GetRepositoryPolicy", PULL),
            ),
            (
                "DeleteRepositoryPolicy",
                DeleteRepositoryPolicy,
                repo("ecr:DeleteRepositoryPolicy", ALL),
            ),
            ("TagResource", TagResource, repo("ecr:TagResource", PUSH)),
            (
                "UntagResource",
                UntagResource,
                repo("ecr:UntagResource", PUSH),
            ),
            (
                "ListTagsForResource",
                ListTagsForResource,
                repo("ecr:ListTagsForResource", PULL),
            ),
        ];
        assert_eq!(rows.len(), Operation::ALL.len());
        for (target, operation, need) in rows {
            assert_eq!(Operation::parse(target), Some(operation), "{target}");
            assert_eq!(operation.name(), target);
            assert_eq!(operation.iam_name(), format!("ecr:{target}"));
            assert_eq!(operation.authorization(), need, "{target}");
        }
    }

    #[test]
    fn unknown_targets() {
        for name in ["", "PutImages", "putimage", "CreateCluster", "ecr:PutImage"] {
            assert_eq!(Operation::parse(name), None, "{name:?}");
        }
    }
    /// Changes to repositories and their policies are audited; reads, and
    /// pushes and deletes (recorded by the notifier), are not.
    #[test]
    fn audited_operations() {
        use Operation::*;
        assert_eq!(CreateRepository.audited(), Some("repository.create"));
        assert_eq!(SetRepositoryPolicy.audited(), Some("policy.repository"));
        assert_eq!(PutLifecyclePolicy.audited(), Some("policy.lifecycle"));
        assert_eq!(
            PutImageTagMutability.audited(),
            Some("policy.tag_mutability")
        );
        for quiet in [
            GetRepositoryPolicy,
            PutImage,
            BatchDeleteImage,
            DescribeRepositories,
        ] {
            assert_eq!(quiet.audited(), None);
        }
    }
}
