//! Customer-managed prefix lists, and the AWS-managed ones privlink does not have.
//!
//! A managed prefix list (`pl-` and 17 hex digits) is a named, versioned
//! set of IPv4 blocks of at most `MaxEntries` entries. Security group rules
//! name it as a peer (`PrefixListIds.N.PrefixListId`), and the data plane
//! expands it into its blocks ([`Ec2::rule_set_config`]), so a
//! ModifyManagedPrefixList changes what those rules admit from the next
//! new flow on.
//!
//! **Versions.** A list is made at version 1; each Modify that adds or
//! removes entries makes the next version (a rename or a new `MaxEntries`
//! does not). Earlier versions' entries are kept for
//! GetManagedPrefixListEntries' `TargetVersion`. `CurrentVersion`, when
//! given, must be the list's version (`PrefixListVersionMismatch`).
//! Removals are applied before additions, so one call can replace an
//! entry's description by removing and adding its block.
//!
//! **States.** AWS answers Create with `create-in-progress`, Modify with
//! `modify-in-progress` (and the version before the change) and Delete with
//! `delete-in-progress`, then completes in the background. privlink answers
//! the same, but its change is complete when the answer is sent: Describe
//! shows `create-complete` or `modify-complete` at once, and a deleted list
//! is gone at once (`delete-complete` is never shown). What AWS reports by
//! a failed state rather than an error, privlink reports the same way:
//! - a new `MaxEntries` that a referencing group's rule quota cannot take
//!   leaves the list as it was, `modify-failed`, its `stateMessage` naming
//!   the first ten such groups;
//! - DeleteManagedPrefixList of a list a security group rule names keeps
//!   it, `delete-failed`, its `stateMessage` naming the first ten groups.
//!
//! **Quotas.** A rule naming a list counts as `MaxEntries` rules toward its
//! group's rules per direction (60), as at AWS; a list has at most 1000
//! entries, a Region 100 lists, a call 100 additions and 100 removals.
//!
//! **IPv4 only.** `AddressFamily` must be `IPv4`: the data plane filters IPv4.
//!
//! **AWS-managed lists** (`com.amazonaws.<region>.s3` and the like) hold the
//! services' public ranges, which privlink does not have: rather than invent
//! blocks, DescribePrefixLists answers none, and DescribeManagedPrefixLists
//! shows only the lists made here.
//!
//! **Error codes.** EC2 spells the managed-list actions' not-found code
//! `InvalidPrefixListID.NotFound`, and a rule's unknown list (and
//! DescribePrefixLists') `InvalidPrefixListId.NotFound`; a malformed id is
//! `InvalidPrefixListId.Malformed` everywhere.

use std::collections::{BTreeMap, BTreeSet};

use super::describe::{asked, passes, Page};
use super::endpoint::{remember, repeated};
use super::ids::{IdKind, ACCOUNT_ID};
use super::resources::{ManagedPrefixList, PrefixListEntry, PrefixListState, RulePeer, SecurityGroupRule};
use super::security_group::{rule_list_not_found, rule_weight, rules_per_group};
use super::{Call, Ec2, Effect};
use crate::api::error::ApiError;
use crate::api::query::Params;
use crate::api::xml::Xml;
use crate::cidr::Cidr;

/// Entries per list: AWS's quota.
pub const MAX_ENTRIES: u32 = 1000;

/// Customer-managed prefix lists per Region: AWS's default quota.
pub const MAX_PREFIX_LISTS: usize = 100;

/// Additions, and separately removals, per call.
const MAX_CHANGES: usize = 100;

/// How many referencing groups a state message names.
const NAMED_IN_MESSAGE: usize = 10;

impl Ec2 {
    /// The prefix list `id`, checked: `InvalidPrefixListId.Malformed` /
    /// `InvalidPrefixListID.NotFound`.
    pub fn prefix_list(&self, id: &str) -> Result<&ManagedPrefixList, ApiError> {
        IdKind::PrefixList.check(id)?;
        self.prefix_lists.get(id).ok_or_else(|| IdKind::PrefixList.not_found(id))
    }

