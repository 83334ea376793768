//! `privlink demo` end to end: the config's endpoint, then the same through
//! the EC2 API, each result checked by the demo itself (namespace test, root).

mod common;

#[test]
fn the_demo_tells_both_stories_and_leaves_nothing() {
    if !common::netns_available("the_demo_tells_both_stories_and_leaves_nothing") {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_privlink")).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "HTTP/1.1 200 OK",
        "no answer. An interface endpoint carries TCP only.",
        "$ aws ec2 create-vpc-endpoint",
        "HTTPS from the instance through the ENI: HTTP/1.1 200 OK",
        "namespaces left: 0",
        "Nothing was left behind.",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let after =
        String::from_utf8_lossy(&std::process::Command::new("ip").args(["netns", "list"]).output().unwrap().stdout)
            .to_string();
    assert!(!after.contains("plk-demo"), "{after}");
}
