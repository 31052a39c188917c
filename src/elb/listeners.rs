//! CreateListener, DescribeListeners and DeleteListener. A listener's one
//! default action forwards to one target group, named by `TargetGroupArn`
//! or by a `ForwardConfig` of one group.

use crate::aws::xml::Xml;
use crate::balancer::load_balancers::NewListener;
use crate::balancer::model::Listener;

use super::query::Input;
use super::{Call, ElbError};

fn invalid(message: &str) -> ElbError {
    ElbError::Validation(message.to_string())
}

/// The target group the one `forward` default action names.
fn forward_target(input: &Input<'_>) -> Result<String, ElbError> {
    let actions = input.structs("DefaultActions");
    let [action] = actions.as_slice() else {
        return Err(invalid(
            "A listener needs exactly one default action, of type 'forward'",
        ));
    };
    if action.get("Type").copied() != Some("forward") {
        return Err(invalid(
            "Only 'forward' default actions are supported by this server",
        ));
    }
    let direct = action.get("TargetGroupArn").copied();
    let prefix = "ForwardConfig.TargetGroups.member.";
    let configured: Vec<&str> = action
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix(prefix)
                .and_then(|r| r.split_once('.'))
                .is_some_and(|(_, field)| field == "TargetGroupArn")
        })
        .map(|(_, v)| *v)
        .collect();
    match (direct, configured.as_slice()) {
        (Some(arn), []) => Ok(arn.to_string()),
        (None, [arn]) => Ok(arn.to_string()),
        (Some(arn), [other]) if arn == *other => Ok(arn.to_string()),
        (None, []) => Err(invalid("A forward action needs a TargetGroupArn")),
        _ => Err(invalid(
            "A forward action forwards to exactly one target group on this server",
        )),
    }
}

fn write_listeners(x: &mut Xml, listeners: &[Listener]) {
    x.members("Listeners", listeners, |x, l| {
        x.leaf("ListenerArn", &l.arn)
            .leaf("LoadBalancerArn", &l.load_balancer_arn)
            .leaf("Port", l.port)
            .leaf("Protocol", l.protocol.as_str())
            .members("DefaultActions", [l], |x, l| {
                x.leaf("Type", "forward")
                    .leaf("TargetGroupArn", &l.target_group_arn)
                    .element("ForwardConfig", |x| {
                        x.members("TargetGroups", [l], |x, l| {
                            x.leaf("TargetGroupArn", &l.target_group_arn)
                                .leaf("Weight", 1);
                        });
                    });
            });
    });
}

pub async fn create(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let new = NewListener {
        load_balancer_arn: input.required("LoadBalancerArn")?.to_string(),
        port: input.port("Port")?,
        protocol: input.protocol("Protocol")?,
        target_group_arn: forward_target(&input)?,
    };
    let listener = call.balancer.create_listener(new).await?;
    let mut x = Xml::new();
    write_listeners(&mut x, &[listener]);
    Ok(x)
}

pub async fn describe(call: &Call<'_>) -> Result<Xml, ElbError> {
    let input = call.input();
    let arns: Vec<String> = input
        .list("ListenerArns")
        .into_iter()
        .map(str::to_string)
        .collect();
    let listeners = call
        .balancer
        .describe_listeners(input.get("LoadBalancerArn"), &arns)
        .await?;
    let (page, next) = input.page(listeners)?;
    let mut x = Xml::new();
    write_listeners(&mut x, &page);
    x.leaf_opt("NextMarker", next);
    Ok(x)
}

pub async fn delete(call: &Call<'_>) -> Result<Xml, ElbError> {
    let arn = call.input().required("ListenerArn")?;
    call.balancer.delete_listener(arn).await?;
    Ok(Xml::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::query::Params;

    #[test]
    fn one_forward_action() {
        let ok = [
            "DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn=a",
            "DefaultActions.member.1.Type=forward\
             &DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=a",
        ];
        for form in ok {
            let p = Params::parse(form.as_bytes());
            assert_eq!(forward_target(&Input(&p)).unwrap(), "a", "{form}");
        }
        let bad = [
            "",
            "DefaultActions.member.1.Type=fixed-response",
            "DefaultActions.member.1.Type=forward",
            "DefaultActions.member.1.Type=forward&DefaultActions.member.1.TargetGroupArn=a\
             &DefaultActions.member.2.Type=forward&DefaultActions.member.2.TargetGroupArn=b",
            "DefaultActions.member.1.Type=forward\
             &DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=a\
             &DefaultActions.member.1.ForwardConfig.TargetGroups.member.2.TargetGroupArn=b",
        ];
        for form in bad {
            let p = Params::parse(form.as_bytes());
            assert!(forward_target(&Input(&p)).is_err(), "{form}");
        }
    }
}
