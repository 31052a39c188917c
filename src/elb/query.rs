//! Reading ELBv2's form parameters: scalars, `Name.member.N` lists and
//! `Name.member.N.Field` structures, and `Marker`/`PageSize` paging. Every
//! malformed value is a `ValidationError`.

use std::collections::BTreeMap;

use crate::aws::query::Params;
use crate::balancer::model::{Protocol, Tag};

use super::ElbError;

fn invalid(message: String) -> ElbError {
    ElbError::Validation(message)
}

/// One structure of a list: its fields by (possibly dotted) name.
pub type Fields<'a> = BTreeMap<&'a str, &'a str>;

/// The request's parameters, read the ways ELBv2 writes them.
pub struct Input<'a>(pub &'a Params);

impl<'a> Input<'a> {
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0.get(key)
    }

    pub fn required(&self, key: &str) -> Result<&'a str, ElbError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(format!("The parameter {key} is required")))
    }

    pub fn u32(&self, key: &str) -> Result<Option<u32>, ElbError> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| invalid(format!("{key} must be a whole number, got '{v}'")))
            })
            .transpose()
    }

    pub fn port(&self, key: &str) -> Result<Option<u16>, ElbError> {
        self.get(key)
            .map(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid(format!("{key} must be between 1 and 65535, got '{v}'")))
            })
            .transpose()
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ElbError> {
        self.get(key)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(format!("{key} must be true or false, got '{v}'"))),
            })
            .transpose()
    }

    pub fn protocol(&self, key: &str) -> Result<Option<Protocol>, ElbError> {
        self.get(key)
            .map(|v| {
                Protocol::parse(v).ok_or_else(|| {
                    invalid(format!(
                        "{key} '{v}' is not supported by this server: use HTTP or TCP"
                    ))
                })
            })
            .transpose()
    }

    /// `key.member.N` values, by N.
    pub fn list(&self, key: &str) -> Vec<&'a str> {
        let prefix = format!("{key}.member.");
        let mut items: Vec<(u32, &'a str)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(&prefix)?.parse().ok()?;
                Some((n, v))
            })
            .collect();
        items.sort_by_key(|(n, _)| *n);
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `key.member.N.Field` structures, by N.
    pub fn structs(&self, key: &str) -> Vec<Fields<'a>> {
        let prefix = format!("{key}.member.");
        let mut items: BTreeMap<u32, Fields<'a>> = BTreeMap::new();
        for (k, v) in self.0.iter() {
            let Some((n, field)) = k.strip_prefix(&prefix).and_then(|r| r.split_once('.')) else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            items.entry(n).or_default().insert(field, v);
        }
        items.into_values().collect()
    }

    /// `Tags.member.N.Key`/`Value`.
    pub fn tags(&self) -> Result<Vec<Tag>, ElbError> {
        self.structs("Tags")
            .into_iter()
            .map(|t| {
                let key = t
                    .get("Key")
                    .filter(|k| !k.is_empty() && k.len() <= 128)
                    .ok_or_else(|| {
                        invalid("Every tag needs a Key of 1 to 128 characters".into())
                    })?;
                let value = t.get("Value").copied().unwrap_or_default();
                if value.len() > 256 {
                    return Err(invalid("A tag's Value is at most 256 characters".into()));
                }
                Ok(Tag {
                    key: key.to_string(),
                    value: value.to_string(),
                })
            })
            .collect()
    }

    /// One page of `items` from `Marker` (an offset), `PageSize` long
    /// (1..=400, default 400), and the marker of the next page.
    pub fn page<T>(&self, items: Vec<T>) -> Result<(Vec<T>, Option<String>), ElbError> {
        let size = self.u32("PageSize")?.unwrap_or(400);
        if !(1..=400).contains(&size) {
            return Err(invalid("PageSize must be between 1 and 400".into()));
        }
        let start: usize = match self.get("Marker") {
            None | Some("") => 0,
            Some(m) => m
                .parse()
                .map_err(|_| invalid(format!("Invalid Marker '{m}'")))?,
        };
        let total = items.len();
        let end = start.saturating_add(size as usize).min(total);
        let page: Vec<T> = items
            .into_iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .collect();
        Ok((page, (end < total).then(|| end.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(form: &str) -> Params {
        Params::parse(form.as_bytes())
    }

    #[test]
    fn lists_and_structs_by_index() {
        let p = params(
            "Names.member.2=b&Names.member.1=a&Names.member.10=c&Other.member.1=x\
             &Targets.member.2.Id=10.0.0.2&Targets.member.1.Id=10.0.0.1&Targets.member.1.Port=81\
             &DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=arn",
        );
        let input = Input(&p);
        assert_eq!(input.list("Names"), ["a", "b", "c"]);
        let targets = input.structs("Targets");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].get("Id"), Some(&"10.0.0.1"));
        assert_eq!(targets[0].get("Port"), Some(&"81"));
        assert_eq!(targets[1].get("Port"), None);
        let actions = input.structs("DefaultActions");
        assert_eq!(
            actions[0].get("ForwardConfig.TargetGroups.member.1.TargetGroupArn"),
            Some(&"arn")
        );
    }

    #[test]
    fn scalars() {
        let p = params("Port=80&Bad=0&Big=70000&On=true&Odd=yes&Protocol=HTTPS");
        let input = Input(&p);
        assert_eq!(input.port("Port").unwrap(), Some(80));
        assert!(input.port("Bad").is_err());
        assert!(input.port("Big").is_err());
        assert_eq!(input.port("Missing").unwrap(), None);
        assert_eq!(input.bool("On").unwrap(), Some(true));
        assert!(input.bool("Odd").is_err());
        assert!(input.protocol("Protocol").is_err());
        assert!(input.required("Missing").is_err());
    }

    #[test]
    fn paging() {
        let p = params("PageSize=2&Marker=2");
        assert_eq!(
            Input(&p).page(vec![1, 2, 3, 4, 5]).unwrap(),
            (vec![3, 4], Some("4".to_string()))
        );
        let p = params("PageSize=2&Marker=4");
        assert_eq!(
            Input(&p).page(vec![1, 2, 3, 4, 5]).unwrap(),
            (vec![5], None)
        );
        let p = params("PageSize=0");
        assert!(Input(&p).page(vec![1]).is_err());
        let p = params("Marker=x");
        assert!(Input(&p).page(vec![1]).is_err());
    }
}
