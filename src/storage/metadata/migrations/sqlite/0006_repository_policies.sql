-- IAM-style repository policies (ECR's SetRepositoryPolicy), enforced by auth.

CREATE TABLE repository_policies (
    repository  TEXT PRIMARY KEY REFERENCES repositories(name) ON DELETE CASCADE,
    text        TEXT NOT NULL
);
