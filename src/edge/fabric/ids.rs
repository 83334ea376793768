//! Names: the namespaces are the ids, checked before they name anything on
//! the host, and the devices and addresses follow from the ids and blocks.

use std::net::Ipv4Addr;

use privlink_core::api::ec2::IdKind;
use privlink_core::cidr::Cidr;

use super::FabricError;

/// `Ok` if `id` is a well-formed id of `kind` (so a safe namespace and directory name).
pub(crate) fn check(kind: IdKind, id: &str) -> Result<(), FabricError> {
    if kind.is_well_formed(id) {
        return Ok(());
    }
    let name = match kind {
        IdKind::Vpc => "VPC",
        IdKind::Instance => "instance",
        _ => "resource",
    };
    Err(FabricError::BadId { id: id.to_string(), kind: name, prefix: kind.prefix() })
}

/// The VPC side of instance `instance_id`'s veth: `i` and the id's last 12
/// hex digits (all of them for an 8-digit id), within IFNAMSIZ's 15.
pub fn vpc_side_name(instance_id: &str) -> String {
    let hex = instance_id.strip_prefix("i-").unwrap_or(instance_id);
    format!("i{}", &hex[hex.len().saturating_sub(12)..])
}

/// The subnet router: the subnet's base + 1.
pub fn subnet_router(subnet: Cidr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.base()).wrapping_add(1))
}

/// The Amazon-provided DNS of a VPC: its base + 2.
pub fn vpc_resolver(vpc: Cidr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(vpc.base()).wrapping_add(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_follow_the_ids() {
        assert_eq!(vpc_side_name("i-0123456789abcdef0"), "i56789abcdef0");
        assert_eq!(vpc_side_name("i-1a2b3c4d"), "i1a2b3c4d");
        assert!(vpc_side_name("i-0123456789abcdef0").len() <= 15);
        let subnet: Cidr = "10.7.1.0/24".parse().unwrap();
        assert_eq!(subnet_router(subnet), Ipv4Addr::new(10, 7, 1, 1));
        assert_eq!(vpc_resolver("10.7.0.0/16".parse().unwrap()), Ipv4Addr::new(10, 7, 0, 2));
    }

    #[test]
    fn ids_that_could_escape_a_path_are_refused() {
        assert!(check(IdKind::Vpc, "vpc-0123456789abcdef0").is_ok());
        assert!(check(IdKind::Instance, "i-1a2b3c4d").is_ok());
        for bad in ["i-../../etc", "vpc-0123456789abcdef0", "i-", "i-0123456789ABCDEF0"] {
            let e = check(IdKind::Instance, bad).unwrap_err().to_string();
            assert!(e.contains("not a well-formed instance id"), "{e}");
        }
    }
}
