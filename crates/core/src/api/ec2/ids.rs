//! EC2 resource ids: `prefix-` and 17 lowercase hex digits (8 for older
//! resources, still accepted). A string of the wrong shape is
//! `….Malformed`; a well-formed id of nothing is `….NotFound`.

use crate::api::error::ApiError;

/// The account every resource belongs to (the one LocalStack uses too).
pub const ACCOUNT_ID: &str = "000000000000";

/// The kinds of id the API makes and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `vpc-`.
    Vpc,
    /// `subnet-`.
    Subnet,
    /// `sg-`.
    SecurityGroup,
    /// `sgr-`.
    SecurityGroupRule,
    /// `acl-`.
    NetworkAcl,
    /// `aclassoc-`.
    NetworkAclAssociation,
    /// `i-`.
    Instance,
    /// `r-`.
    Reservation,
    /// `vpce-`.
    VpcEndpoint,
    /// `eni-`.
    NetworkInterface,
    /// `pl-`: a managed prefix list.
    PrefixList,
}

impl IdKind {
    /// The id's prefix, without the dash.
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Vpc => "vpc",
            IdKind::Subnet => "subnet",
            IdKind::SecurityGroup => "sg",
            IdKind::SecurityGroupRule => "sgr",
            IdKind::NetworkAcl => "acl",
            IdKind::NetworkAclAssociation => "aclassoc",
            IdKind::Instance => "i",
            IdKind::Reservation => "r",
            IdKind::VpcEndpoint => "vpce",
            IdKind::NetworkInterface => "eni",
            IdKind::PrefixList => "pl",
        }
    }

    /// (malformed code, not-found code, the noun in messages).
    fn codes(self) -> (&'static str, &'static str, &'static str) {
        match self {
            IdKind::Vpc => ("InvalidVpcID.Malformed", "InvalidVpcID.NotFound", "vpc ID"),
            IdKind::Subnet => ("InvalidSubnetID.Malformed", "InvalidSubnetID.NotFound", "subnet ID"),
            IdKind::SecurityGroup => ("InvalidGroupId.Malformed", "InvalidGroup.NotFound", "security group"),
            IdKind::SecurityGroupRule => (
                "InvalidSecurityGroupRuleId.Malformed",
                "InvalidSecurityGroupRuleId.NotFound",
                "security group rule ID",
            ),
            IdKind::NetworkAcl => ("InvalidNetworkAclID.Malformed", "InvalidNetworkAclID.NotFound", "network ACL ID"),
            IdKind::NetworkAclAssociation => {
                ("InvalidAssociationID.Malformed", "InvalidAssociationID.NotFound", "association ID")
            }
            IdKind::Instance => ("InvalidInstanceID.Malformed", "InvalidInstanceID.NotFound", "instance ID"),
            IdKind::Reservation => {
                ("InvalidReservationID.Malformed", "InvalidReservationID.NotFound", "reservation ID")
            }
            IdKind::VpcEndpoint => {
                ("InvalidVpcEndpointId.Malformed", "InvalidVpcEndpointId.NotFound", "Vpc Endpoint Id")
            }
            IdKind::NetworkInterface => {
                ("InvalidNetworkInterfaceID.Malformed", "InvalidNetworkInterfaceID.NotFound", "network interface ID")
            }
            // EC2 spells the managed-prefix-list actions' code `ID`, the
            // malformed one (and a rule's unknown list) `Id`.
            IdKind::PrefixList => ("InvalidPrefixListId.Malformed", "InvalidPrefixListID.NotFound", "prefix list ID"),
        }
    }

    /// Whether `id` has this kind's shape.
    pub fn is_well_formed(self, id: &str) -> bool {
        let Some(hex) = id.strip_prefix(self.prefix()).and_then(|r| r.strip_prefix('-')) else { return false };
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// `Ok` for a well-formed id, `….Malformed` otherwise.
    pub fn check(self, id: &str) -> Result<(), ApiError> {
        if self.is_well_formed(id) {
            Ok(())
        } else {
            let (code, _, noun) = self.codes();
            Err(ApiError::new(
                code,
                format!("Invalid id: \"{id}\" (expecting \"{}-...\"): the {noun} is malformed", self.prefix()),
            ))
        }
    }

    /// `….NotFound` for a well-formed id nothing holds.
    pub fn not_found(self, id: &str) -> ApiError {
        let (_, code, noun) = self.codes();
        ApiError::new(code, format!("The {noun} '{id}' does not exist"))
    }

    /// The kind an id's prefix names, for CreateTags on any resource.
    pub fn of(id: &str) -> Option<IdKind> {
        use IdKind::*;
        let prefix = id.rsplit_once('-')?.0;
        [
            Vpc,
            Subnet,
            SecurityGroup,
            SecurityGroupRule,
            NetworkAcl,
            NetworkAclAssociation,
            Instance,
            Reservation,
            VpcEndpoint,
            NetworkInterface,
            PrefixList,
        ]
        .into_iter()
        .find(|k| k.prefix() == prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_and_unknown_ids_are_told_apart() {
        assert!(IdKind::Vpc.is_well_formed("vpc-0123456789abcdef0"));
        assert!(IdKind::Vpc.is_well_formed("vpc-1a2b3c4d"));
        for bad in ["vpc-", "vpc-XYZ", "vpc-0123456789ABCDEF0", "subnet-1a2b3c4d", "vpc-1a2b3c4d5", "vpc1a2b3c4d"] {
            assert_eq!(IdKind::Vpc.check(bad).unwrap_err().code, "InvalidVpcID.Malformed", "{bad}");
        }
        assert_eq!(IdKind::Vpc.not_found("vpc-1a2b3c4d").code, "InvalidVpcID.NotFound");
        assert_eq!(IdKind::SecurityGroup.not_found("sg-1a2b3c4d").code, "InvalidGroup.NotFound");
        assert_eq!(IdKind::of("vpce-0123456789abcdef0"), Some(IdKind::VpcEndpoint));
        assert_eq!(IdKind::of("aclassoc-1a2b3c4d"), Some(IdKind::NetworkAclAssociation));
        assert_eq!(IdKind::of("nope"), None);
    }

    #[test]
    fn made_ids_are_well_formed() {
        let id = crate::model::make_id(IdKind::NetworkInterface.prefix(), [0x5a; 9]);
        assert!(IdKind::NetworkInterface.is_well_formed(&id), "{id}");
    }
}
