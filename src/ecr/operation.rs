//! The ECR operation table: an `X-Amz-Target` parses into one [`Operation`],
//! and each operation declares in one `match` what it needs ([`EcrNeed`]):
//! the IAM action a repository policy names and the rule action behind it.

use crate::auth::scope::{ALL, DELETE, PULL, PUSH};
use crate::auth::{EcrAction, EcrNeed};

/// Every ECR operation Wharf serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
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

impl Operation {
    /// Every operation, for parsing by name.
    pub const ALL: [Operation; 28] = {
        use Operation::*;
        [
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
        ]
    };

    /// The operation a target names, without the service's prefix.
    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }

    /// The name in `X-Amz-Target` and in `ecr:` actions.
    pub const fn name(self) -> &'static str {
        use Operation::*;
        match self {
            CreateRepository => "CreateRepository",
            DescribeRepositories => "DescribeRepositories",
            DeleteRepository => "DeleteRepository",
            GetAuthorizationToken => "GetAuthorizationToken",
            ListImages => "ListImages",
            DescribeImages => "DescribeImages",
            BatchGetImage => "BatchGetImage",
            BatchDeleteImage => "BatchDeleteImage",
            PutImageTagMutability => "PutImageTagMutability",
            PutImage => "PutImage",
            ListImageReferrers => "ListImageReferrers",
            DescribeRegistry => "DescribeRegistry",
            BatchCheckLayerAvailability => "BatchCheckLayerAvailability",
            InitiateLayerUpload => "InitiateLayerUpload",
            UploadLayerPart => "UploadLayerPart",
            CompleteLayerUpload => "CompleteLayerUpload",
            GetDownloadUrlForLayer => "GetDownloadUrlForLayer",
            PutLifecyclePolicy => "PutLifecyclePolicy",
            GetLifecyclePolicy => "GetLifecyclePolicy",
            DeleteLifecyclePolicy => "DeleteLifecyclePolicy",
            StartLifecyclePolicyPreview => "StartLifecyclePolicyPreview",
            GetLifecyclePolicyPreview => "GetLifecyclePolicyPreview",
            SetRepositoryPolicy => "SetRepositoryPolicy",
            GetRepositoryPolicy => "GetRepositoryPolicy",
            DeleteRepositoryPolicy => "DeleteRepositoryPolicy",
            TagResource => "TagResource",
            UntagResource => "UntagResource",
            ListTagsForResource => "ListTagsForResource",
        }
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

    /// `ecr:<Operation>`, as AccessDenied messages name it.
    pub const fn iam_name(self) -> &'static str {
        use Operation::*;
        match self {
            CreateRepository => "ecr:CreateRepository",
            DescribeRepositories => "ecr:DescribeRepositories",
            DeleteRepository => "ecr:DeleteRepository",
            GetAuthorizationToken => "ecr:GetAuthorizationToken",
            ListImages => "ecr:ListImages",
            DescribeImages => "ecr:DescribeImages",
            BatchGetImage => "ecr:BatchGetImage",
            BatchDeleteImage => "ecr:BatchDeleteImage",
            PutImageTagMutability => "ecr:PutImageTagMutability",
            PutImage => "ecr:PutImage",
            ListImageReferrers => "ecr:ListImageReferrers",
            DescribeRegistry => "ecr:DescribeRegistry",
            BatchCheckLayerAvailability => "ecr:BatchCheckLayerAvailability",
            InitiateLayerUpload => "ecr:InitiateLayerUpload",
            UploadLayerPart => "ecr:UploadLayerPart",
            CompleteLayerUpload => "ecr:CompleteLayerUpload",
            GetDownloadUrlForLayer => "ecr:GetDownloadUrlForLayer",
            PutLifecyclePolicy => "ecr:PutLifecyclePolicy",
            GetLifecyclePolicy => "ecr:GetLifecyclePolicy",
            DeleteLifecyclePolicy => "ecr:DeleteLifecyclePolicy",
            StartLifecyclePolicyPreview => "ecr:StartLifecyclePolicyPreview",
            GetLifecyclePolicyPreview => "ecr:GetLifecyclePolicyPreview",
            SetRepositoryPolicy => "ecr:SetRepositoryPolicy",
            GetRepositoryPolicy => "ecr:GetRepositoryPolicy",
            DeleteRepositoryPolicy => "ecr:DeleteRepositoryPolicy",
            TagResource => "ecr:TagResource",
            UntagResource => "ecr:UntagResource",
            ListTagsForResource => "ecr:ListTagsForResource",
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
}
