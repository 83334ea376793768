//! What every Describe call shares: ids asked for, `Filter.N`, `MaxResults`
//! and `NextToken`.
//!
//! A resource matches the filters when every filter has a value equal to
//! one of the resource's values for that name (`*` and `?` are wildcards,
//! as EC2 takes them). `tag:KEY` and `tag-key` work on every resource. A
//! filter name the resource does not know is refused with
//! `InvalidParameterValue`, naming it.

use std::collections::BTreeMap;

use crate::api::error::ApiError;
use crate::api::query::{Filter, Params};

/// A page of a Describe answer: where it starts and how long it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The most items to answer; `None`: all.
    pub max: Option<usize>,
    /// Answer items after this id (the last one of the previous page).
    pub after: Option<String>,
}

impl Page {
    /// Reads `MaxResults` (within `min..=max`, as the call's model bounds it)
    /// and `NextToken`.
    pub fn read(p: &Params, min: i64, max: i64) -> Result<Page, ApiError> {
        let size = match p.int("MaxResults")? {
            None => None,
            Some(n) if (min..=max).contains(&n) => Some(n as usize),
            Some(n) => {
                return Err(ApiError::new(
                    "InvalidParameterValue",
                    format!(
                        "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between {min} and {max}."
                    ),
                ))
            }
        };
        let after = p.get("NextToken").map(str::to_string);
        if after.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::new("InvalidParameterValue", "The NextToken is empty."));
        }
        Ok(Page { max: size, after })
    }

    /// Cuts `items` (in id order) to this page; the second value is the next token.
    pub fn cut<'a, T>(&self, items: impl IntoIterator<Item = (&'a String, T)>) -> (Vec<T>, Option<String>) {
        let mut it = items.into_iter().filter(|(id, _)| self.after.as_ref().is_none_or(|a| id.as_str() > a.as_str()));
        let mut out = Vec::new();
        let mut last: Option<&String> = None;
        for (id, t) in it.by_ref() {
            if self.max.is_some_and(|m| out.len() == m) {
                return (out, last.cloned());
            }
            last = Some(id);
            out.push(t);
        }
        (out, None)
    }
}

/// EC2's wildcard match: `*` any run of characters, `?` one.
pub fn matches_pattern(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

/// Whether a resource passes every filter. `field` gives the resource's
/// values for a filter name, `None` for a name it does not know.
pub fn passes(
    filters: &[Filter],
    tags: Option<&BTreeMap<String, String>>,
    field: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<bool, ApiError> {
    for f in filters {
        let values: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            tags.and_then(|t| t.get(key)).cloned().into_iter().collect()
        } else if f.name == "tag-key" {
            tags.map(|t| t.keys().cloned().collect()).unwrap_or_default()
        } else if f.name == "tag-value" {
            tags.map(|t| t.values().cloned().collect()).unwrap_or_default()
        } else {
            field(&f.name)
                .ok_or_else(|| ApiError::new("InvalidParameterValue", format!("The filter '{}' is invalid", f.name)))?
        };
        if !f.values.iter().any(|want| values.iter().any(|v| matches_pattern(want, v))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The ids a Describe call asked for (`prefix.N`), each checked to exist.
pub fn asked<'a, T>(
    ids: &[String],
    all: &'a BTreeMap<String, T>,
    check: impl Fn(&str) -> Result<(), ApiError>,
    not_found: impl Fn(&str) -> ApiError,
) -> Result<Vec<(&'a String, &'a T)>, ApiError> {
    if ids.is_empty() {
        return Ok(all.iter().collect());
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        check(id)?;
        let (k, v) = all.get_key_value(id).ok_or_else(|| not_found(id))?;
        out.push((k, v));
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_ec2_does() {
        assert!(matches_pattern("com.amazonaws.*.ec2", "com.amazonaws.us-east-1.ec2"));
        assert!(matches_pattern("vpc-?", "vpc-1"));
        assert!(!matches_pattern("vpc-?", "vpc-12"));
        assert!(matches_pattern("*", ""));
        assert!(!matches_pattern("a", "b"));
    }

    #[test]
    fn pages_follow_ids_and_end_without_a_token() {
        let ids: Vec<String> = (0..7).map(|i| format!("id-{i}")).collect();
        let page = Page { max: Some(3), after: None };
        let (a, next) = page.cut(ids.iter().map(|i| (i, i.clone())));
        assert_eq!(a, ["id-0", "id-1", "id-2"]);
        let page = Page { max: Some(3), after: next };
        let (b, next) = page.cut(ids.iter().map(|i| (i, i.clone())));
        assert_eq!(b, ["id-3", "id-4", "id-5"]);
        let (c, next) = Page { max: Some(3), after: next }.cut(ids.iter().map(|i| (i, i.clone())));
        assert_eq!((c, next), (vec!["id-6".to_string()], None));
        let (d, next) = Page { max: Some(7), after: None }.cut(ids.iter().map(|i| (i, i.clone())));
        assert_eq!((d.len(), next), (7, None), "an exact page has no next token");
    }

    #[test]
    fn max_results_is_bounded() {
        assert!(Page::read(&Params::parse(b"MaxResults=4"), 5, 1000).is_err());
        assert_eq!(Page::read(&Params::parse(b"MaxResults=5"), 5, 1000).unwrap().max, Some(5));
    }

    #[test]
    fn unknown_filters_are_refused_and_tags_work_everywhere() {
        let tags: BTreeMap<String, String> = [("Name".to_string(), "web".to_string())].into();
        let f = |name: &str, v: &str| vec![Filter { name: name.into(), values: vec![v.into()] }];
        let field = |n: &str| (n == "vpc-id").then(|| vec!["vpc-1".to_string()]);
        assert!(passes(&f("vpc-id", "vpc-1"), Some(&tags), field).unwrap());
        assert!(!passes(&f("vpc-id", "vpc-2"), Some(&tags), field).unwrap());
        assert!(passes(&f("tag:Name", "w*"), Some(&tags), field).unwrap());
        assert!(passes(&f("tag-key", "Name"), Some(&tags), field).unwrap());
        assert!(!passes(&f("tag:Other", "*"), Some(&tags), field).unwrap());
        assert_eq!(passes(&f("bogus", "x"), None, field).unwrap_err().code, "InvalidParameterValue");
    }
}