    /// The groups with a rule naming list `id`, in id order.
    pub fn prefix_list_references(&self, id: &str) -> Vec<String> {
        let peer = RulePeer::PrefixList(id.to_string());
        self.security_groups
            .values()
            .filter(|g| g.ingress.iter().chain(&g.egress).any(|r| r.peer == peer))
            .map(|g| g.id.clone())
            .collect()
    }
}

/// The order entries are kept and shown in, also the NextToken of
/// GetManagedPrefixListEntries: by address, then prefix length.
fn entry_key(c: &Cidr) -> String {
    format!("{:08x}/{:02}", u32::from(c.base()), c.prefix())
}

fn sort_entries(entries: &mut [PrefixListEntry]) {
    entries.sort_by_key(|e| entry_key(&e.cidr));
}

fn cidr_of(value: &str) -> Result<Cidr, ApiError> {
    value.parse().map_err(|e| {
        ApiError::new("InvalidParameterValue", format!("The CIDR '{value}' is not a valid IPv4 CIDR block: {e}"))
    })
}

fn description_of(p: &Params) -> Result<Option<String>, ApiError> {
    match p.get("Description") {
        Some(d) if d.len() > 255 => Err(ApiError::invalid_value("Description", d)),
        d => Ok(d.map(str::to_string)),
    }
}

fn too_many_changes() -> ApiError {
    ApiError::new(
        "InvalidParameterValue",
        format!("The request cannot contain more than {MAX_CHANGES} entry additions or removals."),
    )
}

