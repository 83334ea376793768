//! The Query protocol's parameters: a form-encoded body (or URL query) of
//! flat `Name=Value` pairs, where lists and structures are spelled out in
//! the names.
//!
//! The EC2 flavour of the protocol (botocore's `ec2` serializer) names a
//! list member `Name.N` (`SubnetId.1`, `SubnetId.2`, 1-based), a structure's
//! field `Name.Field` and a list of structures `Name.N.Field`
//! (`Filter.1.Name`, `Filter.1.Value.1`, `TagSpecification.1.Tag.1.Key`).
//! [`Params`] keeps the pairs in a sorted map, so a list is the range of keys
//! under its prefix, read in index order, not in key order (`.10` sorts
//! before `.2`).

use std::collections::BTreeMap;

use super::error::ApiError;

/// The parameters of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: BTreeMap<String, String>,
}

/// A `Filter.N` of a Describe call: a name and the values any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// e.g. `vpc-id`, `tag:Name`.
    pub name: String,
    /// The values; a resource matches when its value equals any of them
    /// (`*` and `?` are wildcards, as in EC2).
    pub values: Vec<String>,
}

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value (empty when not given).
    pub value: String,
}

/// The largest request the API reads; botocore's largest EC2 calls are a few KiB.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

impl Params {
    /// Parses a form-encoded body (or a URL's query string).
    pub fn parse(form: &[u8]) -> Params {
        let mut p = Params::default();
        p.extend(form);
        p
    }

    /// Adds the pairs of another form (a GET's query string beside a POST body);
    /// a name given twice keeps its first value.
    pub fn extend(&mut self, form: &[u8]) {
        for (k, v) in form_urlencoded::parse(form) {
            self.pairs.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
    }

    /// Builds parameters from pairs (tests and clients of the core).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Params {
        Params { pairs: pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.get(name).map(String::as_str)
    }

    /// The value of `name`, or `MissingParameter`.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::new("MissingParameter", format!("The request must contain the parameter {name}")))
    }

    /// A boolean parameter (`true`/`false`), `None` when absent.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::invalid_value(name, v)),
        }
    }

    /// An integer parameter, `None` when absent.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::invalid_value(name, v)),
        }
    }

    /// The indexes `N` present under `prefix.N…`, in numeric order.
    fn indexes(&self, prefix: &str) -> Vec<u32> {
        let start = format!("{prefix}.");
        let mut seen: Vec<u32> = self
            .pairs
            .range(start.clone()..)
            .take_while(|(k, _)| k.starts_with(&start))
            .filter_map(|(k, _)| k[start.len()..].split('.').next()?.parse().ok())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    /// A list of strings: `prefix.1`, `prefix.2`, …
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.indexes(prefix)
            .into_iter()
            .filter_map(|i| self.get(&format!("{prefix}.{i}")).map(str::to_string))
            .collect()
    }

    /// A list of structures: one sub-`Params` per `prefix.N`, its names
    /// relative to `prefix.N.`.
    pub fn structs(&self, prefix: &str) -> Vec<Params> {
        self.indexes(prefix).into_iter().map(|i| self.sub(&format!("{prefix}.{i}"))).collect()
    }

    /// The structure under `prefix.` with names relative to it.
    pub fn sub(&self, prefix: &str) -> Params {
        let start = format!("{prefix}.");
        Params {
            pairs: self
                .pairs
                .range(start.clone()..)
                .take_while(|(k, _)| k.starts_with(&start))
                .map(|(k, v)| (k[start.len()..].to_string(), v.clone()))
                .collect(),
        }
    }

    /// Whether any name starts with `prefix.` (a structure was given).
    pub fn has(&self, prefix: &str) -> bool {
        let start = format!("{prefix}.");
        self.pairs.range(start.clone()..).next().is_some_and(|(k, _)| k.starts_with(&start))
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`.
    pub fn filters(&self) -> Result<Vec<Filter>, ApiError> {
        self.structs("Filter")
            .into_iter()
            .map(|f| {
                let name = f.required("Name")?.to_string();
                Ok(Filter { name, values: f.list("Value") })
            })
            .collect()
    }

    /// `prefix.N.Key` / `prefix.N.Value` (`Tag.N` of CreateTags, of a TagSpecification).
    pub fn tags(&self, prefix: &str) -> Result<Vec<Tag>, ApiError> {
        self.structs(prefix)
            .into_iter()
            .map(|t| {
                let key = t.required("Key")?.to_string();
                Ok(Tag { key, value: t.get("Value").unwrap_or("").to_string() })
            })
            .collect()
    }

    /// The tags of every `TagSpecification.N` whose ResourceType is `resource_type`;
    /// a specification for another type is refused, as EC2 does.
    pub fn tag_specifications(&self, resource_type: &str) -> Result<Vec<Tag>, ApiError> {
        let mut tags = Vec::new();
        for spec in self.structs("TagSpecification") {
            let ty = spec.get("ResourceType").unwrap_or(resource_type);
            if ty != resource_type {
                return Err(ApiError::new(
                    "InvalidParameterValue",
                    format!("'{ty}' is not a valid taggable resource type for this operation."),
                ));
            }
            tags.extend(spec.tags("Tag")?);
        }
        Ok(tags)
    }

    /// Every pair, for fingerprints of idempotent requests.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read_in_index_order_not_key_order() {
        let mut form = String::from("Action=X");
        for i in 1..=12 {
            form.push_str(&format!("&SubnetId.{i}=subnet-{i}"));
        }
        let p = Params::parse(form.as_bytes());
        let got = p.list("SubnetId");
        assert_eq!(got.len(), 12);
        assert_eq!(got[1], "subnet-2");
        assert_eq!(got[9], "subnet-10");
        assert!(p.list("SubnetIds").is_empty(), "a longer name is another list");
    }

    #[test]
    fn filters_tags_and_specifications() {
        let p = Params::parse(
            b"Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1&Filter.1.Value.2=vpc-2&Filter.2.Name=tag%3AName\
              &Filter.2.Value.1=a%20b&TagSpecification.1.ResourceType=vpc-endpoint\
              &TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=x",
        );
        let f = p.filters().unwrap();
        assert_eq!(f[0], Filter { name: "vpc-id".into(), values: vec!["vpc-1".into(), "vpc-2".into()] });
        assert_eq!(f[1].name, "tag:Name");
        assert_eq!(f[1].values, ["a b"]);
        let tags = p.tag_specifications("vpc-endpoint").unwrap();
        assert_eq!(tags, [Tag { key: "Name".into(), value: "x".into() }]);
        assert_eq!(p.tag_specifications("vpc").unwrap_err().code, "InvalidParameterValue");
    }

    #[test]
    fn typed_values_are_checked() {
        let p = Params::parse(b"A=true&B=maybe&C=12&D=x");
        assert_eq!(p.bool("A").unwrap(), Some(true));
        assert_eq!(p.bool("B").unwrap_err().code, "InvalidParameterValue");
        assert_eq!(p.int("C").unwrap(), Some(12));
        assert!(p.int("D").is_err());
        assert_eq!(p.required("E").unwrap_err().code, "MissingParameter");
        assert!(!p.has("A"), "a plain value is not a structure");
    }
}
