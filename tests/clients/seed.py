"""The seed's steps with boto3, for tests/aws_clients.rs.

    python seed.py ENDPOINT_URL                  # steps as JSON lines on stdin
    python seed.py ENDPOINT_URL STEP ARGS_JSON   # one step

For each step ({"step": ..., "args": {...}} on stdin) it makes the step's
calls with boto3.client(..., endpoint_url=ENDPOINT_URL) and prints the answer
as one JSON line: what boto3 parsed (without ResponseMetadata), or
{"Error": {"Code": ..., "Message": ...}} for a ClientError. Anything else (a
response botocore cannot parse) is a traceback and exit status 1. Between
steps it waits on stdin, so the Rust side checks the data plane at each one;
the aws CLI runs the same steps from there.
"""

import json
import sys

import boto3
import botocore.exceptions


def vpc_filter(a):
    return [{"Name": "vpc-id", "Values": [a["vpc"]]}]


def describe_vpc_endpoints(ec2, a):
    max5 = ec2.describe_vpc_endpoints(Filters=vpc_filter(a), MaxResults=5)
    max5.pop("ResponseMetadata", None)
    pages = ec2.get_paginator("describe_vpc_endpoints").paginate(
        Filters=vpc_filter(a), PaginationConfig={"PageSize": 1}
    )
    paged = {"VpcEndpoints": [], "Pages": 0}
    for page in pages:
        paged["VpcEndpoints"] += page["VpcEndpoints"]
        paged["Pages"] += 1
    return {"Max5": max5, "Paged": paged}


def https_from_vpc(ec2, a):
    return ec2.authorize_security_group_ingress(
        GroupId=a["group"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": a["cidr"]}]}
        ],
    )


def revoke_https(ec2, a):
    return ec2.revoke_security_group_ingress(
        GroupId=a["group"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": a["cidr"]}]}
        ],
    )


def https_from_list(ec2, a):
    return ec2.authorize_security_group_ingress(
        GroupId=a["group"],
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "PrefixListIds": [{"PrefixListId": a["list"]}]}
        ],
    )


EC2 = {
    "create-vpc": lambda c, a: c.create_vpc(CidrBlock=a["cidr"]),
    "modify-vpc-attribute": lambda c, a: c.modify_vpc_attribute(
        VpcId=a["vpc"], EnableDnsHostnames={"Value": True}
    ),
    "create-subnet": lambda c, a: c.create_subnet(
        VpcId=a["vpc"], CidrBlock=a["cidr"], AvailabilityZone=a["az"]
    ),
    "create-security-group": lambda c, a: c.create_security_group(
        VpcId=a["vpc"], GroupName=a["name"], Description="443 from the VPC"
    ),
    "authorize-security-group-ingress": https_from_vpc,
    "revoke-security-group-ingress": revoke_https,
    "authorize-security-group-ingress-from-list": https_from_list,
    "create-managed-prefix-list": lambda c, a: c.create_managed_prefix_list(
        PrefixListName=a["name"], MaxEntries=2, AddressFamily="IPv4", Entries=[{"Cidr": a["cidr"]}]
    ),
    "modify-managed-prefix-list": lambda c, a: c.modify_managed_prefix_list(
        PrefixListId=a["list"], CurrentVersion=a["version"], RemoveEntries=[{"Cidr": a["cidr"]}]
    ),
    "get-managed-prefix-list-entries": lambda c, a: c.get_managed_prefix_list_entries(PrefixListId=a["list"]),
    "run-instances": lambda c, a: c.run_instances(
        ImageId="ami-12345678", SubnetId=a["subnet"], MinCount=1, MaxCount=1
    ),
    "create-vpc-endpoint": lambda c, a: c.create_vpc_endpoint(
        VpcId=a["vpc"],
        VpcEndpointType="Interface",
        ServiceName=a["service"],
        SubnetIds=a["subnets"],
        SecurityGroupIds=a["groups"],
        PrivateDnsEnabled=a["private_dns"],
        ClientToken=a["token"],
        TagSpecifications=[{"ResourceType": "vpc-endpoint", "Tags": [{"Key": "Name", "Value": a["name"]}]}],
    ),
    "describe-vpc-endpoints": describe_vpc_endpoints,
    "describe-network-interfaces": lambda c, a: c.describe_network_interfaces(Filters=vpc_filter(a)),
    "modify-vpc-endpoint": lambda c, a: c.modify_vpc_endpoint(
        VpcEndpointId=a["endpoint"], RemoveSubnetIds=[a["subnet"]]
    ),
    "delete-vpc-endpoints": lambda c, a: c.delete_vpc_endpoints(VpcEndpointIds=a["endpoints"]),
    "terminate-instances": lambda c, a: c.terminate_instances(InstanceIds=[a["instance"]]),
    "delete-security-group": lambda c, a: c.delete_security_group(GroupId=a["group"]),
    "delete-subnet": lambda c, a: c.delete_subnet(SubnetId=a["subnet"]),
    "delete-vpc": lambda c, a: c.delete_vpc(VpcId=a["vpc"]),
    "describe-vpcs": lambda c, a: c.describe_vpcs(VpcIds=[a["vpc"]]),
}


def step(endpoint_url, name, args, clients):
    try:
        if name == "get-caller-identity":
            # From inside an instance: the public name, which the VPC resolver
            # answers with the endpoint's ENIs; the stand-in's CA.
            answer = boto3.client("sts", endpoint_url=endpoint_url, verify=args["ca"]).get_caller_identity()
        else:
            if "ec2" not in clients:
                clients["ec2"] = boto3.client("ec2", endpoint_url=endpoint_url)
            answer = EC2[name](clients["ec2"], args)
    except botocore.exceptions.ClientError as e:
        answer = {"Error": e.response["Error"]}
    answer.pop("ResponseMetadata", None)
    print(json.dumps(answer, default=str), flush=True)


def main():
    endpoint_url, clients = sys.argv[1], {}
    if len(sys.argv) == 4:
        step(endpoint_url, sys.argv[2], json.loads(sys.argv[3]), clients)
        return
    for line in sys.stdin:
        request = json.loads(line)
        step(endpoint_url, request["step"], request["args"], clients)


if __name__ == "__main__":
    main()