/// `prefix.N.Cidr` (and `Description`): at most 100, no block twice.
fn read_entries(p: &Params, prefix: &str) -> Result<Vec<PrefixListEntry>, ApiError> {
    let given = p.structs(prefix);
    if given.len() > MAX_CHANGES {
        return Err(too_many_changes());
    }
    let mut out: Vec<PrefixListEntry> = Vec::with_capacity(given.len());
    for e in &given {
        let cidr = cidr_of(e.required("Cidr")?)?;
        if out.iter().any(|o| o.cidr == cidr) {
            return Err(ApiError::new("InvalidParameterValue", format!("The CIDR {cidr} is given more than once.")));
        }
        out.push(PrefixListEntry { cidr, description: description_of(e)? });
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 255 || name.to_ascii_lowercase().starts_with("com.amazonaws") {
        return Err(ApiError::invalid_value("PrefixListName", name));
    }
    Ok(())
}

fn check_max_entries(n: i64) -> Result<u32, ApiError> {
    match u32::try_from(n) {
        Ok(m) if (1..=MAX_ENTRIES).contains(&m) => Ok(m),
        _ => Err(ApiError::new(
            "InvalidParameterValue",
            format!("The value ({n}) for MaxEntries is invalid. Expecting a value between 1 and {MAX_ENTRIES}."),
        )),
    }
}

fn max_entries_exceeded(max: u32) -> ApiError {
    ApiError::new(
        "PrefixListMaxEntriesExceeded",
        format!("The prefix list would have more than its maximum number of entries ({max})."),
    )
}

fn list_arn(ec2: &Ec2, id: &str) -> String {
    format!("arn:aws:ec2:{}:{ACCOUNT_ID}:prefix-list/{id}", ec2.region)
}

/// One `ManagedPrefixList`; `shown` overrides the state and version an
/// answer reports (the `…-in-progress` of a change's own answer).
fn write_list(ec2: &Ec2, x: &mut Xml, l: &ManagedPrefixList, shown: Option<(&str, u64)>) {
    let (state, version) = shown.unwrap_or((l.state.as_str(), l.version));
    x.text("prefixListId", &l.id)
        .text("addressFamily", "IPv4")
        .text("state", state)
        // An answer's `…-in-progress` has no outcome to explain yet.
        .opt("stateMessage", l.state_message.as_deref().filter(|_| shown.is_none()))
        .text("prefixListArn", &list_arn(ec2, &l.id))
        .text("prefixListName", &l.name)
        .num("maxEntries", l.max_entries)
        .num("version", version)
        .tag_set(ec2.tags_of(&l.id))
        .text("ownerId", ACCOUNT_ID);
}

/// A state message naming (the first ten of) `groups`.
fn naming(what: &str, groups: &[String]) -> String {
    let shown: Vec<&str> = groups.iter().take(NAMED_IN_MESSAGE).map(String::as_str).collect();
    format!("{what}: {}", shown.join(", "))
}

pub(super) fn create_managed_prefix_list(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    if let Some(id) = repeated(ec2, p)? {
        if let Some(l) = ec2.prefix_lists.get(&id) {
            x.elem("prefixList", |x| write_list(ec2, x, l, None));
            return Ok(Effect::ReadOnly);
        }
    }
    let name = p.required("PrefixListName")?;
    check_name(name)?;
    let max_entries = match p.int("MaxEntries")? {
        Some(n) => check_max_entries(n)?,
        None => return Err(ApiError::new("MissingParameter", "The request must contain the parameter MaxEntries")),
    };
    match p.required("AddressFamily")? {
        "IPv4" => {}
        "IPv6" => {
            return Err(ApiError::new(
                "InvalidParameterValue",
                "AddressFamily IPv6: privlink is IPv4 only (its data plane filters IPv4).",
            ))
        }
        other => return Err(ApiError::invalid_value("AddressFamily", other)),
    }
    let mut entries = read_entries(p, "Entry")?;
    if entries.len() > max_entries as usize {
        return Err(max_entries_exceeded(max_entries));
    }
    sort_entries(&mut entries);
    let tags = p.tag_specifications("prefix-list")?;
    if ec2.prefix_lists.len() >= MAX_PREFIX_LISTS {
        return Err(ApiError::new(
            "PrefixListLimitExceeded",
            format!("The maximum number of managed prefix lists ({MAX_PREFIX_LISTS}) has been reached."),
        ));
    }
    let id = call.new_id(IdKind::PrefixList);
    let list = ManagedPrefixList {
        id: id.clone(),
        name: name.to_string(),
        max_entries,
        state: PrefixListState::CreateComplete,
        state_message: None,
        version: 1,
        entries,
        history: BTreeMap::new(),
    };
    ec2.prefix_lists.insert(id.clone(), list);
    ec2.set_tags(&id, &tags);
    remember(ec2, p, &id);
    x.elem("prefixList", |x| write_list(ec2, x, &ec2.prefix_lists[&id], Some(("create-in-progress", 1))));
    Ok(Effect::Changed)
}

pub(super) fn describe_managed_prefix_lists(
    ec2: &mut Ec2,
    call: &mut Call<'_>,
    x: &mut Xml,
) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 1, 100)?);
    let kind = IdKind::PrefixList;
    let chosen = asked(&p.list("PrefixListId"), &ec2.prefix_lists, |i| kind.check(i), |i| kind.not_found(i))?;
    let mut kept = Vec::new();
    for (id, l) in chosen {
        let keep = passes(&filters, ec2.tags.get(id), |f| match f {
            "prefix-list-id" => Some(vec![l.id.clone()]),
            "prefix-list-name" => Some(vec![l.name.clone()]),
            "owner-id" => Some(vec![ACCOUNT_ID.into()]),
            _ => None,
        })?;
        if keep {
            kept.push((id, l));
        }
    }
    let (items, next) = page.cut(kept);
    x.set("prefixListSet", items, |x, l| write_list(ec2, x, l, None)).opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn get_managed_prefix_list_entries(
    ec2: &mut Ec2,
    call: &mut Call<'_>,
    x: &mut Xml,
) -> Result<Effect, ApiError> {
    let p = call.params;
    let l = ec2.prefix_list(p.required("PrefixListId")?)?;
    let page = Page::read(p, 1, 100)?;
    let entries = match p.int("TargetVersion")? {
        None => &l.entries,
        Some(v) if v == l.version as i64 => &l.entries,
        Some(v) => u64::try_from(v).ok().and_then(|v| l.history.get(&v)).ok_or_else(|| {
            ApiError::new(
                "InvalidParameterValue",
                format!(
                    "The version {v} of prefix list {} does not exist (its versions are 1 to {}).",
                    l.id, l.version
                ),
            )
        })?,
    };
    let keyed: Vec<(String, &PrefixListEntry)> = entries.iter().map(|e| (entry_key(&e.cidr), e)).collect();
    let (items, next) = page.cut(keyed.iter().map(|(k, e)| (k, *e)));
    x.set("entrySet", items, |x, e| {
        x.text("cidr", &e.cidr.to_string()).opt("description", e.description.as_deref());
    })
    .opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

pub(super) fn modify_managed_prefix_list(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let l = ec2.prefix_list(p.required("PrefixListId")?)?.clone();
    if let Some(v) = p.int("CurrentVersion")? {
        if v != l.version as i64 {
            return Err(ApiError::new(
                "PrefixListVersionMismatch",
                "The prefix list has the incorrect version number.",
            ));
        }
    }
    let name = p.get("PrefixListName");
    if let Some(n) = name {
        check_name(n)?;
    }
    let add = read_entries(p, "AddEntry")?;
    let remove_given = p.structs("RemoveEntry");
    if remove_given.len() > MAX_CHANGES {
        return Err(too_many_changes());
    }
    let mut remove: Vec<Cidr> = Vec::with_capacity(remove_given.len());
    for r in &remove_given {
        let c = cidr_of(r.required("Cidr")?)?;
        if !remove.contains(&c) {
            remove.push(c);
        }
    }
    let max = p.int("MaxEntries")?.map(check_max_entries).transpose()?;
    let changes_entries = !add.is_empty() || !remove.is_empty();
    if max.is_some() && changes_entries {
        return Err(ApiError::combination(
            "You cannot modify the entries and the maximum entries for the prefix list in the same request.",
        ));
    }
    if name.is_none() && max.is_none() && !changes_entries {
        return Err(ApiError::new(
            "MissingParameter",
            "The request must contain AddEntry, RemoveEntry, MaxEntries or PrefixListName",
        ));
    }
    // Removals first, then additions (AWS's order).
    let mut entries = l.entries.clone();
    for c in &remove {
        if !entries.iter().any(|e| e.cidr == *c) {
            return Err(ApiError::new(
                "InvalidPrefixListModification",
                format!("The entry with CIDR ({c}) does not exist."),
            ));
        }
        entries.retain(|e| e.cidr != *c);
    }
    for a in &add {
        if let Some(have) = entries.iter().find(|e| e.cidr == a.cidr) {
            return Err(ApiError::new(
                "InvalidPrefixListModification",
                format!(
                    "An entry with the CIDR ({}) and description ({}) already exists.",
                    have.cidr,
                    have.description.as_deref().unwrap_or("")
                ),
            ));
        }
        entries.push(a.clone());
    }
    sort_entries(&mut entries);
    if entries.len() > l.max_entries as usize {
        return Err(max_entries_exceeded(l.max_entries));
    }
    if let Some(m) = max {
        if (m as usize) < l.entries.len() {
            return Err(ApiError::new(
                "InvalidParameterValue",
                format!("MaxEntries ({m}) cannot be less than the number of entries ({}).", l.entries.len()),
            ));
        }
    }
    // A resize every referencing group can take, or it fails as AWS's does:
    // nothing changes but the state (the rename too is not made).
    let over: Vec<String> = match max {
        Some(m) if m > l.max_entries => over_quota(ec2, &l.id, m),
        _ => Vec::new(),
    };
    let pl = ec2.prefix_lists.get_mut(&l.id).expect("checked");
    if !over.is_empty() {
        pl.state = PrefixListState::ModifyFailed;
        pl.state_message = Some(naming(
            &format!(
                "The rules per security group quota ({}) cannot take MaxEntries {}",
                rules_per_group(),
                max.unwrap_or(0)
            ),
            &over,
        ));
    } else {
        if let Some(n) = name {
            pl.name = n.to_string();
        }
        if let Some(m) = max {
            pl.max_entries = m;
        }
        if changes_entries {
            let old = std::mem::replace(&mut pl.entries, entries);
            pl.history.insert(pl.version, old);
            pl.version += 1;
        }
        pl.state = PrefixListState::ModifyComplete;
        pl.state_message = None;
    }
    x.elem("prefixList", |x| write_list(ec2, x, &ec2.prefix_lists[&l.id], Some(("modify-in-progress", l.version))));
    Ok(Effect::Changed)
}

/// The groups whose rules, in some direction, would be over the quota with list `id` at `max` entries.
fn over_quota(ec2: &Ec2, id: &str, max: u32) -> Vec<String> {
    let peer = RulePeer::PrefixList(id.to_string());
    let weight = |rules: &[SecurityGroupRule]| -> usize {
        rules.iter().map(|r| if r.peer == peer { max as usize } else { rule_weight(ec2, &r.peer) }).sum()
    };
    ec2.security_groups
        .values()
        .filter(|g| [&g.ingress, &g.egress].iter().any(|rules| weight(rules) > rules_per_group()))
        .map(|g| g.id.clone())
        .collect()
}

pub(super) fn delete_managed_prefix_list(ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let l = ec2.prefix_list(call.params.required("PrefixListId")?)?.clone();
    let users = ec2.prefix_list_references(&l.id);
    if users.is_empty() {
        ec2.prefix_lists.remove(&l.id);
        ec2.client_tokens.retain(|_, t| t.resource != l.id);
        x.elem("prefixList", |x| write_list(ec2, x, &l, Some(("delete-in-progress", l.version))));
        ec2.drop_tags(&l.id);
    } else {
        let pl = ec2.prefix_lists.get_mut(&l.id).expect("checked");
        pl.state = PrefixListState::DeleteFailed;
        pl.state_message = Some(naming("The prefix list is referenced by security groups", &users));
        x.elem("prefixList", |x| write_list(ec2, x, &ec2.prefix_lists[&l.id], Some(("delete-in-progress", l.version))));
    }
    Ok(Effect::Changed)
}

/// DescribePrefixLists: the AWS-managed service lists, of which privlink has
/// none (see the module's doc). Its ids and filters are still checked.
pub(super) fn describe_prefix_lists(_ec2: &mut Ec2, call: &mut Call<'_>, x: &mut Xml) -> Result<Effect, ApiError> {
    let p = call.params;
    let (filters, page) = (p.filters()?, Page::read(p, 5, 1000)?);
    let none: BTreeMap<String, ()> = BTreeMap::new();
    let chosen = asked(&p.list("PrefixListId"), &none, |i| IdKind::PrefixList.check(i), rule_list_not_found)?;
    let known: BTreeSet<&str> = ["prefix-list-id", "prefix-list-name"].into();
    if let Some(f) = filters.iter().find(|f| !known.contains(f.name.as_str())) {
        return Err(ApiError::new("InvalidParameterValue", format!("The filter '{}' is invalid", f.name)));
    }
    let (items, next) = page.cut(chosen);
    x.set("prefixListSet", items, |_, _| {}).opt("nextToken", next.as_deref());
    Ok(Effect::ReadOnly)
}

#[cfg(test)]
mod tests;
