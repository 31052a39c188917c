//! What the AWS-shaped APIs (ECR now, ECS later) share: the JSON 1.1 protocol
//! (`X-Amz-Target`, `{"__type", "message"}` errors) and SigV4 authentication.

pub mod sigv4;
