//! CreateLoadBalancer, DescribeLoadBalancers and DeleteLoadBalancer.

use crate::aws::xml::Xml;
use crate::balancer::load_balancers::NewLoadBalancer;
use crate::balancer::model::LoadBalancer;

use super::{Call, ElbError, timestamp};

fn write_load_balancers(x: &mut Xml, balancers: &[LoadBalancer]) {
    x.members("LoadBalancers", balancers, |x, b| {
        x.leaf("LoadBalancerArn", &b.arn)
            .leaf("DNSName", &b.dns_name)
            .leaf("CreatedTime", timestamp(b.created_ms))
            .leaf("LoadBalancerName", &b.name)
            .leaf("Scheme", &b.scheme)
            .element("State", |x| {
                x.leaf("Code", "active");
            })
            .leaf("Type", &b.kind)
            .leaf("IpAddressType", "ipv4");
    });
}

pub async fn create(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let new = NewLoadBalancer {
        name: input.required("Name")?.to_string(),
        kind: input.get("Type").map(str::to_string),
        scheme: input.get("Scheme").map(str::to_string),
        tags: input.tags()?,
    };
    let balancer = call.balancer.create_load_balancer(new).await?;
    let mut x = Xml::new();
    write_load_balancers(&mut x, &[balancer]);
    Ok(x)
}

pub async fn describe(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let arns: Vec<String> = input
        .list("LoadBalancerArns")
        .into_iter()
        .map(str::to_string)
        .collect();
    let names: Vec<String> = input
        .list("Names")
        .into_iter()
        .map(str::to_string)
        .collect();
    let balancers = call.balancer.describe_load_balancers(&arns, &names).await?;
    let (page, next) = input.page(balancers)?;
    let mut x = Xml::new();
    write_load_balancers(&mut x, &page);
    x.leaf_opt("NextMarker", next);
    Ok(x)
}

pub async fn delete(call: &Call<'_>) -> Result<Xml, ElbError> {
    let arn = call.input().required("LoadBalancerArn")?;
    call.balancer.delete_load_balancer(arn).await?;
    Ok(Xml::new())
}
